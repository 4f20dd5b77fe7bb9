"""Bulk moves between the store and polars frames, fast enough for millions of rows.

Reading compiles the SQLAlchemy Core SELECT for the dialect and runs it through the ADBC SQLite driver into
Arrow columns (a SQLite file), else through the DBAPI cursor of the SQLAlchemy connection into columns, not
row objects. Writing sends
storage-ready values: on SQLite ``executemany`` with the exact text/integer forms the column types store
(naive-UTC times, integer minor units, JSON text), on PostgreSQL ``COPY … FROM STDIN`` in CSV. Both run
inside the caller's transaction.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection

from segsync.logs import get_logger

log = get_logger(__name__)

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%6f"
_CHUNK = 200_000
#: a SQLite store at least this big is read through the ADBC child (below it, spawning costs more than it saves)
ARROW_MIN_BYTES = 32 << 20
_READERS = 3


def _sql(conn: Connection, stmt: Any) -> str:
    return str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def fetch_frame(conn: Connection, stmt: Any, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run ``stmt`` and return its rows as a frame with ``schema`` (column names in select order)."""
    return fetch_frames(conn, [(stmt, schema)])[0]


def fetch_frames(
    conn: Connection, queries: Sequence[tuple[Any, dict[str, pl.DataType]]], *, arrow: bool | None = None
) -> list[pl.DataFrame]:
    """:func:`fetch_frame` for several statements.

    A large SQLite file (``arrow`` None: from :data:`ARROW_MIN_BYTES`; True: always) is read by a child
    process with the ADBC SQLite driver straight into Arrow columns — ten million deals in seconds instead
    of minutes of Python row tuples (see :mod:`.arrow_reader` for why a child). It is a reader of its own,
    so it sees what is committed: callers read in their own transaction, never after writing in it.
    Anything else — PostgreSQL, an in-memory database, the driver missing or failing — takes the DBAPI
    cursor of ``conn``."""
    sqls = [_sql(conn, stmt) for stmt, _ in queries]
    schemas = [schema for _, schema in queries]
    if conn.dialect.name == "sqlite" and arrow is not False:
        path = _sqlite_file(conn)
        if path is not None and (arrow or os.path.getsize(path) >= ARROW_MIN_BYTES):
            frames = _fetch_sqlite_arrow(path, sqls, schemas)
            if frames is not None:
                return frames
    return [_fetch_rows(conn, sql, schema) for sql, schema in zip(sqls, schemas, strict=True)]


def _sqlite_file(conn: Connection) -> str | None:
    url = conn.engine.url
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        return None
    path = Path(database).resolve()
    return str(path) if path.is_file() else None


def _exchange_folder(database: str) -> str | None:
    """Where the readers leave their Arrow files: shared memory when it has room for about as much as the
    store holds (the files then never reach a disk), else the temporary folder."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and shutil.disk_usage(shm).free > os.path.getsize(database):
            return str(shm)
    except OSError:
        pass
    return None


def _shape_literal(dtype: pl.DataType) -> str:
    if dtype.is_integer() or dtype == pl.Boolean:
        return "0"
    if dtype.is_float():
        return "0.5"
    return "'x'"


def _fetch_sqlite_arrow(path: str, sqls: list[str], schemas: list[dict[str, pl.DataType]]) -> list | None:
    if importlib.util.find_spec("adbc_driver_sqlite") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="segsync-read-", dir=_exchange_folder(path)) as folder:
        queries = []
        for i, (sql, schema) in enumerate(zip(sqls, schemas, strict=True)):
            # The driver infers each column's type from the first rows (an all-NULL start would read as
            # integers): a leading row of the right types settles it and is dropped.
            shape = ", ".join(f"{_shape_literal(dtype)} AS c{j}" for j, dtype in enumerate(schema.values()))
            out = str(Path(folder) / f"{i}.arrow")
            queries.append({"sql": f"SELECT {shape} UNION ALL SELECT * FROM ({sql})", "out": out})
        # up to three readers, round robin: the customers and the deals' rowid ranges, the largest reads,
        # land in different ones
        children = []
        readers = min(_READERS, len(queries))
        for k in range(readers):
            job = {"database": path, "queries": queries[k::readers]}
            log_path = Path(folder) / f"reader-{k}.log"
            with log_path.open("w") as log_file:
                child = subprocess.Popen(
                    [sys.executable, "-m", "segsync.compute.arrow_reader"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    text=True,
                )
            assert child.stdin is not None
            child.stdin.write(json.dumps(job))
            child.stdin.close()
            children.append((child, log_path))
        outcomes = [(child.wait(), log_path.read_text()) for child, log_path in children]
        failed = [(status, errors) for status, errors in outcomes if status != 0]
        if failed:
            log.warning("store.arrow_read_failed", status=failed[0][0], error=failed[0][1].strip()[-300:])
            return None
        frames = []
        for query, schema in zip(queries, schemas, strict=True):
            frame = pl.read_ipc(query["out"]).slice(1)
            frames.append(
                frame.select(
                    pl.col(old).cast(dtype, strict=False).alias(name)
                    for old, (name, dtype) in zip(frame.columns, schema.items(), strict=True)
                )
            )
    return frames


def _fetch_rows(conn: Connection, sql: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows through the DBAPI cursor, in chunks, turned into columns."""
    names = list(schema)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        parts = []
        while True:
            rows = cursor.fetchmany(_CHUNK)
            if not rows:
                break
            columns = list(zip(*rows, strict=True))
            parts.append(
                pl.DataFrame(
                    [
                        pl.Series(name, values, dtype=schema[name], strict=False)
                        for name, values in zip(names, columns, strict=True)
                    ]
                )
            )
    finally:
        cursor.close()
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]+")


def json_fields(documents: pl.Series, keys: Sequence[str], paths: dict[str, str] | None = None) -> dict:
    """``key → Series``: what ``str.json_path_match("$.key")`` gives for each key of JSON object text, with
    one JSON parse per row for all the keys instead of one per key (ten keys over 1.5M customers took ten
    seconds). A value that is not a string (a number, a boolean, an object) is taken from
    ``json_path_match`` itself, so numbers keep its spelling; ``paths`` gives other JSONPaths."""
    paths = paths or {}
    plain = [key for key in keys if _PLAIN_KEY.fullmatch(key) and key not in paths]
    out: dict[str, pl.Series] = {}
    decoded = None
    if plain:
        try:
            decoded = documents.str.json_decode(pl.Struct({key: pl.String() for key in plain}))
        except pl.exceptions.PolarsError:  # not all valid JSON objects: every key the slow, lenient way
            decoded = None
    for key in keys:
        path = paths.get(key, f"$.{key}")
        if decoded is None or key not in plain:
            out[key] = documents.str.json_path_match(path).alias(key)
            continue
        values = decoded.struct.field(key)
        # a value that does not start with a quote (or null's n) is not a string
        other = documents.str.contains(f'"{key}"\\s*:\\s*[^"\\sn]').fill_null(False)
        if other.any():
            rows = other.arg_true()
            values = values.scatter(rows, documents.gather(rows).str.json_path_match(path))
        out[key] = values.alias(key)
    return out


def json_text(column: str) -> pl.Expr:
    """JSON text of any column (polars encodes only structs: wrap in one and cut the wrapper off)."""
    wrapped = pl.struct(pl.col(column).alias("v")).struct.json_encode()
    return wrapped.str.slice(5, wrapped.str.len_chars() - 6).alias(column)


def _storage(frame: pl.DataFrame, dialect: str, json_columns: set[str], money_columns: set[str]) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            utc = pl.col(name).dt.convert_time_zone("UTC")
            fmt = SQLITE_TIME if dialect == "sqlite" else SQLITE_TIME + "+00"
            exprs.append(utc.dt.strftime(fmt).alias(name))
        elif name in money_columns:
            if dialect == "sqlite":
                exprs.append((pl.col(name) * 100).round(0).cast(pl.Int64).alias(name))
            else:
                exprs.append(pl.col(name).round(2).cast(pl.String).alias(name))
        elif name in json_columns and dtype != pl.String:
            exprs.append(json_text(name))
        elif dtype == pl.Boolean and dialect == "sqlite":
            exprs.append(pl.col(name).cast(pl.Int8))
    return frame.with_columns(exprs) if exprs else frame


def insert_frame(
    conn: Connection,
    table: str,
    frame: pl.DataFrame,
    *,
    json_columns: set[str] = frozenset(),  # type: ignore[assignment]
    money_columns: set[str] = frozenset(),  # type: ignore[assignment]
) -> int:
    """Append ``frame`` to ``table`` (column names = frame columns). JSON columns may hold JSON text already."""
    return insert_frames(conn, table, [frame], json_columns=json_columns, money_columns=money_columns)


def insert_frames(
    conn: Connection,
    table: str,
    frames: Iterable[pl.DataFrame],
    *,
    json_columns: set[str] = frozenset(),  # type: ignore[assignment]
    money_columns: set[str] = frozenset(),  # type: ignore[assignment]
) -> int:
    """:func:`insert_frame` for frames made one after another: the next one is made (and converted for
    storage) in a worker thread while this one is written — polars works off the GIL, and so does the
    database's own part of a write."""
    dialect = conn.dialect.name
    stored = (_storage(frame, dialect, set(json_columns), set(money_columns)) for frame in frames)
    written = 0
    with ThreadPoolExecutor(1, thread_name_prefix="segsync-rows") as maker:
        pending = maker.submit(next, stored, None)
        while (frame := pending.result()) is not None:
            pending = maker.submit(next, stored, None)
            written += _write(conn, table, frame)
    return written


def _write(conn: Connection, table: str, stored: pl.DataFrame) -> int:
    if stored.is_empty():
        return 0
    columns = ", ".join(stored.columns)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in stored.columns)})"
        for start in range(0, stored.height, _CHUNK):
            raw.executemany(sql, stored.slice(start, _CHUNK).iter_rows())
        return stored.height
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        for start in range(0, stored.height, _CHUNK):
            buffer = io.BytesIO()
            stored.slice(start, _CHUNK).write_csv(buffer, include_header=False, null_value="")
            copy.write(buffer.getvalue())
    return stored.height
