"""`segsync status`: what an operator asks first — is data flowing, is anything stuck."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from segsync.app import now_utc
from segsync.store import tables as t


def _age(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else round((now - when).total_seconds(), 1)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 1)


def _last_runs(conn: Connection, source_id: int, now: datetime) -> dict[str, Any]:
    """Per step: the latest run (whatever its outcome) and the age of the latest success."""
    latest = select(func.max(t.runs.c.id)).where(t.runs.c.source_id == source_id).group_by(t.runs.c.step)
    out: dict[str, Any] = {}
    for row in conn.execute(select(t.runs).where(t.runs.c.id.in_(latest))):
        out[row.step] = {
            "status": row.status,
            "started_age_s": _age(row.started_at, now),
            "duration_s": _seconds(row.started_at, row.finished_at),
            "worker": row.worker,
            "error": row.error,
        }
    for step, finished in conn.execute(
        select(t.runs.c.step, func.max(t.runs.c.finished_at))
        .where(t.runs.c.source_id == source_id, t.runs.c.status == "ok")
        .group_by(t.runs.c.step)
    ):
        out.setdefault(step, {})["last_success_age_s"] = _age(finished, now)
    return dict(sorted(out.items()))


def _token(conn: Connection, source_id: int, now: datetime) -> dict[str, Any] | None:
    """When the stored access token expires and when it was last renewed; never the token itself."""
    row = conn.execute(
        select(t.tokens.c.data, t.tokens.c.version, t.tokens.c.updated_at).where(t.tokens.c.source_id == source_id)
    ).one_or_none()
    if row is None:
        return None
    data = row.data if isinstance(row.data, dict) else {}
    expires = data.get("expires_at")
    expires_at = datetime.fromtimestamp(float(expires), UTC) if isinstance(expires, int | float) else None
    return {
        "access_expires_at": expires_at.isoformat() if expires_at else None,
        "access_expires_in_s": _seconds(now, expires_at),
        "renewed_age_s": _age(row.updated_at, now),
        "renewals": row.version,
    }


def collect_status(engine: Engine, source_ids: dict[str, int]) -> dict[str, Any]:
    now = now_utc()
    out: dict[str, Any] = {"generated_at": now.isoformat(), "sources": {}}
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(t.sources))}
        for name, sid in sorted(source_ids.items()):
            src = rows[sid]
            customers = dict(
                conn.execute(
                    select(t.customers.c.kind, func.count())
                    .where(t.customers.c.source_id == sid, t.customers.c.deleted_at.is_(None))
                    .group_by(t.customers.c.kind)
                ).all()
            )
            deals = dict(
                conn.execute(
                    select(t.deals.c.status, func.count())
                    .where(t.deals.c.source_id == sid, t.deals.c.deleted_at.is_(None))
                    .group_by(t.deals.c.status)
                ).all()
            )
            quarantined = conn.execute(
                select(func.count())
                .select_from(t.quarantine)
                .where(t.quarantine.c.source_id == sid, t.quarantine.c.resolved_at.is_(None))
            ).scalar_one()
            cursors = {
                r.stream: _age(r.updated_at, now)
                for r in conn.execute(
                    select(t.cursors.c.stream, t.cursors.c.updated_at).where(t.cursors.c.source_id == sid)
                )
            }
            ledger = dict(
                conn.execute(
                    select(t.ledger.c.state, func.count()).where(t.ledger.c.source_id == sid).group_by(t.ledger.c.state)
                ).all()
            )
            parked = [
                {"key": r.key, "op": r.op, "customer": f"{r.customer_kind}:{r.customer_id}", "error": r.last_error}
                for r in conn.execute(
                    select(t.ledger.c.key, t.ledger.c.op, t.ledger.c.customer_kind, t.ledger.c.customer_id,
                           t.ledger.c.last_error)
                    .where(t.ledger.c.source_id == sid, t.ledger.c.state == "parked")
                    .order_by(t.ledger.c.updated_at.desc())
                    .limit(10)
                )
            ]  # fmt: skip
            queued = conn.execute(
                select(func.count())
                .select_from(t.ledger)
                .where(t.ledger.c.source_id == sid, t.ledger.c.state == "planned", t.ledger.c.not_before > now)
            ).scalar_one()
            last_runs = _last_runs(conn, sid, now)
            out["sources"][name] = {
                "kind": src.kind,
                "state": src.state,
                "stop_reason": src.stop_reason,
                "customers": customers,
                "deals": deals,
                "quarantined": quarantined,
                "cursor_age_s": cursors,
                "last_runs": last_runs,
                "ops": ledger,
                "parked_ops": ledger.get("parked", 0),
                "token": _token(conn, sid, now),
                "parked_recent": parked,
                "queued_ops": queued,
            }
    return out
