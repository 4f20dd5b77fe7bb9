"""Pure, vectorized computations behind the report's monthly management view — the report's own; cohorts
and data quality come from :mod:`segsync.segments.cohorts` and :mod:`segsync.segments.quality`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl

from segsync.segments.cohorts import month_index


def month_of(moment: datetime, tz: str) -> int:
    local = moment.astimezone(ZoneInfo(tz))
    return local.year * 12 + local.month - 1


def purchase_months(purchases: pl.DataFrame, as_of: datetime, tz: str) -> pl.DataFrame:
    """``customer, month, amount`` of purchases up to ``as_of``, months in the rules' time zone."""
    return purchases.filter(pl.col("at") <= as_of).select(
        "customer", month_index(pl.col("at").dt.convert_time_zone(tz)).alias("month"), "amount"
    )


def management_view(purchases: pl.DataFrame, as_of_month: int, months: int, lost_after: int) -> pl.DataFrame:
    """Per month (the last ``months`` up to ``as_of_month``): customers gained, returned and lost, the active
    base at month end, and revenue from new vs existing customers.

    A customer is *active* in month M when they bought in one of the ``lost_after`` months up to M. *Gained*:
    first purchase in M. *Lost* in M: active in M − 1, not in M (last purchase in M − ``lost_after``).
    *Returned* in M: bought in M after being lost. So active(M) = active(M − 1) + gained + returned − lost.
    *New* revenue comes from customers whose first purchase is in that month; the rest is *existing*.

    ``purchases``: ``customer, month, amount``. Columns out: month, gained, returned, lost, active,
    revenue_new, revenue_existing.
    """
    schema = {
        "month": pl.Int32,
        "gained": pl.Int64,
        "returned": pl.Int64,
        "lost": pl.Int64,
        "active": pl.Int64,
        "revenue_new": pl.Float64,
        "revenue_existing": pl.Float64,
    }
    first_month = as_of_month - months + 1
    grid = pl.DataFrame({"month": pl.int_range(first_month, as_of_month + 1, eager=True).cast(pl.Int32)})
    bought = purchases.filter(pl.col("month") <= as_of_month)
    if bought.is_empty():
        return grid.with_columns(pl.lit(0).alias(c) for c in list(schema)[1:]).cast(schema)  # type: ignore[arg-type]
    first = bought.group_by("customer").agg(pl.col("month").min().alias("first"))
    revenue = (
        bought.join(first, on="customer")
        .group_by("month")
        .agg(
            pl.col("amount").filter(pl.col("month") == pl.col("first")).sum().alias("revenue_new"),
            pl.col("amount").filter(pl.col("month") != pl.col("first")).sum().alias("revenue_existing"),
        )
    )
    visits = bought.select("customer", "month").unique().sort("customer", "month")
    visits = visits.with_columns(
        prev=pl.col("month").shift(1).over("customer"), next=pl.col("month").shift(-1).over("customer")
    )
    gained = visits.filter(pl.col("prev").is_null()).group_by("month").agg(pl.len().alias("gained"))
    returned = (
        visits.filter(pl.col("month") - pl.col("prev") > lost_after).group_by("month").agg(pl.len().alias("returned"))
    )
    lost_at = pl.col("month") + lost_after
    lost = (
        visits.filter(pl.col("next").is_null() | (pl.col("next") > lost_at))
        .select(lost_at.alias("month"))
        .group_by("month")
        .agg(pl.len().alias("lost"))
    )
    # active at the end of month M: a purchase in (M - lost_after, M]
    spans = visits.select(
        pl.int_ranges(
            pl.col("month"), pl.min_horizontal(pl.col("next"), lost_at).fill_null(lost_at), dtype=pl.Int32
        ).alias("month"),
        "customer",
    ).explode("month")
    active = (
        spans.filter(pl.col("month").is_between(first_month, as_of_month))
        .group_by("month")
        .agg(pl.col("customer").n_unique().alias("active"))
    )
    out = grid
    for part in (gained, returned, lost, active, revenue):
        out = out.join(part.with_columns(pl.col("month").cast(pl.Int32)), on="month", how="left")
    return out.fill_null(0).select(list(schema)).cast(schema).sort("month")  # type: ignore[arg-type]
