"""What segsync wrote to one customer, and why — for ``segsync explain`` and support questions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from segsync.contract import CustomerRef
from segsync.store import tables as t


def parse_customer(customer: CustomerRef | str) -> tuple[str | None, str]:
    """``CustomerRef``, ``"contact:123"`` or a bare remote id ``"123"`` (any kind)."""
    if isinstance(customer, CustomerRef):
        return customer.kind, customer.remote_id
    kind, sep, remote_id = customer.partition(":")
    if sep and kind in ("contact", "company"):
        return kind, remote_id
    return None, customer


def explain_writeback(engine: Engine, source_id: int, customer: CustomerRef | str) -> dict[str, Any]:
    """Labels as segsync last wrote them, open action episodes, and every ledger op with its reason."""
    kind, remote_id = parse_customer(customer)

    def match(table: Any) -> list[Any]:
        cond = [table.c.source_id == source_id, table.c.customer_id == remote_id]
        if kind is not None:
            cond.append(table.c.customer_kind == kind)
        return cond

    lg, lw, ep = t.ledger, t.labels_written, t.action_episodes
    with engine.connect() as conn:
        written = [
            {
                "customer": f"{r.customer_kind}:{r.customer_id}",
                "labels": r.labels,
                "updated_at": r.updated_at.isoformat(),
            }
            for r in conn.execute(select(lw).where(*match(lw)))
        ]
        episodes = [
            {"action": r.rule, "customer": f"{r.customer_kind}:{r.customer_id}", "since": r.started_at.isoformat()}
            for r in conn.execute(select(ep).where(*match(ep)).order_by(ep.c.rule))
        ]
        ops = [
            {
                "at": r.created_at.isoformat(),
                "updated_at": r.updated_at.isoformat(),
                "customer": f"{r.customer_kind}:{r.customer_id}",
                "op": r.op,
                "action": r.rule,
                "state": r.state,
                "reason": r.reason,
                "remote_id": r.remote_id,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "not_before": r.not_before.isoformat() if r.not_before else None,
                "payload": r.payload,
                "key": r.key,
            }
            for r in conn.execute(select(lg).where(*match(lg)).order_by(lg.c.created_at, lg.c.id))
        ]
    return {"labels_written": written, "episodes": episodes, "ops": ops}
