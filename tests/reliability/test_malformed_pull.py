"""Malformed records in a real pull: quarantined and counted while the run goes on, and released once fixed.

The sandbox is served behind a small ASGI wrapper that rewrites list answers on their way out: every tenth
contact, company and deal gets a creation date no mapper can read, and every tenth (another one) a name with a
NUL character, which is valid JSON but which PostgreSQL refuses in text and jsonb. The connectors, the pull
orchestration and the store are the real ones, over HTTP, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from integration.writeback_flow import Flow, amo_source_block, b24_source_block, rules_text
from sqlalchemy import select

from segsync.sandbox.server import Sandbox, bind, make_server
from segsync.sandbox.testing import SandboxHandle
from segsync.store import tables as t
from segsync.sync import pull_source

from . import support
from .faults import captured_logs

BROKEN, NUL = 3, 7  # record id % 10 → what happens to it


class Mangler:
    """ASGI middleware: JSON answers of list calls are decoded, records rewritten, and re-encoded."""

    def __init__(self, app: Any):
        self.app = app
        self.enabled = True
        self.broken: set[tuple[str, str]] = set()  # (entity, remote id) made unreadable
        self.nul: set[tuple[str, str]] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.enabled or "/_admin" in scope["path"]:
            return await self.app(scope, receive, send)
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = self._rewrite(scope["path"], b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)

    def _rewrite(self, path: str, body: bytes) -> bytes:
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if "/amo/" in path:
            entity = next((e for e in ("contacts", "companies", "leads") if path.endswith(f"/api/v4/{e}")), None)
            emb = doc.get("_embedded") if isinstance(doc, dict) else None
            if entity and isinstance(emb, dict):
                for raw in emb.get(entity) or []:
                    self._mangle("deals" if entity == "leads" else entity, raw, "id", "created_at", "name")
        else:
            self._walk_b24(doc)
        return json.dumps(doc, ensure_ascii=False).encode()

    def _walk_b24(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                if isinstance(item, dict) and "stageId" in item and "id" in item:
                    self._mangle("deals", item, "id", "createdTime", "title")
                elif isinstance(item, dict) and "DATE_MODIFY" in item and "ID" in item:
                    entity = "companies" if "TITLE" in item else "contacts"
                    self._mangle(entity, item, "ID", "DATE_CREATE", "TITLE" if entity == "companies" else "NAME")
                else:
                    self._walk_b24(item)
        elif isinstance(node, dict):
            for value in node.values():
                self._walk_b24(value)

    def _mangle(self, entity: str, raw: dict[str, Any], id_key: str, date_key: str, name_key: str) -> None:
        remote_id = str(raw.get(id_key))
        if not remote_id.isdigit():
            return
        if int(remote_id) % 10 == BROKEN:
            raw[date_key] = "вчера"
            self.broken.add((entity, remote_id))
        elif int(remote_id) % 10 == NUL:
            raw[name_key] = f"{raw.get(name_key) or ''}\x00x"
            self.nul.add((entity, remote_id))


def start_mangled(**kwargs: Any) -> tuple[SandboxHandle, Mangler]:
    """Like ``start_in_thread``, with the sandbox behind a :class:`Mangler`."""
    sandbox = Sandbox.create(seed=kwargs.pop("seed"), size=kwargs.pop("size"), **kwargs)
    sock = bind("127.0.0.1", 0)
    info = sandbox.info(f"http://127.0.0.1:{sock.getsockname()[1]}")
    mangler = Mangler(sandbox)
    server = make_server(mangler, sock)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return SandboxHandle(info=info, stop=stop, sandbox=sandbox), mangler


def open_quarantine(engine: Any, sid: int) -> set[tuple[str, str]]:
    q = t.quarantine
    with engine.connect() as conn:
        rows = conn.execute(
            select(q.c.entity, q.c.remote_id, q.c.reason).where(q.c.source_id == sid, q.c.resolved_at.is_(None))
        ).all()
    assert all(reason and reason.strip() for _e, _i, reason in rows)
    return {(entity, str(remote_id)) for entity, remote_id, _ in rows}


def stored(engine: Any, sid: int, entity: str) -> dict[str, str | None]:
    table, name = (t.deals, t.deals.c.title) if entity == "deals" else (t.customers, t.customers.c.name)
    q = select(table.c.remote_id, name).where(table.c.source_id == sid)
    if entity != "deals":
        q = q.where(t.customers.c.kind == ("company" if entity == "companies" else "contact"))
    with engine.connect() as conn:
        return {str(i): n for i, n in conn.execute(q)}


BLOCKS: dict[str, Callable[[SandboxHandle], str]] = {"bitrix24": b24_source_block, "amocrm": amo_source_block}


@pytest.mark.parametrize("kind", ["bitrix24", "amocrm"])
async def test_malformed_records_are_quarantined_while_the_pull_goes_on(engine, kind):
    handle, mangler = start_mangled(
        seed=51, size="tiny", portals=1 if kind == "bitrix24" else 0, accounts=1 if kind == "amocrm" else 0
    )
    try:
        flow = Flow.create(engine, rules_text(BLOCKS[kind](handle), fallback_user="0"))
        with captured_logs() as logs:  # quarantine reasons quote values: still no phone, e-mail or secret
            async with flow.connector() as conn:
                first = await pull_source(engine, flow.sid, conn, full=True)
        quarantined = open_quarantine(engine, flow.sid)
        after_first = {entity: stored(engine, flow.sid, entity) for entity in ("contacts", "companies", "deals")}
        # the CRM fixes its records: the next pull releases every one of them
        mangler.enabled = False
        async with flow.connector() as conn:
            await pull_source(engine, flow.sid, conn, full=True)
        released = open_quarantine(engine, flow.sid)
    finally:
        handle.stop()

    info = handle.info["bitrix24"] or handle.info["amocrm"]
    flat = {**info, **{f"oauth_{k}": v for k, v in (info.get("oauth") or {}).items()}}
    secrets = [v for k, v in flat.items() if isinstance(v, str) and any(w in k for w in ("token", "secret", "webhook"))]
    found = support.leaks(logs.getvalue(), secrets)
    support.add("leaks.found", len(found))
    support.add("leaks.log_lines_scanned", logs.getvalue().count("\n"))
    assert found == []
    counted = sum(c.get("quarantined", 0) for c in first.counts.values() if isinstance(c, dict))
    support.add(f"malformed_pull.{kind}.broken", len(mangler.broken))
    support.add(f"malformed_pull.{kind}.quarantined", counted)
    support.add(f"malformed_pull.{kind}.nul_names_stored", len(mangler.nul))
    assert mangler.broken and mangler.nul
    assert quarantined == mangler.broken and counted == len(mangler.broken)
    for entity, names in after_first.items():
        for remote_id in (i for e, i in mangler.nul if e == entity):
            assert "\x00" not in (names[remote_id] or ""), (entity, remote_id)  # stored, without the NUL
        ids = {i for e, i in mangler.broken if e == entity}
        assert ids <= set(stored(engine, flow.sid, entity))  # released: stored after the second pull
    assert released == set()
