"""ABC classes by revenue share (Pareto): who brings the money.

Customers are ranked by revenue (descending); a customer's class is decided by the cumulative share of
revenue *before* it is added: ``A`` while that share is below ``a`` (0.80), ``B`` below ``b`` (0.95), else
``C``. So the customer who crosses 80 % is still A, and one dominant customer makes A non-empty. Customers
with equal revenue always share a class (the first of the tie block decides), so the result does not depend
on row order. Zero or negative revenue is ``N`` (no sales) and is not in the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AbcResult:
    labels: np.ndarray  # object array of "A" | "B" | "C" | "N"
    share: np.ndarray  # customer's share of the total (0 for N)
    cum_share: np.ndarray  # cumulative share before the customer's tie block (NaN for N)


def abc_classes(revenue: np.ndarray, a: float = 0.80, b: float = 0.95) -> AbcResult:
    revenue = np.nan_to_num(np.asarray(revenue, dtype=np.float64), nan=0.0)
    n = revenue.size
    labels = np.full(n, "N", dtype=object)
    share = np.zeros(n)
    cum_share = np.full(n, np.nan)
    positive = revenue > 0
    total = revenue[positive].sum()
    if total <= 0:
        return AbcResult(labels, share, cum_share)
    idx = np.flatnonzero(positive)
    values = revenue[idx]
    order = np.argsort(-values, kind="stable")
    ordered = values[order]
    before = (np.cumsum(ordered) - ordered) / total
    # a tie block takes the cumulative share of its first member
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    block_first = np.maximum.accumulate(np.where(starts, np.arange(ordered.size), 0))
    before = before[block_first]
    cls = np.where(before < a, "A", np.where(before < b, "B", "C")).astype(object)
    labels[idx[order]] = cls
    share[idx] = values / total
    cum_share[idx[order]] = before
    return AbcResult(labels, share, cum_share)
