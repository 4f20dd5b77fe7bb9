"""Leases: one daemon per SQLite file; PostgreSQL advisory locks split sources between replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from segsync.daemon.leases import LocalLease, PgLeases
from segsync.errors import StoreError

SOURCES = [1, 2, 3, 4, 5, 6]


def _idle(_sid: int) -> bool:
    return False


async def test_sqlite_lock_file_refuses_a_second_holder(tmp_path: Path):
    db = tmp_path / "segsync.db"
    first = LocalLease(db)
    with pytest.raises(StoreError, match=r"another segsync daemon \(pid \d+\)"):
        LocalLease(db)
    change = await first.refresh(SOURCES, _idle)
    assert change.gained == set(SOURCES) and all(first.holds(s) for s in SOURCES)
    await first.close()
    again = LocalLease(db)  # released on close (and by the kernel when a process dies)
    await again.close()


async def test_postgres_replicas_split_sources_and_take_over(postgres_url: str):
    a, b, c = PgLeases(postgres_url), PgLeases(postgres_url), PgLeases(postgres_url)
    try:
        await a.refresh(SOURCES, _idle)
        assert sum(a.holds(s) for s in SOURCES) == 6  # alone: everything
        await b.refresh(SOURCES, _idle)
        await c.refresh(SOURCES, _idle)
        for _ in range(3):  # a gives back its surplus, b and c pick it up
            for lease in (a, b, c):
                await lease.refresh(SOURCES, _idle)
        counts = [sum(lease.holds(s) for s in SOURCES) for lease in (a, b, c)]
        assert counts == [2, 2, 2]
        for s in SOURCES:
            assert sum(lease.holds(s) for lease in (a, b, c)) == 1
        await b.close()  # b's connections close: PostgreSQL releases its locks
        for lease in (a, c):
            await lease.refresh(SOURCES, _idle)
        assert [sum(lease.holds(s) for s in SOURCES) for lease in (a, c)] == [3, 3]
    finally:
        for lease in (a, b, c):
            await lease.close()


async def test_busy_sources_are_not_given_back(postgres_url: str):
    a, b = PgLeases(postgres_url), PgLeases(postgres_url)
    try:
        await a.refresh(SOURCES, _idle)
        await b.refresh(SOURCES, _idle)
        change = await a.refresh(SOURCES, lambda sid: True)  # every source of a is mid-run
        assert not change.lost and sum(a.holds(s) for s in SOURCES) == 6
        change = await a.refresh(SOURCES, _idle)
        assert len(change.lost) == 3
    finally:
        await a.close()
        await b.close()


async def test_stores_in_different_schemas_do_not_share_leases(postgres_url: str, other_postgres_url: str):
    a, b = PgLeases(postgres_url), PgLeases(other_postgres_url)
    try:
        await a.refresh(SOURCES, _idle)
        await b.refresh(SOURCES, _idle)
        assert all(a.holds(s) and b.holds(s) for s in SOURCES)
    finally:
        await a.close()
        await b.close()


async def test_a_dropped_lease_connection_is_noticed_and_the_lease_retaken(postgres_url: str):
    from sqlalchemy import create_engine, text

    from segsync.store.engine import normalize_url

    a = PgLeases(postgres_url)
    admin = create_engine(normalize_url(postgres_url), isolation_level="AUTOCOMMIT")
    try:
        await a.refresh([7], _idle)
        assert a.holds(7)
        pid = a._held[7].exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.connect() as conn:  # the server drops the session (restart, network cut)
            assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar_one()
        change = await a.refresh([7], _idle)
        assert 7 in change.lost  # the daemon stops working it at once ...
        assert 7 in change.gained and a.holds(7)  # ... and, the lock being free, takes it again
    finally:
        await a.close()
        admin.dispose()
