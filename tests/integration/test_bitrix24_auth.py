"""Bitrix24 OAuth refresh, a moved portal, outgoing-webhook events and the CLI, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from sqlalchemy import select

from connectors.bitrix24.connector import Bitrix24Connector
from segsync.app import ensure_sources
from segsync.contract import ChangeHint, ConnectorContext
from segsync.store import tables as t
from segsync.sync import pull_source
from segsync.tokens import DbTokenStore

from .test_bitrix24_pull import ADMIN, b24_source, connector, count


def oauth_source(handle: Any, name: str = "b24") -> Any:
    o = handle.info["bitrix24"]["oauth"]
    options = {
        "portal_url": o["portal_url"],
        "client_id": o["client_id"],
        "client_secret": o["client_secret"],
        "oauth_server": o["oauth_server"],
    }
    return b24_source(handle, name=name, webhook_url=None, oauth=options)


def initial_tokens(handle: Any) -> dict[str, Any]:
    o = handle.info["bitrix24"]["oauth"]
    return {k: o[k] for k in ("access_token", "refresh_token", "client_endpoint", "expires")}


async def test_oauth_refresh_on_expiry_once_across_processes(engine, sandbox_factory):
    handle = sandbox_factory(seed=21, size="tiny")
    source = oauth_source(handle)
    sid = ensure_sources(engine, [source])[source.name]
    await DbTokenStore(engine, sid).save(initial_tokens(handle))
    async with Bitrix24Connector(source, ConnectorContext(tokens=DbTokenStore(engine, sid))) as conn:
        await pull_source(engine, sid, conn, entities=["users", "companies"])
    handle.admin("POST", ADMIN + "expire-tokens")
    # two "processes" (own connectors and token-store handles) meet the expired token at once
    first = Bitrix24Connector(source, ConnectorContext(tokens=DbTokenStore(engine, sid)))
    second = Bitrix24Connector(source, ConnectorContext(tokens=DbTokenStore(engine, sid)))
    async with first, second:
        await asyncio.gather(first.transport.call("user.get"), second.transport.call("user.get"))
    stored = await DbTokenStore(engine, sid).load()
    assert stored["refresh_token"] != initial_tokens(handle)["refresh_token"]
    with engine.connect() as db:
        version = db.execute(select(t.tokens.c.version).where(t.tokens.c.source_id == sid)).scalar_one()
    assert version == 2  # saved once, refreshed once: the second process reused the new pair
    async with Bitrix24Connector(source, ConnectorContext(tokens=DbTokenStore(engine, sid))) as conn:
        await pull_source(engine, sid, conn, entities=["contacts"])
    assert count(engine, t.customers, t.customers.c.kind == "contact") > 0


async def test_moved_portal_is_followed_with_post(engine, sandbox_factory):
    handle = sandbox_factory(seed=22, size="tiny")
    source = b24_source(handle)
    handle.admin("POST", "/_admin/b24/portal/move", {"to": "renamed"})
    conn, sid = connector(engine, source)
    async with conn:
        await pull_source(engine, sid, conn, entities=["companies", "contacts"])
    assert (
        count(engine, t.customers)
        == handle.info["bitrix24"]["counts"]["companies"] + handle.info["bitrix24"]["counts"]["contacts"]
    )
    moved = handle.admin("GET", "/b24/renamed/_admin/state")["counters"]["requests"]
    assert moved.get("batch", {}).get("200", 0) >= 2


class _Catcher(BaseHTTPRequestHandler):
    bodies: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        type(self).bodies.append(self.rfile.read(length).decode())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_outgoing_webhook_events_become_hints(engine, sandbox_factory):
    handle = sandbox_factory(seed=23, size="tiny")
    server = HTTPServer(("127.0.0.1", 0), _Catcher)
    _Catcher.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        handle.admin("POST", ADMIN + "webhook", {"url": f"http://127.0.0.1:{server.server_port}/hook"})
        handle.admin("DELETE", ADMIN + "entities/deal/5")
        handle.admin("POST", ADMIN + "entities/contact/2", {"NAME": "X"})
        for _ in range(100):
            if len(_Catcher.bodies) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        server.shutdown()
    token = handle.info["bitrix24"]["application_token"]
    conn = Bitrix24Connector(b24_source(handle, application_token=token), ConnectorContext(tokens=None))  # type: ignore[arg-type]
    hints = [
        h for body in _Catcher.bodies for h in conn.parse_webhook(None, {k: v[0] for k, v in parse_qs(body).items()})
    ]
    assert ChangeHint("deals", "5", deleted=True) in hints
    assert ChangeHint("contacts", "2", kind="contact") in hints


def test_segsync_pull_cli_end_to_end(tmp_path: Path, sandbox_factory):
    handle = sandbox_factory(seed=24, size="tiny")
    rules = tmp_path / "segsync.yaml"
    rules.write_text(
        f"store: sqlite:///{tmp_path / 'store.db'}\n"
        "sources:\n  - name: shop\n    kind: bitrix24\n    webhook_url: ${B24_WEBHOOK_URL}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "B24_WEBHOOK_URL": handle.info["bitrix24"]["webhook_url"], "SEGSYNC_STORE_URL": ""}
    env.pop("SEGSYNC_STORE_URL")
    run = subprocess.run(
        [sys.executable, "-m", "segsync.cli", "pull", "--config", str(rules), "--source", "shop", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    counts = json.loads(run.stdout)["shop"]
    assert counts["deals"]["upserted"] == handle.info["bitrix24"]["counts"]["deals"]
    code = handle.info["bitrix24"]["webhook_url"].rstrip("/").rsplit("/", 1)[-1]
    assert code not in run.stdout + run.stderr  # the webhook code is a secret
    again = subprocess.run(
        [sys.executable, "-m", "segsync.cli", "reconcile", "--config", str(rules), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["shop"]["deals"]["deleted"] == 0


def test_segsync_auth_then_pull_with_a_local_application(tmp_path: Path, sandbox_factory):
    import httpx

    handle = sandbox_factory(seed=25, size="tiny")
    o = handle.info["bitrix24"]["oauth"]
    consent = httpx.get(f"{o['portal_url']}/oauth/authorize/", params={"client_id": o["client_id"], "state": "s"})
    code = parse_qs(consent.headers["location"].split("?", 1)[1])["code"][0]
    rules = tmp_path / "segsync.yaml"
    rules.write_text(
        f"store: sqlite:///{tmp_path / 'store.db'}\n"
        "sources:\n  - name: app\n    kind: bitrix24\n    touches: false\n"
        f"    oauth: {{portal_url: '{o['portal_url']}', client_id: '{o['client_id']}',"
        f" client_secret: '${{B24_SECRET}}', oauth_server: '{o['oauth_server']}'}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "B24_SECRET": o["client_secret"]}
    env.pop("SEGSYNC_STORE_URL", None)
    cli = [sys.executable, "-m", "segsync.cli"]
    auth = subprocess.run(
        [*cli, "auth", "bitrix24", "--source", "app", "--code", code, "--config", str(rules)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert auth.returncode == 0, auth.stderr[-2000:]
    assert code not in auth.stdout + auth.stderr and o["client_secret"] not in auth.stdout + auth.stderr
    pull = subprocess.run(
        [*cli, "pull", "--source", "app", "--json", "--config", str(rules)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert pull.returncode == 0, pull.stderr[-2000:]
    assert json.loads(pull.stdout)["app"]["deals"]["upserted"] == handle.info["bitrix24"]["counts"]["deals"]
