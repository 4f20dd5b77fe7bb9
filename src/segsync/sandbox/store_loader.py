"""Write a synthetic :class:`~segsync.sandbox.world.World` into the store as if it had been pulled.

For tests and benchmarks of ``segsync compute`` without HTTP: users, stages, currencies, companies,
contacts, deals and touches land in the normalized tables exactly as the column types would store them
(exact money, UTC times, JSON documents), in bulk: ``executemany`` of storage-ready tuples on SQLite and
``COPY`` on PostgreSQL, so that 10M deals load in minutes rather than hours.

Mapping (CRM-neutral, like a connector would do): stage ids are the World's stage codes; a deal's customer
refs are its ``company_id`` and ``contact_ids`` (primary first); ``amount_base`` = amount × currency rate;
phones are reduced to ``+<digits>`` (with the Russian ``8``/``9`` prefixes unified) and e-mails lower-cased;
an activity on a deal becomes a touch on the deal's company, else its primary contact.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Connection, Engine, delete, select

from segsync.compute.bulk import insert_frame
from segsync.sandbox.world import World
from segsync.store import tables as t

_JSON_COLUMNS = {"phones", "emails", "attrs", "contact_ids", "raw", "meta"}
_MONEY_COLUMNS = {"amount", "amount_base"}


def _phones(column: str) -> pl.Expr:
    digits = pl.element().str.replace_all(r"\D", "")
    unified = (
        pl.when((digits.str.len_chars() == 11) & digits.str.starts_with("8"))
        .then(pl.lit("7") + digits.str.slice(1))
        .when((digits.str.len_chars() == 10) & digits.str.starts_with("9"))
        .then(pl.lit("7") + digits)
        .otherwise(digits)
    )
    return pl.col(column).list.eval(pl.when(unified.str.len_chars() > 0).then(pl.lit("+") + unified)).list.drop_nulls()


def _id(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String)


def _world_frames(world: World, source_id: int, now: datetime) -> dict[str, pl.DataFrame]:
    src = pl.lit(source_id, dtype=pl.Int32).alias("source_id")
    synced = pl.lit(now).alias("synced_at")
    frames: dict[str, pl.DataFrame] = {}
    frames["users"] = world.managers.select(src, _id("id").alias("remote_id"), "name", "active", synced)
    frames["stages"] = world.stages.select(
        src,
        _id("pipeline_id"),
        pl.col("code").alias("stage_id"),
        "semantic",
        "name",
        "sort",
        synced,
    )
    frames["currencies"] = world.currencies.select(src, "code", "rate", "is_base", synced)
    companies = world.companies.select(
        src,
        pl.lit("company").alias("kind"),
        _id("id").alias("remote_id"),
        pl.col("title").alias("name"),
        _id("responsible_id"),
        pl.lit(None, dtype=pl.String).alias("company_id"),
        _phones("phones"),
        pl.col("emails").list.eval(pl.element().str.to_lowercase().str.strip_chars()),
        pl.struct(
            pl.lit("b2b").alias("type"),
            pl.col("industry"),
            pl.col("city"),
            pl.col("source").alias("channel"),
        ).alias("attrs"),
        "created_at",
        "updated_at",
        synced,
    )
    contacts = world.contacts.select(
        src,
        pl.lit("contact").alias("kind"),
        _id("id").alias("remote_id"),
        pl.col("name"),
        _id("responsible_id"),
        _id("company_id"),
        _phones("phones"),
        pl.col("emails").list.eval(pl.element().str.to_lowercase().str.strip_chars()),
        pl.struct(
            pl.when(pl.col("company_id").is_null()).then(pl.lit("b2c")).otherwise(pl.lit("b2b")).alias("type"),
            pl.lit(None, dtype=pl.String).alias("industry"),
            pl.col("city"),
            pl.col("source").alias("channel"),
            pl.col("utm_source"),
        ).alias("attrs"),
        "created_at",
        "updated_at",
        synced,
    )
    frames["customers"] = pl.concat([companies, contacts], how="vertical_relaxed")
    rates = world.currencies.select(pl.col("code").alias("currency"), "rate")
    deals = world.deals.join(rates, on="currency", how="left")
    frames["deals"] = deals.select(
        src,
        _id("id").alias("remote_id"),
        "title",
        "status",
        _id("pipeline_id"),
        pl.col("stage_code").alias("stage_id"),
        _id("company_id"),
        pl.col("contact_ids").list.first().cast(pl.String).alias("contact_id"),
        pl.col("contact_ids").list.eval(pl.element().cast(pl.String)),
        pl.col("amount").round(2),
        "currency",
        (pl.col("amount") * pl.col("rate").fill_null(1.0)).round(2).alias("amount_base"),
        _id("responsible_id"),
        pl.struct(pl.col("source")).alias("attrs"),
        "created_at",
        "closed_at",
        "updated_at",
        synced,
    )
    deal_owner = world.deals.select(
        pl.col("id").alias("owner_id"),
        pl.when(pl.col("company_id").is_not_null())
        .then(pl.lit("company"))
        .otherwise(pl.lit("contact"))
        .alias("deal_kind"),
        pl.coalesce(pl.col("company_id"), pl.col("contact_ids").list.first()).cast(pl.String).alias("deal_customer"),
    )
    acts = world.activities.join(deal_owner, on="owner_id", how="left")
    is_deal = pl.col("owner_kind") == "deal"
    frames["touches"] = acts.select(
        src,
        _id("id").alias("remote_id"),
        pl.when(is_deal).then(pl.col("deal_kind")).otherwise(pl.col("owner_kind")).alias("customer_kind"),
        pl.when(is_deal).then(pl.col("deal_customer")).otherwise(_id("owner_id")).alias("customer_id"),
        "kind",
        "at",
        "completed",
        synced,
    ).drop_nulls("customer_id")
    return frames


def _write(conn: Connection, table: str, frame: pl.DataFrame) -> None:
    insert_frame(conn, table, frame, json_columns=_JSON_COLUMNS, money_columns=_MONEY_COLUMNS)


def load_world(
    engine: Engine,
    world: World,
    *,
    source: str = "sandbox",
    kind: str = "bitrix24",
    replace: bool = True,
    now: datetime | None = None,
) -> int:
    """Write ``world`` as source ``source`` (created if missing); ``replace`` clears that source's rows first.
    Returns the source id."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(select(t.sources.c.id).where(t.sources.c.name == source)).first()
        if row is None:
            source_id = conn.execute(
                t.sources.insert().values(
                    name=source, kind=kind, base_currency=world.base_currency, created_at=now, updated_at=now
                )
            ).inserted_primary_key[0]
        else:
            source_id = int(row[0])
        if replace:
            for table in (t.touches, t.deals, t.customers, t.currencies, t.stages, t.users):
                conn.execute(delete(table).where(table.c.source_id == source_id))
        for name, frame in _world_frames(world, source_id, now).items():
            _write(conn, name, frame)
    return int(source_id)
