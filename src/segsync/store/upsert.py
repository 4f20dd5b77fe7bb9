"""Idempotent bulk upserts (dialect ``INSERT ... ON CONFLICT``).

Rows are only rewritten when something in them changed, so re-reading an overlap window or
replaying a page after a crash costs reads, not writes — and "the same batch twice" leaves the
table byte-for-byte identical.

Bulk loads are the hot path of a pull (millions of rows), and SQLAlchemy's per-row parameter
handling costs several times the database's own work. So the statement is compiled once per
shape and values are converted with the columns' own type processors in one tight loop, then sent
as multi-row ``INSERT … VALUES (…), (…), … ON CONFLICT`` statements of up to the variable limit
(SQLite), or with ``COPY`` into a temporary table followed by one ``INSERT … SELECT … ON CONFLICT``
(PostgreSQL).

Why multi-row statements on SQLite: ``executemany`` steps row by row and gives the GIL up and takes
it back around every row. A pull writes in a worker thread while its event loop fetches and maps
the next page, and each of those hand-overs waited for the busy loop's switch interval (5 ms): a
page's write crawled whenever mapping ran. One statement of two thousand rows is one
``sqlite3_step`` with the GIL released, so the database work runs on the second core meanwhile.
"""

from __future__ import annotations

import functools
import gc
import itertools
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    and_,
    bindparam,
    column,
    or_,
    select,
)
from sqlalchemy import table as table_clause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from segsync.store.engine import json_dumps_bytes
from segsync.store.types import NAIVE_DATETIME, Money, UTCDateTime

_NEVER_COMPARED = frozenset({"synced_at"})
_MAX_ROWS_PER_STATEMENT = 2_000  # more rows per statement no longer paid off
ColumnConversion = Callable[[tuple[Any, ...]], tuple[Any, ...]]


def _conflict_clause(stmt: Any, table: Table, columns: Sequence[str], keys: Sequence[str], only_if_changed: bool):
    update_cols = [c for c in columns if c not in keys]
    if not update_cols:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    excluded = stmt.excluded
    where = None
    compared = [c for c in update_cols if c not in _NEVER_COMPARED]
    if only_if_changed and compared:
        where = or_(*[table.c[c].is_distinct_from(excluded[c]) for c in compared])
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: excluded[c] for c in update_cols}, where=where
    )


@functools.cache
def _sqlite_statement(table: Table, columns: tuple[str, ...], keys: tuple[str, ...], only_if_changed: bool, dialect):
    stmt = sqlite.insert(table).values({c: bindparam(c) for c in columns})
    compiled = _conflict_clause(stmt, table, columns, keys, only_if_changed).compile(dialect=dialect)
    order = list(compiled.positiontup or [])
    return str(compiled), [columns.index(name) for name in order]


@functools.lru_cache(maxsize=256)
def _sqlite_rows_statement(single: str, width: int, rows: int) -> str:
    """``single`` (one ``VALUES`` tuple of ``width`` placeholders) widened to ``rows`` tuples."""
    one = "(" + ", ".join("?" * width) + ")"
    head, found, tail = single.partition(f" VALUES {one}")
    if not found:
        raise AssertionError(f"unexpected single-row upsert: {single[:200]}")
    return f"{head} VALUES {', '.join([one] * rows)}{tail}"


@functools.cache
def _pg_statement(table: Table, columns: tuple[str, ...], keys: tuple[str, ...], only_if_changed: bool, dialect):
    staging = f"_segsync_up_{table.name}"
    src = table_clause(staging, *[column(c) for c in columns])
    stmt = postgresql.insert(table).from_select(list(columns), select(*[src.c[c] for c in columns]))
    sql = str(_conflict_clause(stmt, table, columns, keys, only_if_changed).compile(dialect=dialect))
    cols = ", ".join(f'"{c}"' for c in columns)
    prepare = (
        f'DROP TABLE IF EXISTS pg_temp."{staging}"; '
        f'CREATE TEMP TABLE "{staging}" ON COMMIT DROP AS SELECT {cols} FROM {_qualified(table)} WITH NO DATA'
    )
    return prepare, f'COPY "{staging}" ({cols}) FROM STDIN (FORMAT BINARY)', sql


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


@functools.cache
def _processors(table: Table, columns: tuple[str, ...], dialect) -> list[ColumnConversion | None]:
    """Per column: the conversion of a whole column to what the driver expects (None = pass through).
    Text and JSON conversions raise :class:`_NulInText` for a value holding U+0000."""
    out: list[ColumnConversion | None] = []
    for name in columns:
        col_type = table.c[name].type
        is_json = isinstance(col_type, JSON) or isinstance(getattr(col_type, "impl", None), JSON)
        if is_json:
            out.append(_jsonb_binary if dialect.name == "postgresql" else _json_text)
        elif isinstance(col_type, String):
            out.append(_nul_free_text)
        elif dialect.name == "postgresql":
            # Binary COPY dumps Decimal and datetime itself, and NUMERIC(20,2) rounds half away from zero
            # like Money does; only what COPY cannot check is checked here.
            if isinstance(col_type, UTCDateTime):
                out.append(_refuse_naive)
            elif isinstance(col_type, Money):
                out.append(_decimal)
            else:
                out.append(None)
        else:
            convert = col_type._cached_bind_processor(dialect)
            out.append(None if convert is None else _each(convert))
    return out


_PG_TYPES: tuple[tuple[type, str], ...] = (
    (JSON, "jsonb"),
    (Boolean, "bool"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Float, "float8"),
    (Numeric, "numeric"),
    (DateTime, "timestamptz"),
    (String, "text"),
)


@functools.cache
def _pg_copy_types(table: Table, columns: tuple[str, ...], dialect) -> list[str]:
    names = []
    for name in columns:
        impl = table.c[name].type.dialect_impl(dialect)
        if isinstance(impl, TypeDecorator):
            impl = impl.load_dialect_impl(dialect)
        pg_name = next((n for cls, n in _PG_TYPES if isinstance(impl, cls)), None)
        if pg_name is None:
            raise TypeError(f"no COPY type for {table.name}.{name} ({impl!r})")
        if pg_name == "timestamptz" and not getattr(impl, "timezone", True):
            pg_name = "timestamp"
        names.append(pg_name)
    return names


def _pre_encoded_jsonb(cursor: Any) -> None:
    """Make this cursor's jsonb COPY dumper pass :func:`_jsonb_binary`'s bytes through untouched."""
    cursor.adapters.register_dumper(bytes, _pre_encoded_dumper(cursor.adapters.types["jsonb"].oid))


@functools.cache
def _pre_encoded_dumper(jsonb_oid: int) -> type:
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class PreEncoded(Dumper):
        format = Format.BINARY
        oid = jsonb_oid

        def dump(self, obj: Any) -> bytes:
            return obj

    return PreEncoded


def _refuse_naive(column: tuple[Any, ...]) -> tuple[Any, ...]:
    """A whole column at C speed: COPY sends aware datetimes as they are, a naive one must not slip in."""
    if None in set(map(_tzinfo, filter(None, column))):
        raise ValueError(NAIVE_DATETIME)
    return column


def _decimal(column: tuple[Any, ...]) -> tuple[Any, ...]:
    if set(map(type, column)) <= _DECIMAL_OR_NONE:
        return column
    return tuple(value if value is None or type(value) is Decimal else Decimal(str(value)) for value in column)


_tzinfo = operator.attrgetter("tzinfo")
_DECIMAL_OR_NONE = frozenset({Decimal, type(None)})


class _NulInText(Exception):
    """A text value holds U+0000, which PostgreSQL refuses in text and jsonb."""


def _convert(rows: Sequence[dict[str, Any]], columns: tuple[str, ...], procs: list) -> list[tuple[Any, ...]]:
    """Column-wise conversion: C-level zip/map instead of a Python loop per value."""
    getter = operator.itemgetter(*columns)
    cols = list(zip(*map(getter, rows), strict=True)) if len(columns) > 1 else [tuple(map(getter, rows))]
    for i, proc in enumerate(procs):
        if proc is not None:
            cols[i] = proc(cols[i])
    return list(zip(*cols, strict=True))


def _nul_free_text(column: tuple[Any, ...]) -> tuple[Any, ...]:
    """One join and one search per column: a page is checked at C speed."""
    try:
        text = "".join(filter(None, column))
    except TypeError:  # not text throughout (SQLite keeps what it is given)
        text = "".join(filter(_is_str, column))
    if "\x00" in text:
        raise _NulInText
    return column


def _json_encoded(column: tuple[Any, ...]) -> list[bytes]:
    """A NUL is escaped in JSON text; only when that escape shows up (a literal backslash-u0000 shows up
    too) are the values themselves searched."""
    encoded = list(map(json_dumps_bytes, column))
    if b"\\u0000" in b"".join(encoded) and any(map(holds_nul, column)):
        raise _NulInText
    return encoded


def _json_text(column: tuple[Any, ...]) -> tuple[Any, ...]:
    return _keep_null(column, tuple(map(bytes.decode, _json_encoded(column))))


def _jsonb_binary(column: tuple[Any, ...]) -> tuple[Any, ...]:
    """jsonb's binary wire form (version 1, then the text), made here so COPY sends it as it is."""
    return _keep_null(column, tuple(map(b"\x01".__add__, _json_encoded(column))))


def _keep_null(column: tuple[Any, ...], converted: tuple[Any, ...]) -> tuple[Any, ...]:
    """SQL NULL where the value was None (orjson made it ``null``)."""
    if None not in column:
        return converted
    return tuple(None if value is None else item for value, item in zip(column, converted, strict=True))


def _each(convert: Callable[[Any], Any]) -> ColumnConversion:
    def each(column: tuple[Any, ...]) -> tuple[Any, ...]:
        first = column[0] if column else None
        if column.count(first) == len(column):  # e.g. synced_at: one conversion for the whole page
            return (convert(first),) * len(column)
        return tuple(map(convert, column))

    return each


def holds_nul(value: Any) -> bool:
    """Whether ``value`` holds a NUL character, however deeply nested (strings, dict keys, lists)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(map(holds_nul, value)) or any(map(holds_nul, value.values()))
    if isinstance(value, list | tuple):
        return any(map(holds_nul, value))
    return False


def strip_nul(value: Any) -> Any:
    """``value`` without NUL characters, however deeply nested (strings, dict keys, lists)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_nul(v) for v in value]
    return value


def _dedupe(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> Sequence[dict[str, Any]]:
    """Last one wins: one statement must not touch the same row twice (PostgreSQL refuses it)."""
    identities = list(map(operator.itemgetter(*keys), rows))
    if len(set(identities)) == len(rows):
        return rows
    return list(dict(zip(identities, rows, strict=True)).values())


_is_str = str.__instancecheck__


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Converting a page allocates a tuple per row and per value, and every few hundred allocations the
    cyclic collector walked all the live rows again: it took three quarters of a 10,000-row upsert. None of
    these objects can form a cycle, so the collector waits until the page is written.

    A pull prepares one page on its event loop while its writer thread writes another, so pauses overlap:
    they are counted, and the collector comes back (if it was on) when the last one ends. A check-then-set
    per pause could leave it off for good when two threads interleaved."""
    global _pauses, _resume_collector
    with _pause_lock:
        if _pauses == 0:
            _resume_collector = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume_collector:
                gc.enable()


_pause_lock = threading.Lock()
_pauses = 0
_resume_collector = False


@dataclass(frozen=True)
class PreparedUpsert:
    """An upsert made ready for one dialect: rows deduplicated and converted to what its driver takes.

    Making it is pure CPU and running it is database work. A pull makes the next page's upserts on its
    event loop while its writer thread runs this page's, so the two overlap instead of queueing for the GIL.
    """

    dialect: str
    table: Table
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    only_if_changed: bool
    values: list[tuple[Any, ...]]


def prepare_upsert(
    dialect: Dialect, table: Table, rows: Sequence[dict[str, Any]], keys: Iterable[str], *, only_if_changed: bool = True
) -> PreparedUpsert | None:
    """The conversion half of :func:`upsert` (None for no rows)."""
    if not rows:
        return None
    keys = tuple(keys)
    columns = tuple(rows[0].keys())
    rows = _dedupe(rows, keys)
    procs = _processors(table, columns, dialect)
    with _collector_paused():
        try:
            values = _convert(rows, columns, procs)
        except _NulInText:  # it carries no meaning: dropped, on SQLite too, so both stores hold the same
            values = _convert([strip_nul(row) for row in rows], columns, procs)
    return PreparedUpsert(dialect.name, table, columns, keys, only_if_changed, values)


def run_upsert(conn: Connection, prepared: PreparedUpsert | None) -> int:
    """The database half of :func:`upsert`: how many rows were written."""
    if prepared is None:
        return 0
    dialect = conn.dialect
    if dialect.name != prepared.dialect:
        raise ValueError(f"upsert prepared for {prepared.dialect}, run on {dialect.name}")
    table, columns, keys, only_if_changed = prepared.table, prepared.columns, prepared.keys, prepared.only_if_changed
    with _collector_paused():
        if dialect.name != "postgresql":
            return _sqlite_upsert(conn, table, columns, keys, only_if_changed, prepared.values)
        prepare, copy_sql, insert_sql = _pg_statement(table, columns, keys, only_if_changed, dialect)
        with conn.connection.driver_connection.cursor() as cur:
            _pre_encoded_jsonb(cur)
            cur.execute(prepare)
            with cur.copy(copy_sql) as copy:
                copy.set_types(_pg_copy_types(table, columns, dialect))
                for value in prepared.values:
                    copy.write_row(value)
            cur.execute(insert_sql)
            return max(cur.rowcount, 0)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Iterable[str],
    *,
    only_if_changed: bool = True,
) -> int:
    """Insert ``rows`` or update the existing ones matching ``keys``; return how many rows were written.

    Rows identical to what is stored are not written (and not counted) when ``only_if_changed``. Every row
    must have the same columns (those of the first row).
    """
    return run_upsert(conn, prepare_upsert(conn.dialect, table, rows, keys, only_if_changed=only_if_changed))


def _sqlite_upsert(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    only_if_changed: bool,
    values: list[tuple[Any, ...]],
) -> int:
    single, order = _sqlite_statement(table, columns, keys, only_if_changed, conn.dialect)
    if order != list(range(len(columns))):
        values = [tuple(v[i] for i in order) for v in values]
    limit = conn.connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = min(_MAX_ROWS_PER_STATEMENT, limit // len(columns))
    if per_statement < 2:
        return max(conn.exec_driver_sql(single, values).rowcount, 0)
    written = 0
    for start in range(0, len(values), per_statement):
        chunk = values[start : start + per_statement]
        sql = _sqlite_rows_statement(single, len(columns), len(chunk))
        written += max(conn.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(chunk))).rowcount, 0)
    return written


def mark_deleted(
    conn: Connection, table: Table, source_id: int, match: dict[str, Any], ids: Sequence[str], when: Any
) -> int:
    """Soft-delete rows by remote id (never a hard delete: history and audit keep pointing at them)."""
    if not ids:
        return 0
    total = 0
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        cond = and_(
            table.c.source_id == source_id,
            table.c.remote_id.in_(chunk),
            table.c.deleted_at.is_(None),
            *[table.c[k] == v for k, v in match.items()],
        )
        total += conn.execute(table.update().where(cond).values(deleted_at=when)).rowcount or 0
    return total
