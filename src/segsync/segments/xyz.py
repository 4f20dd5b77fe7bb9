"""XYZ classes: how regular a customer's purchases are.

Two variants over the last ``periods`` complete periods (month by default), zero-filled from
max(series start, first purchase period) so that new customers are not penalised by leading zeros:

* **revenue** — coefficient of variation of per-period revenue (population σ / mean): X ≤ 10 %, Y ≤ 25 %,
  Z above. Scale-free: multiplying every amount by a constant changes nothing.
* **frequency** (B2B) — share of periods with at least one won deal: X ≥ 0.75, Y ≥ 0.25, Z below.

Customers that cannot be classified get their own class instead of a misleading Z: ``once`` (a single
purchase ever), ``new`` (fewer than ``min_periods`` periods since the first purchase), ``none`` (no purchase
within the series). Leads (no purchase at all) get no class (``None``).
"""

from __future__ import annotations

import numpy as np
import polars as pl


def coefficient_of_variation(series: np.ndarray) -> float:
    """Population CV of one zero-filled series (for explanations and tests); NaN when the mean is 0."""
    series = np.asarray(series, dtype=np.float64)
    mean = series.mean() if series.size else 0.0
    return float(series.std() / mean) if mean > 0 else float("nan")


def xyz_classes(
    *,
    purchases: np.ndarray,
    periods: np.ndarray,
    active_periods: np.ndarray,
    revenue: np.ndarray,
    cv: np.ndarray,
    frequency: np.ndarray,
    min_periods: int,
    cv_x: float,
    cv_y: float,
    active_x: float,
    active_y: float,
) -> np.ndarray:
    """Class per customer. ``periods``: length of the customer's series; ``active_periods``: periods with a
    purchase; ``revenue``: series total; ``cv``: its CV; ``frequency``: True where the frequency variant
    applies."""
    purchases = np.asarray(purchases)
    periods = np.asarray(periods)
    share = np.divide(active_periods, periods, out=np.zeros(len(periods), dtype=np.float64), where=periods > 0)
    by_cv = np.where(cv <= cv_x + 1e-12, "X", np.where(cv <= cv_y + 1e-12, "Y", "Z"))
    by_share = np.where(share >= active_x - 1e-12, "X", np.where(share >= active_y - 1e-12, "Y", "Z"))
    cls = np.where(frequency, by_share, by_cv).astype(object)
    no_series = np.where(frequency, active_periods <= 0, ~(revenue > 0))
    cls = np.where(no_series, "none", cls)
    cls = np.where(periods < min_periods, "new", cls)
    cls = np.where(purchases == 1, "once", cls)
    return np.where(purchases <= 0, None, cls)


def abc_xyz(abc: pl.Series, xyz: pl.Series) -> pl.Series:
    """``AX`` … ``CZ``; ``A-new`` / ``B-once`` / ``C-none`` for the special XYZ classes; ``N`` without revenue."""
    frame = pl.DataFrame({"abc": abc, "xyz": xyz}, schema={"abc": pl.String, "xyz": pl.String})
    a, x = pl.col("abc"), pl.col("xyz")
    out = (
        pl.when(x.is_null())
        .then(None)
        .when(a == "N")
        .then(pl.lit("N"))
        .when(x.is_in(["X", "Y", "Z"]))
        .then(a + x)
        .otherwise(a + "-" + x)
    )
    return frame.select(out.alias("abc_xyz")).to_series()
