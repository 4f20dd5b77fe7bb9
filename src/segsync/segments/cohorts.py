"""Monthly acquisition cohorts and their retention.

cohort = calendar month (in the rules' time zone) of a customer's first won deal; ``period`` k = months
since then; ``retention[c, k]`` = share of cohort c with at least one won deal in month c+k (k = 0 is
100 %). Cells after the as-of month do not exist (not 0). ``revenue`` is the cohort's revenue in that month.
"""

from __future__ import annotations

import polars as pl


def month_index(day: pl.Expr) -> pl.Expr:
    """Months since year 0 of a date expression: consecutive months differ by one."""
    return day.dt.year().cast(pl.Int32) * 12 + day.dt.month().cast(pl.Int32) - 1


def month_label(index: pl.Expr) -> pl.Expr:
    year = (index // 12).cast(pl.String)
    month = (index % 12 + 1).cast(pl.String).str.zfill(2)
    return pl.concat_str([year, pl.lit("-"), month])


def cohort_table(purchases: pl.DataFrame, as_of_month: int, months: int) -> pl.DataFrame:
    """``purchases``: ``customer``, ``month`` (see :func:`month_index`), ``amount``. Long format:
    cohort, size, period, active, retention, revenue — sorted by cohort then period."""
    schema = {
        "cohort": pl.String,
        "size": pl.Int64,
        "period": pl.Int32,
        "active": pl.Int64,
        "retention": pl.Float64,
        "revenue": pl.Float64,
    }
    if purchases.is_empty():
        return pl.DataFrame(schema=schema)
    first = purchases.group_by("customer").agg(pl.col("month").min().alias("cohort_month"))
    first = first.filter(pl.col("cohort_month") > as_of_month - months)
    sizes = first.group_by("cohort_month").agg(pl.len().cast(pl.Int64).alias("size"))
    activity = (
        purchases.filter(pl.col("month") <= as_of_month)
        .join(first, on="customer")
        .group_by("cohort_month", "month")
        .agg(pl.col("customer").n_unique().cast(pl.Int64).alias("active"), pl.col("amount").sum().alias("revenue"))
    )
    grid = sizes.join(pl.DataFrame({"period": pl.int_range(0, months, eager=True).cast(pl.Int32)}), how="cross").filter(
        pl.col("cohort_month") + pl.col("period") <= as_of_month
    )
    table = (
        grid.with_columns(month=pl.col("cohort_month") + pl.col("period"))
        .join(activity, on=["cohort_month", "month"], how="left")
        .with_columns(pl.col("active").fill_null(0), pl.col("revenue").fill_null(0.0))
        .with_columns(retention=pl.col("active") / pl.col("size"), cohort=month_label(pl.col("cohort_month")))
        .sort("cohort_month", "period")
    )
    return table.select(list(schema)).cast(schema)  # type: ignore[arg-type]
