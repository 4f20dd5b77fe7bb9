"""The HTTP face of a portal: REST calls (webhook and OAuth), ``batch``, the ``time`` block, limits,
faults, outgoing-webhook events, the OAuth authorize step and the per-tenant admin API."""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from segsync.sandbox.bitrix24 import errors as X
from segsync.sandbox.bitrix24.errors import ApiError, err
from segsync.sandbox.bitrix24.methods import METHODS, Caller, Reply, apply_fields, entity_record
from segsync.sandbox.bitrix24.params import as_int, get, parse_php_query
from segsync.sandbox.bitrix24.portal import Bitrix24Portal

HTML_ERROR = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class TimeBlock:
    def __init__(self, portal: Bitrix24Portal):
        self.p = portal
        self.start = portal.now()

    def render(self, processing: float, *, operating_key: tuple[str, str] | None = None) -> dict[str, Any]:
        p = self.p
        finish = max(p.now(), self.start + processing)
        out: dict[str, Any] = {
            "start": self.start,
            "finish": finish,
            "duration": finish - self.start,
            "processing": processing,
            "date_start": p.clock.iso(int(self.start)),
            "date_finish": p.clock.iso(int(finish)),
        }
        if operating_key is not None and p.options.operating_limit_s > 0:
            reset = p.operating.reset_at(operating_key, finish)
            if reset is not None:
                out["operating_reset_at"] = reset
            out["operating"] = p.operating.used(operating_key, finish)
        return out


async def read_params(request: Request) -> dict[str, Any]:
    """Query string merged with a JSON or form body (the body wins), PHP array syntax understood."""
    # the raw query string as starlette's `request.url.query` gives it, without building a URL object
    params = parse_php_query(request.scope.get("query_string", b"").decode().partition("#")[0])
    body = await request.body()
    if body:
        ctype = request.headers.get("content-type", "")
        if "json" in ctype or body[:1] in (b"{", b"["):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise ApiError(400, "INVALID_REQUEST", "Invalid JSON body") from None
            if isinstance(data, dict):
                params.update(data)
        else:
            params.update(parse_php_query(body.decode("utf-8", "replace")))
    return params


class PortalApp:
    """Request pipeline of one portal."""

    def __init__(self, portal: Bitrix24Portal):
        self.p = portal
        self._client: httpx.AsyncClient | None = None
        self._sender: asyncio.Task | None = None

    # -- auth ----------------------------------------------------------------------------------------
    def authenticate(self, request: Request, params: dict[str, Any]) -> Caller:
        p = self.p
        user, code = request.path_params.get("user"), request.path_params.get("code")
        if code is not None:
            hook = p.webhooks.get(code)
            if hook is None or str(hook.user_id) != str(user):
                raise err(X.NO_AUTH)
            if hook.expires_at is not None and hook.expires_at < p.now():
                raise err(X.NO_AUTH)
            u = p.user(hook.user_id)
            if u is None or not u["active"]:
                raise ApiError(401, "authorization_error", "Unable to authorize user")
            return Caller(hook.user_id, hook.scopes, f"webhook:{code}", u["is_admin"])
        token = get(params, "auth")
        if not token:
            raise err(X.NO_AUTH)
        tok = p.access_tokens.get(str(token))
        if tok is None:
            raise err(X.NO_AUTH)
        if tok.revoked or tok.expires_at < p.now():
            raise err(X.EXPIRED)
        tok.uses += 1
        every = p.options.faults.token_expiry_every
        if every and tok.uses >= every:
            tok.expires_at = p.now() - 1  # this call still passes; the next one sees expired_token
        u = p.user(tok.user_id)
        return Caller(tok.user_id, p.app.scopes, f"app:{p.app.client_id}", bool(u and u["is_admin"]))

    # -- one method ------------------------------------------------------------------------------------
    def call(self, name: str, params: dict[str, Any], caller: Caller) -> tuple[Reply, float, tuple[str, str]]:
        """Run a method (no rate limit here); returns the reply, its modelled cost and operating key."""
        p = self.p
        entry = METHODS.get(name.lower())
        if entry is None:
            raise err(X.METHOD_NOT_FOUND)
        scope, fn = entry
        if scope != "basic" and scope not in caller.scopes:
            raise err(X.INSUFFICIENT_SCOPE)
        key = (caller.key, name.lower())
        now = p.now()
        if p.operating.blocked(key, now):
            p.counters.operation_time_limit += 1
            raise err(X.OPERATION_LIMIT, operating_reset_at=p.operating.reset_at(key, now))
        t0 = time.perf_counter()
        reply = fn(p, params, caller)
        spent = time.perf_counter() - t0
        cost = reply.cost + spent
        if p.options.operating_limit_s > 0:
            p.operating.add(key, p.now(), cost)
        return reply, cost, key

    # -- HTTP entry points ---------------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        p = self.p
        name = re.sub(r"\.json$", "", request.path_params["method"])
        status = 200
        try:
            if p.options.moved_to:
                target = p.options.moved_to.rstrip("/") + request.url.path[len(request.scope.get("root_path", "")) :]
                if request.url.query:
                    target += "?" + request.url.query
                status = 302
                return RedirectResponse(target, status_code=302)
            response = await self._rest(request, name)
            status = response.status_code
            return response
        finally:
            p.counters.requests[name.lower()][status] += 1

    async def _rest(self, request: Request, name: str) -> Response:
        p = self.p
        tb = TimeBlock(p)
        o = p.options
        if o.faults.latency_ms:
            await asyncio.sleep(o.faults.latency_ms / 1000)
        fault = p.faults.decide()
        after = fault in ("5xx", "timeout") and random.random() < o.faults_after_processing
        if fault and not after:
            return await self._fault(fault)
        try:
            params = await read_params(request)
            caller = self.authenticate(request, params)
            if not o.commercial_plan:
                p.counters.blocked_403 += 1
                raise err(X.ACCESS_DENIED_PLAN)
            if o.overload_block:
                raise err(X.OVERLOAD)
            if not p.bucket.admit(p.now(), count_rejected=o.count_rejected):
                p.counters.query_limit_exceeded += 1
                raise err(X.QUERY_LIMIT)
            if name.lower() == "batch":
                body, cost, key = self.batch(params, caller)
            else:
                reply, cost, key = self.call(name, params, caller)
                body = {"result": reply.result}
                if reply.next is not None:
                    body["next"] = reply.next
                if reply.total is not None:
                    body["total"] = reply.total
            if o.real_delays and cost > 0.0005:
                await asyncio.sleep(cost)
            body["time"] = tb.render(cost, operating_key=key)
            self._flush_events()
            if fault:
                return await self._fault(fault)
            return _json(body, headers={"X-Bitrix-Rest-Time": f"{cost:.6f}"})
        except ApiError as e:
            self._flush_events()
            return _json(e.body(), e.status)

    async def _fault(self, fault: str) -> Response:
        o = self.p.options.faults
        if fault == "timeout":
            await asyncio.sleep(o.timeout_seconds)
            return Response("", status_code=504)
        if fault == "html":
            return Response(HTML_ERROR, status_code=random.choice((502, 503)), media_type="text/html")
        if fault == "429":
            self.p.counters.query_limit_exceeded += 1
            return _json(err(X.QUERY_LIMIT).body(), 503)
        return _json(err(X.INTERNAL).body(), random.choice((500, 502, 503, 504)))

    # -- batch ----------------------------------------------------------------------------------------
    def batch(self, params: dict[str, Any], caller: Caller) -> tuple[dict[str, Any], float, None]:
        cmd = get(params, "cmd")
        halt = str(get(params, "halt", "0")).lower() in ("1", "true", "y")
        if isinstance(cmd, list):
            cmd = {str(i): v for i, v in enumerate(cmd)}
        if not isinstance(cmd, dict):
            cmd = {}
        items = list(cmd.items())
        if len(items) > 50 and self.p.options.batch_overflow == "reject":
            raise err(X.BATCH_LENGTH)
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        cost_sum = 0.0
        for i, (key, command) in enumerate(items):
            key = str(key)
            tb = TimeBlock(self.p)
            try:
                if i >= 50:
                    raise err(X.BATCH_LENGTH)
                method, _, query = str(command).partition("?")
                query = _substitute(query, results)
                if method.lower() == "batch":
                    raise err(X.BATCH_METHOD)
                reply, cost, okey = self.call(method, parse_php_query(query), caller)
            except ApiError as e:
                errors[key] = {"error": e.code, "error_description": e.description}
                if halt:
                    break
                continue
            cost_sum += cost
            results[key] = reply.result
            if reply.total is not None:
                totals[key] = reply.total
            if reply.next is not None:
                nexts[key] = reply.next
            times[key] = tb.render(cost, operating_key=okey)
        body = {
            "result": {
                "result": _php_map(results),
                "result_error": _php_map(errors),
                "result_total": _php_map(totals),
                "result_next": _php_map(nexts),
                "result_time": _php_map(times),
            }
        }
        return body, cost_sum, None

    # -- events ---------------------------------------------------------------------------------------
    def _flush_events(self) -> None:
        p = self.p
        if not p.pending_events:
            return
        events, p.pending_events = p.pending_events, []
        for event in events:
            asyncio.get_running_loop().create_task(self._post(event))

    async def _post(self, event: dict[str, str]) -> None:
        p = self.p
        if not p.webhook_target:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        try:
            r = await self._client.post(p.webhook_target, data=event)
            if r.status_code < 400:
                p.counters.events_sent += 1
            else:
                p.counters.events_failed += 1
        except httpx.HTTPError:
            p.counters.events_failed += 1  # documented: no retries, the event is lost

    # -- OAuth authorize (the user's consent step; auto-approved) ----------------------------------------
    async def authorize(self, request: Request) -> Response:
        p = self.p
        q = dict(request.query_params)
        if q.get("client_id") != p.app.client_id:
            return _json({"error": "invalid_client", "error_description": "Unknown client_id"}, 400)
        code = secrets.token_hex(16)
        p.auth_codes[code] = (p.now() + p.options.auth_code_ttl_s, 1)
        redirect = q.get("redirect_uri") or p.app.redirect_uri
        query = urlencode(
            {
                "code": code,
                "state": q.get("state", ""),
                "domain": p.domain,
                "member_id": p.member_id,
                "scope": ",".join(p.app.scopes),
                "server_domain": p.oauth_server.split("://", 1)[-1].rstrip("/"),
            }
        )
        return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{query}", status_code=302)

    # -- admin --------------------------------------------------------------------------------------------
    async def admin(self, request: Request) -> Response:
        from segsync.sandbox.bitrix24.admin import handle_admin

        return await handle_admin(self, request)


def _substitute(query: str, results: dict[str, Any]) -> str:
    """Replace ``$result[key][a][b]`` with earlier results (URL-encoded); unresolvable → empty."""

    def value(m: re.Match[str]) -> str:
        path = re.findall(r"\[([^\]]*)\]", m.group(0))
        node: Any = results
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return ""
        if isinstance(node, dict | list):
            return ""
        if node is True:
            return "1"
        if node in (False, None):
            return ""
        return urlencode({"": str(node)})[1:]

    decoded = query.replace("%24result", "$result").replace("%5B", "[").replace("%5D", "]")
    return re.sub(r"\$result((?:\[[^\]]*\])+)", value, decoded)


def _php_map(d: dict[str, Any]) -> Any:
    """PHP's json_encode: an empty array is ``[]``; keys 0..n-1 in order make a list (fast_bitrix24 #44)."""
    if not d:
        return []
    if all(k.isdigit() for k in d) and [int(k) for k in d] == list(range(len(d))):
        return list(d.values())
    return d


def build_app(portal: Bitrix24Portal) -> Starlette:
    """A Starlette app serving one portal; mount it at the portal's base path."""
    pa = PortalApp(portal)
    methods = ["GET", "POST"]
    app = Starlette(
        routes=[
            Route("/rest/{user:int}/{code}/{method}", pa.rest, methods=methods),
            Route("/rest/{method}", pa.rest, methods=methods),
            Route("/oauth/authorize/", pa.authorize, methods=["GET"]),
            Route("/_admin/{path:path}", pa.admin, methods=["GET", "POST", "DELETE"]),
        ],
    )
    app.state.portal = portal
    app.state.portal_app = pa
    return app


__all__ = ["PortalApp", "apply_fields", "as_int", "build_app", "entity_record"]
