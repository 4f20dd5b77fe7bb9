"""Bulk moves between the store and polars frames, fast enough for millions of rows.

Reading goes through the DBAPI cursor of the SQLAlchemy connection (the SELECT is still built with
SQLAlchemy Core and compiled for the dialect) and builds columns, not row objects. Writing sends
storage-ready values: on SQLite ``executemany`` with the exact text/integer forms the column types store
(naive-UTC times, integer minor units, JSON text), on PostgreSQL ``COPY … FROM STDIN`` in CSV. Both run
inside the caller's transaction.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl
from sqlalchemy import Connection

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%6f"
_CHUNK = 200_000


def _sql(conn: Connection, stmt: Any) -> str:
    return str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def fetch_frame(conn: Connection, stmt: Any, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run ``stmt`` and return its rows as a frame with ``schema`` (column names in select order)."""
    names = list(schema)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(_sql(conn, stmt))
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


def parse_sqlite_time(column: str) -> pl.Expr:
    """SQLAlchemy's SQLite DATETIME text (naive UTC) → aware UTC datetime."""
    text = pl.col(column)
    exact = text.str.to_datetime(SQLITE_TIME, time_zone="UTC", strict=False, time_unit="us")
    return exact.fill_null(text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")).alias(column)


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
    if frame.is_empty():
        return 0
    dialect = conn.dialect.name
    stored = _storage(frame, dialect, set(json_columns), set(money_columns))
    columns = ", ".join(stored.columns)
    raw = conn.connection.driver_connection
    if dialect == "sqlite":
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in stored.columns)})"
        for start in range(0, stored.height, _CHUNK):
            raw.executemany(sql, stored.slice(start, _CHUNK).iter_rows())
        return frame.height
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        for start in range(0, stored.height, _CHUNK):
            buffer = io.BytesIO()
            stored.slice(start, _CHUNK).write_csv(buffer, include_header=False, null_value="")
            copy.write(buffer.getvalue())
    return frame.height
