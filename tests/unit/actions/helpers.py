"""Store fixtures for the actions tests: a source, customers with segment_state, users, history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from segsync.config.models import Rules
from segsync.store import tables as t
from segsync.store.upsert import upsert

MON = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday 10:00 in Moscow


def add_source(engine: Engine, name: str = "shop", kind: str = "amocrm") -> int:
    with engine.begin() as conn:
        return conn.execute(
            t.sources.insert().values(name=name, kind=kind, base_currency="RUB", created_at=MON, updated_at=MON)
        ).inserted_primary_key[0]


def put_users(engine: Engine, sid: int, users: dict[str, bool]) -> None:
    rows = [
        {"source_id": sid, "remote_id": u, "name": f"user {u}", "active": a, "synced_at": MON} for u, a in users.items()
    ]
    with engine.begin() as conn:
        upsert(conn, t.users, rows, ["source_id", "remote_id"])


def put_state(engine: Engine, sid: int, customers: list[dict[str, Any]], as_of: datetime) -> None:
    """Each item: id, labels, features, optional name/responsible/kind/deleted."""
    cust, state = [], []
    for c in customers:
        kind = c.get("kind", "contact")
        cust.append(
            {"source_id": sid, "kind": kind, "remote_id": c["id"], "name": c.get("name", f"Клиент {c['id']}"),
             "responsible_id": c.get("responsible", "7"), "synced_at": as_of, "deleted_at": c.get("deleted")}
        )  # fmt: skip
        state.append(
            {"source_id": sid, "customer_kind": kind, "customer_id": c["id"], "labels": c.get("labels", {}),
             "features": c.get("features", {}), "as_of": as_of, "updated_at": as_of}
        )  # fmt: skip
    with engine.begin() as conn:
        upsert(conn, t.customers, cust, ["source_id", "kind", "remote_id"], only_if_changed=False)
        upsert(conn, t.segment_state, state, ["source_id", "customer_kind", "customer_id"], only_if_changed=False)


def put_history(engine: Engine, sid: int, rows: list[tuple[str, str, str | None, str, datetime]]) -> None:
    with engine.begin() as conn:
        conn.execute(
            t.segment_history.insert(),
            [
                {"source_id": sid, "customer_kind": "contact", "customer_id": cid, "label": label,
                 "from_value": old, "to_value": new, "as_of": at}
                for cid, label, old, new, at in rows
            ],
        )  # fmt: skip


def make_rules(**sections: Any) -> Rules:
    base: dict[str, Any] = {
        "timezone": "Europe/Moscow",
        "writeback": {"publish": ["abc_xyz", "rfm", "vip"]},
        "actions": [
            {
                "name": "reactivation",
                "where": "churn_flag AND abc IN ('A', 'B')",
                "task": {
                    "title": "Реактивация: {{ customer.name }}",
                    "description": "Не покупает {{ days_silent | days }} (обычно раз в {{ usual_cycle | days }}). "
                    "Последняя покупка {{ last_purchase.date | date }} на {{ last_purchase.amount | money }}. "
                    "Выручка: {{ revenue_total | money }}. Следующий шаг: {{ next_step }}.",
                    "due": 2,
                    "fallback_user": "99",
                },
                "cooldown": "30d",
            }
        ],
        "limits": {"daily_cap_per_manager": 20, "max_attempts": 3},
    }
    base.update(sections)
    return Rules.model_validate(base)


def put_won_deal(engine: Engine, sid: int, deal_id: str, contact_id: str, amount: str, closed_at: datetime) -> None:
    from decimal import Decimal

    with engine.begin() as conn:
        conn.execute(
            t.deals.insert().values(
                source_id=sid,
                remote_id=deal_id,
                status="won",
                contact_id=contact_id,
                amount=Decimal(amount),
                amount_base=Decimal(amount),
                currency="RUB",
                closed_at=closed_at,
                synced_at=closed_at,
            )
        )
