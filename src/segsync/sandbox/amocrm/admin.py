"""Sandbox-only admin API (``/_admin/...`` under the mount, header ``X-Sandbox-Admin``).

Lets tests and the demo see what a client wrote (tasks, tags, notes, counters) and act as a
manager would (edit, delete, restore, merge) so that events and webhooks appear as they would in a
real account. Also turns knobs at run time: faults, options, webhook target, clock, tokens.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.guard import base_of
from segsync.sandbox.amocrm.model import KINDS
from segsync.sandbox.amocrm.problems import ApiError, ValidationErrors
from segsync.sandbox.amocrm.render import with_base
from segsync.sandbox.amocrm.routes_tasks import task_dict
from segsync.sandbox.amocrm.writes import apply_item, validate_item

AdminFn = Callable[[AmoAccount, Request], Awaitable[Any]]


def _wrap(acc: AmoAccount, fn: AdminFn) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        given = request.headers.get("x-sandbox-admin", "")
        if not hmac.compare_digest(given.encode(), acc.options.admin_token.encode()):
            return JSONResponse({"error": "X-Sandbox-Admin header missing or wrong"}, status_code=403)
        try:
            result = await fn(acc, request)
        except ApiError as exc:
            return exc.response()
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad admin request: {exc!r}"}, status_code=400)
        if isinstance(result, Response):
            return result
        raw = json.dumps(result, ensure_ascii=False, default=str).encode()
        return Response(with_base(raw, base_of(request)), media_type="application/json")

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _kind(value: Any) -> Any:
    if value not in KINDS:
        raise ValueError(f"entity_type must be one of {KINDS}")
    return value


def _record(acc: AmoAccount, kind: Any, entity_id: Any, *, include_deleted: bool = False) -> Any:
    r = acc.tables[_kind(kind)].get(int(entity_id), include_deleted=include_deleted)
    if r is None:
        raise KeyError(f"{kind} {entity_id} not found")
    return r


async def state(acc: AmoAccount, request: Request) -> Any:
    return acc.state()


async def client_info(acc: AmoAccount, request: Request) -> Any:
    return acc.client_info(base_of(request))


async def tasks(acc: AmoAccount, request: Request) -> Any:
    etype = request.query_params.get("entity_type")
    eid = request.query_params.get("entity_id")
    rows = [
        task_dict(acc, t)
        for t in acc.tasks.by_id.values()
        if (etype is None or t["entity_type"] == etype) and (eid is None or t["entity_id"] == int(eid))
    ]
    return {"tasks": rows}


async def tags(acc: AmoAccount, request: Request) -> Any:
    out: dict[str, dict[str, list[str]]] = {}
    for kind in KINDS:
        names = acc.tags[kind].names
        out[kind] = {
            str(r.id): [names[t] for t in r.tags] for r in acc.tables[kind].rows if r.tags and not r.is_deleted
        }
    return {"tags": out, "dictionary": {k: acc.tags[k].by_name for k in KINDS}}


async def notes(acc: AmoAccount, request: Request) -> Any:
    return {"notes": list(acc.notes.values())}


async def edit(acc: AmoAccount, request: Request) -> Any:
    """Simulate a manager editing an entity: the body is one PATCH element (fields, cf, tags)."""
    data = await _body(request)
    kind = _kind(data["entity_type"])
    r = _record(acc, kind, data["id"])
    item = dict(data.get("fields") or {}, id=r.id)
    errs = ValidationErrors()
    validate_item(acc, kind, item, "0", errs, need_id=True)
    if errs:
        raise errs.error()
    actor = int(data.get("actor") or r.responsible_user_id)
    apply_item(acc, kind, r, item, actor)
    return {"id": r.id, "updated_at": r.updated_at}


async def delete(acc: AmoAccount, request: Request) -> Any:
    kind = request.path_params["kind"]
    r = _record(acc, kind, request.path_params["id"])
    acc.delete(kind, r, int(request.query_params.get("actor") or acc.admin_user_id))
    return {"id": r.id, "deleted": True}


async def restore(acc: AmoAccount, request: Request) -> Any:
    data = await _body(request)
    kind = _kind(data["entity_type"])
    r = _record(acc, kind, data["id"], include_deleted=True)
    if not r.is_deleted or r.merged:
        raise ValueError("entity is not in the trash")
    acc.restore(kind, r, int(data.get("actor") or acc.admin_user_id))
    return {"id": r.id, "restored": True}


async def merge(acc: AmoAccount, request: Request) -> Any:
    data = await _body(request)
    keep = _record(acc, "contacts", data["keep_id"])
    gone = _record(acc, "contacts", data["remove_id"])
    if keep is gone:
        raise ValueError("cannot merge a contact into itself")
    acc.merge_contacts(keep, gone, int(data.get("actor") or acc.admin_user_id))
    return {"kept": keep.id, "removed": gone.id}


async def faults(acc: AmoAccount, request: Request) -> Any:
    if request.method == "POST":
        acc.options.faults.update(await _body(request))
        acc.faults.reseed()
    return {"faults": acc.options.faults.as_dict(), "injected": acc.faults.injected}


async def options(acc: AmoAccount, request: Request) -> Any:
    if request.method == "POST":
        acc.options.update(await _body(request))
    return {"options": acc.options.as_dict()}


async def webhook(acc: AmoAccount, request: Request) -> Any:
    if request.method == "POST":
        acc.options.webhook_url = (await _body(request)).get("url")
    return {
        "url": acc.options.webhook_url,
        "sent": acc.webhooks.sent,
        "failed": acc.webhooks.failed,
        "log": acc.webhooks.log[-50:],
    }


async def expire_tokens(acc: AmoAccount, request: Request) -> Any:
    data = await _body(request)
    expired = acc.auth.expire_access(include_long_lived=bool(data.get("long_lived", False)))
    revoked = acc.auth.revoke_refresh() if data.get("refresh") else 0
    return {"access_expired": expired, "refresh_revoked": revoked}


async def auth_code(acc: AmoAccount, request: Request) -> Any:
    return {"code": acc.auth.mint_code(acc.now()), "expires_in": acc.options.auth_code_ttl}


async def long_lived_token(acc: AmoAccount, request: Request) -> Any:
    from urllib.parse import urlsplit

    return {"long_lived_token": acc.auth.mint_long_lived(acc.now(), urlsplit(base_of(request)).netloc)}


async def clock(acc: AmoAccount, request: Request) -> Any:
    if request.method == "POST":
        acc.clock_offset += float((await _body(request)).get("advance", 0))
    return {"now": acc.now(), "offset": acc.clock_offset}


async def unblock(acc: AmoAccount, request: Request) -> Any:
    acc.limiter.unblock()
    return {"blocked_for_seconds": 0}


def admin_routes(acc: AmoAccount) -> list[Route]:
    def r(path: str, fn: AdminFn, methods: list[str]) -> Route:
        return Route(f"/_admin/{path}", _wrap(acc, fn), methods=methods)

    return [
        r("state", state, ["GET"]),
        r("client-info", client_info, ["GET"]),
        r("tasks", tasks, ["GET"]),
        r("tags", tags, ["GET"]),
        r("notes", notes, ["GET"]),
        r("edit", edit, ["POST"]),
        r("entities/{kind}/{id:int}", delete, ["DELETE"]),
        r("restore", restore, ["POST"]),
        r("merge", merge, ["POST"]),
        r("faults", faults, ["GET", "POST"]),
        r("options", options, ["GET", "POST"]),
        r("webhook", webhook, ["GET", "POST"]),
        r("expire-tokens", expire_tokens, ["POST"]),
        r("auth-code", auth_code, ["POST"]),
        r("long-lived-token", long_lived_token, ["POST"]),
        r("clock", clock, ["GET", "POST"]),
        r("unblock", unblock, ["POST"]),
    ]
