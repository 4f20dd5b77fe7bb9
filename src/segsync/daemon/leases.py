"""Who works which source: one daemon per SQLite file, advisory-lock leases on PostgreSQL.

PostgreSQL: every held source is a session-level ``pg_try_advisory_lock`` on a connection of its
own. A replica that dies drops its connections, PostgreSQL releases the locks, and another replica
takes the source at its next refresh. TCP keepalives on both ends turn a silent host death into a
dropped connection within about half a minute. Replicas also hold a membership lock each, so a
replica can count the live ones (``pg_locks``) and keep only its fair share of the sources.

SQLite: one exclusive ``flock`` on ``<db>.lock``; a second daemon on the same file is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import random
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from segsync.errors import StoreError
from segsync.logs import get_logger

log = get_logger("segsync.daemon.leases")

#: libpq keepalives (client side) and the server's own (per session): a dead peer is noticed in ~25 s.
_CLIENT_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
_SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
    "SET statement_timeout = '10s'",
)


@dataclass
class LeaseChange:
    gained: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)


class Leases(Protocol):
    def holds(self, source_id: int) -> bool: ...

    async def refresh(self, wanted: Iterable[int], busy: Callable[[int], bool]) -> LeaseChange:
        """Take and give back leases so that this replica works its share of ``wanted``."""
        ...

    async def close(self) -> None: ...


class LocalLease:
    """SQLite: this process works every source, and no other daemon may open the same file."""

    def __init__(self, db_path: Path):
        self.path = db_path.with_name(db_path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"another segsync daemon (pid {other}) already works the store {db_path}; "
                "stop it, or give this one another store (SQLite allows one daemon per file; "
                "use PostgreSQL to run replicas)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd
        self._held: set[int] = set()

    def holds(self, source_id: int) -> bool:
        return source_id in self._held

    async def refresh(self, wanted: Iterable[int], busy: Callable[[int], bool]) -> LeaseChange:
        wanted = set(wanted)
        change = LeaseChange(gained=wanted - self._held, lost=self._held - wanted)
        self._held = wanted
        return change

    async def close(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._held.clear()


def _key(text_: str) -> int:
    """A stable non-negative int4 (pg_locks shows lock keys as unsigned oids: keep them comparable)."""
    return zlib.crc32(text_.encode()) & 0x7FFFFFFF


class PgLeases:
    """Advisory-lock leases on PostgreSQL; all database calls run in worker threads."""

    def __init__(self, url: str, *, max_share: bool = True):
        parsed = make_url(url)
        self._engine: Engine = create_engine(parsed, poolclass=NullPool, connect_args=dict(_CLIENT_KEEPALIVES))
        self._max_share = max_share
        self._held: dict[int, Connection] = {}
        self._member: Connection | None = None
        self._member_id = random.randrange(1, 2**31 - 1)
        self._sources_key = 0
        self._members_key = 0

    def holds(self, source_id: int) -> bool:
        return source_id in self._held

    def _connect(self) -> Connection:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        for statement in _SERVER_KEEPALIVES:
            conn.exec_driver_sql(statement)
        return conn

    def _alive(self, conn: Connection) -> bool:
        try:
            conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # already gone
                pass
            return False

    def _ensure_member(self) -> Connection:
        if self._member is not None and self._alive(self._member):
            return self._member
        conn = self._connect()
        db, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        # Keys include the schema so that stores sharing one database never share leases.
        self._sources_key = _key(f"segsync:sources:{db}:{schema}")
        self._members_key = _key(f"segsync:replicas:{db}:{schema}")
        while not conn.execute(
            text("SELECT pg_try_advisory_lock(:k, :m)"), {"k": self._members_key, "m": self._member_id}
        ).scalar_one():
            self._member_id = random.randrange(1, 2**31 - 1)
        self._member = conn
        return conn

    def _locked_keys(self, conn: Connection, space: int) -> list[int]:
        rows = conn.execute(
            text(
                "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
                "AND classid = CAST(:k AS oid) AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"
            ),
            {"k": space},
        )
        return [int(r[0]) for r in rows]

    def _try_take(self, source_id: int) -> bool:
        conn = self._connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k, :s)"), {"k": self._sources_key, "s": source_id}
            ).scalar_one()
        except Exception:
            conn.close()
            raise
        if got:
            self._held[source_id] = conn
            return True
        conn.close()
        return False

    def _give_back(self, source_id: int) -> None:
        conn = self._held.pop(source_id)
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k, :s)"), {"k": self._sources_key, "s": source_id})
        finally:
            conn.close()

    def _refresh(self, wanted: set[int], busy: Callable[[int], bool]) -> LeaseChange:
        change = LeaseChange()
        for sid, conn in list(self._held.items()):
            if sid not in wanted:
                self._give_back(sid)
                change.lost.add(sid)
            elif not self._alive(conn):
                del self._held[sid]
                change.lost.add(sid)
                log.error("lease_connection_lost", source_id=sid)
        member = self._ensure_member()
        replicas = max(1, len(self._locked_keys(member, self._members_key)))
        share = math.ceil(len(wanted) / replicas) if self._max_share else len(wanted)
        if len(self._held) < share:
            taken_elsewhere = set(self._locked_keys(member, self._sources_key))
            free = [sid for sid in wanted if sid not in self._held and sid not in taken_elsewhere]
            random.shuffle(free)  # replicas starting together should not all race for the same ids
            for sid in free:
                if len(self._held) >= share:
                    break
                if self._try_take(sid):
                    change.gained.add(sid)
        elif len(self._held) > share:
            for sid in sorted(self._held, reverse=True):
                if len(self._held) <= share:
                    break
                if not busy(sid):
                    self._give_back(sid)
                    change.lost.add(sid)
        return change

    async def refresh(self, wanted: Iterable[int], busy: Callable[[int], bool]) -> LeaseChange:
        return await asyncio.to_thread(self._refresh, set(wanted), busy)

    def _close(self) -> None:
        for sid in list(self._held):
            try:
                self._give_back(sid)
            except Exception:  # connection already gone: the lock went with it
                self._held.pop(sid, None)
        if self._member is not None:
            # explicit: a closed connection's locks are only freed once its backend has exited
            with contextlib.suppress(Exception):
                self._member.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            self._member.close()
            self._member = None
        self._engine.dispose()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)


def open_leases(engine: Engine) -> Leases:
    """The lease kind the store calls for; raises StoreError when another daemon owns a SQLite file."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise StoreError("the daemon needs a SQLite file (or PostgreSQL), not an in-memory database")
        return LocalLease(Path(database).resolve())
    if url.get_backend_name() == "postgresql":
        return PgLeases(url.render_as_string(hide_password=False))
    raise StoreError(f"no lease support for {url.get_backend_name()!r}")
