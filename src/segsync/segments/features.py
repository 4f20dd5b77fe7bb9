"""Per-customer features for an explicit ``as_of``, from won deals in the base currency (pure, vectorized).

Input frames (the compute layer builds them from the store; tests build them by hand):

* ``deals`` — ``customer`` (str key, e.g. ``company:42``), ``status`` (open|won|lost), ``amount`` (f64, base
  currency, null = unknown), ``closed_at`` and ``created_at`` (aware UTC), ``pipeline_id``, ``stage_id``.
  A purchase is a won deal whose ``closed_at`` (else ``created_at``) is at or before ``as_of``.
* ``customers`` — ``customer``, ``kind``, ``remote_id``, ``name``, ``responsible_id``, ``company_id``,
  ``created_at``, ``phones``/``emails`` (lists), ``customer_type`` and the attribute columns of
  :data:`~segsync.segments.columns.ATTRIBUTE_COLUMNS`, plus any ``fields:`` keys. Customers that only appear
  in deals are added with empty attributes.
* ``touches`` — ``customer``, ``at``, ``completed``.

Calendar notions (purchase days, months, periods) are taken in the rules' time zone ``tz``. Days are whole
calendar days: ``recency_days`` = as-of day − last purchase day. Columns starting with ``_`` are the
engine's internals (BTYD inputs, XYZ sums) and are not persisted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

from segsync.segments.columns import ATTRIBUTE_COLUMNS

UTC_DT = pl.Datetime("us", "UTC")
DEALS_SCHEMA: dict[str, pl.DataType] = {
    "customer": pl.String(),
    "status": pl.String(),
    "amount": pl.Float64(),
    "closed_at": UTC_DT,
    "created_at": UTC_DT,
    "pipeline_id": pl.String(),
    "stage_id": pl.String(),
}
CUSTOMERS_SCHEMA: dict[str, pl.DataType] = {
    "customer": pl.String(),
    "kind": pl.String(),
    "remote_id": pl.String(),
    "name": pl.String(),
    "responsible_id": pl.String(),
    "company_id": pl.String(),
    "created_at": UTC_DT,
    "phones": pl.List(pl.String()),
    "emails": pl.List(pl.String()),
    "customer_type": pl.String(),
    **{name: pl.String() for name in ATTRIBUTE_COLUMNS},
}
TOUCHES_SCHEMA: dict[str, pl.DataType] = {"customer": pl.String(), "at": UTC_DT, "completed": pl.Boolean()}
STAGES_SCHEMA: dict[str, pl.DataType] = {
    "pipeline_id": pl.String(),
    "stage_id": pl.String(),
    "semantic": pl.String(),
    "sort": pl.Int64(),
}
Period = str  # week | month | quarter


def conform(frame: pl.DataFrame | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with every schema column present (missing ones null) and cast; extra columns kept."""
    if frame is None:
        return pl.DataFrame(schema=schema)
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    if missing:
        frame = frame.with_columns(missing)
    return frame.with_columns([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def period_index(day: pl.Expr, period: Period) -> pl.Expr:
    """Consecutive integers per calendar period of a date expression (weeks start on Monday)."""
    if period == "week":
        return (day.cast(pl.Int32) - 4).floordiv(7)  # 1970-01-05 was a Monday (epoch day 4)
    year = day.dt.year().cast(pl.Int32)
    month = day.dt.month().cast(pl.Int32)
    if period == "quarter":
        return year * 4 + (month - 1) // 3
    return year * 12 + month - 1


def period_of(day: date, period: Period) -> int:
    frame = pl.DataFrame({"d": [day]}, schema={"d": pl.Date})
    return int(frame.select(period_index(pl.col("d"), period)).item())


def local_day(ts: pl.Expr, tz: str) -> pl.Expr:
    return ts.dt.convert_time_zone(tz).dt.date()


def as_of_day(as_of: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return as_of.astimezone(ZoneInfo(tz)).date()


def purchases(deals: pl.DataFrame, as_of: datetime, tz: str, pipelines: Sequence[str] | None = None) -> pl.DataFrame:
    """Won deals up to ``as_of``: customer, at, day, amount (unknown amount counts as 0)."""
    as_of = as_of.astimezone(UTC)
    deals = conform(deals, DEALS_SCHEMA)
    won = deals.filter(pl.col("status") == "won").with_columns(at=pl.coalesce("closed_at", "created_at"))
    won = won.filter(pl.col("at").is_not_null() & (pl.col("at") <= as_of) & pl.col("customer").is_not_null())
    if pipelines:
        won = won.filter(pl.col("pipeline_id").is_in([str(p) for p in pipelines]))
    # money is summed in integer cents: exact, so no result depends on the order rows came in
    cents = (pl.col("amount").fill_null(0.0) * 100).round(0).cast(pl.Int64)
    return won.select(
        "customer",
        "at",
        local_day(pl.col("at"), tz).alias("day"),
        (cents / 100).alias("amount"),
        cents.alias("cents"),
        pl.col("amount").is_null().alias("amount_missing"),
    )


def revenue_series(bought: pl.DataFrame, as_of: datetime, tz: str, period: Period, periods: int) -> pl.DataFrame:
    """Per-period revenue of the last ``periods`` complete periods, zero-filled from the customer's first
    purchase period: customer, period (index), revenue, deals. For explanations and reports."""
    end = period_of(as_of_day(as_of, tz), period) - 1
    start = end - periods + 1
    first = bought.group_by("customer").agg(period_index(pl.col("day").min(), period).alias("first"))
    spans = first.with_columns(pl.max_horizontal(pl.col("first"), pl.lit(start)).alias("from")).filter(
        pl.col("from") <= end
    )
    grid = spans.select("customer", pl.int_ranges("from", end + 1).alias("period")).explode("period")
    sums = (
        bought.with_columns(period=period_index(pl.col("day"), period))
        .filter(pl.col("period").is_between(start, end))
        .group_by("customer", "period")
        .agg(pl.col("amount").sum().alias("revenue"), pl.len().alias("deals"))
    )
    return (
        grid.with_columns(pl.col("period").cast(pl.Int32))
        .join(sums.with_columns(pl.col("period").cast(pl.Int32)), on=["customer", "period"], how="left")
        .with_columns(pl.col("revenue").fill_null(0.0), pl.col("deals").fill_null(0).cast(pl.Int64))
        .sort("customer", "period")
    )


def _window_sum(column: str, since: datetime | None) -> pl.Expr:
    """Revenue (from integer cents, exact) of purchases after ``since``."""
    cents = pl.col("cents") if since is None else pl.col("cents").filter(pl.col("at") > since)
    return cents.sum() / 100


def _window_count(since: datetime | None) -> pl.Expr:
    if since is None:
        return pl.len()
    return (pl.col("at") > since).sum()


def features(
    deals: pl.DataFrame,
    as_of: datetime,
    *,
    customers: pl.DataFrame | None = None,
    touches: pl.DataFrame | None = None,
    tz: str = "UTC",
    abc_window: timedelta | None = timedelta(days=365),
    rfm_window: timedelta = timedelta(days=365),
    xyz_period: Period = "month",
    xyz_periods: int = 12,
    pipelines: Sequence[str] | None = None,
    bought: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer (sorted by ``customer``) with the feature columns of
    :data:`~segsync.segments.columns.FEATURE_COLUMNS` that come from data, plus ``_``-prefixed internals."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    as_of = as_of.astimezone(UTC)
    deals = conform(deals, DEALS_SCHEMA)
    today = as_of_day(as_of, tz)
    today_n = (today - date(1970, 1, 1)).days
    bought = purchases(deals, as_of, tz, pipelines) if bought is None else bought

    since_365 = as_of - timedelta(days=365)
    since_90 = as_of - timedelta(days=90)
    since_abc = None if abc_window is None else as_of - abc_window
    since_rfm = as_of - rfm_window
    per_customer = bought.group_by("customer").agg(
        pl.len().alias("purchases"),
        _window_sum("amount", None).alias("revenue_total"),
        pl.col("at").min().alias("first_purchase"),
        pl.col("at").max().alias("last_purchase"),
        _window_sum("amount", since_365).alias("revenue_365d"),
        _window_sum("amount", since_90).alias("revenue_90d"),
        _window_count(since_365).alias("purchases_365d"),
        _window_count(since_90).alias("purchases_90d"),
        _window_sum("amount", since_abc).alias("revenue_window"),
        _window_count(since_rfm).alias("_rfm_f"),
        _window_sum("amount", since_rfm).alias("_rfm_m"),
        pl.col("amount_missing").sum().alias("_amount_missing"),
    )

    # one row per purchase day: BTYD counts a day once (CDNOW convention), gaps are between days
    days = (
        bought.group_by("customer", "day")
        .agg(pl.col("cents").sum())
        .with_columns(pl.col("day").cast(pl.Int32).alias("dayn"))
    )
    ordered = pl.col("dayn").sort()
    gaps = ordered.diff().drop_nulls()
    per_day = days.group_by("customer").agg(  # per-group sorts: cheaper than one global sort of every day
        pl.len().alias("purchase_days"),
        pl.col("dayn").min().alias("_first_day"),
        pl.col("dayn").max().alias("_last_day"),
        pl.col("cents").sort_by("dayn").first().alias("_first_cents"),
        pl.col("cents").sum().alias("_day_cents"),
        gaps.median().alias("median_gap_days"),
        gaps.last().alias("_last_gap"),
        gaps.len().alias("_gaps"),
        period_index(pl.col("day").min(), xyz_period).alias("_first_period"),
    )

    # XYZ sums over complete periods [start, end], zero-filled from max(start, first purchase period)
    end = period_of(today, xyz_period) - 1
    start = end - xyz_periods + 1
    in_series = (
        bought.with_columns(period=period_index(pl.col("day"), xyz_period))
        .filter(pl.col("period").is_between(start, end))
        .group_by("customer", "period")
        .agg(pl.col("cents").sum().cast(pl.Int128).alias("rev"))
    )
    series_len = (pl.lit(end) - pl.max_horizontal(pl.col("_first_period"), pl.lit(start)) + 1).clip(lower_bound=0)
    lengths = per_day.select("customer", series_len.cast(pl.Int64).alias("_xyz_n"))
    # population variance of the zero-filled series from exact integer sums: (n·Σv² − (Σv)²) / n²
    xyz = in_series.group_by("customer").agg(
        pl.len().alias("_xyz_k"),
        pl.col("rev").sum().alias("_xyz_sum"),
        (pl.col("rev") * pl.col("rev")).sum().alias("_xyz_sq"),
    )
    xyz = xyz.join(lengths, on="customer").select(
        "customer",
        "_xyz_k",
        (pl.col("_xyz_sum").cast(pl.Float64) / 100).alias("_xyz_rev"),
        (
            (pl.col("_xyz_n").cast(pl.Int128) * pl.col("_xyz_sq") - pl.col("_xyz_sum") * pl.col("_xyz_sum")).cast(
                pl.Float64
            )
            / 10_000.0
        ).alias("_xyz_ss_n2"),
    )

    touches = conform(touches, TOUCHES_SCHEMA)
    last_touch = (
        touches.filter((pl.col("at") <= as_of) & pl.col("completed").fill_null(True))
        .group_by("customer")
        .agg(pl.col("at").max().alias("last_touch"))
    )
    open_deals = (
        deals.filter(
            (pl.col("status") == "open")
            & pl.col("customer").is_not_null()
            & (pl.col("created_at").is_null() | (pl.col("created_at") <= as_of))
        )
        .group_by("customer")
        .agg(
            pl.len().alias("open_deals"),
            ((pl.col("amount").fill_null(0.0) * 100).round(0).cast(pl.Int64).sum() / 100).alias("open_amount"),
        )
    )

    base = conform(customers, CUSTOMERS_SCHEMA)
    # everyone in the CRM, plus anyone a purchase, an open deal or a touch points at (aggregates are small)
    known = (
        pl.concat([base.select("customer"), *(p.select("customer") for p in (per_customer, open_deals, last_touch))])
        .drop_nulls()
        .unique()
    )
    frame = known.join(base, on="customer", how="left")
    for part in (per_customer, per_day, lengths, xyz, last_touch, open_deals):
        frame = frame.join(part, on="customer", how="left")

    int_zero = ["purchases", "purchases_365d", "purchases_90d", "purchase_days", "open_deals", "_rfm_f", "_gaps"]
    float_zero = ["revenue_total", "revenue_365d", "revenue_90d", "revenue_window", "open_amount", "_rfm_m"]
    frame = frame.with_columns(
        [pl.col(c).fill_null(0).cast(pl.Int64) for c in int_zero]
        + [pl.col(c).fill_null(0.0).cast(pl.Float64) for c in float_zero]
        + [pl.col("_xyz_n").fill_null(0), pl.col("_xyz_k").fill_null(0), pl.col("_xyz_rev").fill_null(0.0)]
    )
    kind_of_key = pl.col("customer").str.split_exact(":", 1).struct.field("field_0")
    frame = frame.with_columns(
        pl.col("kind").fill_null(kind_of_key),
        pl.col("remote_id").fill_null(pl.col("customer").str.split_exact(":", 1).struct.field("field_1")),
        (pl.lit(today_n) - pl.col("_last_day")).cast(pl.Float64).alias("recency_days"),
        (pl.lit(today_n) - pl.col("_first_day")).cast(pl.Float64).alias("age_days"),
        (pl.col("purchases") - 1).clip(lower_bound=0).alias("repeat_purchases"),
        pl.when(pl.col("purchases") > 0).then(pl.col("revenue_total") / pl.col("purchases")).alias("avg_order_value"),
        ((pl.lit(as_of) - pl.col("last_touch")).dt.total_seconds() / 86400.0).floor().alias("days_since_touch"),
        month_label_expr(pl.col("first_purchase"), tz).alias("cohort"),
        # BTYD inputs in days: x repeat purchase days, t_x last − first day, T as-of day − first day
        (pl.col("purchase_days") - 1).clip(lower_bound=0).cast(pl.Float64).alias("_x"),
        (pl.col("_last_day") - pl.col("_first_day")).cast(pl.Float64).alias("_t_x"),
        (pl.lit(today_n) - pl.col("_first_day")).cast(pl.Float64).alias("_T"),
        pl.when(pl.col("purchase_days") > 1)
        .then((pl.col("_day_cents") - pl.col("_first_cents")) / 100 / (pl.col("purchase_days") - 1))
        .alias("_m_x"),
        # CV = sqrt(n·Σv² − (Σv)²) / Σv  (the n² of the variance and the n of the mean cancel)
        pl.when(pl.col("_xyz_rev") > 0)
        .then(pl.col("_xyz_ss_n2").clip(lower_bound=0).sqrt() / pl.col("_xyz_rev"))
        .alias("xyz_cv"),
        pl.when(pl.col("_xyz_n") > 0).then(pl.col("_xyz_k") / pl.col("_xyz_n")).alias("xyz_active_share"),
        pl.col("_xyz_n").alias("xyz_periods"),
    )
    frame = frame.with_columns(
        pl.col("customer_type").fill_null(
            pl.when(pl.col("kind") == "company").then(pl.lit("b2b")).otherwise(pl.lit("b2c"))
        )
    ).with_columns((pl.col("customer_type") == "b2b").alias("b2b"))
    return frame.sort("customer")


def month_label_expr(ts: pl.Expr, tz: str) -> pl.Expr:
    return local_day(ts, tz).dt.strftime("%Y-%m")
