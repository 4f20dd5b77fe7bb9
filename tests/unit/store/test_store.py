"""The store on the selected database: migrations, idempotent upserts, exact money, aware UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from segsync.app import ensure_sources
from segsync.config.sources import SourceBase
from segsync.store import make_engine, upgrade, upsert
from segsync.store import tables as t
from segsync.store.migrate import current_revision, head_revision

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_migrations_from_empty_reach_head_and_match_the_tables(store_url):
    engine = make_engine(store_url)
    try:
        assert current_revision(engine) is None
        before, after = upgrade(engine)
        assert (before, after) == (None, head_revision())
        assert upgrade(engine) == (after, after)  # idempotent at every start
        assert set(t.metadata.tables) <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), t.metadata)
        assert diff == [], f"tables.py and the migrations disagree: {diff}"
    finally:
        engine.dispose()
        make_engine.cache_clear()


def _deal_rows(source_id: int, n: int, amount: str = "1234567.89") -> list[dict]:
    return [
        {
            "source_id": source_id,
            "remote_id": str(i),
            "title": f"Сделка №{i}",
            "status": "won",
            "amount": Decimal(amount) + i,
            "currency": "RUB",
            "amount_base": Decimal(amount) + i,
            "contact_ids": [str(i), "7"],
            "raw": {"ID": str(i), "OPPORTUNITY": amount, "nested": {"a": [1, 2]}},
            "closed_at": NOW - timedelta(days=i),
            "synced_at": NOW,
            "deleted_at": None,
        }
        for i in range(n)
    ]


def _snapshot(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.deals).order_by(t.deals.c.remote_id))]


def test_upserting_the_same_batch_twice_leaves_identical_rows(engine):
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    rows = _deal_rows(sid, 300)
    with engine.begin() as conn:
        upsert(conn, t.deals, rows, ["source_id", "remote_id"])
    first = _snapshot(engine)
    later = [dict(r, synced_at=NOW + timedelta(hours=1)) for r in rows]
    with engine.begin() as conn:
        upsert(conn, t.deals, later, ["source_id", "remote_id"])
    assert _snapshot(engine) == first  # unchanged content → not even synced_at moves


def test_upsert_updates_changed_rows_only(engine):
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    rows = _deal_rows(sid, 10)
    with engine.begin() as conn:
        upsert(conn, t.deals, rows, ["source_id", "remote_id"])
    changed = [dict(r, synced_at=NOW + timedelta(hours=1)) for r in rows]
    changed[3]["status"] = "lost"
    with engine.begin() as conn:
        assert upsert(conn, t.deals, changed, ["source_id", "remote_id"]) == 1  # only the changed row is written
    with engine.connect() as conn:
        moved = conn.execute(select(t.deals.c.remote_id).where(t.deals.c.synced_at > NOW)).scalars().all()
        assert moved == ["3"]
        assert conn.execute(select(t.deals.c.status).where(t.deals.c.remote_id == "3")).scalar_one() == "lost"


@pytest.mark.parametrize("amount", ["0.01", "1234567.89", "99999999999999.99", "-5.50", "100"])
def test_money_round_trips_exactly(engine, amount):
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    with engine.begin() as conn:
        upsert(conn, t.deals, [dict(_deal_rows(sid, 1)[0], amount=Decimal(amount))], ["source_id", "remote_id"])
    with engine.connect() as conn:
        value = conn.execute(select(t.deals.c.amount)).scalar_one()
    assert isinstance(value, Decimal) and value == Decimal(amount)


def test_times_come_back_aware_utc(engine):
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    moscow = datetime(2026, 5, 14, 10, 26, 32, tzinfo=timezone(timedelta(hours=3)))
    with engine.begin() as conn:
        upsert(conn, t.deals, [dict(_deal_rows(sid, 1)[0], closed_at=moscow)], ["source_id", "remote_id"])
    with engine.connect() as conn:
        value = conn.execute(select(t.deals.c.closed_at)).scalar_one()
    assert value == moscow and value.utcoffset() == timedelta(0) and value.hour == 7


def test_naive_datetimes_are_refused(engine):
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        upsert(conn, t.deals, [dict(_deal_rows(sid, 1)[0], closed_at=datetime(2026, 1, 1))], ["source_id", "remote_id"])


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'store.db'}")
    try:
        upgrade(engine)
        assert (tmp_path / "x" / "store.db").stat().st_mode & 0o077 == 0
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
        make_engine.cache_clear()
