"""One ASGI app serving several emulated CRM tenants by path prefix, plus the sandbox admin API.

- Bitrix24 portals at ``/b24/<name>`` (webhook ``/b24/<name>/rest/1/<code>/``), the OAuth server at
  ``/b24oauth`` (``/b24oauth/oauth/token/``);
- amoCRM accounts at ``/amo/<name>`` (``segsync.sandbox.amocrm``, imported lazily: the server works
  without it);
- admin: ``/_admin/...`` and each tenant's ``<prefix>/<name>/_admin/...``, all requiring the header
  ``X-Sandbox-Admin: <token>``. See docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from segsync.sandbox.bitrix24 import Bitrix24Options, Bitrix24Portal, OAuthServer, build_app, build_oauth_app
from segsync.sandbox.data import generate_world

ADMIN_HEADER = "x-sandbox-admin"


def load_amocrm() -> Any | None:
    """The amoCRM emulator module, or None while it is not part of this build."""
    try:
        return importlib.import_module("segsync.sandbox.amocrm")
    except ImportError:
        return None


@dataclass
class Tenant:
    kind: str  # "bitrix24" | "amocrm"
    name: str
    obj: Any
    app: Any
    prefix: str  # "/b24/<name>" | "/amo/<name>"


@dataclass
class Sandbox:
    """The composed sandbox. Build with :meth:`create`, serve ``sandbox`` as an ASGI app."""

    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tenants: dict[str, Tenant] = field(default_factory=dict)  # prefix → tenant
    moved: dict[str, str] = field(default_factory=dict)  # old prefix → new prefix
    oauth: OAuthServer = field(default_factory=OAuthServer)
    base_url: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.oauth_app = build_oauth_app(self.oauth)

    @classmethod
    def create(
        cls,
        *,
        seed: int,
        size: str | None = "demo",
        customers: int | None = None,
        portals: int = 1,
        accounts: int = 1,
        now: datetime | None = None,
        b24_options: dict[str, Any] | None = None,
        amo_options: dict[str, Any] | None = None,
    ) -> Sandbox:
        sb = cls()
        for i in range(portals):
            world = generate_world(seed=seed + i, size=size, customers=customers, now=now)
            opts = Bitrix24Options()
            if b24_options:
                opts.update(b24_options)
            sb.add_portal(Bitrix24Portal(world, name=f"portal{i + 1}" if portals > 1 else "portal", options=opts))
        if accounts:
            amo = load_amocrm()
            if amo is None:
                sb.warnings.append("segsync.sandbox.amocrm is not available in this build: no amoCRM accounts")
            else:
                for i in range(accounts):
                    world = generate_world(seed=seed + 1000 + i, size=size, customers=customers, now=now)
                    options = amo.AmoOptions()
                    for key, value in (amo_options or {}).items():
                        setattr(options, key, value)
                    options.admin_token = sb.admin_token  # one admin token for the whole sandbox
                    name = f"account{i + 1}" if accounts > 1 else "account"
                    account = amo.AmoAccount(world, name=name, options=options)
                    sb.add_tenant(Tenant("amocrm", name, account, amo.build_app(account), f"/amo/{name}"))
        return sb

    def add_portal(self, portal: Bitrix24Portal) -> None:
        self.oauth.register(portal)
        self.add_tenant(Tenant("bitrix24", portal.name, portal, build_app(portal), f"/b24/{portal.name}"))

    def add_tenant(self, tenant: Tenant) -> None:
        self.tenants[tenant.prefix] = tenant

    # -- info ----------------------------------------------------------------------------------------
    def info(self, base_url: str) -> dict[str, Any]:
        """The one JSON line ``segsync sandbox serve`` prints."""
        self.base_url = base_url.rstrip("/")
        out: dict[str, Any] = {
            "url": self.base_url,
            "admin": {"url": f"{self.base_url}/_admin/", "token": self.admin_token, "header": "X-Sandbox-Admin"},
            "tenants": {"bitrix24": [], "amocrm": []},
        }
        for t in self.tenants.values():
            info = t.obj.client_info(f"{self.base_url}{t.prefix}")
            info.setdefault("admin_url", f"{self.base_url}{t.prefix}/_admin/")
            out["tenants"][t.kind].append(info)
        out["bitrix24"] = out["tenants"]["bitrix24"][0] if out["tenants"]["bitrix24"] else None
        out["amocrm"] = out["tenants"]["amocrm"][0] if out["tenants"]["amocrm"] else None
        if self.warnings:
            out["warnings"] = self.warnings
        return out

    # -- ASGI ----------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover
            return
        path: str = scope["path"]
        if path == "/_admin" or path.startswith("/_admin/"):
            if not self._admin_ok(scope):
                return await _send_json(send, {"error": "admin token required (X-Sandbox-Admin)"}, 401)
            return await self._global_admin(scope, receive, send)
        if path.startswith("/b24oauth/"):
            return await self.oauth_app(dict(scope, root_path=scope.get("root_path", "") + "/b24oauth"), receive, send)
        parts = path.split("/", 3)
        if len(parts) >= 3:
            prefix = f"/{parts[1]}/{parts[2]}"
            rest = "/" + (parts[3] if len(parts) > 3 else "")
            if prefix in self.moved:
                target = self.base_url + self.moved[prefix] + rest
                if scope.get("query_string"):
                    target += "?" + scope["query_string"].decode()
                return await _send(send, 302, b"", [(b"location", target.encode())])
            tenant = self.tenants.get(prefix)
            if tenant is not None:
                if rest.startswith("/_admin") and not self._admin_ok(scope):
                    return await _send_json(send, {"error": "admin token required (X-Sandbox-Admin)"}, 401)
                child = dict(scope, root_path=scope.get("root_path", "") + prefix)
                return await tenant.app(child, receive, send)
        return await _send_json(send, {"error": "not found", "path": path}, 404)

    def _admin_ok(self, scope: dict[str, Any]) -> bool:
        for key, value in scope.get("headers", []):
            if key.decode("latin-1").lower() == ADMIN_HEADER:
                return hmac.compare_digest(value.decode("latin-1"), self.admin_token)
        return False

    async def _global_admin(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"].rstrip("/")
        method = scope["method"]
        if method == "GET" and path in ("/_admin", "/_admin/tenants"):
            return await _send_json(send, self.info(self.base_url))
        if method == "GET" and path == "/_admin/state":
            states = {
                t.prefix: (t.obj.admin_state() if hasattr(t.obj, "admin_state") else {"kind": t.kind, "name": t.name})
                for t in self.tenants.values()
            }
            return await _send_json(send, {"tenants": states})
        # POST /_admin/b24/<name>/move {"to": "<new name>"}: the portal changes its address (302 from the old one)
        segs = path.split("/")
        if method == "POST" and len(segs) == 5 and segs[4] == "move":
            body = await _read_body(receive)
            old = f"/{segs[2]}/{segs[3]}"
            tenant = self.tenants.get(old)
            new_name = str(orjson.loads(body or b"{}").get("to") or "")
            if tenant is None or not new_name:
                return await _send_json(send, {"error": "unknown tenant or missing 'to'"}, 400)
            new = f"/{segs[2]}/{new_name}"
            del self.tenants[old]
            tenant.prefix, tenant.name = new, new_name
            self.tenants[new] = tenant
            self.moved[old] = new
            info = tenant.obj.client_info(f"{self.base_url}{new}")
            return await _send_json(send, {"moved": old, "to": new, "info": info})
        return await _send_json(send, {"error": f"no admin route {method} {path}"}, 404)


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Any, body: Any, status: int = 200) -> None:
    await _send(send, status, orjson.dumps(body), [(b"content-type", b"application/json")])


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0 = a free port) so the URL is known before serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, sock: socket.socket) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=30)
    return uvicorn.Server(config)


async def serve(sandbox: Sandbox, sock: socket.socket) -> None:
    server = make_server(sandbox, sock)
    await server.serve(sockets=[sock])


__all__ = ["Sandbox", "Tenant", "asyncio", "bind", "load_amocrm", "make_server", "serve"]
