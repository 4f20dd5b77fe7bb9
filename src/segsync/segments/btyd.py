"""BG/NBD, MBG/NBD and Gamma-Gamma ("buy 'til you die") fitted by maximum likelihood.

Why in-house rather than ``lifetimes``: the library is archived, its autograd path is slow on a million
customers, and the models are ~a page of numpy each. Formulas and the CDNOW reference numbers are in
``shared/api/analytics.md`` §5; the tests check this module against ``lifetimes`` and the published estimates.

Speed comes from two things: customers with identical ``(x, t_x, T)`` are fitted once with a weight, and
the optimizer gets the analytic gradient (digamma terms) instead of a numerical one.

Notation (any time unit, the caller's choice; the engine uses days): ``x`` repeat purchases (distinct
purchase periods minus one), ``t_x`` time of the last purchase since the first, ``T`` time since the first
purchase to the end of observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

Model = Literal["bgnbd", "mbgnbd"]
FitStatus = Literal["fitted", "not_fitted"]

_LOG_BOUND = 12.0
_WARM_START_ROWS = 100_000  # |log parameter| beyond this means the likelihood has no interior optimum
_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "mbgnbd": ("r", "alpha", "a", "b"),
    "gamma_gamma": ("p", "q", "gamma"),
}


@dataclass(frozen=True)
class Fit:
    """A fitted model, or the reason it could not be fitted (never NaN parameters)."""

    model: str
    status: FitStatus
    params: dict[str, float] = field(default_factory=dict)
    log_likelihood: float | None = None
    detail: str = ""
    customers: int = 0
    repeaters: int = 0

    @property
    def fitted(self) -> bool:
        return self.status == "fitted"

    def values(self) -> tuple[float, ...]:
        return tuple(self.params[name] for name in _PARAM_NAMES[self.model])


def not_fitted(model: str, reason: str, *, customers: int = 0, repeaters: int = 0) -> Fit:
    return Fit(model=model, status="not_fitted", detail=reason, customers=customers, repeaters=repeaters)


@dataclass(frozen=True)
class Grouped:
    """Distinct rows with their multiplicity; ``inverse`` maps every input row to its distinct row."""

    columns: tuple[np.ndarray, ...]
    weights: np.ndarray
    inverse: np.ndarray


def group_rows(*columns: np.ndarray, inverse: bool = True) -> Grouped:
    """Collapse identical rows (e.g. ``(x, t_x, T)``) so that the likelihood is evaluated once per pattern.
    ``inverse=False`` skips the row → pattern map (an argsort) when only patterns and weights are needed."""
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    if arrays[0].size == 0:
        return Grouped(tuple(np.empty(0) for _ in arrays), np.empty(0), np.empty(0, dtype=np.int64))
    packed = _pack_integers(arrays)
    if packed is not None and not inverse:  # a plain sort of the keys is enough
        key, radices = packed
        ordered = np.sort(key)
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        distinct = ordered[starts]
        counts = np.diff(np.r_[starts, ordered.size])
        out = []
        for radix in reversed(radices):
            out.append((distinct % radix).astype(np.float64))
            distinct = distinct // radix
        return Grouped(tuple(reversed(out)), counts.astype(np.float64), np.empty(0, dtype=np.int64))
    if packed is not None:  # whole numbers (days): one int64 key per row, one sort
        key, radices = packed
        distinct, inverse_, counts = np.unique(key, return_inverse=True, return_counts=True)
        out = []
        for radix in reversed(radices):
            out.append((distinct % radix).astype(np.float64))
            distinct = distinct // radix
        return Grouped(tuple(reversed(out)), counts.astype(np.float64), inverse_.reshape(-1))
    stacked = np.column_stack(arrays)
    order = np.lexsort(stacked.T[::-1])
    ordered = stacked[order]
    new = np.empty(len(ordered), dtype=bool)
    new[0] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=new[1:])
    group_of_sorted = np.cumsum(new) - 1
    rows = np.empty(len(order), dtype=np.int64)
    rows[order] = group_of_sorted
    weights = np.bincount(group_of_sorted).astype(np.float64)
    distinct = ordered[new]
    return Grouped(tuple(distinct[:, i].copy() for i in range(distinct.shape[1])), weights, rows)


def _pack_integers(arrays: list[np.ndarray]) -> tuple[np.ndarray, list[int]] | None:
    radices = []
    for a in arrays:
        if not np.all(np.isfinite(a)) or a.min() < 0 or not np.all(a == np.floor(a)):
            return None
        radices.append(int(a.max()) + 1)
    if float(np.prod([float(r) for r in radices])) >= 2.0**62:
        return None
    key = np.zeros(arrays[0].size, dtype=np.int64)
    for a, radix in zip(arrays, radices, strict=True):
        key = key * radix + a.astype(np.int64)
    return key, radices


# --------------------------------------------------------------------------------------------------
# log-likelihoods with gradients (w.r.t. the natural parameters)


def _bgnbd_ll(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, alpha, a, b = params
    rx = r + x
    ln_aT = np.log(alpha + T)
    ln_atx = np.log(alpha + tx)
    a1 = gammaln(rx) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -rx * ln_aT
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1.0, 1.0)
    a4 = np.where(repeat, np.log(a) - np.log(bx1) - rx * ln_atx, -np.inf)
    top = np.logaddexp(a3, a4)
    ll = a1 + a2 + top
    s4 = np.exp(a4 - top)  # share of the "dropped out after the last purchase" branch
    s3 = 1.0 - s4
    d_r = digamma(rx) - digamma(r) + np.log(alpha) - s3 * ln_aT - s4 * ln_atx
    d_alpha = r / alpha - rx * (s3 / (alpha + T) + s4 / (alpha + tx))
    d_a = digamma(a + b) - digamma(a + b + x) + s4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - s4 / bx1
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


def _mbgnbd_ll(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, alpha, a, b = params
    rx = r + x
    ln_aT = np.log(alpha + T)
    ln_atx = np.log(alpha + tx)
    common = (
        gammaln(rx)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        - gammaln(b)
        - gammaln(a + b + x + 1.0)
        + gammaln(b + x)
    )
    a3 = np.log(b + x) - rx * ln_aT
    a4 = np.log(a) - rx * ln_atx
    top = np.logaddexp(a3, a4)
    ll = common + top
    s4 = np.exp(a4 - top)
    s3 = 1.0 - s4
    d_r = digamma(rx) - digamma(r) + np.log(alpha) - s3 * ln_aT - s4 * ln_atx
    d_alpha = r / alpha - rx * (s3 / (alpha + T) + s4 / (alpha + tx))
    d_a = digamma(a + b) - digamma(a + b + x + 1.0) + s4 / a
    d_b = digamma(a + b) - digamma(b) - digamma(a + b + x + 1.0) + digamma(b + x) + s3 / (b + x)
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``; for whole numbers in a modest range by a lookup table
    instead of a sort (the objective is built on ~700k distinct rows per fit)."""
    if values.size and values.min() >= 0 and values.max() < 2**22 and np.all(values == np.floor(values)):
        whole = values.astype(np.int64)
        present = np.zeros(int(whole.max()) + 1, dtype=bool)
        present[whole] = True
        found = np.flatnonzero(present)
        position = np.cumsum(present) - 1
        return found.astype(np.float64), position[whole]
    return np.unique(values, return_inverse=True)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b without BLAS: a multi-threaded BLAS ``ddot`` spin-waits on a busy machine and turned a 1 ms
    product into 20 ms in measurements here; einsum stays in numpy's own loop."""
    return float(np.einsum("i,i->", a, b))


class _Objective:
    """Mean negative log-likelihood of BG/NBD or MBG/NBD and its gradient, fast on a million rows.

    Same value as the per-row formulas above (the tests check it), reorganized so that per-row work is a few
    vector passes: every row's log-likelihood is ``K(x) − (r+x)·ln(α+T) + [branch]·softplus(z)`` with
    ``z = c(x) − (r+x)·(ln(α+t_x) − ln(α+T))``; ``K`` and ``c`` depend on x only and are evaluated per distinct
    x, ``ln(α+T)`` terms summed per distinct T, and logs of α+t / α+T computed per distinct time then gathered.
    The branch (death after the last purchase) exists for x > 0 (BG/NBD) or always (MBG/NBD).
    """

    def __init__(self, model: Model, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray, scale: float = 1.0):
        """``tx`` and ``T`` are multiplied by ``scale`` here (after finding their distinct values: for whole
        days that needs no sort)."""
        self.model = model
        self.total = float(w.sum())
        self.ux, ix = _distinct(x)
        self.wx = np.bincount(ix, weights=w, minlength=self.ux.size)
        self.uT, iT = _distinct(T)
        self.uT = self.uT * scale
        self.wT = np.bincount(iT, weights=w, minlength=self.uT.size)
        self.wxT = np.bincount(iT, weights=w * x, minlength=self.uT.size)
        branch = x > 0 if model == "bgnbd" else np.ones(x.size, dtype=bool)
        self.ut, it = _distinct(tx[branch])
        self.ut = self.ut * scale
        self.b_x = x[branch]
        self.b_w = w[branch]
        self.b_ix, self.b_iT, self.b_it = ix[branch], iT[branch], it
        self.b_wx = self.b_w * self.b_x

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = params
        ux, wx = self.ux, self.wx
        mbg = self.model == "mbgnbd"
        shift = 1.0 if mbg else 0.0  # MBG/NBD's Beta terms use x+1
        k = gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) - gammaln(b)
        k += gammaln(b + ux) - gammaln(a + b + ux + shift)
        bx = b + ux if mbg else np.maximum(b + ux - 1.0, 1e-300)  # (b+x) or (b+x−1), per distinct x
        if mbg:
            k += np.log(bx)
        c = np.log(a) - np.log(bx)
        ln_T = np.log(alpha + self.uT)
        value = _dot(wx, k) - _dot(ln_T, r * self.wT + self.wxT)

        # the branch rows (np.take and one exp: this loop is the whole cost of a fit)
        lT = np.take(ln_T, self.b_iT)
        d = np.take(np.log(alpha + self.ut), self.b_it) - lT
        rx = r + self.b_x
        z = np.take(c, self.b_ix) - rx * d
        e = np.exp(-np.abs(z))
        value += _dot(self.b_w, np.maximum(z, 0.0) + np.log1p(e))  # softplus(z)
        s4 = np.where(z >= 0, 1.0, e) / (1.0 + e)  # expit(z)
        ws4 = self.b_w * s4
        inv_d = np.take(1.0 / (alpha + self.ut), self.b_it) - np.take(1.0 / (alpha + self.uT), self.b_iT)
        s4_by_x = np.bincount(self.b_ix, weights=ws4, minlength=ux.size)

        psi_abx = digamma(a + b + ux + shift)
        g_r = _dot(wx, digamma(r + ux) - digamma(r) + np.log(alpha)) - _dot(ln_T, self.wT) - _dot(ws4, d)
        g_alpha = r / alpha * self.total - _dot(r * self.wT + self.wxT, 1.0 / (alpha + self.uT)) - _dot(ws4 * rx, inv_d)
        g_a = _dot(wx, digamma(a + b) - psi_abx) + float(ws4.sum()) / a
        dk_b = digamma(a + b) + digamma(b + ux) - digamma(b) - psi_abx + (1.0 / bx if mbg else 0.0)
        g_b = _dot(wx, dk_b) - _dot(s4_by_x, 1.0 / bx)
        grad = np.array([g_r, g_alpha, g_a, g_b])
        return value, grad


def _gg_ll(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q, g = params
    px = p * x
    ln_gxm = np.log(g + x * m)
    ln_m = np.log(m)
    ln_x = np.log(x)
    ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + (px - 1.0) * ln_m + px * ln_x - (px + q) * ln_gxm
    d_p = x * (digamma(px + q) - digamma(px) + ln_m + ln_x - ln_gxm)
    d_q = digamma(px + q) - digamma(q) + np.log(g) - ln_gxm
    d_g = q / g - (px + q) / (g + x * m)
    return ll, np.stack([d_p, d_q, d_g])


_LL = {"bgnbd": _bgnbd_ll, "mbgnbd": _mbgnbd_ll}


def log_likelihood(model: Model, params: tuple[float, ...], x, t_x, T, weights=None) -> float:
    """Total log-likelihood of ``params`` on the data (for reports and tests)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    ll, _ = _LL[model](np.asarray(params, dtype=np.float64), x, t_x, T)
    return _dot(w, ll)


def _optimize(objective, n_params: int, x0: np.ndarray | None = None):
    start = np.zeros(n_params) if x0 is None else x0
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * n_params
    return minimize(
        objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000, "ftol": 1e-12}
    )


def _check_result(model: str, res, log_params: np.ndarray) -> str | None:
    if not np.all(np.isfinite(log_params)) or not np.isfinite(res.fun):
        return "the optimizer produced non-finite values"
    at_bound = [name for name, v in zip(_PARAM_NAMES[model], log_params, strict=True) if abs(v) >= _LOG_BOUND - 1e-6]
    if at_bound:
        return f"no interior maximum: {', '.join(at_bound)} ran to the bound (data do not identify the model)"
    if not res.success and "ABNORMAL" not in str(res.message).upper():
        return f"the optimizer did not converge: {res.message}"
    return None


def fit_frequency_model(
    model: Model,
    x,
    t_x,
    T,
    weights=None,
    *,
    min_repeaters: int = 1,
) -> Fit:
    """Fit BG/NBD (``bgnbd``) or MBG/NBD (``mbgnbd``) by MLE over log-parameters with L-BFGS-B.

    Rows may already be grouped (pass ``weights``); otherwise identical rows are grouped here. Too few
    repeat buyers, a likelihood without an interior maximum or a failed optimizer give ``not_fitted``.
    """
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    if weights is None:
        grouped = group_rows(x, t_x, T, inverse=False)
        (x, t_x, T), w = grouped.columns, grouped.weights
    else:
        w = np.asarray(weights, dtype=np.float64)
    customers = int(w.sum())
    repeaters = int(w[x > 0].sum())
    if customers == 0:
        return not_fitted(model, "no customers with purchases")
    if repeaters < max(min_repeaters, 1):
        return not_fitted(
            model,
            f"too few repeat buyers: {repeaters} (need at least {max(min_repeaters, 1)})",
            customers=customers,
            repeaters=repeaters,
        )
    bad = (x < 0) | (t_x < 0) | (t_x > T) | ((x > 0) & (t_x <= 0))
    if bad.any():
        return not_fitted(model, f"{int(w[bad].sum())} customers have inconsistent (x, t_x, T)", customers=customers)
    if float(T.max()) <= 0:
        return not_fitted(model, "observation period is empty (T = 0 for everyone)", customers=customers)
    scale = 10.0 / float(T.max())  # time rescaled to ~[0, 10]: the optimizer sees well-conditioned numbers
    likelihood = _Objective(model, x, t_x, T, w, scale)
    total = w.sum()

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        with np.errstate(all="ignore"):
            ll, grad = likelihood(params)
        value = -ll / total
        gradient = -grad * params / total
        if not np.isfinite(value):
            return 1e300, np.zeros_like(log_params)
        return value, gradient

    start = None
    if len(x) > _WARM_START_ROWS:
        # a fit on every k-th distinct row lands near the optimum for a fraction of the cost, so the full
        # likelihood needs only a few iterations (deterministic: no random sampling)
        step = len(x) // (_WARM_START_ROWS // 4)
        warm = _Objective(model, x[::step], t_x[::step], T[::step], w[::step], scale)
        warm_total = w[::step].sum()

        def warm_objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            with np.errstate(all="ignore"):
                ll, grad = warm(params)
            if not np.isfinite(ll):
                return 1e300, np.zeros_like(log_params)
            return -ll / warm_total, -grad * params / warm_total

        guess = _optimize(warm_objective, 4)
        if np.all(np.isfinite(guess.x)) and np.all(np.abs(guess.x) < _LOG_BOUND - 1):
            start = guess.x
    res = _optimize(objective, 4, start)
    problem = _check_result(model, res, res.x)
    if problem:
        return not_fitted(model, problem, customers=customers, repeaters=repeaters)
    r, alpha, a, b = np.exp(res.x)
    alpha /= scale
    params = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
    # in unscaled time: scaling t by s multiplies each λ^x term by s^x
    ll = -float(res.fun) * float(total) + float(np.log(scale)) * _dot(w, x)
    return Fit(
        model=model,
        status="fitted",
        params=params,
        log_likelihood=ll,
        detail=f"converged in {res.nit} iterations over {len(x)} distinct (x, t_x, T)",
        customers=customers,
        repeaters=repeaters,
    )


def fit_bgnbd(x, t_x, T, weights=None, *, min_repeaters: int = 1) -> Fit:
    return fit_frequency_model("bgnbd", x, t_x, T, weights, min_repeaters=min_repeaters)


def fit_mbgnbd(x, t_x, T, weights=None, *, min_repeaters: int = 1) -> Fit:
    return fit_frequency_model("mbgnbd", x, t_x, T, weights, min_repeaters=min_repeaters)


# --------------------------------------------------------------------------------------------------
# per-customer quantities


def p_alive(model: Model, params: tuple[float, ...], x, t_x, T) -> np.ndarray:
    """Probability that the customer is still "alive" at T (BG/NBD: 1 for one-time buyers)."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    ln_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    if model == "bgnbd":
        with np.errstate(divide="ignore", invalid="ignore"):
            ln_odds = np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-300)) + ln_ratio
        return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(ln_odds, 700.0))), 1.0)
    ln_odds = np.log(a) - np.log(b + x) + ln_ratio
    return 1.0 / (1.0 + np.exp(np.minimum(ln_odds, 700.0)))


def expected_purchases(model: Model, params: tuple[float, ...], t, x, t_x, T) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005 eq. 10; MBG/NBD analogue).

    The hypergeometric term is evaluated after Euler's transformation,
    ``(1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)``, which has no overflow for
    large x (the "#NUM!" problem of Fader & Hardie's note 027).
    """
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    # the hypergeometric part depends on (x, T) only: evaluate it once per distinct pair, which is a few
    # thousand pairs for a million customers (p_alive carries the t_x dependence)
    pairs = group_rows(x.ravel(), T.ravel())
    return _if_alive(model, params, float(t), pairs).reshape(x.shape) * p_alive(model, params, x, t_x, T)


def _if_alive(model: Model, params: tuple[float, ...], t: float, pairs: Grouped) -> np.ndarray:
    """E[purchases in (T, T+t] | alive] per row, from its distinct ``(x, T)`` pair."""
    r, alpha, a, b = params
    ux, uT = pairs.columns
    z = t / (alpha + uT + t)
    if model == "bgnbd":
        c = a + b + ux - 1.0
        hyp = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    else:
        c = a + b + ux
        hyp = hyp2f1(a + b - r, a - 1.0, c, z)
    with np.errstate(invalid="ignore"):  # 0 · ∞ where 2F1 overflows: NaN, reported as unknown (NULL)
        tail = (1.0 - z) ** (a - 1.0) * hyp
    return (c / (a - 1.0) * (1.0 - tail))[pairs.inverse]


def p_no_purchase(model: Model, params: tuple[float, ...], t, x, t_x, T) -> np.ndarray:
    """P(no purchase in (T, T+t]) = (1 − P_alive) + P_alive · ((α+T)/(α+T+t))^(r+x) — exact for both models:
    alive customers only drop out at a purchase, and λ | alive ~ Gamma(r+x, α+T)."""
    r, alpha, _a, _b = params
    x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
    alive = p_alive(model, params, x, t_x, T)
    stay_quiet = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + np.asarray(t, dtype=np.float64))))
    return (1.0 - alive) + alive * stay_quiet


# --------------------------------------------------------------------------------------------------
# Gamma-Gamma spend model


class _SpendObjective:
    """Gamma-Gamma log-likelihood and gradient with the lnΓ/ψ terms per distinct x (same value as
    :func:`_gg_ll`, which the tests compare it with); per row only ``ln(γ + x·m)`` is recomputed."""

    def __init__(self, x: np.ndarray, m: np.ndarray, w: np.ndarray):
        self.ux, ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(ix, weights=w, minlength=self.ux.size)
        self.ln_ux = np.log(self.ux)
        self.w, self.wx_row, self.xm = w, w * x, x * m
        ln_m = np.log(m)
        self.s0, self.s1 = _dot(w, ln_m), _dot(w * x, ln_m)
        self.total = float(w.sum())

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, g = params
        ux, wx = self.ux, self.wx
        px = p * ux
        L = np.log(g + self.xm)
        R = 1.0 / (g + self.xm)
        wL, wxL = _dot(self.w, L), _dot(self.wx_row, L)
        per_x = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + px * self.ln_ux
        value = _dot(wx, per_x) + p * self.s1 - self.s0 - p * wxL - q * wL
        g_p = _dot(wx, ux * (digamma(px + q) - digamma(px) + self.ln_ux)) + self.s1 - wxL
        g_q = _dot(wx, digamma(px + q) - digamma(q)) + np.log(g) * self.total - wL
        g_g = q * self.total / g - p * _dot(self.wx_row, R) - q * _dot(self.w, R)
        return value, np.array([g_p, g_q, g_g])


def fit_gamma_gamma(x, m, weights=None, *, min_repeaters: int = 1) -> Fit:
    """Fit the Gamma-Gamma model on repeat buyers (``x`` > 0 repeat purchases, ``m`` their mean value > 0)."""
    x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    w = np.ones(int(keep.sum())) if weights is None else np.asarray(weights, dtype=np.float64)[keep]
    x, m = x[keep], m[keep]
    repeaters = int(w.sum())
    if repeaters < max(min_repeaters, 2):
        return not_fitted(
            "gamma_gamma", f"too few repeat buyers with a positive spend: {repeaters}", repeaters=repeaters
        )
    if np.ptp(m) == 0:
        return not_fitted("gamma_gamma", "every repeat buyer has the same mean spend", repeaters=repeaters)
    scale = float(np.average(m, weights=w))  # spend in units of its mean: γ is rescaled back below
    likelihood = _SpendObjective(x, m / scale, w)
    total = w.sum()

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        with np.errstate(all="ignore"):
            ll, grad = likelihood(params)
        value = -ll / total
        if not np.isfinite(value):
            return 1e300, np.zeros_like(log_params)
        return value, -grad * params / total

    res = _optimize(objective, 3)
    problem = _check_result("gamma_gamma", res, res.x)
    if problem:
        return not_fitted("gamma_gamma", problem, repeaters=repeaters)
    p, q, g = np.exp(res.x)
    if q <= 1.0:
        return not_fitted("gamma_gamma", f"q = {q:.3f} ≤ 1: the mean spend is not finite", repeaters=repeaters)
    g *= scale
    ll, _ = _gg_ll(np.array([p, q, g]), x, m)
    return Fit(
        model="gamma_gamma",
        status="fitted",
        params={"p": float(p), "q": float(q), "gamma": float(g)},
        log_likelihood=_dot(w, ll),
        detail=f"converged in {res.nit} iterations over {len(x)} repeat buyers",
        customers=repeaters,
        repeaters=repeaters,
    )


def expected_spend(params: tuple[float, ...], x, m) -> np.ndarray:
    """E[M | x, m_x]: shrinks a customer's mean spend towards the population mean p·γ/(q−1)."""
    p, q, g = params
    x = np.asarray(x, dtype=np.float64)
    m = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0)
    m = np.where(x > 0, m, 0.0)
    return (p * g + p * x * m) / (p * x + q - 1.0)


def clv(
    model: Model,
    params: tuple[float, ...],
    spend: np.ndarray,
    x,
    t_x,
    T,
    *,
    months: int,
    discount: float,
    days_per_period: float = 30.0,
) -> np.ndarray:
    """Discounted expected revenue over ``months`` periods (lifetimes' ``_customer_lifetime_value``)."""
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    pairs = group_rows(x.ravel(), T.ravel())  # once for every month (as expected_purchases would each time)
    alive = p_alive(model, params, x, t_x, T)
    total = np.zeros(np.shape(x), dtype=np.float64)
    previous = np.zeros_like(total)
    for i in range(1, months + 1):
        current = _if_alive(model, params, float(i * days_per_period), pairs).reshape(x.shape) * alive
        total += (current - previous) * spend / (1.0 + discount) ** i
        previous = current
    return total
