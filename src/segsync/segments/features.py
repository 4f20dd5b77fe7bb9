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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from segsync.segments import grouping
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
#: the per-customer aggregates in the order the frame carries them (after the customer attributes)
_AGGREGATES = (
    "purchases",
    "revenue_total",
    "first_purchase",
    "last_purchase",
    "revenue_365d",
    "revenue_90d",
    "purchases_365d",
    "purchases_90d",
    "revenue_window",
    "_rfm_f",
    "_rfm_m",
    "_amount_missing",
    "purchase_days",
    "_first_day",
    "_last_day",
    "_first_cents",
    "_day_cents",
    "median_gap_days",
    "_last_gap",
    "_gaps",
    "_first_period",
    "_xyz_n",
    "_xyz_k",
    "_xyz_rev",
    "_xyz_ss_n2",
    "last_touch",
    "open_deals",
    "open_amount",
)


def conform(frame: pl.DataFrame | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with every schema column present (missing ones null) and cast; extra columns kept.

    A text column that arrives categorical stays so: the engine only compares such columns with text, and ten
    million deals' status, pipeline and stage cost 4 bytes a row that way instead of a string each."""
    if frame is None:
        return pl.DataFrame(schema=schema)
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    if missing:
        frame = frame.with_columns(missing)
    return frame.with_columns(
        [
            pl.col(name).cast(dtype)
            for name, dtype in schema.items()
            if not (dtype == pl.String and isinstance(frame.schema[name], pl.Categorical | pl.Enum))
        ]
    )


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


_QUARTER_HOUR_US = 900_000_000
_MAX_BUCKETS = 4_000_000  # ~114 years of quarter hours


def local_days(at: pl.Series, tz: str) -> pl.Series:
    """:func:`local_day` for a whole column, fast: the local date is looked up per UTC quarter hour (a few
    hundred thousand over years of data) instead of converting every timestamp. A quarter hour whose ends
    have different dates or UTC offsets (a date line or a time-zone transition inside it) is converted
    row by row, so the result is exactly the row-by-row one."""
    if tz == "UTC" or at.len() < 1000:
        return at.dt.convert_time_zone(tz).dt.date()
    micros = at.dt.epoch("us").to_numpy()
    valid = ~np.isnan(micros) if micros.dtype.kind == "f" else np.ones(micros.size, dtype=bool)
    if not valid.all():
        return at.dt.convert_time_zone(tz).dt.date()
    bucket = micros // _QUARTER_HOUR_US
    low = int(bucket.min())
    span = int(bucket.max()) - low + 1
    if span > _MAX_BUCKETS:
        return at.dt.convert_time_zone(tz).dt.date()
    starts = pl.Series((low + np.arange(span + 1, dtype=np.int64)) * _QUARTER_HOUR_US)
    edges = pl.DataFrame({"utc": pl.from_epoch(starts, time_unit="us").dt.replace_time_zone("UTC")})
    edges = edges.select(
        pl.col("utc").dt.convert_time_zone(tz).dt.date().cast(pl.Int32).alias("day"),
        (pl.col("utc").dt.convert_time_zone(tz).dt.replace_time_zone(None).dt.epoch("us") - starts).alias("offset"),
    )
    day, offset = edges["day"].to_numpy(), edges["offset"].to_numpy()
    # the last instant of each quarter hour has the next start's offset only if a transition is at the boundary
    end_day = (
        pl.DataFrame({"utc": pl.from_epoch(starts[1:] - 1, time_unit="us").dt.replace_time_zone("UTC")})
        .select(pl.col("utc").dt.convert_time_zone(tz).dt.date().cast(pl.Int32))
        .to_series()
        .to_numpy()
    )
    steady = (day[:-1] == end_day) & (offset[:-1] == offset[1:])
    index = bucket - low
    days = day[:-1][index]
    out = pl.Series(at.name, days, dtype=pl.Int32).cast(pl.Date)
    unsteady = ~steady[index]
    if unsteady.any():
        rows = np.flatnonzero(unsteady)
        exact = at.gather(rows).dt.convert_time_zone(tz).dt.date()
        out = out.scatter(rows, exact)
    return out


def as_of_day(as_of: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return as_of.astimezone(ZoneInfo(tz)).date()


def purchases(deals: pl.DataFrame, as_of: datetime, tz: str, pipelines: Sequence[str] | None = None) -> pl.DataFrame:
    """Won deals up to ``as_of``: customer, at, day, amount (unknown amount counts as 0)."""
    as_of = as_of.astimezone(UTC)
    # lazy, so that only the columns used are filtered (an eager filter copied all of 10M deals' columns)
    won = (
        conform(deals, DEALS_SCHEMA)
        .lazy()
        .filter(pl.col("status") == "won")
        .with_columns(at=pl.coalesce("closed_at", "created_at"))
        .filter(pl.col("at").is_not_null() & (pl.col("at") <= as_of) & pl.col("customer").is_not_null())
    )
    if pipelines:
        won = won.filter(pl.col("pipeline_id").is_in([str(p) for p in pipelines]))
    # money is summed in integer cents: exact, so no result depends on the order rows came in
    cents = (pl.col("amount").fill_null(0.0) * 100).round(0).cast(pl.Int64)
    rows = won.select("customer", "at", cents.alias("cents"), pl.col("amount").is_null().alias("amount_missing"))
    rows = rows.collect()
    return rows.select(
        "customer",
        "at",
        local_days(rows["at"], tz).alias("day"),
        (pl.col("cents") / 100).alias("amount"),
        "cents",
        "amount_missing",
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


def _micros(at: datetime) -> int:
    """Epoch microseconds of an aware datetime (the unit of the ``at`` columns)."""
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _epoch_us(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("us").to_numpy()


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
    return coded_features(
        deals,
        as_of,
        customers=customers,
        touches=touches,
        tz=tz,
        abc_window=abc_window,
        rfm_window=rfm_window,
        xyz_period=xyz_period,
        xyz_periods=xyz_periods,
        pipelines=pipelines,
        bought=bought,
    ).frame


@dataclass(frozen=True)
class Features:
    """The feature frame and the customer codes behind it, so that the engine's later per-customer steps
    (cohorts, lead readiness) reuse the one encoding of the keys instead of hashing strings again."""

    frame: pl.DataFrame
    size: int  # number of customer codes
    row_code: np.ndarray  # per frame row
    purchase_code: np.ndarray  # per row of the purchases frame
    open_deals: pl.DataFrame  # open deals up to as_of with a customer
    open_code: np.ndarray  # per row of open_deals


def coded_features(
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
) -> Features:
    """:func:`features` with its customer codes.

    Customer keys are encoded once (:mod:`.grouping`); every aggregate is then an integer scatter or a sort
    of packed integers, which keeps ten million deals within seconds and a few hundred MB."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    as_of = as_of.astimezone(UTC)
    deals = conform(deals, DEALS_SCHEMA)
    today = as_of_day(as_of, tz)
    today_n = (today - date(1970, 1, 1)).days
    bought = purchases(deals, as_of, tz, pipelines) if bought is None else bought
    base = conform(customers, CUSTOMERS_SCHEMA)
    touched = conform(touches, TOUCHES_SCHEMA).filter(
        (pl.col("at") <= as_of) & pl.col("completed").fill_null(True) & pl.col("customer").is_not_null()
    )
    open_deals = deals.filter(
        (pl.col("status") == "open")
        & pl.col("customer").is_not_null()
        & (pl.col("created_at").is_null() | (pl.col("created_at") <= as_of))
    )
    # everyone in the CRM, plus anyone a purchase, an open deal or a touch points at
    codes = grouping.encode(base["customer"], bought["customer"], open_deals["customer"], touched["customer"])
    n = codes.size
    base_code, code, open_code, touch_code = codes.of

    # purchases: counts and exact cent sums, all time and per window
    at = _epoch_us(bought["at"])
    cents = bought["cents"].to_numpy()
    count = grouping.count(code, n)
    has = count > 0
    since_abc = None if abc_window is None else as_of - abc_window
    windows: dict[datetime | None, tuple[np.ndarray, np.ndarray]] = {}  # since → (count, cents) per customer
    for since in (None, as_of - timedelta(days=365), as_of - timedelta(days=90), since_abc, as_of - rfm_window):
        if since not in windows:
            mask = None if since is None else at > _micros(since)
            windows[since] = (grouping.count(code, n, mask), grouping.total(code, cents, n, mask))
    first_at = grouping.smallest(code, at, n)
    last_at = grouping.largest(code, at, n)

    # one row per purchase day: BTYD counts a day once (CDNOW convention), gaps are between days
    day = bought["day"].cast(pl.Int32).to_numpy().astype(np.int64)
    low = int(day.min()) if day.size else 0
    span = int(day.max()) - low + 1 if day.size else 1
    days = grouping.distinct_pairs(code, day, low, span)
    purchase_days = grouping.count(days.code, n)
    first_day = np.zeros(n, dtype=np.int64)
    last_day = np.zeros(n, dtype=np.int64)
    first_day[days.code[days.starts]] = days.value[days.starts]
    last_day[days.code[days.ends]] = days.value[days.ends]
    repeat = np.ones(days.code.size, dtype=bool)
    repeat[days.starts] = False  # a pair that is not its customer's first day closes a gap
    gap = np.diff(days.value, prepend=0)[repeat]
    gap_code = days.code[repeat]
    median_gap = grouping.segment_median(gap_code, gap, span, n)
    last_gap = np.zeros(n, dtype=np.int64)
    two_plus = days.ends[days.ends > days.starts]
    last_gap[days.code[two_plus]] = days.value[two_plus] - days.value[two_plus - 1]
    first_cents = grouping.total(code, cents, n, day == first_day[code])
    del days, repeat, gap, gap_code  # per-day temporaries: a few hundred MB on ten million deals

    # XYZ sums over complete periods [start, end], zero-filled from max(start, first purchase period)
    end = period_of(today, xyz_period) - 1
    start = end - xyz_periods + 1
    period = bought.select(period_index(pl.col("day"), xyz_period)).to_series().to_numpy().astype(np.int64)
    inside = (period >= start) & (period <= end)
    in_code, in_period = code[inside], period[inside]
    cells = grouping.distinct_pairs(in_code, in_period, start, xyz_periods)
    cell_cents = np.zeros(cells.code.size, dtype=np.int64)
    np.add.at(cell_cents, cells.index_of(in_code, in_period, start, xyz_periods), cents[inside])
    cell_code = cells.code
    del period, inside, in_code, in_period, cells

    last_touch = grouping.largest(touch_code, _epoch_us(touched["at"]), n)
    open_cents = (open_deals["amount"].fill_null(0.0) * 100).round(0).cast(pl.Int64).to_numpy()

    counts = {
        "purchases": count,
        "purchases_365d": windows[as_of - timedelta(days=365)][0],
        "purchases_90d": windows[as_of - timedelta(days=90)][0],
        "purchase_days": purchase_days,
        "open_deals": grouping.count(open_code, n),
        "_rfm_f": windows[as_of - rfm_window][0],
        "_gaps": np.where(has, purchase_days - 1, 0),
    }
    money = {
        "revenue_total": windows[None][1],
        "revenue_365d": windows[as_of - timedelta(days=365)][1],
        "revenue_90d": windows[as_of - timedelta(days=90)][1],
        "revenue_window": windows[since_abc][1],
        "open_amount": grouping.total(open_code, open_cents, n),
        "_rfm_m": windows[as_of - rfm_window][1],
    }
    amount_missing = grouping.count(code, n, bought["amount_missing"].to_numpy())
    del at, day, cents  # the per-purchase arrays are done with
    has_touch = last_touch != grouping.INT64_MIN
    agg = pl.DataFrame(
        {
            **{name: pl.Series(name, values, dtype=pl.Int64) for name, values in counts.items()},
            **{name: pl.Series(name, values, dtype=pl.Int64) for name, values in money.items()},
            "first_purchase": pl.Series(np.where(has, first_at, 0)),
            "last_purchase": pl.Series(np.where(has, last_at, 0)),
            "last_touch": pl.Series(np.where(has_touch, last_touch, 0)),
            "_has": has,
            "_has_touch": has_touch,
            "_amount_missing": amount_missing.astype(np.uint32),
            "_first_day": first_day.astype(np.int32),
            "_last_day": last_day.astype(np.int32),
            "_first_cents": first_cents,
            "_day_cents": windows[None][1],
            "median_gap_days": median_gap,
            "_last_gap": last_gap.astype(np.int32),
            "_cells": grouping.count(cell_code, n).astype(np.uint32),
        }
    )
    when_bought = ["first_purchase", "last_purchase", "_first_day", "_last_day", "_first_cents", "_day_cents"]
    when_bought.append("_amount_missing")
    agg = agg.with_columns(
        *[(pl.col(name) / 100).alias(name) for name in money],  # polars' division, as the sums always had
        *[pl.when("_has").then(pl.col(c)).alias(c) for c in when_bought],
        pl.when(pl.col("_gaps") > 0).then(pl.col("_last_gap")).alias("_last_gap"),
        pl.col("median_gap_days").fill_nan(None),
        pl.when("_has_touch").then(pl.col("last_touch")).alias("last_touch"),
    ).with_columns(
        pl.col(["first_purchase", "last_purchase", "last_touch"]).cast(UTC_DT),
        period_index(pl.col("_first_day").cast(pl.Date), xyz_period).alias("_first_period"),
    )
    series_len = (pl.lit(end) - pl.max_horizontal(pl.col("_first_period"), pl.lit(start)) + 1).clip(lower_bound=0)
    agg = agg.with_columns(pl.when("_has").then(series_len).cast(pl.Int64).fill_null(0).alias("_xyz_n"))
    # population variance of the zero-filled series from exact integer sums: (n·Σv² − (Σv)²) / n²
    xyz = (
        pl.DataFrame({"_code": cell_code, "rev": pl.Series(cell_cents).cast(pl.Int128)})
        .group_by("_code")
        .agg(pl.col("rev").sum().alias("_xyz_sum"), (pl.col("rev") * pl.col("rev")).sum().alias("_xyz_sq"))
    )
    at_code = xyz["_code"].to_numpy()
    sums = np.zeros(n, dtype=np.float64)
    spread = np.full(n, np.nan)
    if xyz.height:
        length = pl.Series(agg["_xyz_n"].to_numpy()[at_code]).cast(pl.Int128)
        sums[at_code] = xyz["_xyz_sum"].cast(pl.Float64).to_numpy()
        spread[at_code] = (length * xyz["_xyz_sq"] - xyz["_xyz_sum"] * xyz["_xyz_sum"]).cast(pl.Float64).to_numpy()
    agg = agg.with_columns(
        pl.col("_cells").alias("_xyz_k"),
        (pl.Series("_xyz_rev", sums) / 100),
        (pl.Series("_xyz_ss_n2", spread).fill_nan(None) / 10_000.0),
    )

    known = base_code[base_code >= 0]
    if np.bincount(known, minlength=n).max(initial=0) <= 1:  # the usual case: every customer once in the CRM
        at_row = np.full(n, -1, dtype=np.int64)
        at_row[known] = np.flatnonzero(base_code >= 0)
        attributes = base.drop("customer").select(pl.all().gather(pl.Series(at_row).replace(-1, None)))
        row_code = np.arange(n, dtype=np.int64)
        parts = [pl.DataFrame(codes.keys), attributes, agg]
    else:  # duplicate customer rows stay duplicated, as a join on the key would have it
        joined = pl.DataFrame({"_code": np.arange(n, dtype=np.int64)}).join(
            base.with_columns(pl.Series("_code", base_code)).filter(pl.col("_code") >= 0).drop("customer"),
            on="_code",
            how="left",
            maintain_order="left",
        )
        row_code = joined["_code"].to_numpy()
        parts = [pl.DataFrame(codes.keys.gather(row_code)), joined.drop("_code"), agg.gather(row_code)]
    frame = pl.concat(parts, how="horizontal").select(
        "customer", *[c for c in base.columns if c != "customer"], *_AGGREGATES
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
    return Features(frame, n, row_code, code, open_deals, open_code)


def month_label_expr(ts: pl.Expr, tz: str) -> pl.Expr:
    return local_day(ts, tz).dt.strftime("%Y-%m")
