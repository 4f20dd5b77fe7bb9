"""Ledger writes: the plan, and each op's way through pending → done | failed → parked.

Every state change commits on its own, *before* (pending) and *after* (done) the CRM call, so a
crash anywhere leaves a row that says exactly what may have happened. Failures are written in their
own transaction too: a rolled-back error message would make an op retry forever (Grouparoo #1632).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, or_, select

from segsync.actions.load import ledger_row
from segsync.actions.model import LedgerRow, Plan
from segsync.config.actions import ActionLimits
from segsync.store import tables as t
from segsync.store.upsert import upsert

_lg = t.ledger


def save_plan(engine: Engine, source_id: int, plan: Plan, now: datetime) -> dict[str, int]:
    """Insert new ops, update or cancel unsent ones, record episode starts and ends — one transaction."""
    new, changed = [], []
    for op in plan.ops:
        if op.change == "new":
            new.append(
                {
                    "source_id": source_id,
                    "key": op.key,
                    "op": op.op,
                    "customer_kind": op.customer.kind,
                    "customer_id": op.customer.remote_id,
                    "rule": op.rule,
                    "state": op.state,
                    "payload": op.payload,
                    "reason": op.reason,
                    "not_before": op.not_before,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        elif op.change in ("update", "cancel"):
            changed.append(
                {"_id": op.row_id, "_state": op.state, "_payload": op.payload, "_reason": op.reason,
                 "_not_before": op.not_before, "_now": now}
            )  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(new), 1000):
            conn.execute(_lg.insert(), new[start : start + 1000])
        if changed:
            conn.execute(
                _lg.update()
                .where(_lg.c.id == bindparam("_id"))
                .values(
                    state=bindparam("_state"),
                    payload=bindparam("_payload", type_=_lg.c.payload.type),
                    reason=bindparam("_reason"),
                    not_before=bindparam("_not_before", type_=_lg.c.not_before.type),
                    updated_at=bindparam("_now", type_=_lg.c.updated_at.type),
                ),
                changed,
            )
        ep = t.action_episodes
        started = [
            {"source_id": source_id, "rule": rule, "customer_kind": ref.kind, "customer_id": ref.remote_id,
             "started_at": at}
            for (rule, ref), at in plan.episodes_started.items()
        ]  # fmt: skip
        for start in range(0, len(started), 1000):
            upsert(conn, ep, started[start : start + 1000], ["source_id", "rule", "customer_kind", "customer_id"])
        ended = sorted(plan.episodes_ended, key=lambda k: (k[0], k[1].kind, k[1].remote_id))
        for start in range(0, len(ended), 200):
            chunk = ended[start : start + 200]
            conn.execute(
                delete(ep).where(
                    ep.c.source_id == source_id,
                    or_(*[
                        and_(ep.c.rule == rule, ep.c.customer_kind == ref.kind, ep.c.customer_id == ref.remote_id)
                        for rule, ref in chunk
                    ]),
                )
            )  # fmt: skip
    return {"inserted": len(new), "changed": len(changed)}


def due_rows(engine: Engine, source_id: int, op: str, now: datetime) -> list[LedgerRow]:
    """Rows of ``op`` ready to send: planned or failed, and not queued for later."""
    q = (
        select(_lg)
        .where(
            _lg.c.source_id == source_id,
            _lg.c.op == op,
            _lg.c.state.in_(("planned", "failed")),
            or_(_lg.c.not_before.is_(None), _lg.c.not_before <= now),
        )
        .order_by(_lg.c.id)
    )
    with engine.connect() as conn:
        return [ledger_row(r) for r in conn.execute(q)]


def rows_in_state(engine: Engine, source_id: int, state: str) -> list[LedgerRow]:
    with engine.connect() as conn:
        q = select(_lg).where(_lg.c.source_id == source_id, _lg.c.state == state).order_by(_lg.c.id)
        return [ledger_row(r) for r in conn.execute(q)]


def _update(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Per-row updates with the same set of columns (executemany)."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != "_id"]
    values = {c.removeprefix("_"): bindparam(c, type_=_lg.c[c.removeprefix("_")].type) for c in cols}
    with engine.begin() as conn:
        conn.execute(_lg.update().where(_lg.c.id == bindparam("_id")).values(**values), list(rows))


def mark_pending(engine: Engine, rows: Iterable[LedgerRow], now: datetime) -> None:
    """Committed before the CRM call: from here on, a crash means "may have been applied"."""
    batch = []
    for row in rows:
        row.attempts += 1
        row.state = "pending"
        batch.append({"_id": row.id, "_state": "pending", "_attempts": row.attempts, "_updated_at": now})
    _update(engine, batch)


def mark_planned(engine: Engine, rows: Iterable[LedgerRow], now: datetime, *, uncertain: bool = False) -> None:
    """Back to the queue after a reconciliation showed the op did not happen (or is safe to resend)."""
    batch = []
    for row in rows:
        row.state = "planned"
        if uncertain:
            row.payload = {**row.payload, "uncertain": True}
        batch.append({"_id": row.id, "_state": "planned", "_payload": row.payload, "_updated_at": now})
    _update(engine, batch)


def mark_skipped(engine: Engine, rows: Iterable[tuple[LedgerRow, str]], now: datetime) -> None:
    batch = [{"_id": r.id, "_state": "skipped", "_reason": reason, "_updated_at": now} for r, reason in rows]
    _update(engine, batch)


def mark_done(engine: Engine, source_id: int, done: Iterable[tuple[LedgerRow, str | None]], now: datetime) -> None:
    """Done + remote id, and for label ops the new ``labels_written`` — in one transaction."""
    batch, written = [], []
    for row, remote_id in done:
        row.state = "done"
        payload = {k: v for k, v in row.payload.items() if k != "uncertain"}
        payload["sent_at"] = now.isoformat()
        batch.append(
            {"_id": row.id, "_state": "done", "_remote_id": remote_id, "_payload": payload, "_last_error": None,
             "_updated_at": now}
        )  # fmt: skip
        if row.op == "labels":
            written.append(
                {"source_id": source_id, "customer_kind": row.customer.kind, "customer_id": row.customer.remote_id,
                 "labels": row.payload.get("after", {}), "updated_at": now}
            )  # fmt: skip
    if not batch:
        return
    cols = [c for c in batch[0] if c != "_id"]
    values = {c.removeprefix("_"): bindparam(c, type_=_lg.c[c.removeprefix("_")].type) for c in cols}
    with engine.begin() as conn:
        conn.execute(_lg.update().where(_lg.c.id == bindparam("_id")).values(**values), batch)
        for start in range(0, len(written), 1000):
            upsert(conn, t.labels_written, written[start : start + 1000], ["source_id", "customer_kind", "customer_id"])


def mark_failed(
    engine: Engine,
    failures: Iterable[tuple[LedgerRow, str, bool]],
    now: datetime,
    limits: ActionLimits,
    *,
    uncertain: bool = False,
) -> tuple[int, int]:
    """(row, error, retriable): back off and retry, or park after ``max_attempts`` / a permanent error."""
    batch = []
    failed = parked = 0
    for row, error, retriable in failures:
        give_up = not retriable or row.attempts >= limits.max_attempts
        state = "parked" if give_up else "failed"
        parked += give_up
        failed += not give_up
        delay = limits.retry_backoff * (2 ** max(row.attempts - 1, 0))
        payload = {**row.payload, "uncertain": True} if uncertain else row.payload
        row.state = state
        batch.append(
            {"_id": row.id, "_state": state, "_last_error": error[:2000], "_payload": payload,
             "_not_before": None if give_up else now + delay, "_updated_at": now}
        )  # fmt: skip
    _update(engine, batch)
    return failed, parked
