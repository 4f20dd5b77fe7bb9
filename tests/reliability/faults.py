"""Drive one OAuth source through pull → compute → push against a sandbox tenant, and read back what it holds.

Shared by the fault-injection test: a clean tenant and a faulty tenant of the same seed each get their own
source (``clean`` / ``faulty``) in one store, so the two final states can be compared row by row. The runs reuse
``integration.writeback_flow`` (the rules text, the as-of date, the sandbox readers); what is new here is OAuth
(so injected token expiry matters), a short client timeout, and push rounds until nothing is left to send.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import structlog
from integration.writeback_flow import AS_OF, AmoCrm, B24Crm, Crm, Flow, rules_text
from sqlalchemy import Engine, and_, func, or_, select

from segsync.connect import open_connector
from segsync.contract import Connector
from segsync.logs import configure_logging
from segsync.sandbox.testing import SandboxHandle
from segsync.store import tables as t
from segsync.tokens import DbTokenStore

#: The client gives up on an answer after this long; the sandbox's injected timeouts hang a bit longer.
CLIENT_TIMEOUT = 1.0
SERVER_HANG = 1.5
MARKER_HASH = re.compile(r"(\[segsync:[a-z0-9_-]+:)[0-9a-f]{12}\]")
#: Push rounds, each two hours later (past any retry backoff, still the same business day in Moscow).
MAX_ROUNDS = 6
ROUND = timedelta(hours=2)


def b24_oauth_block(handle: SandboxHandle, name: str) -> str:
    o = handle.info["bitrix24"]["oauth"]
    return (
        f"  - name: {name}\n    kind: bitrix24\n    oauth:\n      portal_url: {o['portal_url']}\n"
        f"      client_id: {o['client_id']}\n      client_secret: {o['client_secret']}\n"
        f"      oauth_server: {o['oauth_server']}\n"
    )


def amo_oauth_block(handle: SandboxHandle, name: str) -> str:
    info = handle.info["amocrm"]
    return (
        f"  - name: {name}\n    kind: amocrm\n    base_url: {info['base_url']}\n    oauth:\n"
        f"      client_id: {info['client_id']}\n      client_secret: {info['client_secret']}\n"
        f"      redirect_uri: {info['redirect_uri']}\n"
    )


def initial_tokens(kind: str, handle: SandboxHandle) -> dict[str, Any]:
    """The first token pair, as ``segsync auth`` would have stored it after the install."""
    if kind == "bitrix24":
        o = handle.info["bitrix24"]["oauth"]
        return {k: o[k] for k in ("access_token", "refresh_token", "client_endpoint", "expires")}
    info = handle.info["amocrm"]
    now = time.time()
    return {
        "access_token": info["access_token"], "refresh_token": info["refresh_token"], "token_type": "Bearer",
        "expires_in": float(info["expires_in"]), "expires_at": now + float(info["expires_in"]), "obtained_at": now,
        "base_url": info["base_url"],
    }  # fmt: skip


class OAuthFlow(Flow):
    """:class:`Flow` with a short client timeout (so injected hangs cost a second, not a minute)."""

    def connector(self) -> Connector:
        return open_connector(
            self.engine, self.sid, self.source, label_prefix=self.rules.writeback.tags.prefix, timeout=CLIENT_TIMEOUT
        )

    def with_rules(self, config_text: str) -> OAuthFlow:
        flow = super().with_rules(config_text)
        return OAuthFlow(flow.engine, flow.rules, flow.config_text, flow.source_name, flow.sid)

    def due_ops(self, as_of: datetime) -> int:
        """Ledger rows a push at ``as_of`` would still send or settle (not those queued for a later day)."""
        lg = t.ledger
        q = select(func.count()).where(
            lg.c.source_id == self.sid,
            or_(lg.c.state == "pending",
                and_(lg.c.state.in_(("planned", "failed")), or_(lg.c.not_before.is_(None), lg.c.not_before <= as_of))),
        )  # fmt: skip
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def open_ops(self) -> Counter[str]:
        """Ledger rows still to be sent or settled (planned, pending, failed) and given up on (parked)."""
        lg = t.ledger
        q = select(lg.c.state).where(
            lg.c.source_id == self.sid, lg.c.state.in_(("planned", "pending", "failed", "parked"))
        )
        with self.engine.connect() as conn:
            return Counter(state for (state,) in conn.execute(q))


async def install(engine: Engine, kind: str, handle: SandboxHandle, name: str) -> OAuthFlow:
    """The source in the store with its first token pair (before any run: the two sources start together)."""
    block = (b24_oauth_block if kind == "bitrix24" else amo_oauth_block)(handle, name)
    flow = OAuthFlow.create(engine, rules_text(block, fallback_user="0"))
    await DbTokenStore(engine, flow.sid).save(initial_tokens(kind, handle))
    return flow


async def run_cycle(flow: OAuthFlow, kind: str, handle: SandboxHandle) -> tuple[OAuthFlow, int]:
    """pull (full) → compute → push, then more pushes while ops wait for a retry; returns the rounds used."""
    block = (b24_oauth_block if kind == "bitrix24" else amo_oauth_block)(handle, flow.source_name)
    await flow.pull(full=True)
    flow = flow.with_rules(rules_text(block, fallback_user=min(flow.active_users(), key=int)))
    flow.compute(AS_OF)
    rounds = 0
    while rounds < MAX_ROUNDS:
        as_of = AS_OF + rounds * ROUND
        await flow.push(as_of)
        rounds += 1
        if not flow.due_ops(as_of + ROUND):
            break
    return flow, rounds


def token_refreshes(engine: Engine, sid: int) -> int:
    """Refreshes the store saw: each committed pair bumps the row's version (the first save makes it 1)."""
    with engine.connect() as conn:
        version = conn.execute(select(t.tokens.c.version).where(t.tokens.c.source_id == sid)).scalar_one()
    return int(version) - 1


def crm_of(kind: str, handle: SandboxHandle) -> Crm:
    return B24Crm(handle) if kind == "bitrix24" else AmoCrm(handle)


# -- comparable states ---------------------------------------------------------------------------------


def _rows(engine: Engine, table: Any, sid: int, columns: list[str]) -> list[str]:
    q = select(*(table.c[c] for c in columns)).where(table.c.source_id == sid)
    with engine.connect() as conn:
        return sorted(
            json.dumps(dict(zip(columns, row, strict=True)), default=str, sort_keys=True) for row in conn.execute(q)
        )


STORE_TABLES: dict[str, list[str]] = {
    "users": ["remote_id", "name", "active", "deleted_at"],
    "stages": ["pipeline_id", "stage_id", "semantic", "name", "sort"],
    "currencies": ["code", "rate", "is_base"],
    "customers": ["kind", "remote_id", "name", "responsible_id", "company_id", "phones", "emails", "attrs", "raw",
                  "created_at", "updated_at", "deleted_at"],
    "deals": ["remote_id", "title", "status", "pipeline_id", "stage_id", "company_id", "contact_id", "contact_ids",
              "amount", "currency", "amount_base", "responsible_id", "attrs", "created_at", "closed_at", "updated_at"],
    "touches": ["remote_id", "customer_kind", "customer_id", "kind", "at", "completed"],
    "quarantine": ["entity", "remote_id", "reason", "resolved_at"],
    "segment_state": ["customer_kind", "customer_id", "labels", "features"],
    "labels_written": ["customer_kind", "customer_id", "labels"],
    "ledger": ["key", "op", "customer_kind", "customer_id", "rule", "state", "reason"],
}  # fmt: skip


def store_state(engine: Engine, sid: int, source: str) -> dict[str, list[str]]:
    """Everything a source's runs leave in the store that must not depend on faults (no ids, no clocks; the
    source's name, part of ledger keys, is neutralised)."""
    out = {name: _rows(engine, getattr(t, name), sid, cols) for name, cols in STORE_TABLES.items()}
    return {name: sorted(r.replace(f":{source}:", ":SOURCE:") for r in rows) for name, rows in out.items()}


def crm_state(kind: str, handle: SandboxHandle) -> dict[str, list[str]]:
    """What managers see: segsync's tasks and segsync's tags (amoCRM) or fields (Bitrix24).

    Tasks are compared without CRM ids, and their markers without the hash (it covers the source's name)."""
    crm = crm_of(kind, handle)
    tasks = sorted(
        json.dumps([tk.customer.kind, tk.customer.remote_id, tk.title, MARKER_HASH.sub(r"\1…]", tk.text),
                    tk.responsible, tk.deadline.isoformat(), tk.completed], ensure_ascii=False)
        for tk in crm.segsync_tasks()
    )  # fmt: skip
    if isinstance(crm, AmoCrm):
        labels = sorted(
            json.dumps([ref.kind, ref.remote_id, sorted(n for n in names if n.startswith("seg:"))])
            for ref, names in crm.tags().items()
            if any(n.startswith("seg:") for n in names)
        )
    else:
        labels = sorted(
            json.dumps([ref.kind, ref.remote_id, values], sort_keys=True)
            for ref, values in crm.fields().items()
            if any(v not in (None, "", False) for v in values.values())
        )
    return {"tasks": tasks, "labels": labels}


def differences(a: dict[str, list[str]], b: dict[str, list[str]]) -> dict[str, Any]:
    """Per table: how many rows only one side has (as multisets: a duplicate counts), one example of each."""
    out: dict[str, Any] = {}
    for name in a.keys() | b.keys():
        left, right = Counter(a.get(name, [])), Counter(b.get(name, []))
        if left != right:
            only_left, only_right = sorted((left - right).elements()), sorted((right - left).elements())
            out[name] = {"only_clean": len(only_left), "only_faulty": len(only_right),
                         "e.g. clean": only_left[:1], "e.g. faulty": only_right[:1]}  # fmt: skip
    return out


# -- what the sandbox counted ----------------------------------------------------------------------------


def tenant_state(kind: str, handle: SandboxHandle) -> dict[str, Any]:
    path = "/b24/portal/_admin/state" if kind == "bitrix24" else "/amo/account/_admin/state"
    return handle.admin("GET", path)


def issued_secrets(kind: str, handle: SandboxHandle) -> list[str]:
    """Every credential the tenant ever handed out (initial, refreshed, client secrets, webhook codes)."""
    assert handle.sandbox is not None
    found: list[str] = []
    for tenant in handle.sandbox.tenants.values():
        obj = tenant.obj
        if tenant.kind == "bitrix24" and kind == "bitrix24":
            found += list(obj.access_tokens) + list(obj.refresh_tokens)
            found += [obj.app.client_secret, obj.app.application_token, obj.webhook_code]
        elif tenant.kind == "amocrm" and kind == "amocrm":
            found += list(obj.auth.access) + list(obj.auth.refresh) + [obj.auth.client_secret]
    return [s for s in found if s]


@contextmanager
def captured_logs(level: str = "debug") -> Iterator[io.StringIO]:
    """The service's real log output (JSON lines, after redaction) for the duration of the block."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    stream = io.StringIO()
    configure_logging(level=level, fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        structlog.configure(**saved[2])


def log_events(text: str) -> Counter[str]:
    events: Counter[str] = Counter()
    for line in text.splitlines():
        try:
            events[str(json.loads(line).get("event"))] += 1
        except (ValueError, AttributeError):
            continue
    return events
