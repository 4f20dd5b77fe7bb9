"""RFM: recency, frequency and monetary scores at value-based quantile cut points, and segment maps.

Scores follow G. Martin's (2018) value-threshold scheme rather than ``pandas.qcut`` on ranks: cut points are
the 1/bins … (bins−1)/bins quantiles of the values, a value at or below the first cut scores 1 (for recency:
the most recent days score highest), and so on. Equal values always share a score and the result does not
depend on row order; bins may be uneven when values are heavily tied (F is mostly 1). A dimension with a
single distinct value carries no information and gets the middle score.

Maps are data (see :mod:`segsync.segments.names`): rules with score sets for R, F and optionally M; the
first matching rule names the segment, no match is ``other``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segsync.config.segments import parse_scores


@dataclass(frozen=True)
class RfmScores:
    r: np.ndarray
    f: np.ndarray
    m: np.ndarray
    cuts: dict[str, list[float]]  # recorded per run: the cut points actually used


def quantile_cuts(values: np.ndarray, bins: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.empty(0)
    return np.quantile(values, np.arange(1, bins) / bins)


def score(values: np.ndarray, bins: int, *, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores 1..bins (``reverse``: low values score high) and the cut points used."""
    values = np.asarray(values, dtype=np.float64)
    cuts = quantile_cuts(values, bins)
    if values.size == 0:
        return np.empty(0, dtype=np.int64), cuts
    if _single_value(values):
        return np.full(values.size, (bins + 1) // 2, dtype=np.int64), cuts
    # number of cut points strictly below the value: x <= q1 → 1, q1 < x <= q2 → 2, ...
    scores = np.searchsorted(cuts, values, side="left") + 1
    if reverse:
        scores = bins + 1 - scores
    return scores.astype(np.int64), cuts


def _single_value(values: np.ndarray) -> bool:
    """``np.unique(values).size == 1`` (NaN counts as one value) without numpy's hash-based unique."""
    nan = np.isnan(values)
    finite = values[~nan]
    if finite.size == 0:
        return bool(nan.any())
    return not nan.any() and bool(finite.min() == finite.max())


def rfm_scores(recency_days: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, bins: int = 5) -> RfmScores:
    r, r_cuts = score(recency_days, bins, reverse=True)
    f, f_cuts = score(frequency, bins)
    m, m_cuts = score(monetary, bins)
    return RfmScores(r, f, m, {"r": r_cuts.tolist(), "f": f_cuts.tolist(), "m": m_cuts.tolist()})


def rfm_segments(r: np.ndarray, f: np.ndarray, m: np.ndarray, rules: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Segment key per customer: the first rule whose R, F (and M, when given) score sets all match."""
    out = np.full(np.shape(r), "other", dtype=object)
    free = np.ones(np.shape(r), dtype=bool)
    for rule in rules:
        hit = free & np.isin(r, sorted(parse_scores(rule["r"]))) & np.isin(f, sorted(parse_scores(rule["f"])))
        if rule.get("m") is not None:
            hit &= np.isin(m, sorted(parse_scores(rule["m"])))
        out[hit] = rule["name"]
        free &= ~hit
    return out
