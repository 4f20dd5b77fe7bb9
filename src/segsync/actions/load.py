"""Read what the planner needs from the store, in a handful of set-based queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from segsync.actions.model import OPEN_STATES, CustomerState, HistoryRow, LedgerRow, PlanInput
from segsync.config.models import Rules
from segsync.contract import CustomerRef
from segsync.store import tables as t


def _ref(kind: str, remote_id: str) -> CustomerRef:
    return CustomerRef(kind, remote_id)  # type: ignore[arg-type]


def ledger_row(r: object) -> LedgerRow:
    return LedgerRow(
        id=r.id,  # type: ignore[attr-defined]
        key=r.key,  # type: ignore[attr-defined]
        op=r.op,  # type: ignore[attr-defined]
        customer=_ref(r.customer_kind, r.customer_id),  # type: ignore[attr-defined]
        rule=r.rule,  # type: ignore[attr-defined]
        state=r.state,  # type: ignore[attr-defined]
        payload=r.payload or {},  # type: ignore[attr-defined]
        created_at=r.created_at,  # type: ignore[attr-defined]
        reason=r.reason,  # type: ignore[attr-defined]
        remote_id=r.remote_id,  # type: ignore[attr-defined]
        attempts=r.attempts,  # type: ignore[attr-defined]
        last_error=r.last_error,  # type: ignore[attr-defined]
        not_before=r.not_before,  # type: ignore[attr-defined]
    )


def source_info(conn: Connection, source_id: int) -> tuple[str, str | None]:
    row = conn.execute(select(t.sources.c.name, t.sources.c.base_currency).where(t.sources.c.id == source_id)).one()
    return row.name, row.base_currency


def load_ledger(conn: Connection, source_id: int, cutoff: datetime) -> list[LedgerRow]:
    """Open ops of every kind, plus task/complete rows recent enough for cooldowns, caps and completions.

    Done label rows are history only (``labels_written`` is the state), so they are not read.
    """
    lg = t.ledger
    cond = and_(
        lg.c.source_id == source_id,
        or_(
            lg.c.state.in_(OPEN_STATES),
            and_(lg.c.op == "task", or_(lg.c.state == "planned", lg.c.updated_at >= cutoff)),
            and_(lg.c.op == "complete", lg.c.updated_at >= cutoff),
            and_(lg.c.op == "labels", lg.c.state == "parked"),
        ),
    )
    return [ledger_row(r) for r in conn.execute(select(lg).where(cond).order_by(lg.c.id))]


def load_keys(engine: Engine, source_id: int, keys: set[str]) -> list[LedgerRow]:
    """Ledger rows of exactly these keys (chunked ``IN``)."""
    keys_ = sorted(keys)
    out: list[LedgerRow] = []
    with engine.connect() as conn:
        for start in range(0, len(keys_), 500):
            chunk = keys_[start : start + 500]
            q = select(t.ledger).where(t.ledger.c.source_id == source_id, t.ledger.c.key.in_(chunk))
            out.extend(ledger_row(r) for r in conn.execute(q))
    return out


def last_purchase_amounts(conn: Connection, source_id: int) -> dict[CustomerRef, Any]:
    """Amount (base currency) of each customer's latest won deal — for task texts; the engine gives the date."""
    d = t.deals
    won = and_(d.c.source_id == source_id, d.c.status == "won", d.c.deleted_at.is_(None), d.c.closed_at.is_not(None))
    out: dict[CustomerRef, Any] = {}
    for kind, column in (("contact", d.c.contact_id), ("company", d.c.company_id)):
        latest = select(column.label("cid"), func.max(d.c.closed_at).label("at")).where(won, column.is_not(None))
        latest = latest.group_by(column).subquery()
        amount = func.coalesce(d.c.amount_base, d.c.amount)
        q = (
            select(latest.c.cid, func.max(amount))
            .select_from(latest.join(d, and_(column == latest.c.cid, d.c.closed_at == latest.c.at)))
            .where(won)
            .group_by(latest.c.cid)
        )
        out.update({_ref(kind, cid): value for cid, value in conn.execute(q)})
    return out


def load_input(engine: Engine, source_id: int, rules: Rules, as_of: datetime) -> PlanInput:
    actions = rules.actions
    longest = max([a.cooldown for a in actions] + [timedelta(days=30)])
    horizon = max(
        [a.transition.delay + a.transition.within for a in actions if a.transition is not None] + [timedelta(0)]
    )
    watched = sorted({a.transition.segment for a in actions if a.transition is not None})
    with engine.connect() as conn:
        source, currency = source_info(conn, source_id)
        ss, cu = t.segment_state, t.customers
        join = ss.outerjoin(
            cu,
            and_(cu.c.source_id == ss.c.source_id, cu.c.kind == ss.c.customer_kind,
                 cu.c.remote_id == ss.c.customer_id),
        )  # fmt: skip
        customers: list[CustomerState] = []
        gone: set[CustomerRef] = set()
        query = (
            select(ss.c.customer_kind, ss.c.customer_id, ss.c.labels, ss.c.features, ss.c.as_of,
                   cu.c.name, cu.c.responsible_id, cu.c.deleted_at)
            .select_from(join)
            .where(ss.c.source_id == source_id)
            .order_by(ss.c.customer_kind, ss.c.customer_id)
        )  # fmt: skip
        amounts = last_purchase_amounts(conn, source_id)
        for r in conn.execute(query):
            ref = _ref(r.customer_kind, r.customer_id)
            if r.deleted_at is not None:
                gone.add(ref)
                continue
            features = r.features or {}
            if ref in amounts and features.get("last_purchase_amount") is None:
                features = {**features, "last_purchase_amount": amounts[ref]}
            customers.append(CustomerState(ref, r.labels or {}, features, r.as_of, r.name, r.responsible_id))
        deleted = select(cu.c.kind, cu.c.remote_id).where(cu.c.source_id == source_id, cu.c.deleted_at.is_not(None))
        gone.update(_ref(k, i) for k, i in conn.execute(deleted))
        lw = t.labels_written
        written = {
            _ref(r.customer_kind, r.customer_id): r.labels
            for r in conn.execute(select(lw).where(lw.c.source_id == source_id))
        }
        history: list[HistoryRow] = []
        if watched:
            sh = t.segment_history
            q = select(sh).where(sh.c.source_id == source_id, sh.c.label.in_(watched), sh.c.as_of >= as_of - horizon)
            history = [
                HistoryRow(_ref(r.customer_kind, r.customer_id), r.label, r.from_value, r.to_value, r.as_of)
                for r in conn.execute(q)
            ]
        ep = t.action_episodes
        episodes = {
            (r.rule, _ref(r.customer_kind, r.customer_id)): r.started_at
            for r in conn.execute(select(ep).where(ep.c.source_id == source_id))
        }
        users = dict(
            conn.execute(
                select(t.users.c.remote_id, t.users.c.active & t.users.c.deleted_at.is_(None)).where(
                    t.users.c.source_id == source_id
                )
            ).all()
        )
        ledger = load_ledger(conn, source_id, as_of - longest - timedelta(days=7))
    return PlanInput(
        source=source,
        customers=customers,
        written=written,
        ledger=ledger,
        history=history,
        episodes=episodes,
        active_users={str(k): bool(v) for k, v in users.items()},
        gone=gone,
        currency=currency,
    )
