"""Read one source's customers, deals, touches and stages from the store into polars frames.

The frames follow the engine's input schemas (:mod:`segsync.segments.features`). Two things happen here and
nowhere else:

* **who the customer is** — per the source's ``customer:`` option a deal belongs to its company when it has one
  (``company_else_contact``), always to its primary contact (``contact``) or always to its company
  (``company``). Keys are ``"<kind>:<remote_id>"``. Touches on a contact count for its company when companies
  are the customers.
* **money in the base currency** — ``amount_base``; when the connector could not fill it, ``amount`` × the
  currency's rate (or ``amount`` itself in the base currency); otherwise unknown.

Speed matters (10M deals): money becomes a float and times epoch microseconds *in SQL*, rows arrive as columns
(:mod:`.bulk`; a large SQLite store's deals in several rowid ranges read side by side), so no per-row Decimal
or datetime objects are built; money stays exact in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.sql import ColumnElement

from segsync.compute.bulk import fetch_frame, fetch_frames, json_fields
from segsync.config.sources import SourceBase
from segsync.segments.columns import ATTRIBUTE_COLUMNS
from segsync.segments.engine import Inputs
from segsync.store import tables as t


@dataclass
class Loaded:
    inputs: Inputs
    fields: tuple[str, ...]
    counts: dict[str, int]


def _time_sql(column: Any, dialect: str) -> ColumnElement:
    """A UTC time column as epoch microseconds, computed by the database: an integer is cheap to move and
    needs no parsing. SQLite's ``julianday`` reads every time format SQLite knows; its double carries about
    40 µs of error, so the value is rounded to whole milliseconds (exact for CRM times, which have none)."""
    if dialect == "sqlite":
        millis = func.round((func.julianday(column) - literal(2440587.5)) * literal(86_400_000.0))
        return cast(millis, BigInteger) * 1000
    return cast(func.round(func.extract("epoch", column) * 1_000_000), BigInteger)


def _ts_of(name: str) -> pl.Expr:
    return pl.from_epoch(pl.col(name), time_unit="us").dt.replace_time_zone("UTC").alias(name)


def _source_is(table: Any, source_id: int, dialect: str, selective: bool = False) -> ColumnElement:
    """``source_id = ?`` — on SQLite written so that a full read scans the table instead of walking an index
    whose leading column is source_id and looking every row up again (about twice as fast)."""
    if dialect == "sqlite" and not selective:
        return (table.c.source_id + 0) == source_id
    return table.c.source_id == source_id


def _money(column: Any, dialect: str) -> ColumnElement:
    """A Money column as a float in major units (SQLite stores exact minor units, PostgreSQL NUMERIC)."""
    if dialect == "sqlite":
        return type_coerce(column, BigInteger) / literal(100.0)
    return cast(column, Float)


def _json_text(column: Any, dialect: str) -> ColumnElement:
    return type_coerce(column, Text) if dialect == "sqlite" else cast(column, Text)


def _read(conn: Connection, stmt: Any, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return fetch_frame(conn, stmt, schema)


def load_source(conn: Connection, source_id: int, source: SourceBase, *, arrow: bool | None = None) -> Loaded:
    """Everything the engine needs for one source (deleted rows excluded); ``arrow`` as in
    :func:`~segsync.compute.bulk.fetch_frames`."""
    dialect = conn.dialect.name
    mode = source.customer
    fields = tuple(source.fields)
    c, th, st = t.customers, t.touches, t.stages
    customer_query = select(
        c.c.kind,
        c.c.remote_id,
        c.c.name,
        c.c.responsible_id,
        c.c.company_id,
        _time_sql(c.c.created_at, dialect),
        _json_text(c.c.phones, dialect),
        _json_text(c.c.emails, dialect),
        _json_text(c.c.attrs, dialect),
    ).where(_source_is(c, source_id, dialect), c.c.deleted_at.is_(None))
    customer_schema = {
        "kind": pl.String(),
        "remote_id": pl.String(),
        "name": pl.String(),
        "responsible_id": pl.String(),
        "company_id": pl.String(),
        "created_at": pl.Int64(),
        "phones": pl.String(),
        "emails": pl.String(),
        "attrs": pl.String(),
    }
    touch_query = select(
        th.c.customer_kind, th.c.customer_id, _time_sql(th.c.at, dialect).label("at"), th.c.completed
    ).where(_source_is(th, source_id, dialect), th.c.deleted_at.is_(None))
    touch_schema = {
        "customer_kind": pl.String(),
        "customer_id": pl.String(),
        "at": pl.Int64(),
        "completed": pl.Boolean(),
    }
    stage_query = select(st.c.pipeline_id, st.c.stage_id, st.c.semantic, st.c.sort).where(
        st.c.source_id == source_id, st.c.deleted_at.is_(None)
    )
    stage_schema = {"pipeline_id": pl.String(), "stage_id": pl.String(), "semantic": pl.String(), "sort": pl.Int64()}
    deal_queries = [
        (deal_query(source_id, source, dialect, *part, scan=True), DEAL_ROW_SCHEMA) for part in _deal_parts(conn)
    ]
    customer_rows, *deal_parts, touch_rows, stages = fetch_frames(
        conn,
        [(customer_query, customer_schema), *deal_queries, (touch_query, touch_schema), (stage_query, stage_schema)],
        arrow=arrow,
    )
    deal_rows = pl.concat(deal_parts) if len(deal_parts) > 1 else deal_parts[0]
    deal_rows = deal_rows.with_columns(pl.col(_DEAL_CODES).cast(pl.Categorical))  # see features.conform

    # customers ---------------------------------------------------------------------------------------
    customer_rows = _times(customer_rows, ["created_at"])
    attributes = json_fields(customer_rows["attrs"], [*ATTRIBUTE_COLUMNS, "type", "source"])
    customers = customer_rows.with_columns(
        (pl.col("kind") + ":" + pl.col("remote_id")).alias("customer"),
        pl.col("phones").str.json_decode(pl.List(pl.String())).fill_null([]),
        pl.col("emails").str.json_decode(pl.List(pl.String())).fill_null([]),
        *[attributes[name] for name in ATTRIBUTE_COLUMNS],
        _customer_type(attributes["type"]),
        *[_field(customer_rows["attrs"], key, crm) for key, crm in source.fields.items()],
    ).with_columns(pl.col("channel").fill_null(attributes["source"]))

    # deals --------------------------------------------------------------------------------------------
    deals = _times(deal_rows.with_columns(_deal_customer(mode)), ["closed_at", "created_at"])
    unassigned = int(deals["customer"].null_count())
    deals = deals.drop_nulls("customer").drop("company_id", "contact_id")

    # who is analysed: the mode's customers plus anyone a deal points at
    if mode == "contact":
        universe = customers.filter(pl.col("kind") == "contact")
    elif mode == "company":
        universe = customers.filter(pl.col("kind") == "company")
    else:
        # a company's contact is a customer of its own only through a deal without the company
        own_deals = deal_rows.filter(pl.col("company_id").is_null()).select(
            ("contact:" + pl.col("contact_id")).alias("customer")
        )
        universe = customers.filter(
            (pl.col("kind") == "company")
            | pl.col("company_id").is_null()
            | pl.col("customer").is_in(own_deals["customer"].drop_nulls().unique().implode())
        )
    universe = universe.drop("attrs")

    # touches ------------------------------------------------------------------------------------------
    touches = _times(_touch_customers(touch_rows, customers, mode), ["at"])

    counts = {
        "customers": universe.height,
        "deals": deals.height,
        "won_deals": int((deals["status"] == "won").sum()),
        "deals_without_customer": unassigned,
        "won_without_amount": int(((deals["status"] == "won") & deals["amount"].is_null()).sum()),
        "touches": touches.height,
    }
    inputs = Inputs(deals=deals, customers=universe, touches=touches, stages=stages)
    return Loaded(inputs=inputs, fields=fields, counts=counts)


def _times(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    return frame.with_columns(_ts_of(name) for name in names)


#: deal columns with a handful of distinct values, kept categorical for the engine (4 bytes a row, not a string)
_DEAL_CODES = ("status", "pipeline_id", "stage_id")
DEAL_ROW_SCHEMA: dict[str, pl.DataType] = {
    "status": pl.String(),
    "company_id": pl.String(),
    "contact_id": pl.String(),
    "amount": pl.Float64(),
    "closed_at": pl.Int64(),
    "created_at": pl.Int64(),
    "pipeline_id": pl.String(),
    "stage_id": pl.String(),
}


_ROWS_PER_READ = 4_000_000


def _deal_parts(conn: Connection) -> list[tuple[ColumnElement, ...]]:
    """Rowid ranges that split a large SQLite deals table into reads of about :data:`_ROWS_PER_READ` rows,
    which separate reader processes run side by side (a read is CPU-bound in SQLite and the driver); one
    unrestricted read anywhere else."""
    if conn.dialect.name != "sqlite":
        return [()]
    # two subqueries: SQLite answers a lone min() or max() from the b-tree's edge, both at once by a scan
    low, high = conn.exec_driver_sql("SELECT (SELECT min(rowid) FROM deals), (SELECT max(rowid) FROM deals)").one()
    if low is None or high - low < _ROWS_PER_READ:
        return [()]
    parts = -(-(high - low + 1) // _ROWS_PER_READ)
    step = -(-(high - low + 1) // parts)
    rowid = literal_column("deals.rowid")
    return [(rowid >= start, rowid < start + step) for start in range(low, high + 1, step)]


def deal_query(source_id: int, source: SourceBase, dialect: str, *extra: Any, scan: bool | None = None) -> Any:
    """Non-deleted deals of a source with the amount in the base currency (the rules', else the source's as
    the connector recorded it) and times as epoch microseconds. ``extra`` conditions make the read selective
    (an index is worth walking) unless ``scan``."""
    d, cur = t.deals, t.currencies
    rate = (
        select(cast(cur.c.rate, Float))
        .where(cur.c.source_id == source_id, cur.c.code == d.c.currency, cur.c.deleted_at.is_(None))
        .limit(1)
        .scalar_subquery()
    )
    # the rules' base currency, else the one the connector recorded for the source (NULL: unknown)
    recorded = select(t.sources.c.base_currency).where(t.sources.c.id == source_id).scalar_subquery()
    base = literal(source.base_currency) if source.base_currency else recorded
    same_currency = or_(d.c.currency.is_(None), d.c.currency == base)
    amount = func.coalesce(
        _money(d.c.amount_base, dialect),
        _money(d.c.amount, dialect) * rate,
        case((same_currency, _money(d.c.amount, dialect)), else_=None),
    )
    selective = bool(extra) if scan is None else not scan
    return select(
        d.c.status,
        d.c.company_id,
        d.c.contact_id,
        amount.label("amount"),
        _time_sql(d.c.closed_at, dialect).label("closed_at"),
        _time_sql(d.c.created_at, dialect).label("created_at"),
        d.c.pipeline_id,
        d.c.stage_id,
    ).where(_source_is(d, source_id, dialect, selective), d.c.deleted_at.is_(None), *extra)


def customer_deals(conn: Connection, source_id: int, source: SourceBase, kind: str, remote_id: str) -> pl.DataFrame:
    """The deals that count for one analysed customer (same resolution as :func:`load_source`)."""
    d = t.deals
    if kind == "company":
        where = [d.c.company_id == remote_id]
    elif source.customer == "contact":
        where = [d.c.contact_id == remote_id]
    else:
        where = [d.c.contact_id == remote_id, d.c.company_id.is_(None)]
    dialect = conn.dialect.name
    rows = _read(conn, deal_query(source_id, source, dialect, *where), DEAL_ROW_SCHEMA)
    customer = pl.lit(f"{kind}:{remote_id}").alias("customer")
    times = (_ts_of("closed_at"), _ts_of("created_at"))
    return rows.with_columns(customer, *times).drop("company_id", "contact_id")


def _deal_customer(mode: str) -> pl.Expr:
    company = pl.lit("company:") + pl.col("company_id")
    contact = pl.lit("contact:") + pl.col("contact_id")
    if mode == "contact":
        return contact.alias("customer")
    if mode == "company":
        return company.alias("customer")
    return pl.when(pl.col("company_id").is_not_null()).then(company).otherwise(contact).alias("customer")


def _touch_customers(touches: pl.DataFrame, customers: pl.DataFrame, mode: str) -> pl.DataFrame:
    """A touch belongs to the analysed customer: a contact's touch counts for its company when companies are
    the customers (and the contact has one)."""
    own = pl.col("customer_kind") + ":" + pl.col("customer_id")
    if mode == "contact":
        return touches.filter(pl.col("customer_kind") == "contact").select(own.alias("customer"), "at", "completed")
    companies = customers.filter(pl.col("kind") == "contact").select(
        pl.col("remote_id").alias("customer_id"), pl.col("company_id").alias("_company")
    )
    joined = touches.join(companies, on="customer_id", how="left")
    is_contact = pl.col("customer_kind") == "contact"
    via_company = pl.lit("company:") + pl.col("_company")
    key = pl.when(is_contact & pl.col("_company").is_not_null()).then(via_company).otherwise(own)
    if mode == "company":
        key = pl.when(is_contact).then(via_company).otherwise(own)
    return joined.select(key.alias("customer"), "at", "completed").drop_nulls("customer")


def _customer_type(declared: pl.Series) -> pl.Expr:
    raw = pl.lit(declared).str.to_lowercase()
    return (
        pl.when(raw.is_in(["b2b", "company", "legal", "юл", "юрлицо"]))
        .then(pl.lit("b2b"))
        .when(raw.is_in(["b2c", "person", "individual", "фл", "физлицо"]))
        .then(pl.lit("b2c"))
        .alias("customer_type")
    )


def _field(attrs: pl.Series, key: str, crm_field: str) -> pl.Series:
    """A ``fields:`` mapping: the connector's value under the feature name, else under the CRM field name."""
    by_key = json_fields(attrs, [key])[key]
    if "'" in crm_field:
        return by_key.alias(key)
    by_crm = json_fields(attrs, [crm_field], paths={crm_field: f"$['{crm_field}']"})[crm_field]
    return by_key.fill_null(by_crm).alias(key)


# --- narrower reads for the report and ``segsync quality``: the same rules as load_source, fewer columns ----


def won_deals(conn: Connection, source_id: int, source: SourceBase) -> pl.DataFrame:
    """The source's won deals in the engine's ``deals`` shape — customer resolved and money in the base
    currency exactly as :func:`load_source` does — for readers that need purchases and nothing else (the
    report); turn them into purchases with :func:`segsync.segments.features.purchases`."""
    dialect = conn.dialect.name
    won = t.deals.c.status == "won"
    rows = _read(conn, deal_query(source_id, source, dialect, won), DEAL_ROW_SCHEMA)
    times = (_ts_of("closed_at"), _ts_of("created_at"))
    return (
        rows.with_columns(_deal_customer(source.customer), *times)
        .drop_nulls("customer")
        .drop("company_id", "contact_id")
    )


def store_customers(conn: Connection, source_id: int) -> pl.DataFrame:
    """Every non-deleted customer of the source with its contact points — customer, kind, name, company_id,
    responsible_id, phones, emails — for data quality, which looks beyond the analysed customers (duplicates
    among a company's contacts; a company reached through its contacts)."""
    dialect = conn.dialect.name
    c = t.customers
    rows = _read(
        conn,
        select(
            c.c.kind,
            c.c.remote_id,
            c.c.name,
            c.c.company_id,
            c.c.responsible_id,
            _json_text(c.c.phones, dialect),
            _json_text(c.c.emails, dialect),
        ).where(_source_is(c, source_id, dialect), c.c.deleted_at.is_(None)),
        {
            "kind": pl.String(),
            "remote_id": pl.String(),
            "name": pl.String(),
            "company_id": pl.String(),
            "responsible_id": pl.String(),
            "phones": pl.String(),
            "emails": pl.String(),
        },
    )
    as_list = pl.List(pl.String())
    return rows.select(
        (pl.col("kind") + ":" + pl.col("remote_id")).alias("customer"),
        "kind",
        "name",
        "company_id",
        "responsible_id",
        pl.col("phones").str.json_decode(as_list).fill_null([]),
        pl.col("emails").str.json_decode(as_list).fill_null([]),
    )
