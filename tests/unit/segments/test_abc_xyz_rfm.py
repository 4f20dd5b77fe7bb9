"""ABC, XYZ and RFM on hand-computed fixtures, with ties and edges, plus their invariants."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.segments.abc import abc_classes
from segsync.segments.names import DEFAULT_RFM_MAP, rfm_rules
from segsync.segments.rfm import rfm_scores, rfm_segments, score
from segsync.segments.xyz import abc_xyz, coefficient_of_variation, xyz_classes

# ---------------------------------------------------------------------------------------------- ABC


def test_abc_by_cumulative_share_before_the_customer():
    # shares 50, 30, 10, 5, 5 % → cumulative before: 0, 50, 80, 90, 95(→ tie block starts at 90)
    result = abc_classes(np.array([50.0, 30.0, 10.0, 5.0, 5.0]))
    assert list(result.labels) == ["A", "A", "B", "B", "B"]
    np.testing.assert_allclose(result.cum_share, [0.0, 0.5, 0.8, 0.9, 0.9])
    np.testing.assert_allclose(result.share, [0.5, 0.3, 0.1, 0.05, 0.05])


def test_abc_crossing_customer_stays_in_a_and_a_dominant_customer_is_a():
    assert list(abc_classes(np.array([70.0, 20.0, 10.0])).labels) == ["A", "A", "B"]
    assert list(abc_classes(np.array([99.0, 1.0])).labels) == ["A", "C"]


def test_abc_zero_negative_and_missing_revenue_is_n_and_not_in_the_total():
    result = abc_classes(np.array([0.0, -10.0, np.nan, 60.0, 40.0]), a=0.5)
    assert list(result.labels) == ["N", "N", "N", "A", "B"]
    assert result.share[3] == pytest.approx(0.6)
    assert list(abc_classes(np.array([0.0, 0.0])).labels) == ["N", "N"]
    assert abc_classes(np.array([])).labels.size == 0


def test_abc_ties_share_a_class():
    # four equal customers: cumulative before 0, 25, 50, 75 % → all take the first one's class (A)
    assert set(abc_classes(np.full(4, 10.0)).labels) == {"A"}
    # 40, 30, 30 with A < 30 %: both 30s start at 40 % → both B (not B and C by row order)
    result = abc_classes(np.array([40.0, 30.0, 30.0]), a=0.3, b=0.6)
    assert list(result.labels) == ["A", "B", "B"]


revenues = st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=60)


@given(revenues, st.randoms())
@settings(max_examples=150, deadline=None)
def test_abc_is_invariant_under_permutation(values, rnd):
    order = list(range(len(values)))
    rnd.shuffle(order)
    base = abc_classes(np.array(values)).labels
    shuffled = abc_classes(np.array(values)[order]).labels
    assert list(shuffled) == [base[i] for i in order]


@given(revenues)
@settings(max_examples=150, deadline=None)
def test_abc_is_monotone_in_revenue(values):
    labels = abc_classes(np.array(values)).labels
    rank = {"A": 0, "B": 1, "C": 2, "N": 3}
    pairs = sorted(zip(values, labels, strict=True), key=lambda p: -p[0])
    ranks = [rank[label] for _, label in pairs]
    assert ranks == sorted(ranks)


# ---------------------------------------------------------------------------------------------- XYZ


def _xyz(**kw):
    n = len(kw["purchases"])
    defaults = {
        "periods": np.full(n, 12),
        "active_periods": np.full(n, 12),
        "revenue": np.full(n, 100.0),
        "cv": np.zeros(n),
        "frequency": np.zeros(n, dtype=bool),
        "min_periods": 3,
        "cv_x": 0.10,
        "cv_y": 0.25,
        "active_x": 0.75,
        "active_y": 0.25,
    }
    defaults.update({k: np.asarray(v) if isinstance(v, list) else v for k, v in kw.items()})
    return list(xyz_classes(**defaults))


def test_coefficient_of_variation_hand_computed():
    # mean 100, population σ of (90, 110, 100, 100) = sqrt(50) → CV 7.07 %
    assert coefficient_of_variation(np.array([90.0, 110.0, 100.0, 100.0])) == pytest.approx(np.sqrt(50) / 100)
    assert np.isnan(coefficient_of_variation(np.zeros(3)))


def test_xyz_thresholds_are_inclusive():
    assert _xyz(purchases=[5, 5, 5, 5], cv=[0.0, 0.10, 0.25, 0.26]) == ["X", "X", "Y", "Z"]


def test_xyz_special_classes():
    got = _xyz(
        purchases=[0, 1, 4, 4, 4],
        periods=[0, 12, 2, 12, 12],
        revenue=[0.0, 10.0, 10.0, 0.0, 10.0],
        cv=[np.nan, 0.0, 0.0, np.nan, 0.05],
    )
    assert got == [None, "once", "new", "none", "X"]


def test_xyz_frequency_variant_by_share_of_active_periods():
    got = _xyz(
        purchases=[9, 9, 9, 9],
        active_periods=[9, 8, 3, 2],
        cv=[9.0, 9.0, 9.0, 9.0],
        frequency=np.ones(4, dtype=bool),
    )
    assert got == ["X", "Y", "Y", "Z"]  # 9/12 = 75 %, 8/12, 3/12 = 25 %, 2/12


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=3, max_size=24), st.floats(0.01, 1e4))
@settings(max_examples=150, deadline=None)
def test_xyz_cv_is_scale_invariant(series, factor):
    values = np.array(series)
    if values.mean() <= 0 or values.mean() * factor <= 0:
        return
    assert coefficient_of_variation(values * factor) == pytest.approx(
        coefficient_of_variation(values), rel=1e-9, abs=1e-12
    )


def test_abc_xyz_labels():
    abc = pl.Series(["A", "B", "N", "C", "A"])
    xyz = pl.Series(["X", "new", "Z", None, "once"])
    assert abc_xyz(abc, xyz).to_list() == ["AX", "B-new", "N", None, "A-once"]


# ---------------------------------------------------------------------------------------------- RFM


def test_scores_at_value_quintiles_ties_share_a_score():
    values = np.array([1, 1, 1, 1, 2, 2, 3, 5, 8, 13], dtype=float)
    scores, cuts = score(values, 5)
    # quantiles (linear): 1, 1.6, 2.4, 5.6 → x ≤ q20 → 1 ...
    np.testing.assert_allclose(cuts, np.quantile(values, [0.2, 0.4, 0.6, 0.8]))
    assert list(scores) == [1, 1, 1, 1, 3, 3, 4, 4, 5, 5]
    assert len(set(scores[:4])) == 1  # tied values, one score


def test_recency_scores_reverse_and_degenerate_dimensions_get_the_middle():
    r, _ = score(np.array([1.0, 10.0, 100.0, 1000.0, 5.0]), 5, reverse=True)
    assert r[0] == 5 and r[3] == 1
    flat, _ = score(np.array([4.0, 4.0, 4.0]), 5)
    assert list(flat) == [3, 3, 3]
    assert score(np.array([]), 5)[0].size == 0


@given(st.lists(st.integers(0, 30), min_size=1, max_size=80), st.sampled_from([3, 4, 5]))
@settings(max_examples=150, deadline=None)
def test_scores_are_monotone_bounded_and_order_free(values, bins):
    arr = np.array(values, dtype=float)
    scores, _ = score(arr, bins)
    assert scores.min() >= 1 and scores.max() <= bins
    order = np.argsort(arr, kind="stable")
    assert np.all(np.diff(scores[order]) >= 0)
    perm = np.random.default_rng(0).permutation(len(arr))
    assert list(score(arr[perm], bins)[0]) == list(scores[perm])


def test_default_map_is_a_partition_of_the_25_cells_with_an_optional_lost_corner():
    r, f = np.meshgrid(np.arange(1, 6), np.arange(1, 6), indexing="ij")
    r, f = r.ravel(), f.ravel()
    plain = rfm_segments(r, f, np.ones_like(r), list(DEFAULT_RFM_MAP))
    assert "other" not in set(plain)
    assert len(set(plain)) == 10
    cell = dict(zip(zip(r.tolist(), f.tolist(), strict=True), plain, strict=True))
    assert cell[(5, 5)] == "champions" and cell[(5, 1)] == "new_customers" and cell[(1, 5)] == "cant_lose"
    assert cell[(1, 1)] == "hibernating" and cell[(3, 3)] == "need_attention" and cell[(4, 1)] == "promising"
    split = rfm_segments(r, f, np.ones_like(r), rfm_rules("default", split_lost=True))
    split_cell = dict(zip(zip(r.tolist(), f.tolist(), strict=True), split, strict=True))
    assert split_cell[(1, 1)] == "lost" and split_cell[(2, 1)] == "hibernating"


def test_custom_map_first_match_wins_and_unmatched_is_other():
    rules = [{"name": "top", "r": "4-5", "f": "4-5", "m": "5"}, {"name": "recent", "r": "5", "f": "1-5"}]
    got = rfm_segments(np.array([5, 5, 1]), np.array([5, 5, 1]), np.array([5, 3, 1]), rules)
    assert list(got) == ["top", "recent", "other"]


def test_rfm_scores_record_cut_points():
    result = rfm_scores(np.array([1.0, 30, 300]), np.array([1.0, 2, 3]), np.array([10.0, 20, 30]), 3)
    assert set(result.cuts) == {"r", "f", "m"} and len(result.cuts["m"]) == 2
    assert list(result.r) == [3, 2, 1]
