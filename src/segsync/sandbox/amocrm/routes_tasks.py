"""Tasks (A-TASKS: GET with filters, POST arrays, PATCH incl. completion) and notes (A-EVENTS notes part)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.auth import AccessGrant
from segsync.sandbox.amocrm.guard import base_of, json_body
from segsync.sandbox.amocrm.model import KINDS, Kind
from segsync.sandbox.amocrm.params import (
    Order,
    as_ints,
    as_list,
    page_href,
    parse_order,
    parse_paging,
    parse_query,
    parse_range,
)
from segsync.sandbox.amocrm.problems import ApiError, ValidationErrors, invalid
from segsync.sandbox.amocrm.render import dumps, with_base
from segsync.sandbox.amocrm.routes_entities import _rid, no_content
from segsync.sandbox.amocrm.tasks import TASK_ENTITY_TYPES, TASK_FIELDS

TASK_TYPES = (1, 2)
NOTE_TYPES = (
    "common",
    "call_in",
    "call_out",
    "service_message",
    "extended_service_message",
    "message_cashier",
    "geolocation",
    "sms_in",
    "sms_out",
    "attachment",
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _send(body: Any, base: str) -> Response:
    from segsync.sandbox.amocrm.problems import HAL

    return Response(with_base(dumps(body), base), media_type=HAL)


def task_dict(acc: AmoAccount, t: dict[str, Any]) -> dict[str, Any]:
    d = {k: t[k] for k in TASK_FIELDS}
    d["account_id"] = acc.account_id
    d["_links"] = {"self": {"href": f"@@AMO_BASE@@/api/v4/tasks/{t['id']}"}}
    return d


async def tasks_list(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    items = request.query_params.multi_items()
    q = parse_query(items)
    paging = parse_paging(q, default_limit=acc.options.default_limit, max_limit=acc.options.max_limit)
    order = parse_order(q, ("created_at", "complete_till", "id"), Order("id", False))
    f = q.get("filter") if isinstance(q.get("filter"), dict) else {}
    entity_type = None
    if "entity_type" in f:
        values = as_list(f["entity_type"])
        if len(values) != 1 or values[0] not in TASK_ENTITY_TYPES:
            raise invalid(
                "filter.entity_type", "The value you selected is not a valid choice.", code="NotSupportedChoice"
            )
        entity_type = values[0]
    entity_ids = None
    if "entity_id" in f:
        if entity_type is None:
            raise invalid("filter.entity_id", "filter[entity_id] requires filter[entity_type]", code="NotBlank")
        entity_ids = set(as_ints(f["entity_id"], "filter.entity_id"))
    completed = None
    if "is_completed" in f:
        flags = as_list(f["is_completed"])
        if len(flags) != 1 or flags[0] not in ("0", "1", "true", "false"):
            raise invalid("filter.is_completed", "This value should be of type bool.")
        completed = flags[0] in ("1", "true")
    types = None
    for key in ("task_type", "task_type_id"):
        if key in f:
            types = (types or set()) | set(as_ints(f[key], f"filter.{key}"))
    lo = hi = None
    if "updated_at" in f:
        rng = parse_range(f["updated_at"], "filter.updated_at")
        lo, hi = rng.lo, rng.hi  # a bare timestamp means "changed after it" (A-TASKS)
    rows = acc.tasks.select(
        ids=set(as_ints(f["id"], "filter.id")) if "id" in f else None,
        responsible=set(as_ints(f["responsible_user_id"], "filter.responsible_user_id"))
        if "responsible_user_id" in f
        else None,
        completed=completed,
        types=types,
        entity_type=entity_type,
        entity_ids=entity_ids,
        lo=lo,
        hi=hi,
        order=order.field,
        desc=order.desc,
    )
    chunk = rows[(paging.page - 1) * paging.limit : paging.page * paging.limit]
    if not chunk:
        return no_content()
    base = base_of(request)
    links: dict[str, Any] = {"self": {"href": page_href(base, "/api/v4/tasks", items, paging.page, paging.limit)}}
    if len(chunk) == paging.limit:
        links["next"] = {"href": page_href(base, "/api/v4/tasks", items, paging.page + 1, paging.limit)}
    body = {"_page": paging.page, "_links": links, "_embedded": {"tasks": [task_dict(acc, t) for t in chunk]}}
    return _send(body, base)


async def task_get(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    t = acc.tasks.by_id.get(request.path_params["id"])
    if t is None:
        return no_content()
    return _send(task_dict(acc, t), base_of(request))


def _validate_task(acc: AmoAccount, item: Any, rid: str, errs: ValidationErrors, *, create: bool) -> None:
    if not isinstance(item, dict):
        errs.add(rid, "InvalidType", "", "This value should be of type object.")
        return
    if not create and (not _is_int(item.get("id")) or item["id"] not in acc.tasks.by_id):
        errs.add(rid, "NotFound", "id", "Task not found")
    if (create or "text" in item) and (not isinstance(item.get("text"), str) or not item["text"].strip()):
        errs.add(rid, "NotBlank", "text", "This value should not be blank.")
    if (create or "complete_till" in item) and not _is_int(item.get("complete_till")):
        code = "NotBlank" if item.get("complete_till") is None else "InvalidType"
        errs.add(rid, code, "complete_till", "This value should be of type int.")
    for key in ("duration", "created_at", "updated_at", "created_by"):
        if key in item and not _is_int(item[key]):
            errs.add(rid, "InvalidType", key, "This value should be of type int.")
    if "task_type_id" in item and item["task_type_id"] not in TASK_TYPES:
        errs.add(rid, "NotSupportedChoice", "task_type_id", "The value you selected is not a valid choice.")
    if "responsible_user_id" in item and item["responsible_user_id"] not in acc.user_ids:
        errs.add(rid, "NotSupportedChoice", "responsible_user_id", "The value you selected is not a valid choice.")
    if "is_completed" in item and not isinstance(item["is_completed"], bool):
        errs.add(rid, "InvalidType", "is_completed", "This value should be of type bool.")
    if "result" in item and not (isinstance(item["result"], dict) or item["result"] == []):
        errs.add(rid, "InvalidType", "result", "This value should be of type object.")
    etype, eid = item.get("entity_type"), item.get("entity_id")
    if etype is not None and etype not in TASK_ENTITY_TYPES:
        errs.add(rid, "NotSupportedChoice", "entity_type", "The value you selected is not a valid choice.")
    elif eid is not None:
        if not _is_int(eid):
            errs.add(rid, "InvalidType", "entity_id", "This value should be of type int.")
        elif etype is None:
            errs.add(rid, "NotBlank", "entity_type", "This value should not be blank.")
        elif etype in KINDS and acc.tables[etype].get(eid) is None:
            errs.add(rid, "NotFound", "entity_id", "Entity not found")


async def tasks_post(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
    body = await json_body(request)
    if not isinstance(body, list):
        raise invalid("", "This value should be of type array.")
    if not body:
        raise ApiError(400, "Request data can not be empty")
    if len(body) > acc.options.write_batch_limit:
        raise ApiError(422, f"Limit {acc.options.write_batch_limit} per page")
    errs = ValidationErrors()
    for i, item in enumerate(body):
        _validate_task(acc, item, _rid(item, i), errs, create=True)
    if errs:
        raise errs.error()
    user = grant.user_id if grant else acc.admin_user_id
    now = acc.now()
    out = []
    for i, item in enumerate(body):
        t = {
            "id": acc.tasks.new_id(),
            "created_by": item.get("created_by", user),
            "updated_by": user,
            "created_at": item.get("created_at", now),
            "updated_at": item.get("updated_at", now),
            "responsible_user_id": item.get("responsible_user_id", user),
            "group_id": 0,
            "entity_id": item.get("entity_id"),
            "entity_type": item.get("entity_type"),
            "duration": item.get("duration", 0),
            "is_completed": item.get("is_completed", False),
            "task_type_id": item.get("task_type_id", 1),
            "text": item["text"],
            "result": item.get("result") or [],
            "complete_till": item["complete_till"],
        }
        acc.tasks.add(t)
        acc.log("task_added", "task", t["id"], user)
        if t["is_completed"]:
            acc.log("task_completed", "task", t["id"], user)
        out.append(
            {
                "id": t["id"],
                "request_id": _rid(item, i),
                "_links": {"self": {"href": f"@@AMO_BASE@@/api/v4/tasks/{t['id']}"}},
            }
        )
    base = base_of(request)
    return _send({"_links": {"self": {"href": f"{base}/api/v4/tasks"}}, "_embedded": {"tasks": out}}, base)


def _task_patcher(single: bool):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        body = await json_body(request)
        if single:
            if not isinstance(body, dict):
                raise invalid("", "This value should be of type object.")
            body = [dict(body, id=request.path_params["id"])]
        elif not isinstance(body, list) or not body:
            raise invalid("", "This value should be of type array.")
        if len(body) > acc.options.write_batch_limit:
            raise ApiError(422, f"Limit {acc.options.write_batch_limit} per page")
        errs = ValidationErrors()
        for i, item in enumerate(body):
            _validate_task(acc, item, _rid(item, i), errs, create=False)
        if errs:
            raise errs.error()
        user = grant.user_id if grant else acc.admin_user_id
        out = []
        for i, item in enumerate(body):
            t = acc.tasks.by_id[item["id"]]
            old_key = (t["entity_type"], t["entity_id"]) if t.get("entity_type") else None
            was_completed = t["is_completed"]
            for key in (
                "text",
                "complete_till",
                "task_type_id",
                "responsible_user_id",
                "duration",
                "entity_id",
                "entity_type",
                "is_completed",
                "result",
            ):
                if key in item:
                    t[key] = item[key]
            t["updated_at"] = item.get("updated_at", acc.now())
            t["updated_by"] = user
            acc.tasks.reindex(t, old_key)
            if t["is_completed"] and not was_completed:
                acc.log("task_completed", "task", t["id"], user)
            out.append(
                {
                    "id": t["id"],
                    "updated_at": t["updated_at"],
                    "request_id": _rid(item, i),
                    "_links": {"self": {"href": f"@@AMO_BASE@@/api/v4/tasks/{t['id']}"}},
                }
            )
        base = base_of(request)
        if single:
            return _send(out[0], base)
        return _send({"_links": {"self": {"href": f"{base}/api/v4/tasks"}}, "_embedded": {"tasks": out}}, base)

    return handler


tasks_patch = _task_patcher(single=False)
task_patch = _task_patcher(single=True)


# --- notes ---


def note_dict(acc: AmoAccount, kind: str, n: dict[str, Any]) -> dict[str, Any]:
    d = dict(n)
    d.pop("entity_kind", None)
    d["account_id"] = acc.account_id
    d["_links"] = {"self": {"href": f"@@AMO_BASE@@/api/v4/{kind}/{n['entity_id']}/notes/{n['id']}"}}
    return d


def notes_post(kind: Kind, *, by_entity: bool):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        body = await json_body(request)
        if not isinstance(body, list) or not body:
            raise invalid("", "This value should be of type array.")
        if len(body) > acc.options.write_batch_limit:
            raise ApiError(422, f"Limit {acc.options.write_batch_limit} per page")
        errs = ValidationErrors()
        for i, item in enumerate(body):
            rid = _rid(item, i)
            if not isinstance(item, dict):
                errs.add(rid, "InvalidType", "", "This value should be of type object.")
                continue
            entity_id = request.path_params["id"] if by_entity else item.get("entity_id")
            if not _is_int(entity_id) or acc.tables[kind].get(entity_id) is None:
                errs.add(rid, "NotFound", "entity_id", "Entity not found")
            if item.get("note_type") not in NOTE_TYPES:
                errs.add(rid, "NotSupportedChoice", "note_type", "The value you selected is not a valid choice.")
            if not isinstance(item.get("params", {}), dict):
                errs.add(rid, "InvalidType", "params", "This value should be of type object.")
        if errs:
            raise errs.error()
        user = grant.user_id if grant else acc.admin_user_id
        now = acc.now()
        out = []
        for i, item in enumerate(body):
            entity_id = request.path_params["id"] if by_entity else item["entity_id"]
            r = acc.tables[kind].get(entity_id)
            n = {
                "id": acc.new_note_id(),
                "entity_id": entity_id,
                "created_by": user,
                "updated_by": user,
                "created_at": now,
                "updated_at": now,
                "responsible_user_id": r.responsible_user_id if r else user,
                "group_id": 0,
                "note_type": item["note_type"],
                "params": item.get("params", {}),
                "entity_kind": kind,
            }
            acc.notes[n["id"]] = n
            event = "common_note_added" if item["note_type"] == "common" else "service_note_added"
            acc.log(event, kind, entity_id, user, [{"note": {"id": n["id"]}}])
            out.append(
                {
                    "id": n["id"],
                    "entity_id": entity_id,
                    "request_id": _rid(item, i),
                    "_links": {"self": {"href": f"@@AMO_BASE@@/api/v4/{kind}/{entity_id}/notes/{n['id']}"}},
                }
            )
        base = base_of(request)
        return _send({"_links": {"self": {"href": f"{base}/api/v4/{kind}/notes"}}, "_embedded": {"notes": out}}, base)

    return handler


def notes_list(kind: Kind, *, by_entity: bool):
    async def handler(acc: AmoAccount, request: Request, grant: AccessGrant | None) -> Response:
        items = request.query_params.multi_items()
        q = parse_query(items)
        paging = parse_paging(q, default_limit=acc.options.default_limit, max_limit=acc.options.max_limit)
        order = parse_order(q, ("updated_at", "id"), Order("id", False))
        f = q.get("filter") if isinstance(q.get("filter"), dict) else {}
        entity_ids = (
            {request.path_params["id"]}
            if by_entity
            else (set(as_ints(f["entity_id"], "filter.entity_id")) if "entity_id" in f else None)
        )
        types = set(as_list(f["note_type"])) if "note_type" in f else None
        rows = [
            n
            for n in acc.notes.values()
            if n["entity_kind"] == kind
            and (entity_ids is None or n["entity_id"] in entity_ids)
            and (types is None or n["note_type"] in types)
        ]
        rows.sort(key=lambda n: (n[order.field], n["id"]), reverse=order.desc)
        chunk = rows[(paging.page - 1) * paging.limit : paging.page * paging.limit]
        if not chunk:
            return no_content()
        base = base_of(request)
        path = request.url.path[len(request.scope.get("root_path", "")) :]
        links: dict[str, Any] = {"self": {"href": page_href(base, path, items, paging.page, paging.limit)}}
        if len(chunk) == paging.limit:
            links["next"] = {"href": page_href(base, path, items, paging.page + 1, paging.limit)}
        body = {"_page": paging.page, "_links": links, "_embedded": {"notes": [note_dict(acc, kind, n) for n in chunk]}}
        return _send(body, base)

    return handler
