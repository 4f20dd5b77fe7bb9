"""A respx-mounted amoCRM account built from the documented API shapes (see shared/api/amocrm.md).

Lists: ``_page``/``_links``/``_embedded``, 204 with no body when empty, ``next`` on every full page
(even when the following page is empty, as users report), inclusive ``filter[updated_at]`` bounds,
``order[updated_at|id]``. Errors: problem+json, or HTML where real gateways send HTML. Tokens
rotate and a used refresh token is revoked (``hint: Token has been revoked``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import respx

BASE = "https://example.amocrm.ru"
HAL = {"content-type": "application/hal+json"}
PROBLEM = {"content-type": "application/problem+json"}


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {
        "title": httpx.codes.get_reason_phrase(status),
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail,
        **extra,
    }
    return httpx.Response(status, headers=PROBLEM, content=json.dumps(body).encode())


def html(status: int) -> httpx.Response:
    page = f"<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center><hr>nginx</body></html>"
    return httpx.Response(status, headers={"content-type": "text/html"}, content=page.encode())


class FakeAmo:
    def __init__(self, base: str = BASE, *, filter_enabled: bool = True, account_id: int = 28805383):
        self.base = base
        self.account_id = account_id
        self.filter_enabled = filter_enabled
        self.records: dict[str, dict[int, dict[str, Any]]] = {"leads": {}, "contacts": {}, "companies": {}}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.users = [{"id": 504141, "name": "Admin", "rights": {"is_active": True}}]
        self.pipelines = [
            {
                "id": 1113,
                "name": "Sales",
                "sort": 1,
                "is_main": True,
                "_embedded": {
                    "statuses": [
                        {"id": 2030, "name": "New", "sort": 10, "pipeline_id": 1113, "type": 0},
                        {"id": 142, "name": "Won", "sort": 10000, "pipeline_id": 1113, "type": 0},
                        {"id": 143, "name": "Lost", "sort": 11000, "pipeline_id": 1113, "type": 0},
                    ]
                },
            },
        ]
        self.requests: list[httpx.Request] = []
        self.canned: list[httpx.Response] = []  # served first, one per request (faults)
        self.on_list: Callable[[str, dict[str, str]], None] | None = None  # mutate data mid-scan
        self.tokens = {"access": "access-token-0", "refresh": "refresh-token-0"}
        self.revoked: set[str] = set()
        self.token_calls: list[dict[str, Any]] = []
        self.expires_in = 86400
        self.long_lived: set[str] = set()
        self._ids = itertools.count(9000000)

    # --- data helpers ------------------------------------------------------------------------

    def add(self, entity: str, id_: int, updated_at: int, **fields: Any) -> dict[str, Any]:
        rec = {
            "id": id_,
            "name": f"{entity} {id_}",
            "responsible_user_id": 504141,
            "created_at": updated_at - 100,
            "updated_at": updated_at,
            "custom_fields_values": None,
            "account_id": self.account_id,
            "_links": {"self": {"href": f"{self.base}/api/v4/{entity}/{id_}"}},
            "_embedded": {"tags": []},
            **fields,
        }
        if entity == "leads":
            rec.setdefault("price", 1000)
            rec.setdefault("status_id", 2030)
            rec.setdefault("pipeline_id", 1113)
            rec.setdefault("closed_at", None)
        self.records[entity][id_] = rec
        return rec

    def touch(self, entity: str, id_: int, updated_at: int) -> None:
        self.records[entity][id_]["updated_at"] = updated_at

    # --- routing -----------------------------------------------------------------------------

    def mount(self, router: respx.MockRouter) -> FakeAmo:
        router.route(host=httpx.URL(self.base).host).mock(side_effect=self.handle)
        return self

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        return token == self.tokens["access"] or token in self.long_lived

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/oauth2/access_token":
            return self._token(request)
        if self.canned:
            return self.canned.pop(0)
        if not self._authorized(request):
            return problem(401, "Invalid user name or password")
        query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        multi = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        method = request.method
        if path == "/api/v4/account":
            body: dict[str, Any] = {
                "id": self.account_id,
                "name": "Test",
                "subdomain": "example",
                "currency": "RUB",
                "current_user_id": 504141,
            }
            if "is_api_filter_enabled" in query.get("with", ""):
                body["is_api_filter_enabled"] = self.filter_enabled
            return httpx.Response(200, headers=HAL, json=body)
        if path == "/api/v4/users":
            return self._list("users", {u["id"]: u for u in self.users}, query, multi)
        if path == "/api/v4/leads/pipelines":
            return httpx.Response(
                200, headers=HAL, json={"_total_items": 1, "_embedded": {"pipelines": self.pipelines}}
            )
        if path == "/api/v4/events":
            return self._events(query, multi)
        if path == "/api/v4/tasks":
            if method == "POST":
                return self._create_tasks(json.loads(request.content))
            if method == "PATCH":
                return self._patch(self.tasks, "tasks", json.loads(request.content))
            return self._list("tasks", self.tasks, query, multi)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[2] in self.records:
            entity = parts[2]
            if method == "PATCH":
                return self._patch(self.records[entity], entity, json.loads(request.content))
            return self._list(entity, self.records[entity], query, multi)
        if len(parts) == 4 and parts[2] in self.records and parts[3].isdigit():
            rec = self.records[parts[2]].get(int(parts[3]))
            return httpx.Response(204) if rec is None else httpx.Response(200, headers=HAL, json=rec)
        if len(parts) == 4 and parts[3] == "tags":
            if method == "POST":
                items = json.loads(request.content)
                return httpx.Response(
                    200,
                    headers=HAL,
                    json={
                        "_total_items": len(items),
                        "_embedded": {
                            "tags": [
                                {"id": next(self._ids), "name": i["name"], "request_id": i.get("request_id")}
                                for i in items
                            ]
                        },
                    },
                )
            return httpx.Response(204)
        return problem(404, f"Cannot GET {request.url}")

    def _token(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.token_calls.append(body)
        if body.get("grant_type") == "authorization_code":
            if body.get("code") != "good-code":
                return problem(400, "В запросе отсутствует ряд параметров или параметры невалидны", hint="Code expired")
        elif body.get("grant_type") == "refresh_token":
            if body.get("refresh_token") != self.tokens["refresh"] or body["refresh_token"] in self.revoked:
                return problem(401, "В запросе отсутствует ряд параметров", hint="Token has been revoked")
            self.revoked.add(body["refresh_token"])
        else:
            return problem(400, "bad grant")
        n = len(self.token_calls)
        self.tokens = {"access": f"access-token-{n}", "refresh": f"refresh-token-{n}"}
        return httpx.Response(
            200,
            json={
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "access_token": self.tokens["access"],
                "refresh_token": self.tokens["refresh"],
            },
        )

    def _list(self, key: str, table: dict[int, dict[str, Any]], query: dict[str, str], multi: list) -> httpx.Response:
        if self.on_list is not None:
            self.on_list(key, query)
        rows = list(table.values())
        if self.filter_enabled or key in ("tasks", "users"):
            lo = query.get("filter[updated_at][from]")
            hi = query.get("filter[updated_at][to]")
            if lo is not None:
                rows = [r for r in rows if r["updated_at"] >= int(lo)]
            if hi is not None:
                rows = [r for r in rows if r["updated_at"] <= int(hi)]
        ids = {int(v) for k, v in multi if k == "filter[id][]"}
        if ids:
            rows = [r for r in rows if r["id"] in ids]
        etype = query.get("filter[entity_type]")
        if etype:
            eids = {int(v) for k, v in multi if k == "filter[entity_id][]"}
            rows = [r for r in rows if r.get("entity_type") == etype and (not eids or r.get("entity_id") in eids)]
        rows.sort(key=lambda r: r["id"])
        for field, direction in ((k[6:-1], v) for k, v in query.items() if k.startswith("order[")):
            rows.sort(key=lambda r, f=field: r.get(f) or 0, reverse=direction == "desc")
        limit = min(int(query.get("limit", 50)), 250)
        page = int(query.get("page", 1))
        chunk = rows[(page - 1) * limit : page * limit]
        if not chunk:
            return httpx.Response(204)
        links = {"self": {"href": f"{self.base}/api/v4/{key}?page={page}"}}
        if len(chunk) == limit:
            links["next"] = {"href": f"{self.base}/api/v4/{key}?page={page + 1}"}
        return httpx.Response(200, headers=HAL, json={"_page": page, "_links": links, "_embedded": {key: chunk}})

    def _events(self, query: dict[str, str], multi: list) -> httpx.Response:
        types = {v for k, v in multi if k == "filter[type][]"}
        lo = int(query.get("filter[created_at][from]", 0))
        hi = int(query.get("filter[created_at][to]", 2**40))
        rows = [e for e in self.events if (not types or e["type"] in types) and lo <= e["created_at"] <= hi]
        rows.sort(key=lambda e: e["created_at"], reverse=True)
        limit = min(int(query.get("limit", 50)), 100)
        page = int(query.get("page", 1))
        chunk = rows[(page - 1) * limit : page * limit]
        if not chunk:
            return httpx.Response(204)
        links = {"self": {"href": "x"}, **({"next": {"href": "y"}} if len(chunk) == limit else {})}
        return httpx.Response(200, headers=HAL, json={"_page": page, "_links": links, "_embedded": {"events": chunk}})

    def event(self, type_: str, entity_type: str, entity_id: int, created_at: int) -> None:
        self.events.append(
            {
                "id": f"01ev{len(self.events):06d}",
                "type": type_,
                "entity_id": entity_id,
                "entity_type": entity_type,
                "created_by": 504141,
                "created_at": created_at,
                "value_after": [],
                "value_before": [],
                "account_id": self.account_id,
            }
        )

    def _patch(self, table: dict[int, dict[str, Any]], key: str, items: list[dict[str, Any]]) -> httpx.Response:
        out = []
        for n, item in enumerate(items):
            rec = table.get(int(item["id"]))
            if rec is None:
                return problem(
                    400,
                    "Request validation failed",
                    **{
                        "validation-errors": [
                            {
                                "request_id": item.get("request_id", str(n)),
                                "errors": [{"code": "NotFound", "path": "id", "detail": "Entity not found"}],
                            }
                        ]
                    },
                )
        for item in items:
            rec = table[int(item["id"])]
            if "_embedded" in item:
                raise AssertionError("segsync must never send _embedded on a PATCH")
            tags = rec.setdefault("_embedded", {}).setdefault("tags", [])
            for t in item.get("tags_to_add", []):
                if t["name"] not in [x["name"] for x in tags]:
                    tags.append({"id": next(self._ids), "name": t["name"]})
            drop = {t["name"] for t in item.get("tags_to_delete", [])}
            rec["_embedded"]["tags"] = [t for t in tags if t["name"] not in drop]
            for field in ("is_completed", "result"):
                if field in item:
                    rec[field] = item[field]
            out.append({"id": rec["id"], "updated_at": rec.get("updated_at"), "request_id": item.get("request_id")})
        return httpx.Response(200, headers=HAL, json={"_links": {}, "_embedded": {key: out}})

    def _create_tasks(self, items: list[dict[str, Any]]) -> httpx.Response:
        errors = [
            {
                "request_id": i.get("request_id", str(n)),
                "errors": [{"code": "NotEmpty", "path": "text", "detail": "This value should not be blank."}],
            }
            for n, i in enumerate(items)
            if not i.get("text")
        ]
        if errors:
            return problem(400, "Request validation failed", **{"validation-errors": errors})
        out = []
        for item in items:
            tid = next(self._ids)
            self.tasks[tid] = {
                "id": tid,
                "is_completed": False,
                "updated_at": 1700000000,
                "created_at": 1700000000,
                "duration": 0,
                "group_id": 0,
                **{k: v for k, v in item.items() if k != "request_id"},
            }
            out.append({"id": tid, "request_id": item.get("request_id"), "_links": {}})
        return httpx.Response(200, headers=HAL, json={"_links": {}, "_embedded": {"tasks": out}})
