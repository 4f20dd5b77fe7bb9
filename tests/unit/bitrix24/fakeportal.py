"""A respx side effect answering the documented Bitrix24 shapes from in-memory rows (test double).

Only what the connector uses: list methods with ``>ID``/``<=ID``/``>=<modified>``/``@id`` filters,
``start=-1`` (no ``total``) or offsets, ``order`` by ID, ``batch`` with ``$result[...]`` references
and ``halt``, user fields, updates, tasks and to-dos. Shapes follow the official docs: classic methods
return string values and bare lists, ``crm.item.list`` returns ``{"items": [...]}`` with typed values,
empty batch sections are ``[]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

PORTAL = "https://example.bitrix24.ru"
WEBHOOK = f"{PORTAL}/rest/1/s3cr3tc0de42/"
DATE_START = "2026-03-01T12:00:00+03:00"


def php_parse(query: str) -> dict[str, Any]:
    """``filter[>ID]=5&select[0]=ID`` → ``{"filter": {">ID": "5"}, "select": {"0": "ID"}}``."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        path = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else [value]


def _time(operating: float = 0.0) -> dict[str, Any]:
    return {
        "start": 1772355600.0,
        "finish": 1772355600.1,
        "duration": 0.1,
        "processing": 0.05,
        "date_start": DATE_START,
        "date_finish": DATE_START,
        "operating": operating,
    }


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the "local" filter form: portal wall clock
        parsed = parsed.replace(tzinfo=datetime.fromisoformat(DATE_START).tzinfo)
    return parsed


class FakePortal:
    def __init__(self) -> None:
        self.contacts: list[dict[str, Any]] = []
        self.companies: list[dict[str, Any]] = []
        self.deals: list[dict[str, Any]] = []  # crm.item.list shape
        self.activities: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = [{"ID": "1", "NAME": "Admin", "LAST_NAME": "A", "ACTIVE": True}]
        self.categories: list[dict[str, Any]] = [{"id": 0, "name": "General", "sort": 300, "isDefault": "Y"}]
        self.statuses: list[dict[str, Any]] = []
        self.currencies: list[dict[str, Any]] = [
            {"CURRENCY": "RUB", "AMOUNT_CNT": 1, "AMOUNT": "1.0000", "BASE": "Y"},
            {"CURRENCY": "USD", "AMOUNT_CNT": 1, "AMOUNT": "90.0000", "BASE": "N"},
        ]
        self.userfields: dict[str, list[dict[str, Any]]] = {"contact": [], "company": []}
        self.tasks: list[dict[str, Any]] = []
        self.todos: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (method, body)
        self.faults: list[Callable[[str, dict[str, Any]], httpx.Response | None]] = []
        self.hooks: list[Callable[[str, dict[str, Any]], httpx.Response | None]] = []  # called on every request
        self.ignore_iso_modified_filter = False
        self.command_errors: dict[str, dict[str, str]] = {}  # "method#id" → error (for updates)

    # -- plumbing ---------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        method = path.rsplit("/", 1)[-1].removesuffix(".json")
        body = json.loads(request.content or b"{}")
        self.requests.append((method, body))
        for hook in self.hooks:
            answer = hook(method, body)
            if answer is not None:
                return answer
        if self.faults:  # one-shot: consumed by the first request it answers (or raises on)
            fault = self.faults.pop(0)
            answer = fault(method, body)
            if answer is not None:
                return answer
            self.faults.insert(0, fault)
        if method == "batch":
            return httpx.Response(200, json=self.batch(body))
        try:
            result, extra = self.run(method, body)
        except PortalError as exc:
            return httpx.Response(exc.status, json={"error": exc.code, "error_description": exc.description})
        return httpx.Response(200, json={"result": result, **extra, "time": _time()})

    def batch(self, body: dict[str, Any]) -> dict[str, Any]:
        halt = str(body.get("halt")) in ("1", "true", "True")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        for key, command in body["cmd"].items():
            method, _, query = command.partition("?")
            params = self._resolve(php_parse(query), results)
            try:
                result, extra = self.run(method, params)
            except PortalError as exc:
                errors[key] = {"error": exc.code, "error_description": exc.description}
                if halt:
                    break
                continue
            results[key] = result
            if "total" in extra:
                totals[key] = extra["total"]
            if "next" in extra:
                nexts[key] = extra["next"]
            times[key] = _time(0.01)
        return {
            "result": {
                "result": results or [],
                "result_error": errors or [],
                "result_total": totals or [],
                "result_next": nexts or [],
                "result_time": times or [],
            },
            "time": _time(),
        }

    def _resolve(self, params: Any, results: dict[str, Any]) -> Any:
        if isinstance(params, dict):
            return {k: self._resolve(v, results) for k, v in params.items()}
        if isinstance(params, str) and params.startswith("$result["):
            keys = re.findall(r"\[([^\]]*)\]", params)
            node: Any = results
            for k in keys:
                if isinstance(node, list) and k.isdigit() and int(k) < len(node):
                    node = node[int(k)]
                elif isinstance(node, dict) and k in node:
                    node = node[k]
                else:
                    return ""  # unresolvable: what a real portal does here is undocumented
            return node
        return params

    # -- methods ----------------------------------------------------------------------------------

    def run(self, method: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if method in ("crm.contact.list", "crm.company.list", "crm.activity.list"):
            rows = {
                "crm.contact.list": self.contacts,
                "crm.company.list": self.companies,
                "crm.activity.list": self.activities + self.todos,
            }[method]
            modified = "LAST_UPDATED" if method == "crm.activity.list" else "DATE_MODIFY"
            return self._list(rows, p, "ID", modified)
        if method == "crm.item.list":
            if str(p.get("entityTypeId")) != "2":
                raise PortalError(400, "NOT_FOUND", "Smart process not found")
            result, extra = self._list(self.deals, p, "id", "updatedTime")
            return {"items": result}, extra
        if method == "user.get":
            return self._offset(self.users, p)
        if method == "crm.category.list":
            result, extra = self._offset(self.categories, p)
            return {"categories": result}, extra
        if method == "crm.status.list":
            entity = p.get("filter", {}).get("ENTITY_ID")
            return self._offset([s for s in self.statuses if s["ENTITY_ID"] == entity], p)
        if method == "crm.currency.list":
            return list(self.currencies), {}
        m = re.fullmatch(r"crm\.(contact|company)\.userfield\.(list|add)", method)
        if m:
            return self._userfield(m[1], m[2], p)
        m = re.fullmatch(r"crm\.(contact|company)\.update", method)
        if m:
            return self._update(m[1], p)
        if method == "tasks.task.add":
            fields = p["fields"]
            if not fields.get("RESPONSIBLE_ID"):
                raise PortalError(400, "ERROR_CORE", "Responsible person not specified")
            task = {
                "id": str(3700 + len(self.tasks) + 1),
                "title": fields["TITLE"],
                "description": fields.get("DESCRIPTION", ""),
                "status": "2",
                "responsibleId": str(fields["RESPONSIBLE_ID"]),
                "deadline": fields.get("DEADLINE"),
                "ufCrmTask": as_list(fields.get("UF_CRM_TASK", [])),
            }
            self.tasks.append(task)
            return {"task": task}, {}
        if method == "tasks.task.list":
            binding = as_list(p.get("filter", {}).get("UF_CRM_TASK", []))
            found = [t for t in self.tasks if set(binding) & set(t["ufCrmTask"])]
            result, extra = self._offset(found, p)
            return {"tasks": result}, extra
        if method == "tasks.task.complete":
            for t in self.tasks:
                if t["id"] == str(p["taskId"]):
                    t["status"] = "5"
                    return {"task": t}, {}
            raise PortalError(400, "ERROR_CORE", "Task not found")
        if method == "crm.activity.todo.add":
            todo = {
                "ID": str(900 + len(self.todos) + 1),
                "OWNER_TYPE_ID": str(p["ownerTypeId"]),
                "OWNER_ID": str(p["ownerId"]),
                "PROVIDER_ID": "CRM_TODO",
                "SUBJECT": p.get("title", ""),
                "DESCRIPTION": p.get("description", ""),
                "COMPLETED": "N",
                "RESPONSIBLE_ID": str(p.get("responsibleId", "")),
                "DEADLINE": p["deadline"],
            }
            self.todos.append(todo)
            return {"id": int(todo["ID"])}, {}
        if method == "crm.activity.update":
            for t in self.todos:
                if t["ID"] == str(p["id"]):
                    t.update(p["fields"])
                    return True, {}
            raise PortalError(400, "", "Activity is not found")
        raise PortalError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")

    def _match(self, row: dict[str, Any], filt: dict[str, Any], id_field: str, modified: str) -> bool:
        for key, value in filt.items():
            if key == f">{id_field}":
                if value == "" or int(row[id_field]) <= int(value):
                    return False
            elif key == f"<={id_field}":
                if int(row[id_field]) > int(value):
                    return False
            elif key == f"@{id_field}":
                if str(row[id_field]) not in {str(v) for v in as_list(value)}:
                    return False
            elif key == f">={modified}":
                if self.ignore_iso_modified_filter and "T" in str(value):
                    continue
                bound, have = _dt(value), _dt(row.get(modified))
                if bound is None or have is None or have < bound:
                    return False
            elif (key.isalpha() or "_" in key) and str(row.get(key)) != str(value):
                return False
        return True

    def _list(self, rows: list[dict[str, Any]], p: dict[str, Any], id_field: str, modified: str):
        filt = p.get("filter") or {}
        found = [r for r in rows if self._match(r, filt, id_field, modified)]
        order = p.get("order") or {}
        found.sort(key=lambda r: int(r[id_field]), reverse=str(order.get(id_field, "ASC")).upper() == "DESC")
        select = as_list(p.get("select") or [])
        if select and "*" not in select:
            found = [{k: v for k, v in r.items() if k in select} for r in found]
        start = int(p.get("start", 0))
        if start == -1:
            return found[:50], {"total": 0}
        page = found[start : start + 50]
        extra: dict[str, Any] = {"total": len(found)}
        if start + 50 < len(found):
            extra["next"] = start + 50
        return page, extra

    def _offset(self, rows: list[Any], p: dict[str, Any]):
        start = int(p.get("start", 0) or 0)
        extra: dict[str, Any] = {"total": len(rows)}
        if start + 50 < len(rows):
            extra["next"] = start + 50
        return rows[start : start + 50], extra

    def _userfield(self, entity: str, action: str, p: dict[str, Any]):
        fields = self.userfields[entity]
        if action == "list":
            name = p.get("filter", {}).get("FIELD_NAME")
            return [f for f in fields if name is None or f["FIELD_NAME"] == name], {"total": len(fields)}
        spec = p["fields"]
        name = "UF_CRM_" + spec["FIELD_NAME"]
        if len(name) > 20:
            raise PortalError(400, "", "FIELD_NAME is too long")
        if any(f["FIELD_NAME"] == name for f in fields):
            raise PortalError(400, "", "Field already exists")
        fields.append({"ID": str(100 + len(fields)), "FIELD_NAME": name, "USER_TYPE_ID": spec["USER_TYPE_ID"]})
        return int(fields[-1]["ID"]), {}

    def _update(self, entity: str, p: dict[str, Any]):
        rows = self.contacts if entity == "contact" else self.companies
        error = self.command_errors.get(f"crm.{entity}.update#{p['id']}")
        if error:
            raise PortalError(400, error.get("error", ""), error.get("error_description", ""))
        for row in rows:
            if row["ID"] == str(p["id"]):
                row.update(p.get("fields", {}))
                return True, {}
        raise PortalError(400, "", f"{entity.title()} is not found")


class PortalError(Exception):
    def __init__(self, status: int, code: str, description: str):
        self.status, self.code, self.description = status, code, description
        super().__init__(description)


def contact(i: int, **extra: Any) -> dict[str, Any]:
    row = {
        "ID": str(i),
        "NAME": f"Name{i}",
        "LAST_NAME": "Test",
        "TYPE_ID": "CLIENT",
        "SOURCE_ID": "WEB",
        "COMPANY_ID": None,
        "ASSIGNED_BY_ID": "1",
        "DATE_CREATE": "2025-01-01T10:00:00+03:00",
        "DATE_MODIFY": "2025-06-01T10:00:00+03:00",
        "PHONE": [{"ID": str(i * 10), "VALUE_TYPE": "WORK", "VALUE": "8 (912) 345-67-89", "TYPE_ID": "PHONE"}],
        "EMAIL": [{"ID": str(i * 10 + 1), "VALUE_TYPE": "WORK", "VALUE": f"User{i}@Example.COM", "TYPE_ID": "EMAIL"}],
    }
    row.update(extra)
    return row


def company(i: int, **extra: Any) -> dict[str, Any]:
    row = {
        "ID": str(i),
        "TITLE": f"Co {i}",
        "COMPANY_TYPE": "CUSTOMER",
        "INDUSTRY": "IT",
        "ASSIGNED_BY_ID": "1",
        "DATE_CREATE": "2025-01-01T10:00:00+03:00",
        "DATE_MODIFY": "2025-06-01T10:00:00+03:00",
    }
    row.update(extra)
    return row


def deal(i: int, **extra: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "title": f"Deal {i}",
        "categoryId": 0,
        "stageId": "WON",
        "stageSemanticId": "S",
        "opportunity": 1000.5,
        "currencyId": "RUB",
        "companyId": 0,
        "contactId": 1,
        "contactIds": [1],
        "assignedById": 1,
        "createdTime": "2025-02-01T10:00:00+03:00",
        "updatedTime": "2025-06-01T10:00:00+03:00",
        "closedate": "2025-03-01T00:00:00+03:00",
        "closed": "Y",
        "movedTime": "2025-03-02T15:30:00+03:00",
        "sourceId": "WEB",
        "typeId": "SALE",
    }
    row.update(extra)
    return row
