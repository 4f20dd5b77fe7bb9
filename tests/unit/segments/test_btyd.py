"""BG/NBD, MBG/NBD and Gamma-Gamma against the published CDNOW estimates and against lifetimes."""

from __future__ import annotations

from pathlib import Path

import lifetimes
import numpy as np
import polars as pl
import pytest
from scipy.optimize import check_grad

from segsync.segments import btyd

DATA = Path(lifetimes.__file__).parent / "datasets"


@pytest.fixture(scope="module")
def cdnow() -> pl.DataFrame:
    return pl.read_csv(DATA / "cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_spend() -> pl.DataFrame:
    return pl.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")


def _xtT(frame: pl.DataFrame):
    return frame["frequency"].to_numpy(), frame["recency"].to_numpy(), frame["T"].to_numpy()


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow):
    fit = btyd.fit_bgnbd(*_xtT(cdnow))
    assert fit.fitted
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert fit.params[name] == pytest.approx(published, rel=0.01), name
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert fit.customers == 2357
    assert fit.repeaters == 946


def test_mbgnbd_matches_the_reference_fit(cdnow):
    fit = btyd.fit_mbgnbd(*_xtT(cdnow))
    for name, published in {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}.items():
        assert fit.params[name] == pytest.approx(published, rel=0.01), name
    assert fit.log_likelihood == pytest.approx(-9582.13, abs=0.05)


def test_gamma_gamma_reproduces_fader_hardie_note_025(cdnow_spend):
    x, m = cdnow_spend["x"].to_numpy(), cdnow_spend["zbar"].to_numpy()
    fit = btyd.fit_gamma_gamma(x, m)
    for name, published in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert fit.params[name] == pytest.approx(published, rel=0.01), name
    assert fit.log_likelihood == pytest.approx(-4055.92, abs=0.05)
    # Hardie's spreadsheet: conditional expected spend of the first ten customers
    spend = btyd.expected_spend(fit.values(), x[:10], m[:10])
    expected = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    np.testing.assert_allclose(spend, expected, atol=0.02)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_per_customer_quantities_equal_lifetimes_on_the_same_parameters(cdnow, model):
    x, t_x, T = _xtT(cdnow)
    fitter = (lifetimes.BetaGeoFitter if model == "bgnbd" else lifetimes.ModifiedBetaGeoFitter)()
    fitter.fit(x, t_x, T)
    params = tuple(float(fitter.params_[k]) for k in ("r", "alpha", "a", "b"))
    np.testing.assert_allclose(
        btyd.p_alive(model, params, x, t_x, T),
        np.asarray(fitter.conditional_probability_alive(x, t_x, T)),
        atol=1e-6,
        rtol=0,
    )
    np.testing.assert_allclose(
        btyd.expected_purchases(model, params, 39.0, x, t_x, T),
        np.asarray(fitter.conditional_expected_number_of_purchases_up_to_time(39.0, x, t_x, T)),
        atol=1e-6,
        rtol=0,
    )


def test_worked_examples_from_the_literature(cdnow):
    params = (0.243, 4.414, 0.793, 2.426)
    # customer 0001: x=2, t_x=30.43, T=38.86 → P(alive) 0.7266 (rounded params), E[Y(39)] ≈ 1.226
    assert btyd.p_alive("bgnbd", params, 2, 30.43, 38.86) == pytest.approx(0.7266, abs=2e-3)
    assert btyd.expected_purchases("bgnbd", params, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-3)
    # P(no purchase in the next 39 weeks), checked by Monte Carlo in the research notes
    exact = (0.2425945, 4.4136019, 0.7929199, 2.4258881)
    assert btyd.p_no_purchase("bgnbd", exact, 39, 2, 30.43, 38.86) == pytest.approx(0.4454, abs=1e-3)
    assert btyd.p_no_purchase("bgnbd", exact, 13, 7, 29.43, 38.86) == pytest.approx(0.4540, abs=1e-3)
    # BG/NBD cannot judge one-time buyers (FHL 2005 §6); MBG/NBD can
    assert btyd.p_alive("bgnbd", exact, 0, 0, 38.86) == 1.0
    assert btyd.p_alive("mbgnbd", (0.525, 6.183, 0.891, 1.614), 0, 0, 38.86) < 1.0


def test_expected_purchases_are_finite_for_heavy_buyers():
    """The Euler-transformed 2F1 does not overflow for large x (the "#NUM!" problem)."""
    params = (0.243, 4.414, 0.793, 2.426)
    values = btyd.expected_purchases("bgnbd", params, 52.0, np.array([50.0, 200.0]), np.array([38.0, 38.5]), 39.0)
    assert np.all(np.isfinite(values)) and np.all(values > 0)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_analytic_gradient_matches_finite_differences(cdnow, model):
    x, t_x, T = _xtT(cdnow)
    ll = {"bgnbd": btyd._bgnbd_ll, "mbgnbd": btyd._mbgnbd_ll}[model]

    def value(p):
        return float(ll(p, x, t_x, T)[0].sum())

    def grad(p):
        return ll(p, x, t_x, T)[1].sum(axis=1)

    point = np.array([0.3, 5.0, 0.8, 2.5])
    assert check_grad(value, grad, point) / np.linalg.norm(grad(point)) < 1e-4


def test_gamma_gamma_gradient_matches_finite_differences(cdnow_spend):
    keep = cdnow_spend.filter(pl.col("x") > 0)
    x, m = keep["x"].to_numpy(), keep["zbar"].to_numpy()

    def value(p):
        return float(btyd._gg_ll(p, x, m)[0].sum())

    def grad(p):
        return btyd._gg_ll(p, x, m)[1].sum(axis=1)

    point = np.array([6.0, 3.5, 15.0])
    assert check_grad(value, grad, point) / np.linalg.norm(grad(point)) < 1e-4


def test_grouping_identical_rows_gives_the_same_fit(cdnow):
    x, t_x, T = _xtT(cdnow)
    grouped = btyd.group_rows(x, t_x, T)
    assert grouped.weights.sum() == len(x)
    gx, gt, gT = grouped.columns
    np.testing.assert_array_equal(gx[grouped.inverse], x)
    np.testing.assert_array_equal(gT[grouped.inverse], T)
    a = btyd.fit_bgnbd(x, t_x, T)
    b = btyd.fit_bgnbd(gx, gt, gT, grouped.weights)
    assert a.params == pytest.approx(b.params, rel=1e-9)


def _simulate(n: int, params: tuple[float, float, float, float], seed: int, horizon: float = 1000.0):
    """Vectorized BG/NBD: λ ~ Gamma(r, α), p ~ Beta(a, b); first purchase at a uniform time, then exponential
    gaps, dropping out after each repeat purchase with probability p."""
    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    start = rng.uniform(0, horizon * 0.7, n)
    T = horizon - start
    x = np.zeros(n)
    t_x = np.zeros(n)
    clock = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1.0 / lam[idx])
        bought = clock[idx] <= T[idx]
        hit = idx[bought]
        x[hit] += 1
        t_x[hit] = clock[hit]
        alive[idx[~bought]] = False
        alive[hit[rng.random(hit.size) < p[hit]]] = False
    return x, t_x, T


@pytest.mark.parametrize("model", ["bgnbd"])
def test_recovers_the_parameters_it_was_simulated_with(model):
    truth = (0.75, 40.0, 1.6, 7.0)
    x, t_x, T = _simulate(60_000, truth, seed=7)
    t_x = np.where(x > 0, np.maximum(np.round(t_x, 1), 0.1), 0.0)  # recorded at 0.1-day precision
    fit = btyd.fit_frequency_model(model, x, t_x, np.round(T, 1))
    assert fit.fitted
    for name, value in zip(("r", "alpha", "a", "b"), truth, strict=True):
        assert fit.params[name] == pytest.approx(value, rel=0.15), name


def test_degenerate_data_is_not_fitted_with_a_reason():
    one_timers = btyd.fit_bgnbd(np.zeros(50), np.zeros(50), np.full(50, 30.0))
    assert one_timers.status == "not_fitted" and "repeat buyers" in one_timers.detail
    few = btyd.fit_bgnbd(np.r_[np.zeros(50), [1, 2]], np.r_[np.zeros(50), [3, 9]], np.full(52, 30.0), min_repeaters=20)
    assert few.status == "not_fitted" and "2" in few.detail
    assert few.params == {} and few.log_likelihood is None
    assert btyd.fit_bgnbd([], [], []).status == "not_fitted"
    inconsistent = btyd.fit_bgnbd([1, 1], [5, 50], [10, 10])
    assert inconsistent.status == "not_fitted" and "inconsistent" in inconsistent.detail
    same_spend = btyd.fit_gamma_gamma([1, 2, 3], [10.0, 10.0, 10.0])
    assert same_spend.status == "not_fitted"


def test_clv_discounts_monthly_purchases():
    params = (0.243, 4.414 * 7, 0.793, 2.426)  # α in days
    x, t_x, T = np.array([2.0]), np.array([213.0]), np.array([272.0])
    one = btyd.clv("bgnbd", params, np.array([10.0]), x, t_x, T, months=1, discount=0.0)
    assert one[0] == pytest.approx(10.0 * btyd.expected_purchases("bgnbd", params, 30.0, x, t_x, T)[0])
    discounted = btyd.clv("bgnbd", params, np.array([10.0]), x, t_x, T, months=12, discount=0.1)
    plain = btyd.clv("bgnbd", params, np.array([10.0]), x, t_x, T, months=12, discount=0.0)
    assert 0 < discounted[0] < plain[0]


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_fast_objective_equals_the_per_row_formulas(cdnow, model):
    x, t_x, T = _xtT(cdnow)
    grouped = btyd.group_rows(x, t_x, T)
    gx, gt, gT = grouped.columns
    params = np.array([0.3, 5.0, 0.8, 2.5])
    ll, grad = {"bgnbd": btyd._bgnbd_ll, "mbgnbd": btyd._mbgnbd_ll}[model](params, gx, gt, gT)
    value, gradient = btyd._Objective(model, gx, gt, gT, grouped.weights)(params)
    assert value == pytest.approx(float(ll @ grouped.weights), rel=1e-12)
    np.testing.assert_allclose(gradient, grad @ grouped.weights, rtol=1e-10)


def test_fast_spend_objective_equals_the_per_row_formula(cdnow_spend):
    keep = cdnow_spend.filter(pl.col("x") > 0)
    x, m = keep["x"].to_numpy().astype(float), keep["zbar"].to_numpy()
    params = np.array([6.0, 3.5, 15.0])
    ll, grad = btyd._gg_ll(params, x, m)
    value, gradient = btyd._SpendObjective(x, m, np.ones_like(x))(params)
    assert value == pytest.approx(float(ll.sum()), rel=1e-12)
    np.testing.assert_allclose(gradient, grad.sum(axis=1), rtol=1e-10)
