"""REST methods of the emulated portal. Each returns a :class:`Reply`; errors raise ``ApiError``.

Shapes follow the method pages of the official docs (bitrix24/b24restdocs) as summarized in
shared/api/bitrix24.md; classic ``crm.*`` values are strings, ``crm.item.*`` values are typed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segsync.sandbox.bitrix24.errors import ApiError, crm_error
from segsync.sandbox.bitrix24.params import as_int, as_list, get
from segsync.sandbox.bitrix24.portal import Bitrix24Portal
from segsync.sandbox.bitrix24.query import ListResult, Query, resolve_select
from segsync.sandbox.bitrix24.render import render_rows
from segsync.sandbox.bitrix24.table import NULL, EntityTable, uf_camel


@dataclass
class Caller:
    user_id: int
    scopes: tuple[str, ...]
    key: str  # operating-time owner: "webhook:<code>" or "app:<client_id>"
    is_admin: bool


@dataclass
class Reply:
    result: Any
    total: int | None = None
    next: int | None = None
    cost: float = 0.0  # modelled server time (s)


Method = Callable[[Bitrix24Portal, dict[str, Any], Caller], Reply]
METHODS: dict[str, tuple[str, Method]] = {}


def method(name: str, scope: str) -> Callable[[Method], Method]:
    def deco(fn: Method) -> Method:
        METHODS[name] = (scope, fn)
        return fn

    return deco


def _list_cost(p: Bitrix24Portal, table: EntityTable, res: ListResult) -> float:
    o = p.options
    cost = o.cost_base_s + o.cost_per_row_s * res.rows.size
    if res.counted:
        cost += o.cost_count_per_row_s * table.n + o.cost_offset_per_row_s * res.offset
    return cost


# -- classic CRM lists / get / update ------------------------------------------------------------
ENTITY_TITLES = {"contact": "Contact", "company": "Company", "deal": "Deal"}


def _list(entity: str) -> Method:
    def handler(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
        t = p.table(entity)
        q = Query(t, filter=get(params, "filter"), order=get(params, "order"), parse_date=p.parse_date)
        res = q.run(get(params, "start"))
        names = resolve_select(
            t, get(params, "select"), item=False, uf_names=p.uf_names(entity), multiple_uf=p.multiple_ufs(entity)
        )
        rows = render_rows(t, res.rows, names)
        return Reply(rows, total=res.total if res.counted else 0, next=res.next, cost=_list_cost(p, t, res))

    return handler


def _row(p: Bitrix24Portal, entity: str, params: dict[str, Any]) -> int:
    ident = as_int(get(params, "id"))
    if ident is None or ident <= 0:
        raise crm_error("ID is not defined or invalid.")
    row = p.table(entity).row_of(ident)
    if row is None:
        raise crm_error("Not found")
    return row


def _get(entity: str) -> Method:
    def handler(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
        t = p.table(entity)
        row = _row(p, entity, params)
        names = [*t.fields, *p.uf_names(entity), *t.multi]
        return Reply(render_rows(t, np.array([row]), names)[0], cost=p.options.cost_base_s)

    return handler


def apply_fields(p: Bitrix24Portal, entity: str, row: int, fields: dict[str, Any], *, user_id: int) -> None:
    """Write classic fields (unknown ones are ignored, as documented) and bump DATE_MODIFY."""
    t = p.table(entity)
    defs = {d["FIELD_NAME"]: d for d in p.uf_defs(entity)}
    for key, value in fields.items():
        key = str(key)
        if key in t.multi:
            t.set_multi(row, key, value)
            has = "HAS_" + key
            if has in t.cols:
                t.cols[has][row] = bool(t.multi[key][row])
        elif key in defs:
            stored = _uf_value(defs[key], value)
            if stored is not _SKIP:
                t.uf.setdefault(key, {})[row] = stored
        elif key in t.fields and key not in ("ID", "DATE_CREATE", "DATE_MODIFY") and t.fields[key].column:
            t.set_value(row, t.fields[key], value, p.parse_date)
        elif key == "CONTACT_IDS" and entity == "deal":
            p.deal_contact_override[int(t.ids[row])] = [int(x) for x in as_list(value) if as_int(x)]
    if "DATE_MODIFY" in t.cols:
        t.cols["DATE_MODIFY"][row] = int(p.now())
    if "MODIFY_BY_ID" in t.cols:
        t.cols["MODIFY_BY_ID"][row] = user_id


_SKIP = object()


def _uf_value(definition: dict[str, Any], value: Any) -> Any:
    multiple = definition["MULTIPLE"] == "Y"
    values = as_list(value) if multiple else [value]
    out = []
    for v in values:
        if v in (None, "", False):
            continue
        if definition["USER_TYPE_ID"] == "enumeration":
            ids = {str(i["ID"]) for i in definition.get("LIST", [])}
            if str(v) not in ids:
                continue  # not an item of the list: the API stores nothing
            out.append(str(v))
        elif definition["USER_TYPE_ID"] in ("integer",):
            iv = as_int(v)
            if iv is not None:
                out.append(str(iv))
        else:
            out.append(str(v))
    if multiple:
        return out
    return out[0] if out else None


def _update(entity: str) -> Method:
    def handler(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
        ident = as_int(get(params, "id"))
        if ident is None or ident <= 0:
            raise crm_error("ID is not defined or invalid.")
        row = p.table(entity).row_of(ident)
        if row is None:
            raise crm_error(f"{ENTITY_TITLES[entity]} is not found")
        fields = get(params, "fields")
        if not isinstance(fields, dict):
            raise crm_error("The parameter 'fields' must be array.")
        apply_fields(p, entity, row, fields, user_id=caller.user_id)
        if p.options.events_on_api_writes:
            p.emit(entity, "update", ident)
        return Reply(True, cost=p.options.cost_base_s * 4)

    return handler


for _e in ("contact", "company", "deal"):
    method(f"crm.{_e}.list", "crm")(_list(_e))
    method(f"crm.{_e}.get", "crm")(_get(_e))
    method(f"crm.{_e}.update", "crm")(_update(_e))


# -- crm.item.* ---------------------------------------------------------------------------------
ITEM_TYPES = {2: "deal", 3: "contact", 4: "company"}


def _item_entity(params: dict[str, Any]) -> str:
    etid = as_int(get(params, "entityTypeId"))
    if etid not in ITEM_TYPES:
        raise ApiError(400, "NOT_FOUND", "Smart process not found")
    return ITEM_TYPES[etid]


def _item_rows(p: Bitrix24Portal, entity: str, rows: np.ndarray, select: Any, original_uf: bool) -> list[dict]:
    t = p.table(entity)
    wanted = [str(s) for s in as_list(select)]
    names = resolve_select(t, select, item=True, uf_names=p.uf_names(entity), multiple_uf=set())
    out = render_rows(t, rows, names, item=True)
    if entity == "deal" and (not wanted or "*" in wanted or "contactIds" in wanted):
        for d, contact_ids in zip(out, p.deal_contacts_page(rows), strict=True):
            d["contactIds"] = contact_ids
    if original_uf:
        for d in out:
            for name in p.uf_names(entity):
                if uf_camel(name) in d:
                    d[name] = d.pop(uf_camel(name))
    return out


@method("crm.item.list", "crm")
def item_list(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    entity = _item_entity(params)
    t = p.table(entity)
    q = Query(
        t,
        filter=get(params, "filter"),
        order=get(params, "order"),
        item=True,
        parse_date=p.parse_date,
        uf_names=p.uf_names(entity),
    )
    res = q.run(get(params, "start"))
    original = str(get(params, "useOriginalUfNames", "N")).upper() == "Y"
    items = _item_rows(p, entity, res.rows, get(params, "select"), original)
    return Reply({"items": items}, total=res.total if res.counted else 0, next=res.next, cost=_list_cost(p, t, res))


@method("crm.item.get", "crm")
def item_get(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    entity = _item_entity(params)
    ident = as_int(get(params, "id"))
    row = p.table(entity).row_of(ident) if ident else None
    if row is None:
        raise ApiError(400, "NOT_FOUND", "Element not found")
    original = str(get(params, "useOriginalUfNames", "N")).upper() == "Y"
    return Reply({"item": _item_rows(p, entity, np.array([row]), ["*"], original)[0]}, cost=p.options.cost_base_s)


@method("crm.deal.contact.items.get", "crm")
def deal_contacts(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    row = _row(p, "deal", params)
    ids = p.deal_contacts(row)
    return Reply(
        [
            {"CONTACT_ID": cid, "SORT": (i + 1) * 10, "ROLE_ID": 0, "IS_PRIMARY": "Y" if i == 0 else "N"}
            for i, cid in enumerate(ids)
        ],
        cost=p.options.cost_base_s,
    )


# -- dictionaries ------------------------------------------------------------------------------
def _statuses(p: Bitrix24Portal) -> list[dict[str, Any]]:
    from segsync.sandbox import names as N

    out: list[dict[str, Any]] = []
    sid = 1
    colors = {"process": "#39A8EF", "success": "#7BD500", "failure": "#FF5752"}
    sem_long = {"open": "process", "won": "success", "lost": "failure"}
    for r in p.world.stages.sort("pipeline_id", "sort").iter_rows(named=True):
        pid = r["pipeline_id"]
        long = sem_long[r["semantic"]]
        out.append(
            {
                "ID": str(sid),
                "ENTITY_ID": "DEAL_STAGE" if pid == 0 else f"DEAL_STAGE_{pid}",
                "STATUS_ID": r["code"] if pid == 0 else f"C{pid}:{r['code']}",
                "NAME": r["name"],
                "NAME_INIT": r["name"],
                "SORT": str(r["sort"]),
                "SYSTEM": "Y" if r["semantic"] != "open" or r["code"] == "NEW" else "N",
                "CATEGORY_ID": None if pid == 0 else str(pid),
                "COLOR": colors[long],
                "SEMANTICS": {"open": None, "won": "S", "lost": "F"}[r["semantic"]],
                "EXTRA": {"SEMANTICS": long, "COLOR": colors[long]},
            }
        )
        sid += 1
    for entity_id, items in (("SOURCE", N.SOURCES), ("INDUSTRY", N.INDUSTRIES)):
        for i, (code, name) in enumerate(items):
            out.append(
                {
                    "ID": str(sid),
                    "ENTITY_ID": entity_id,
                    "STATUS_ID": code,
                    "NAME": name,
                    "NAME_INIT": name,
                    "SORT": str((i + 1) * 10),
                    "SYSTEM": "Y",
                    "CATEGORY_ID": None,
                    "COLOR": None,
                    "SEMANTICS": None,
                }
            )
            sid += 1
    return out


@method("crm.status.list", "crm")
def status_list(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    flt = get(params, "filter") or {}
    rows = _statuses(p)
    if isinstance(flt, dict):
        for key, value in flt.items():
            rows = [r for r in rows if str(r.get(str(key).upper())) == str(value)]
    return Reply(rows, total=len(rows), cost=p.options.cost_base_s)


@method("crm.category.list", "crm")
def category_list(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    if as_int(get(params, "entityTypeId")) != 2:
        raise ApiError(400, "NOT_FOUND", "Smart process not found")
    cats = [
        {
            "id": int(r["id"]),
            "name": r["name"],
            "sort": int(r["sort"]),
            "entityTypeId": 2,
            "isDefault": "Y" if r["id"] == 0 else "N",
        }
        for r in p.world.pipelines.iter_rows(named=True)
    ]
    return Reply({"categories": cats}, total=len(cats), cost=p.options.cost_base_s)


@method("crm.currency.list", "crm")
def currency_list(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    names = {"RUB": "Российский рубль", "USD": "Доллар США", "EUR": "Евро", "KZT": "Тенге"}
    out = []
    for i, r in enumerate(p.world.currencies.iter_rows(named=True)):
        out.append(
            {
                "CURRENCY": r["code"],
                "AMOUNT_CNT": "1",
                "AMOUNT": f"{r['rate']:.4f}",
                "SORT": str((i + 1) * 100),
                "BASE": "Y" if r["is_base"] else "N",
                "FULL_NAME": names.get(r["code"], r["code"]),
                "LID": "ru",
                "FORMAT_STRING": "# ₽" if r["code"] == "RUB" else f"# {r['code']}",
                "DEC_POINT": ",",
                "THOUSANDS_SEP": " ",
                "DECIMALS": "2",
                "DATE_UPDATE": p.clock.iso(int(p.world.now.timestamp())),
            }
        )
    return Reply(out, cost=p.options.cost_base_s)


def _user_row(p: Bitrix24Portal, u: dict[str, Any]) -> dict[str, Any]:
    first, _, last = u["name"].partition(" ")
    return {
        "ID": str(u["id"]),
        "XML_ID": str(u["id"]),
        "ACTIVE": u["active"],
        "NAME": first,
        "LAST_NAME": last,
        "SECOND_NAME": "",
        "EMAIL": u["email"],
        "LAST_LOGIN": None,
        "DATE_REGISTER": p.clock.iso(int(p.world.now.timestamp()) - 3 * 365 * 86400),
        "IS_ONLINE": "N",
        "TIME_ZONE": "",
        "PERSONAL_GENDER": "",
        "WORK_POSITION": "Администратор" if u["is_admin"] else "Менеджер по продажам",
        "UF_DEPARTMENT": [1],
        "USER_TYPE": "employee",
    }


@method("user.get", "user")
def user_get(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    users = p.users
    flt = get(params, "filter") or {}
    ident = as_int(get(params, "ID")) if not isinstance(flt, dict) or not flt else None
    if isinstance(flt, dict):
        for key, value in flt.items():
            k = str(key).upper().lstrip("=")
            if k == "ACTIVE":
                want = str(value).lower() in ("true", "y", "1")
                users = [u for u in users if u["active"] == want]
            elif k == "ID":
                ids = {as_int(v) for v in as_list(value)}
                users = [u for u in users if u["id"] in ids]
    if ident is not None:
        users = [u for u in users if u["id"] == ident]
    start = as_int(get(params, "start")) or 0
    offset = (max(start, 0) // 50) * 50
    page = users[offset : offset + 50]
    nxt = offset + 50 if len(users) > offset + 50 else None
    return Reply([_user_row(p, u) for u in page], total=len(users), next=nxt, cost=p.options.cost_base_s)


@method("user.current", "user")
def user_current(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    u = p.user(caller.user_id)
    return Reply(_user_row(p, u) if u else {}, cost=p.options.cost_base_s)


# -- activities and to-dos ---------------------------------------------------------------------
@method("crm.activity.list", "crm")
def activity_list(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    t = p.activities
    q = Query(t, filter=get(params, "filter"), order=get(params, "order"), parse_date=p.parse_date)
    res = q.run(get(params, "start"))
    names = resolve_select(t, get(params, "select"), item=False, uf_names=[], multiple_uf=set())
    return Reply(
        render_rows(t, res.rows, names),
        total=res.total if res.counted else 0,
        next=res.next,
        cost=_list_cost(p, t, res),
    )


OWNER_ENTITIES = {2: "deal", 3: "contact", 4: "company"}


@method("crm.activity.todo.add", "crm")
def todo_add(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    owner_type = as_int(get(params, "ownerTypeId"))
    owner_id = as_int(get(params, "ownerId"))
    deadline = get(params, "deadline")
    if owner_type is None or owner_id is None or deadline in (None, ""):
        raise ApiError(400, "100", "Required fields are not filled: ownerTypeId, ownerId, deadline")
    entity = OWNER_ENTITIES.get(owner_type)
    if entity is None or p.table(entity).row_of(owner_id) is None:
        raise ApiError(400, "OWNER_NOT_FOUND", "Owner element not found")
    ts = p.parse_date(deadline) if isinstance(deadline, str) else None
    if ts is None:
        raise ApiError(400, "WRONG_DATETIME_FORMAT", "Wrong datetime format")
    responsible = as_int(get(params, "responsibleId")) or caller.user_id
    t = p.activities
    new_id = p.next_id(t)
    row = t.append(new_id)
    now = int(p.now())
    values = {
        "OWNER_ID": owner_id,
        "OWNER_TYPE_ID": owner_type,
        "TYPE_ID": 6,
        "PROVIDER_ID": "CRM_TODO",
        "PROVIDER_TYPE_ID": "TODO",
        "SUBJECT": get(params, "title") or "",
        "DESCRIPTION": get(params, "description") or "",
        "CREATED": now,
        "LAST_UPDATED": now,
        "START_TIME": now,
        "END_TIME": int(ts),
        "DEADLINE": int(ts),
        "COMPLETED": False,
        "STATUS": 1,
        "RESPONSIBLE_ID": responsible,
        "DIRECTION": 0,
        "AUTHOR_ID": caller.user_id,
        "EDITOR_ID": caller.user_id,
    }
    for key, value in values.items():
        t.cols[key][row] = value
    return Reply({"id": new_id}, cost=p.options.cost_base_s * 4)


# -- tasks ---------------------------------------------------------------------------------------
TASK_FIELDS = {
    "ID": "id",
    "PARENT_ID": "parentId",
    "TITLE": "title",
    "DESCRIPTION": "description",
    "MARK": "mark",
    "PRIORITY": "priority",
    "STATUS": "status",
    "REAL_STATUS": "status",
    "SUB_STATUS": "subStatus",
    "GROUP_ID": "groupId",
    "CREATED_BY": "createdBy",
    "CREATED_DATE": "createdDate",
    "RESPONSIBLE_ID": "responsibleId",
    "CHANGED_BY": "changedBy",
    "CHANGED_DATE": "changedDate",
    "CLOSED_BY": "closedBy",
    "CLOSED_DATE": "closedDate",
    "DEADLINE": "deadline",
    "START_DATE_PLAN": "startDatePlan",
    "END_DATE_PLAN": "endDatePlan",
    "XML_ID": "xmlId",
    "GUID": "guid",
    "AUDITORS": "auditors",
    "ACCOMPLICES": "accomplices",
    "TAGS": "tags",
    "UF_CRM_TASK": "ufCrmTask",
}
_DEFAULT_TASK_SELECT = [k for k in TASK_FIELDS if k not in ("UF_CRM_TASK", "REAL_STATUS", "SUB_STATUS")]


def _task_view(task: dict[str, Any], select: Any) -> dict[str, Any]:
    names = [str(s).upper() for s in as_list(select)] or _DEFAULT_TASK_SELECT
    if "*" in names:
        names = _DEFAULT_TASK_SELECT
    out = {"id": task["id"]}
    for n in names:
        camel = TASK_FIELDS.get(n) or ("subStatus" if n == "SUBSTATUS" else None)
        if camel:
            out[camel] = task.get(camel)
    return out


def _task(p: Bitrix24Portal, params: dict[str, Any]) -> dict[str, Any]:
    ident = as_int(get(params, "taskId"))
    if ident is None:
        raise ApiError(400, "0", "wrong task id")
    task = next((t for t in p.tasks if int(t["id"]) == ident), None)
    if task is None:
        raise ApiError(400, "0", "Action on the task is not allowed")
    return task


def _date_value(p: Bitrix24Portal, value: Any) -> str | None:
    if value in (None, ""):
        return None
    ts = p.clock.parse(value)
    if ts is None:
        raise ApiError(400, "ERROR_CORE", "Invalid date<br>")
    return p.clock.iso(int(ts))


@method("tasks.task.add", "task")
def task_add(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    fields = get(params, "fields")
    if not isinstance(fields, dict) or not fields:
        raise ApiError(400, "100", "Could not find value for parameter {fields}")
    title = str(fields.get("TITLE") or "").strip()
    if not title:
        raise ApiError(400, "ERROR_CORE", "Task title not specified<br>")
    responsible = as_int(fields.get("RESPONSIBLE_ID"))
    if not responsible:
        raise ApiError(400, "ERROR_CORE", "Assignee not specified<br>")
    user = p.user(responsible)
    if user is None or not user["active"]:
        raise ApiError(400, "ERROR_CORE", 'User specified in the "Assignee" field not found<br>')
    bindings = [str(b) for b in as_list(fields.get("UF_CRM_TASK"))]
    for b in bindings:
        if not re.fullmatch(r"(L|D|C|CO|SI|T[0-9a-f]+)_\d+", b):
            raise ApiError(400, "ERROR_CORE", f"Invalid value of field UF_CRM_TASK: {b}<br>")
    now = p.clock.iso(int(p.now()))
    creator = as_int(fields.get("CREATED_BY")) or caller.user_id
    task = {
        "id": str(p.next_task_id),
        "parentId": str(as_int(fields.get("PARENT_ID")) or 0) if fields.get("PARENT_ID") else None,
        "title": title,
        "description": str(fields.get("DESCRIPTION") or ""),
        "mark": None,
        "priority": str(as_int(fields.get("PRIORITY")) if fields.get("PRIORITY") is not None else 1),
        "status": "2",
        "subStatus": "2",
        "groupId": str(as_int(fields.get("GROUP_ID")) or 0),
        "createdBy": str(creator),
        "createdDate": now,
        "responsibleId": str(responsible),
        "changedBy": str(creator),
        "changedDate": now,
        "closedBy": None,
        "closedDate": None,
        "deadline": _date_value(p, fields.get("DEADLINE")),
        "startDatePlan": _date_value(p, fields.get("START_DATE_PLAN")),
        "endDatePlan": _date_value(p, fields.get("END_DATE_PLAN")),
        "xmlId": fields.get("XML_ID"),
        "guid": "{" + str(uuid.uuid4()) + "}",
        "auditors": [str(a) for a in as_list(fields.get("AUDITORS"))],
        "accomplices": [str(a) for a in as_list(fields.get("ACCOMPLICES"))],
        "tags": [str(a) for a in as_list(fields.get("TAGS"))],
        "ufCrmTask": bindings,
    }
    p.next_task_id += 1
    p.tasks.append(task)
    return Reply({"task": {k: v for k, v in task.items() if k != "ufCrmTask"}}, cost=p.options.cost_base_s * 10)


def _task_match(task: dict[str, Any], key: str, value: Any) -> bool:
    m = re.match(r"^(>=|<=|!|<|>)?(.*)$", key)
    op, name = m.group(1) or "", m.group(2).upper()
    if name == "UF_CRM_TASK":
        wanted = {str(v) for v in as_list(value)}
        hit = bool(wanted & set(task["ufCrmTask"]))
        return not hit if op == "!" else hit
    camel = TASK_FIELDS.get(name)
    if camel is None:
        return True
    actual = task.get(camel)
    values = [str(v) for v in as_list(value)]
    if name == "TITLE" and isinstance(value, str) and "%" in value:
        rx = re.compile("^" + re.escape(value).replace("%", ".*") + "$", re.I)
        hit = bool(rx.match(actual or ""))
        return not hit if op == "!" else hit
    if op in ("<", "<=", ">", ">="):
        try:
            a, v = float(actual), float(values[0])
        except (TypeError, ValueError, IndexError):
            a, v = str(actual), values[0] if values else ""
        return {"<": a < v, "<=": a <= v, ">": a > v, ">=": a >= v}[op]
    hit = str(actual) in values
    return not hit if op == "!" else hit


@method("tasks.task.list", "task")
def task_list(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    flt = get(params, "filter") or {}
    tasks = [
        t for t in p.tasks if all(_task_match(t, str(k), v) for k, v in (flt.items() if isinstance(flt, dict) else []))
    ]
    order = get(params, "order") or {"ID": "desc"}
    if isinstance(order, dict):
        for key, direction in reversed(list(order.items())):
            camel = TASK_FIELDS.get(str(key).upper(), "id")
            numeric = camel in ("id", "priority", "status", "responsibleId", "createdBy", "groupId")
            tasks.sort(
                key=lambda t, c=camel, num=numeric: int(t.get(c) or 0) if num else str(t.get(c) or ""),
                reverse=str(direction).lower() == "desc",
            )
    start = as_int(get(params, "start")) or 0
    offset = (max(start, 0) // 50) * 50
    page = tasks[offset : offset + 50]
    nxt = offset + 50 if len(tasks) > offset + 50 else None
    select = get(params, "select")
    return Reply(
        {"tasks": [_task_view(t, select) for t in page]}, total=len(tasks), next=nxt, cost=p.options.cost_base_s * 4
    )


@method("tasks.task.get", "task")
def task_get(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    task = _task(p, params)
    return Reply({"task": _task_view(task, get(params, "select") or ["*", "UF_CRM_TASK"])}, cost=p.options.cost_base_s)


def _close(p: Bitrix24Portal, task: dict[str, Any], user_id: int) -> None:
    now = p.clock.iso(int(p.now()))
    task.update(status="5", subStatus="5", closedBy=str(user_id), closedDate=now, changedDate=now)


@method("tasks.task.complete", "task")
def task_complete(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    task = _task(p, params)
    _close(p, task, caller.user_id)
    return Reply({"task": _task_view(task, ["*"])}, cost=p.options.cost_base_s * 4)


@method("tasks.task.update", "task")
def task_update(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
    task = _task(p, params)
    fields = get(params, "fields")
    if not isinstance(fields, dict) or not fields:
        raise ApiError(400, "100", "Could not find value for parameter {fields}")
    for key, value in fields.items():
        key = str(key).upper()
        if key == "STATUS":
            status = as_int(value)
            if status not in (1, 2, 3, 4, 5, 6, 7):
                raise ApiError(400, "ERROR_CORE", "Invalid status<br>")
            if status == 5:
                _close(p, task, caller.user_id)
            else:
                task.update(status=str(status), subStatus=str(status), closedDate=None, closedBy=None)
        elif key == "UF_CRM_TASK":
            task["ufCrmTask"] = [str(b) for b in as_list(value)]
        elif key in ("DEADLINE", "START_DATE_PLAN", "END_DATE_PLAN"):
            task[TASK_FIELDS[key]] = _date_value(p, value)
        elif key in TASK_FIELDS and key not in ("ID", "CREATED_DATE", "CREATED_BY"):
            task[TASK_FIELDS[key]] = None if value is None else str(value)
    task["changedDate"] = p.clock.iso(int(p.now()))
    return Reply({"task": _task_view(task, ["*"])}, cost=p.options.cost_base_s * 4)


# -- user fields -----------------------------------------------------------------------------------
USER_TYPES = {
    "string", "integer", "double", "boolean", "datetime", "date", "money", "url", "address", "enumeration",
    "file", "employee", "crm_status", "iblock_section", "iblock_element", "crm",
}  # fmt: skip


def _uf_add(entity: str) -> Method:
    def handler(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
        if not caller.is_admin:
            raise crm_error("Access denied")
        fields = get(params, "fields")
        if not isinstance(fields, dict):
            raise crm_error("The 'FIELD_NAME' field is not found.")
        errors = []
        raw_name = str(fields.get("FIELD_NAME") or "").strip()
        type_id = str(fields.get("USER_TYPE_ID") or "").strip()
        name = raw_name.upper()
        if not name:
            errors.append("The 'FIELD_NAME' field is not found.")
        else:
            if not name.startswith("UF_CRM_"):
                name = "UF_CRM_" + name
            if len(name) > 50:
                errors.append("Field name is too long (more than 50 characters).")
            if not re.fullmatch(r"[A-Z0-9_]+", name):
                errors.append("Field name contains invalid characters. Allowed characters are: A-Z, 0-9 and _.")
            if name in p.uf_names(entity):
                errors.append(f"Field {name} already exists.")
        if not type_id:
            errors.append("The 'USER_TYPE_ID' field is not found.")
        elif type_id not in USER_TYPES:
            errors.append("Incorrect custom type specified.")
        items = []
        seen_xml: set[str] = set()
        for i, it in enumerate(as_list(fields.get("LIST"))):
            if not isinstance(it, dict) or not str(it.get("VALUE") or "").strip():
                continue
            xml = str(it.get("XML_ID") or "") or None
            if xml is not None and xml in seen_xml:
                errors.append(f"List item with XML_ID={xml} already exists.")
            if xml:
                seen_xml.add(xml)
            items.append(
                {
                    "ID": str(p.next_enum_id + i),
                    "SORT": str(as_int(it.get("SORT")) or 0),
                    "VALUE": str(it["VALUE"]),
                    "DEF": "Y" if str(it.get("DEF", "N")).upper() == "Y" else "N",
                    "XML_ID": xml or uuid.uuid4().hex,
                }
            )
        if errors:
            raise crm_error("\n".join(errors))
        p.next_enum_id += len(items) + 1
        label = str(fields.get("LABEL") or name)
        definition = {
            "ID": str(p.next_userfield_id),
            "ENTITY_ID": f"CRM_{entity.upper()}",
            "FIELD_NAME": name,
            "USER_TYPE_ID": type_id,
            "XML_ID": fields.get("XML_ID"),
            "SORT": str(as_int(fields.get("SORT")) or 100),
            "MULTIPLE": "Y" if str(fields.get("MULTIPLE", "N")).upper() == "Y" else "N",
            "MANDATORY": "Y" if str(fields.get("MANDATORY", "N")).upper() == "Y" else "N",
            "SHOW_FILTER": "E" if str(fields.get("SHOW_FILTER", "N")).upper() == "Y" else "N",
            "SHOW_IN_LIST": str(fields.get("SHOW_IN_LIST", "N")).upper(),
            "EDIT_IN_LIST": str(fields.get("EDIT_IN_LIST", "Y")).upper(),
            "IS_SEARCHABLE": str(fields.get("IS_SEARCHABLE", "N")).upper(),
            "SETTINGS": fields.get("SETTINGS") or [],
            "EDIT_FORM_LABEL": label,
            "LIST_COLUMN_LABEL": label,
            "LIST_FILTER_LABEL": label,
            "ERROR_MESSAGE": None,
            "HELP_MESSAGE": None,
        }
        if type_id == "enumeration":
            definition["LIST"] = items
        p.next_userfield_id += 1
        p.userfields[entity].append(definition)
        return Reply(int(definition["ID"]), cost=p.options.cost_base_s * 10)

    return handler


def _uf_list(entity: str) -> Method:
    def handler(p: Bitrix24Portal, params: dict[str, Any], caller: Caller) -> Reply:
        flt = get(params, "filter")
        if flt not in (None, "", []) and not isinstance(flt, dict):
            raise crm_error("Parameter 'filter' must be array.")
        defs = p.uf_defs(entity)
        for key, value in (flt or {}).items():
            k = str(key).upper()
            if k != "LANG":
                defs = [d for d in defs if str(d.get(k)) == str(value)]
        return Reply([dict(d) for d in defs], total=len(defs), cost=p.options.cost_base_s)

    return handler


for _e in ("contact", "company", "deal"):
    method(f"crm.{_e}.userfield.add", "crm")(_uf_add(_e))
    method(f"crm.{_e}.userfield.list", "crm")(_uf_list(_e))


def entity_record(p: Bitrix24Portal, entity: str, row: int) -> dict[str, Any]:
    """A full classic record (admin views)."""
    t = p.table(entity)
    rec = render_rows(t, np.array([row]), [*t.fields, *p.uf_names(entity), *t.multi])[0]
    if entity == "deal":
        rec["CONTACT_IDS"] = p.deal_contacts(row)
    return rec


__all__ = ["METHODS", "NULL", "Caller", "Reply", "apply_fields", "entity_record"]
