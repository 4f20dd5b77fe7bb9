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


def test_pages_wider_than_one_statement_are_written_whole(engine):
    """SQLite takes a page in multi-row statements bounded by its variable limit; a low limit (older
    libraries allow 999 variables) only means more statements, and a limit below two rows' worth means
    one row per step. PostgreSQL copies the page whatever its size."""
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    rows = _deal_rows(sid, 4_321)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.connection.driver_connection.setlimit(9, 999)  # SQLITE_LIMIT_VARIABLE_NUMBER
        assert upsert(conn, t.deals, rows, ["source_id", "remote_id"]) == len(rows)
    changed = [dict(r, status="lost") if int(r["remote_id"]) % 7 == 0 else r for r in rows]
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.connection.driver_connection.setlimit(9, 15)  # one row of deals, not two
        assert upsert(conn, t.deals, changed, ["source_id", "remote_id"]) == len(
            [r for r in rows if int(r["remote_id"]) % 7 == 0]
        )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.connection.driver_connection.setlimit(9, 32_766)
        stored = dict(conn.execute(select(t.deals.c.remote_id, t.deals.c.status)).all())
    assert stored == {r["remote_id"]: r["status"] for r in changed}


def test_text_that_only_looks_like_an_escaped_nul_is_kept(engine):
    """The page-wide NUL check also matches a literal backslash-u0000; such text must come back as it was."""
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    looks = "C:\\u0000dir"
    row = dict(_deal_rows(sid, 1)[0], title=looks, raw={"TITLE": looks, looks: 1})
    with engine.begin() as conn:
        upsert(conn, t.deals, [row], ["source_id", "remote_id"])
    with engine.connect() as conn:
        assert tuple(conn.execute(select(t.deals.c.title, t.deals.c.raw))) == ((looks, {"TITLE": looks, looks: 1}),)


def test_a_page_of_times_in_any_zone_is_stored_as_utc(engine):
    """Columns of UTC times take a whole-column path; other zones, None and repeated values the per-value one."""
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    moscow = timezone(timedelta(hours=3))
    rows = [dict(r, created_at=NOW) for r in _deal_rows(sid, 4)]  # created_at: one value for the whole page
    rows[1]["closed_at"] = datetime(2026, 5, 14, 10, 0, 0, 250, tzinfo=moscow)
    rows[2]["closed_at"] = None
    with engine.begin() as conn:
        upsert(conn, t.deals, rows, ["source_id", "remote_id"])
    expected = {r["remote_id"]: (r["created_at"], r["closed_at"]) for r in rows}
    with engine.connect() as conn:
        stored = {
            i: (c, d)
            for i, c, d in conn.execute(select(t.deals.c.remote_id, t.deals.c.created_at, t.deals.c.closed_at))
        }
    assert stored == expected
    times = [dict(r, closed_at=NOW - timedelta(microseconds=i)) for i, r in enumerate(rows)]  # all UTC
    with engine.begin() as conn:
        upsert(conn, t.deals, times, ["source_id", "remote_id"])
    with engine.connect() as conn:
        assert dict(conn.execute(select(t.deals.c.remote_id, t.deals.c.closed_at)).all()) == {
            r["remote_id"]: r["closed_at"] for r in times
        }
    assert stored["1"][1].tzinfo is not None and stored["1"][1].utcoffset() == timedelta(0)


def test_a_prepared_upsert_runs_only_on_its_own_dialect(engine):
    from sqlalchemy.dialects import postgresql, sqlite

    from segsync.store import prepare_upsert, run_upsert

    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    other = postgresql.dialect() if engine.dialect.name == "sqlite" else sqlite.dialect()
    prepared = prepare_upsert(other, t.deals, _deal_rows(sid, 2), ["source_id", "remote_id"])
    with engine.begin() as conn, pytest.raises(ValueError, match="prepared for"):
        run_upsert(conn, prepared)
    assert prepare_upsert(engine.dialect, t.deals, [], ["source_id", "remote_id"]) is None


def test_sqlite_keeps_json_as_text(tmp_path):
    """JSON goes to SQLite as UTF-8 bytes cast to TEXT in the statement: stored as text, never as a blob."""
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'json.db'}")
    upgrade(engine)
    sid = ensure_sources(engine, [SourceBase(name="s", kind="x")])["s"]
    rows = [dict(r, raw={"ID": r["remote_id"], "TITLE": "Сделка"}) for r in _deal_rows(sid, 3)]
    with engine.begin() as conn:
        upsert(conn, t.deals, rows, ["source_id", "remote_id"])
        conn.connection.driver_connection.setlimit(9, 15)  # the row-by-row path too
        upsert(conn, t.deals, [dict(rows[0], remote_id="x")], ["source_id", "remote_id"])
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT DISTINCT typeof(raw), typeof(contact_ids) FROM deals")).all()
        assert kinds == [("text", "text")]
        assert (
            conn.execute(text("SELECT json_extract(raw, '$.TITLE') FROM deals WHERE remote_id = 'x'")).scalar_one()
            == "Сделка"
        )


def test_overlapping_pauses_of_the_collector_end_with_it_on():
    """A pull pauses the collector on its event loop (converting a page) and in its writer thread (writing
    one); the collector must be on again after both, whatever the order."""
    import gc
    import threading

    from segsync.store.upsert import _collector_paused

    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with _collector_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(5)
    with _collector_paused():
        release.set()
        thread.join(5)
        assert not gc.isenabled()  # the writer's pause ended, this one has not
    assert gc.isenabled()
    gc.disable()  # off before the first pause: stays off after it
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
