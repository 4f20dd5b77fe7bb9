"""Engines for the store: a SQLite file by default, PostgreSQL by URL.

SQLite is made a good citizen for a long-running daemon: WAL (readers never block the writer),
foreign keys on, a busy timeout instead of instant "database is locked", and a file only its
owner can read — it holds customer data and OAuth tokens.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from segsync.errors import StoreError


def _default(value: Any) -> Any:
    return str(value)  # Decimal and anything exotic: exact text rather than a float


def json_dumps_bytes(value: Any) -> bytes:
    """Compact, UTF-8, fast; Decimal as text so money never turns into a float."""
    try:
        return orjson.dumps(value, default=_default)
    except TypeError:  # a key that is not a string (orjson is faster when it need not expect one)
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def json_dumps(value: Any) -> str:
    return json_dumps_bytes(value).decode()


def normalize_url(url: str) -> str:
    """Pick our drivers: psycopg 3 for PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def default_sqlite_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'segsync.db').resolve()}"


def _prepare_sqlite_file(database: str) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


@functools.cache
def make_engine(url: str) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite_file(parsed.database or "")
        engine = create_engine(
            url,
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        _tune_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
        )
    raise StoreError(f"unsupported store URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts (pysqlite's own BEGIN is lazy
        # and would make SELECT ... then UPDATE race between processes).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # 64 MB of page cache instead of 2 MB: upserting into a table of a million deals walks three
        # indexes, and with the default cache every page came back from the OS on each batch.
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
