"""Per-portal admin API (mounted under ``<portal>/_admin/``; the server checks the admin token).

GET  state | tasks | todos | fields?entity=contact[&ids=1,2] | userfields | entities/{kind}/{id}
POST entities/{kind}[/{id}]   (create / edit like a manager; fires ONCRM*ADD / ONCRM*UPDATE)
DELETE entities/{kind}/{id}   (fires ONCRM*DELETE)
POST faults | options | webhook {"url"} | clock {"advance": s} | expire-tokens | reset-limits |
     webhooks {"user_id", "scopes", "expires_in"} (an extra inbound webhook, e.g. without a scope)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from segsync.sandbox.bitrix24.methods import apply_fields, entity_record
from segsync.sandbox.bitrix24.render import render_rows

if TYPE_CHECKING:
    from segsync.sandbox.bitrix24.app import PortalApp

KINDS = {"contact": "contact", "contacts": "contact", "company": "company", "companies": "company",
         "deal": "deal", "deals": "deal", "lead": "deal", "leads": "deal"}  # fmt: skip


def _ok(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def handle_admin(pa: PortalApp, request: Request) -> Response:
    p = pa.p
    path = request.path_params["path"].strip("/")
    parts = path.split("/")
    method = request.method
    body: dict[str, Any] = {}
    if method in ("POST",):
        raw = await request.body()
        body = orjson.loads(raw) if raw else {}
    try:
        if method == "GET" and path == "state":
            return _ok(p.admin_state())
        if method == "GET" and path == "tasks":
            return _ok({"tasks": p.tasks})
        if method == "GET" and path == "todos":
            t = p.activities
            rows = np.flatnonzero((t.cols["TYPE_ID"][: t.n] == 6) & ~t.deleted[: t.n])
            return _ok({"todos": render_rows(t, rows, list(t.fields))})
        if method == "GET" and path == "fields":
            entity = KINDS[request.query_params.get("entity", "contact")]
            ids = request.query_params.get("ids")
            wanted = [int(x) for x in ids.split(",")] if ids else None
            return _ok({"entity": entity, "fields": p.written_fields(entity, wanted)})
        if method == "GET" and path == "userfields":
            return _ok(p.userfields)
        if parts[0] == "entities" and len(parts) >= 2:
            entity = KINDS.get(parts[1])
            if entity is None:
                return _ok({"error": f"unknown entity kind {parts[1]!r}"}, 404)
            t = p.table(entity)
            if len(parts) == 2 and method == "POST":
                new_id = p.next_id(t)
                row = t.append(new_id)
                now = int(p.now())
                t.cols["DATE_CREATE"][row] = now
                for key in ("ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID"):
                    if key in t.cols:
                        t.cols[key][row] = 1
                for key in ("HAS_PHONE", "HAS_EMAIL", "CLOSED", "IS_RETURN_CUSTOMER"):
                    if key in t.cols:
                        t.cols[key][row] = False
                apply_fields(p, entity, row, body, user_id=1)
                p.emit(entity, "add", new_id)
                pa._flush_events()
                return _ok(entity_record(p, entity, row), 201)
            row = t.row_of(int(parts[2]))
            if row is None:
                return _ok({"error": "not found"}, 404)
            if method == "GET":
                return _ok(entity_record(p, entity, row))
            if method == "POST":
                apply_fields(
                    p, entity, row, body, user_id=int(body.pop("MODIFY_BY_ID", 1)) if "MODIFY_BY_ID" in body else 1
                )
                p.emit(entity, "update", int(parts[2]))
                pa._flush_events()
                return _ok(entity_record(p, entity, row))
            if method == "DELETE":
                t.deleted[row] = True
                p.emit(entity, "delete", int(parts[2]))
                pa._flush_events()
                return _ok({"deleted": int(parts[2])})
        if method == "GET" and path == "faults":
            return _ok(p.options.faults.as_dict())
        if method == "POST" and path == "faults":
            p.options.faults.update(body)
            p.faults.reseed()
            return _ok(p.options.faults.as_dict())
        if method == "POST" and path == "options":
            p.options.update(body)
            drain, burst = p.options.bucket
            p.bucket.drain, p.bucket.burst = drain, burst
            p.operating.limit = p.options.operating_limit_s
            return _ok(p.options.as_dict())
        if method == "POST" and path == "webhook":
            p.webhook_target = body.get("url") or None
            return _ok({"url": p.webhook_target, "application_token": p.app.application_token})
        if method == "POST" and path == "clock":
            p.clock_offset += float(body.get("advance", 0))
            return _ok({"clock_offset": p.clock_offset, "now": p.now()})
        if method == "POST" and path == "expire-tokens":
            return _ok({"expired": p.expire_tokens()})
        if method == "POST" and path == "reset-limits":
            p.bucket.reset()
            p.operating.reset()
            return _ok({"ok": True})
        if method == "POST" and path == "webhooks":
            expires_in = body.get("expires_in")
            hook = p.add_webhook(
                user_id=int(body.get("user_id", 1)),
                scopes=tuple(body.get("scopes") or ("crm", "task", "user", "basic")),
                expires_at=None if expires_in is None else p.now() + float(expires_in),
            )
            return _ok({"code": hook.code, "webhook_url": f"{p.base_url}/rest/{hook.user_id}/{hook.code}/"})
    except (KeyError, ValueError, TypeError) as e:
        return _ok({"error": f"bad request: {e}"}, 400)
    return _ok({"error": f"no admin route {method} {path}"}, 404)
