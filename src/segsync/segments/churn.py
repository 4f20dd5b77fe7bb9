"""The customer's usual purchase cycle and the rule-based churn flag ("longer than the usual cycle").

cycle = the customer's own median gap between purchase days when it has at least ``min_gaps`` gaps; else
the median over customers of its segment (ABC class) that have their own; else the global median; else
the configured default. ``churn_flag`` = days since the last purchase > factor × cycle.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def usual_cycle(
    own_median_gap: np.ndarray,
    gaps: np.ndarray,
    segment: np.ndarray,
    *,
    min_gaps: int,
    default_days: float,
    start: str = "per_customer",
) -> tuple[np.ndarray, np.ndarray]:
    """Cycle in days and where it came from, per customer (``start`` skips the first levels)."""
    own = np.asarray(own_median_gap, dtype=np.float64)
    has_own = (np.asarray(gaps) >= min_gaps) & np.isfinite(own) & (own > 0)
    frame = pl.DataFrame({"segment": pl.Series(segment, dtype=pl.String), "own": np.where(has_own, own, np.nan)})
    frame = frame.with_columns(pl.col("own").fill_nan(None))
    seg_median = frame.select(pl.col("own").median().over("segment")).to_series().to_numpy().astype(np.float64)
    seg_median = np.where(frame["segment"].is_null().to_numpy(), np.nan, seg_median)
    global_values = own[has_own]
    global_median = float(np.median(global_values)) if global_values.size else np.nan

    cycle = np.full(own.size, float(default_days))
    source = np.full(own.size, "default", dtype=object)
    levels = ["per_customer", "segment", "global"]
    use = levels[levels.index(start) :]
    # fill from the least to the most specific so that the most specific available wins
    if "global" in use and np.isfinite(global_median):
        cycle[:] = global_median
        source[:] = "global"
    if "segment" in use:
        ok = np.isfinite(seg_median)
        cycle[ok] = seg_median[ok]
        source[ok] = "segment"
    if "per_customer" in use:
        cycle[has_own] = own[has_own]
        source[has_own] = "own"
    return cycle, source


def churn_flag(recency_days: np.ndarray, cycle_days: np.ndarray, factor: float) -> np.ndarray:
    """True when silent for longer than ``factor`` × the usual cycle (False for leads: no recency)."""
    recency = np.asarray(recency_days, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(recency, nan=-1.0) > factor * np.asarray(cycle_days, dtype=np.float64)
