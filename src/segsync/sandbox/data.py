"""Deterministic synthetic CRM data with known ground truth (``generate_world``).

Why this shape: analytics must be checkable against the truth, so every customer's purchases come
from a BG/NBD process (Fader, Hardie & Lee 2005) with population parameters saved in
``World.params`` and each customer's rate, dropout probability and final alive state in
``World.truth``. Connectors must survive real CRMs, so the data carries the dirt real portals have
(duplicates, empty names, dirty amounts, foreign currencies, deals without a customer, future dates),
each dirty row tagged in a ``dirt`` column so tests can find it.

Everything is vectorized (numpy + polars): "huge" (1M customers / 10M deals) generates in seconds.
The same (seed, size, customers, now) always gives the same world (same numpy/polars versions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import numpy as np
import polars as pl
from scipy.optimize import brentq

from segsync.sandbox import names as N
from segsync.sandbox.world import World

DAY = 86_400


@dataclass(frozen=True)
class SizePreset:
    """Target counts. ``deals`` is hit exactly unless the purchase process alone overshoots it."""

    customers: int
    companies: int
    contacts: int  # all contact records: B2C customers, company employees, duplicates
    deals: int
    history_days: int


SIZE_PRESETS: dict[str, SizePreset] = {
    "tiny": SizePreset(customers=100, companies=25, contacts=130, deals=500, history_days=730),
    "small": SizePreset(customers=1_000, companies=200, contacts=1_300, deals=5_000, history_days=1095),
    "demo": SizePreset(customers=3_000, companies=600, contacts=3_900, deals=15_000, history_days=1095),
    "bench-b24": SizePreset(customers=34_000, companies=10_000, contacts=50_000, deals=200_000, history_days=1095),
    "bench-amo": SizePreset(customers=52_000, companies=5_000, contacts=60_000, deals=200_000, history_days=1095),
    "huge": SizePreset(customers=1_000_000, companies=200_000, contacts=1_300_000, deals=10_000_000, history_days=1825),
}

#: True BG/NBD population parameters (time unit: days). ``alpha`` is calibrated per size so the
#: expected number of won deals matches the preset; r, a, b are fixed.
BGNBD_R = 0.75
BGNBD_A = 1.6
BGNBD_B = 7.0
#: Spend: per-customer mean of log(amount in RUB) ~ Normal(mu_mean, mu_sd); each order ~ LogNormal(mu_i, sigma).
SPEND = {
    "contact": {"mu_mean": math.log(4_500), "mu_sd": 0.5, "sigma": 0.45},
    "company": {"mu_mean": math.log(60_000), "mu_sd": 0.7, "sigma": 0.55},
}
LEAD_SHARE = 0.15  # customers who never bought (only open/lost deals or nothing)
WON_SHARE = 0.72  # of all deals, produced by the purchase process
OPEN_SHARE_OF_REST = 0.35
DUPLICATE_SHARE = 0.02  # of B2C customers
EMPTY_NAME_SHARE = 0.015
DIRTY_AMOUNT_SHARE = 0.03
NO_CUSTOMER_SHARE = 0.005
FUTURE_DATE_SHARE = 0.002
BASE_CURRENCY = "RUB"
CURRENCIES = (("RUB", 1.0, True), ("USD", 92.5, False), ("EUR", 100.3, False), ("KZT", 0.19, False))
PIPELINES = (
    (0, "Основная воронка", 10),
    (1, "Оптовые продажи (B2B)", 20),
    (2, "Повторные продажи", 30),
)
STAGES = {
    0: (
        ("NEW", "Новая", "open"),
        ("PREPARATION", "Подготовка документов", "open"),
        ("PREPAYMENT_INVOICE", "Счёт на предоплату", "open"),
        ("EXECUTING", "В работе", "open"),
        ("FINAL_INVOICE", "Финальный счёт", "open"),
        ("WON", "Сделка успешна", "won"),
        ("LOSE", "Сделка провалена", "lost"),
        ("APOLOGY", "Анализ причины провала", "lost"),
    ),
    1: (
        ("NEW", "Новая заявка", "open"),
        ("PREPARATION", "Согласование КП", "open"),
        ("EXECUTING", "Договор и оплата", "open"),
        ("WON", "Отгружено", "won"),
        ("LOSE", "Отказ", "lost"),
    ),
    2: (
        ("NEW", "Новая", "open"),
        ("EXECUTING", "В работе", "open"),
        ("WON", "Успешно", "won"),
        ("LOSE", "Провал", "lost"),
    ),
}

STAGE_CODES = list(dict.fromkeys(code for stages in STAGES.values() for code, _, _ in stages))


@dataclass(frozen=True)
class _Plan:
    size: str
    companies: int
    b2c: int
    duplicates: int
    company_contacts: int
    deals: int
    history_days: int

    @property
    def customers(self) -> int:
        return self.companies + self.b2c


def plan_size(size: str | None = None, customers: int | None = None) -> _Plan:
    """Resolve a preset (default "demo") optionally rescaled to ``customers``; validates the counts."""
    name = size or "demo"
    if name not in SIZE_PRESETS:
        raise ValueError(f"unknown size {name!r}; choose one of {', '.join(SIZE_PRESETS)}")
    preset = SIZE_PRESETS[name]
    if customers is not None:
        if customers < 2:
            raise ValueError("customers must be at least 2")
        f = customers / preset.customers
        preset = replace(
            preset,
            customers=customers,
            companies=max(1, round(preset.companies * f)),
            contacts=max(2, round(preset.contacts * f)),
            deals=max(2, round(preset.deals * f)),
        )
    companies = min(preset.companies, preset.customers - 1)
    b2c = preset.customers - companies
    duplicates = round(b2c * DUPLICATE_SHARE)
    company_contacts = max(companies, preset.contacts - b2c - duplicates)
    return _Plan(name, companies, b2c, duplicates, company_contacts, preset.deals, preset.history_days)


def default_now() -> datetime:
    """Today 00:00 UTC: worlds generated on the same day are identical."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def generate_world(
    *, seed: int, size: str | None = None, customers: int | None = None, now: datetime | None = None
) -> World:
    """Generate a world. ``size`` is a key of :data:`SIZE_PRESETS`; ``customers`` rescales it."""
    plan = plan_size(size, customers)
    now = (now or default_now()).astimezone(UTC)
    return _Builder(plan, seed, now).build()


# --------------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, plan: _Plan, seed: int, now: datetime):
        self.plan = plan
        self.seed = seed
        self.now = now
        self.now_s = int(now.timestamp())
        self.h_s = plan.history_days * DAY
        streams = np.random.SeedSequence([seed, 0x5E65]).spawn(12)
        self.rng = {
            name: np.random.default_rng(s)
            for name, s in zip(
                (
                    "managers",
                    "customers",
                    "calibrate",
                    "process",
                    "spend",
                    "deals",
                    "contacts",
                    "companies",
                    "activities",
                    "dirt",
                    "text",
                    "ids",
                ),
                streams,
                strict=True,
            )
        }

    # -- orchestration ---------------------------------------------------------------------------
    def build(self) -> World:
        self._managers()
        self._customers()
        self._purchases()
        self._other_deals()
        self._companies()
        self._contacts()
        self._activities()
        self._assign_ids()
        return World(
            seed=self.seed,
            now=self.now,
            base_currency=BASE_CURRENCY,
            managers=self.managers_df,
            pipelines=pl.DataFrame(
                {"id": [p[0] for p in PIPELINES], "name": [p[1] for p in PIPELINES], "sort": [p[2] for p in PIPELINES]},
                schema={"id": pl.Int64, "name": pl.String, "sort": pl.Int64},
            ),
            stages=pl.DataFrame(
                [
                    {"pipeline_id": pid, "code": code, "name": name, "sort": (i + 1) * 10, "semantic": sem}
                    for pid, stages in STAGES.items()
                    for i, (code, name, sem) in enumerate(stages)
                ],
                schema={
                    "pipeline_id": pl.Int64,
                    "code": pl.String,
                    "name": pl.String,
                    "sort": pl.Int64,
                    "semantic": pl.String,
                },
            ),
            companies=self.companies_df,
            contacts=self.contacts_df,
            deals=self.deals_df,
            activities=self.activities_df,
            currencies=pl.DataFrame(
                {
                    "code": [c[0] for c in CURRENCIES],
                    "rate": [c[1] for c in CURRENCIES],
                    "is_base": [c[2] for c in CURRENCIES],
                }
            ),
            truth=self.truth_df,
            params=self.params,
        )

    # -- people ------------------------------------------------------------------------------------
    def _managers(self) -> None:
        rng = self.rng["managers"]
        n = int(np.clip(self.plan.customers // 250, 3, 150))
        female = rng.random(n) < 0.5
        first_m = rng.integers(0, len(N.MALE_FIRST), n)
        first_f = rng.integers(0, len(N.FEMALE_FIRST), n)
        last = rng.integers(0, len(N.LAST), n)
        names, emails = [], []
        for i in range(n):
            first = N.FEMALE_FIRST[first_f[i]] if female[i] else N.MALE_FIRST[first_m[i]]
            surname = N.feminine(N.LAST[last[i]]) if female[i] else N.LAST[last[i]]
            names.append(f"{first} {surname}")
            emails.append(f"{N.translit(first)[0]}.{N.translit(surname)}{i + 1}@sandbox-company.ru")
        active = rng.random(n) >= 0.12
        active[0] = True  # the portal owner / admin
        if active.all():
            active[-1] = False  # at least one former employee who still owns customers
        self.n_managers = n
        self.manager_active = active
        self.managers_df = pl.DataFrame(
            {
                "id": np.arange(1, n + 1, dtype=np.int64),
                "name": names,
                "email": emails,
                "active": active,
                "is_admin": np.arange(n) == 0,
            }
        )

    def _customers(self) -> None:
        rng = self.rng["customers"]
        p = self.plan
        n = p.customers
        self.kind_company = np.arange(n) < p.companies  # customers 0..companies-1 are companies
        self.is_buyer = rng.random(n) >= LEAD_SHARE
        self.is_buyer[rng.integers(0, n)] = True  # never an all-lead world
        # managers: the admin owns few customers, the rest share them unevenly
        w = rng.gamma(2.0, 1.0, self.n_managers)
        w[0] *= 0.2
        self.cust_manager = rng.choice(np.arange(1, self.n_managers + 1), size=n, p=w / w.sum())
        self.cust_source = rng.choice(len(N.SOURCES), size=n, p=_norm(N.SOURCE_WEIGHTS))
        self.cust_city = rng.choice(len(N.CITIES), size=n, p=_norm(N.CITY_WEIGHTS))
        utm = rng.integers(-len(N.UTM_SOURCES), len(N.UTM_SOURCES), n)  # negative = no UTM (half)
        self.cust_utm = np.where(utm >= 0, utm, -1)

    # -- the purchase process ------------------------------------------------------------------------
    def _purchases(self) -> None:
        p = self.plan
        rng = self.rng["process"]
        n = p.customers
        buyers = np.flatnonzero(self.is_buyer)
        nb = buyers.size
        other_dirt = max(1, round(p.deals * NO_CUSTOMER_SHARE)) + max(1, round(p.deals * FUTURE_DATE_SHARE))
        won_target = max(nb, round(p.deals * WON_SHARE))
        won_target = min(won_target, max(nb, p.deals - other_dirt))
        alpha = self._calibrate_alpha(target_repeats=won_target / nb - 1.0)
        self.alpha = alpha

        g = rng.gamma(BGNBD_R, 1.0, nb)
        lam = g / alpha  # purchases per day while alive
        drop = rng.beta(BGNBD_A, BGNBD_B, nb)
        T = rng.uniform(1.0, p.history_days, nb)  # days from first purchase to `now`
        n_events = rng.poisson(lam * T)
        dies_after = rng.geometric(drop)  # the repeat purchase after which the customer drops out
        x = np.minimum(n_events, dies_after)
        alive = n_events < dies_after
        # times of the first x of n_events uniform order statistics on (0, T) via exponential spacings
        total = int(x.sum())
        e = rng.exponential(1.0, total)
        cs = np.cumsum(e)
        starts = np.concatenate(([0], np.cumsum(x)[:-1]))
        base = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
        S = cs - np.repeat(base, x)
        S_x = np.zeros(nb)
        has = x > 0
        S_x[has] = S[starts[has] + x[has] - 1]
        rest = rng.gamma(np.maximum(n_events + 1 - x, 1).astype(float), 1.0)
        rep_frac = S / np.repeat(S_x + rest, x)
        first_s = self.now_s - (T * DAY).astype(np.int64)
        rep_s = np.repeat(first_s, x) + (np.repeat(T, x) * rep_frac * DAY).astype(np.int64)

        cust = np.concatenate((buyers, np.repeat(buyers, x)))
        when = np.concatenate((first_s, rep_s))
        order = np.argsort((cust.astype(np.int64) << 32) | (when - when.min()), kind="stable")
        self.won_cust = cust[order]
        self.won_time = when[order]
        self.won_is_first = np.concatenate((np.ones(nb, bool), np.zeros(total, bool)))[order]

        # per-customer truth (indexed by customer index)
        self.rate = np.full(n, np.nan)
        self.dropout = np.full(n, np.nan)
        self.alive = np.zeros(n, bool)
        self.n_purchases = np.zeros(n, np.int64)
        self.first_purchase = np.full(n, -1, np.int64)
        self.last_purchase = np.full(n, -1, np.int64)
        self.rate[buyers] = lam
        self.dropout[buyers] = drop
        self.alive[buyers] = alive
        self.n_purchases[buyers] = 1 + x
        self.first_purchase[buyers] = first_s
        np.maximum.at(self.last_purchase, self.won_cust, self.won_time)

        # spend
        srng = self.rng["spend"]
        mu = np.where(
            self.kind_company,
            srng.normal(SPEND["company"]["mu_mean"], SPEND["company"]["mu_sd"], n),
            srng.normal(SPEND["contact"]["mu_mean"], SPEND["contact"]["mu_sd"], n),
        )
        sigma = np.where(self.kind_company, SPEND["company"]["sigma"], SPEND["contact"]["sigma"])
        self.mu = mu
        amt = np.exp(srng.normal(mu[self.won_cust], sigma[self.won_cust]))
        self.won_amount_rub = np.where(self.kind_company[self.won_cust], np.round(amt, 2), np.round(amt, 0))

        # customer creation: a while before the first purchase (leads: anywhere in the history)
        crng = self.rng["customers"]
        created = np.where(
            self.is_buyer,
            self.first_purchase - (crng.uniform(1, 60, n) * DAY).astype(np.int64),
            self.now_s - (crng.uniform(1, p.history_days, n) * DAY).astype(np.int64),
        )
        self.cust_created = created
        self.params = {
            "model": "BG/NBD",
            "time_unit": "days",
            "r": BGNBD_R,
            "alpha": alpha,
            "a": BGNBD_A,
            "b": BGNBD_B,
            "observation_end": self.now.isoformat(),
            "history_days": p.history_days,
            "spend": {"model": "lognormal", "currency": BASE_CURRENCY, **SPEND},
            "size": p.size,
            "plan": asdict(p),
            "notes": (
                "Each buyer's first purchase is uniform in the history window; repeat purchases are Poisson(rate) "
                "while alive; after each repeat purchase the customer drops out with probability dropout_p. "
                "truth.n_purchases counts the won deals of this process (dirt rows with dirt in "
                "{no_customer, future_date} are not purchases). Amounts in a foreign currency are the RUB amount "
                "divided by that currency's rate."
            ),
        }

    def _calibrate_alpha(self, target_repeats: float) -> float:
        """Solve E[repeat purchases per buyer] = target for alpha (closed form given rate, p, T)."""
        if target_repeats <= 1e-3:
            return 1e7
        rng = self.rng["calibrate"]
        m = 200_000
        g = rng.gamma(BGNBD_R, 1.0, m)
        pdrop = rng.beta(BGNBD_A, BGNBD_B, m)
        T = rng.uniform(1.0, self.plan.history_days, m)

        # E[min(Poisson(mu), Geometric(p))] = (1 - exp(-mu p)) / p
        def excess(log_alpha: float) -> float:
            lam = g / math.exp(log_alpha)
            return float(np.mean(-np.expm1(-lam * pdrop * T) / pdrop)) - target_repeats

        lo, hi = math.log(1e-3), math.log(1e7)
        if excess(lo) <= 0:
            return 1e-3
        return math.exp(brentq(excess, lo, hi, xtol=1e-6))

    # -- deals -----------------------------------------------------------------------------------
    def _other_deals(self) -> None:
        """Won deals from the process + open + lost + dirty rows, as parallel arrays."""
        p = self.plan
        rng = self.rng["deals"]
        n = p.customers
        nw = self.won_cust.size
        n_nocust = max(1, round(p.deals * NO_CUSTOMER_SHARE))
        n_future = max(1, round(p.deals * FUTURE_DATE_SHARE))
        rest = max(0, p.deals - nw - n_nocust - n_future)
        n_open = round(rest * OPEN_SHARE_OF_REST)
        n_lost = rest - n_open

        buyers = np.flatnonzero(self.is_buyer)
        leads = np.flatnonzero(~self.is_buyer)
        alive_buyers = np.flatnonzero(self.alive)

        def pick(k: int, pools: list[tuple[np.ndarray, float]]) -> np.ndarray:
            pools = [(pool, w) for pool, w in pools if pool.size]
            src = rng.choice(len(pools), size=k, p=_norm([w for _, w in pools]))
            out = np.empty(k, np.int64)
            for i, (pool, _) in enumerate(pools):
                sel = src == i
                out[sel] = pool[rng.integers(0, pool.size, int(sel.sum()))]
            return out

        open_cust = pick(n_open, [(alive_buyers, 0.6), (leads, 0.25), (buyers, 0.15)])
        lost_cust = pick(n_lost, [(leads, 0.3), (buyers, 0.7)])
        future_cust = pick(n_future, [(buyers, 1.0)])

        # won: created before closing by a sales cycle, never before the customer existed
        cycle = np.where(self.kind_company[self.won_cust], rng.uniform(0, 45, nw), rng.uniform(0, 10, nw))
        won_created = np.maximum(self.won_time - (cycle * DAY).astype(np.int64), self.cust_created[self.won_cust])
        # open: recent
        oc = self.now_s - (rng.uniform(0, 60, n_open) * DAY).astype(np.int64)
        open_created = np.maximum(oc, self.cust_created[open_cust])
        # lost: anywhere after the customer appeared
        span = np.maximum(self.now_s - DAY - self.cust_created[lost_cust], DAY)
        lost_created = self.cust_created[lost_cust] + (rng.random(n_lost) * span).astype(np.int64)
        lost_closed = np.minimum(lost_created + (rng.uniform(1, 45, n_lost) * DAY).astype(np.int64), self.now_s - 60)
        # dirt: no customer (won, somewhere in the history); future dates (a typo'd year)
        nc_created = self.now_s - (rng.uniform(1, p.history_days, n_nocust) * DAY).astype(np.int64)
        nc_closed = np.minimum(nc_created + (rng.uniform(0, 20, n_nocust) * DAY).astype(np.int64), self.now_s - 60)
        fut_closed = self.now_s + (rng.uniform(30, 3650, n_future) * DAY).astype(np.int64)
        fut_created = np.minimum(fut_closed, self.now_s - (rng.uniform(0, 30, n_future) * DAY).astype(np.int64))

        cust = np.concatenate((self.won_cust, open_cust, lost_cust, np.full(n_nocust, -1), future_cust))
        status = np.concatenate(
            (
                np.zeros(nw, np.int8),
                np.full(n_open, 1, np.int8),
                np.full(n_lost, 2, np.int8),
                np.zeros(n_nocust, np.int8),
                np.zeros(n_future, np.int8),
            )
        )  # 0 won, 1 open, 2 lost
        created = np.concatenate((won_created, open_created, lost_created, nc_created, fut_created))
        closed = np.concatenate((self.won_time, np.full(n_open, -1), lost_closed, nc_closed, fut_closed))
        dirt = np.concatenate(
            (
                np.zeros(nw + n_open + n_lost, np.int8),
                np.full(n_nocust, 1, np.int8),
                np.full(n_future, 2, np.int8),
            )
        )  # 0 none, 1 no_customer, 2 future_date, 3 amount_text
        nd = cust.size
        has_cust = cust >= 0
        safe = np.where(has_cust, cust, 0)
        is_company = has_cust & self.kind_company[safe]

        # amounts (RUB), then currency
        srng = self.rng["spend"]
        mu = np.where(has_cust, self.mu[safe], math.log(20_000))
        sig = np.where(is_company, SPEND["company"]["sigma"], SPEND["contact"]["sigma"])
        amount_rub = np.round(np.exp(srng.normal(mu, sig)), 2)
        amount_rub[:nw] = self.won_amount_rub
        foreign = rng.random(nd) < np.where(is_company, 0.04, 0.01)
        cur_idx = np.where(foreign, rng.integers(1, len(CURRENCIES), nd), 0)
        rates = np.array([c[1] for c in CURRENCIES])
        amount = np.round(amount_rub / rates[cur_idx], 2)
        amount = np.maximum(amount, 0.01)

        # pipelines and stages
        pipe = np.where(is_company, 1, 0)
        to_repeat = rng.random(nd) < 0.2
        pipe = np.where(to_repeat, 2, pipe).astype(np.int64)
        stage = np.zeros(nd, np.int64)  # index into STAGE_CODES
        for pid, stages in STAGES.items():
            opens = np.array([STAGE_CODES.index(s[0]) for s in stages if s[2] == "open"])
            losts = np.array([STAGE_CODES.index(s[0]) for s in stages if s[2] == "lost"])
            sel = pipe == pid
            stage[sel & (status == 0)] = STAGE_CODES.index("WON")
            so = sel & (status == 1)
            stage[so] = opens[rng.integers(0, opens.size, int(so.sum()))]
            sl = sel & (status == 2)
            stage[sl] = losts[rng.integers(0, losts.size, int(sl.sum()))]

        updated = np.where(
            closed >= 0,
            np.minimum(closed, self.now_s) + (rng.uniform(0, 3, nd) * DAY).astype(np.int64),
            created + (rng.random(nd) * np.maximum(self.now_s - created, 1)).astype(np.int64),
        )
        updated = np.minimum(np.maximum(updated, created), np.maximum(self.now_s - 1, created))
        updated = np.where(dirt == 2, np.maximum(created, self.now_s - 3600), updated)

        amount_dirty = (dirt == 0) & (rng.random(nd) < DIRTY_AMOUNT_SHARE)
        dirt = np.where(amount_dirty, 3, dirt).astype(np.int8)

        self.deal = {
            "cust": cust,
            "is_company": is_company,
            "status": status,
            "created": created,
            "closed": closed,
            "updated": updated,
            "pipeline": pipe,
            "stage": stage,
            "amount": amount,
            "currency": cur_idx,
            "dirt": dirt,
            "source": np.where(has_cust, self.cust_source[safe], rng.integers(0, len(N.SOURCES), nd)),
            "responsible": np.where(has_cust, self.cust_manager[safe], rng.integers(1, self.n_managers + 1, nd)),
        }
        self.n_customers = n

    # -- companies and contacts ------------------------------------------------------------------
    def _companies(self) -> None:
        p = self.plan
        rng = self.rng["companies"]
        nc = p.companies
        form = rng.integers(0, len(N.COMPANY_FORMS), nc)
        root = rng.integers(0, len(N.COMPANY_ROOTS), nc)
        suffix = rng.integers(0, len(N.COMPANY_SUFFIXES), nc)
        ip_last = rng.integers(0, len(N.LAST), nc)
        initials = rng.integers(0, 27, (nc, 2))
        letters = np.array(list("АБВГДЕЖЗИКЛМНОПРСТУФХЦЧШЭЮЯ"), dtype=object)
        roots = pl.Series(N.COMPANY_ROOTS)[root]
        suffixes = pl.Series(N.COMPANY_SUFFIXES)[suffix]
        brand = (roots + suffixes).to_numpy()
        forms = np.array(N.COMPANY_FORMS, dtype=object)[form]
        is_ip = forms == "ИП"
        title = np.where(
            is_ip,
            "ИП "
            + np.array(N.LAST, dtype=object)[ip_last]
            + " "
            + letters[initials[:, 0]]
            + "."
            + letters[initials[:, 1]]
            + ".",
            forms + ' "' + brand + '"',
        )
        slug = (
            pl.Series([N.translit(r) for r in N.COMPANY_ROOTS])[root]
            + pl.Series([N.translit(s) for s in N.COMPANY_SUFFIXES])[suffix]
        )
        slug = (slug + pl.Series(np.arange(nc) % 97).cast(pl.String)).to_numpy()
        self.company_slug = slug
        industry = rng.integers(0, len(N.INDUSTRIES), nc)
        # landline: Moscow 495/499, St Petersburg 812, else regional
        city = self.cust_city[:nc]
        area = np.where(
            city == 0, np.where(rng.random(nc) < 0.5, 495, 499), np.where(city == 1, 812, rng.integers(342, 499, nc))
        )
        number = area.astype(np.int64) * 10_000_000 + rng.integers(0, 10_000_000, nc)
        phone1 = _format_phones(number, rng.choice(7, nc, p=_norm((30, 15, 25, 10, 10, 5, 5))))
        has_phone = rng.random(nc) < 0.85
        has_mail = rng.random(nc) < 0.6
        created = self.cust_created[:nc]
        updated = created + (rng.beta(0.7, 2.0, nc) * np.maximum(self.now_s - created, 1)).astype(np.int64)
        self.company = {
            "title": title,
            "industry": np.array([c for c, _ in N.INDUSTRIES], dtype=object)[industry],
            "phone": np.where(has_phone, phone1, None),
            "email": np.where(has_mail, np.where(rng.random(nc) < 0.5, "info@", "sales@") + slug + ".ru", None),
            "created": created,
            "updated": updated,
        }

    def _contacts(self) -> None:
        p = self.plan
        rng = self.rng["contacts"]
        nc, nb2c = p.companies, p.b2c
        # employees per company: 1 + multinomial of the rest, uneven (a few big accounts)
        extra = p.company_contacts - nc
        weights = rng.lognormal(0, 0.8, nc)
        per_company = 1 + (rng.multinomial(extra, weights / weights.sum()) if extra > 0 else np.zeros(nc, np.int64))
        emp_company = np.repeat(np.arange(nc), per_company)
        emp_first = np.concatenate(([0], np.cumsum(per_company)[:-1]))  # index of each company's primary employee
        n_emp = emp_company.size
        # B2C contacts: one per B2C customer (customer index nc..)
        b2c_cust = np.arange(nc, nc + nb2c)
        # duplicates of B2C contacts
        dup_src = rng.choice(nb2c, size=p.duplicates, replace=False) if p.duplicates else np.zeros(0, np.int64)

        total = n_emp + nb2c + p.duplicates
        female = rng.random(total) < 0.5
        fm = rng.integers(0, len(N.MALE_FIRST), total)
        ff = rng.integers(0, len(N.FEMALE_FIRST), total)
        ln = rng.integers(0, len(N.LAST), total)
        # duplicates copy their original's person
        orig_rows = n_emp + dup_src
        dup_rows = np.arange(n_emp + nb2c, total)
        for arr in (female, fm, ff, ln):
            arr[dup_rows] = arr[orig_rows]
        first = np.where(female, np.array(N.FEMALE_FIRST, dtype=object)[ff], np.array(N.MALE_FIRST, dtype=object)[fm])
        last_m = np.array(N.LAST, dtype=object)
        last = np.where(female, np.array([N.feminine(x) for x in N.LAST], dtype=object)[ln], last_m[ln])
        first_lat = np.where(
            female,
            np.array([N.translit(x) for x in N.FEMALE_FIRST], dtype=object)[ff],
            np.array([N.translit(x) for x in N.MALE_FIRST], dtype=object)[fm],
        )
        last_lat = np.where(
            female,
            np.array([N.translit(N.feminine(x)) for x in N.LAST], dtype=object)[ln],
            np.array([N.translit(x) for x in N.LAST], dtype=object)[ln],
        )
        name = first + " " + last
        first_name = first.copy()
        last_name = last.copy()

        # phones: mobile numbers 9XX XXX XX XX, formatted as people type them
        number = 9_000_000_000 + rng.integers(0, 1_000_000_000, total)
        number[dup_rows] = number[orig_rows]
        style = rng.choice(7, total, p=_norm((30, 20, 25, 8, 7, 5, 5)))
        style[dup_rows] = (style[orig_rows] + rng.integers(1, 7, dup_rows.size)) % 7  # a different format
        phone1 = _format_phones(number, style)
        n_phones = rng.choice(3, total, p=(0.06, 0.84, 0.10))
        n_phones[dup_rows] = 1
        number2 = 9_000_000_000 + rng.integers(0, 1_000_000_000, total)
        phone2 = _format_phones(number2, rng.choice(7, total))
        # e-mails: personal for B2C, corporate for employees
        num = rng.integers(1, 999, total).astype(str).astype(object)
        num = np.where(rng.random(total) < 0.5, "", num)
        domain = np.array(N.EMAIL_DOMAINS, dtype=object)[rng.integers(0, len(N.EMAIL_DOMAINS), total)]
        personal = first_lat + "." + last_lat + num + "@" + domain
        is_emp = np.arange(total) < n_emp
        emp_slug = np.full(total, "", dtype=object)
        emp_slug[:n_emp] = self.company_slug[emp_company]
        corporate = _first_char(first_lat) + "." + last_lat + "@" + emp_slug + ".ru"
        email = np.where(is_emp, corporate, personal)
        email[dup_rows] = email[orig_rows]
        case = rng.random(total)
        email = np.where(case < 0.04, _upper(email), np.where(case < 0.08, _capitalize(email), email))
        email[dup_rows] = np.where(
            rng.random(dup_rows.size) < 0.5, _upper(email[orig_rows]), _capitalize(email[orig_rows])
        )
        has_email = rng.random(total) < np.where(np.arange(total) < n_emp, 0.8, 0.65)
        has_email[dup_rows] = rng.random(dup_rows.size) < 0.6

        # dirt on names: duplicates sometimes typed "Фамилия Имя" or upper case; some contacts have no name
        dirt = np.zeros(total, np.int8)  # 0 none, 1 duplicate, 2 empty_name
        dirt[dup_rows] = 1
        variant = rng.random(dup_rows.size)
        name[dup_rows] = np.where(
            variant < 0.4,
            last[dup_rows] + " " + first[dup_rows],
            np.where(variant < 0.6, _upper(name[dup_rows]), name[dup_rows]),
        )
        empty = (dirt == 0) & (rng.random(total) < EMPTY_NAME_SHARE)
        dirt[empty] = 2
        name[empty] = ""
        first_name[empty] = None
        last_name[empty] = None

        # relations, owners, dates
        company_idx = np.full(total, -1, np.int64)
        company_idx[:n_emp] = emp_company
        cust_idx = np.full(total, -1, np.int64)  # which customer this contact *is* (B2C)
        cust_idx[n_emp : n_emp + nb2c] = b2c_cust
        owner_cust = np.concatenate((emp_company, b2c_cust, b2c_cust[dup_src]))  # customer whose data it inherits
        created = np.empty(total, np.int64)
        comp_created = self.cust_created[emp_company]
        created[:n_emp] = comp_created + (
            rng.random(n_emp) * np.minimum(180 * DAY, np.maximum(self.now_s - comp_created, 1))
        ).astype(np.int64)
        # a company's primary contact exists when the company does
        created[emp_first] = comp_created[emp_first]
        created[n_emp : n_emp + nb2c] = self.cust_created[b2c_cust]
        o_created = self.cust_created[b2c_cust[dup_src]]
        created[dup_rows] = o_created + (rng.random(dup_rows.size) * np.maximum(self.now_s - o_created, 1)).astype(
            np.int64
        )
        updated = created + (rng.beta(0.7, 2.0, total) * np.maximum(self.now_s - created, 1)).astype(np.int64)

        self.n_emp = n_emp
        self.emp_first = emp_first
        self.per_company = per_company
        self.contact = {
            "name": name,
            "first_name": first_name,
            "last_name": last_name,
            "company": company_idx,
            "cust": cust_idx,
            "phone1": np.where(n_phones >= 1, phone1, None),
            "phone2": np.where(n_phones >= 2, phone2, None),
            "email": np.where(has_email, email, None),
            "city": self.cust_city[owner_cust],
            "source": self.cust_source[owner_cust],
            "utm": np.where(np.arange(total) < n_emp, -1, self.cust_utm[owner_cust]),
            "responsible": self.cust_manager[owner_cust],
            "created": created,
            "updated": updated,
            "dirt": dirt,
            "dup_of_row": np.concatenate((np.full(n_emp + nb2c, -1), orig_rows)),
        }

        # deal ↔ contact links (contact *rows*; remapped to ids later)
        d = self.deal
        rng2 = self.rng["deals"]
        nd = d["cust"].size
        has_cust = d["cust"] >= 0
        safe = np.where(has_cust, d["cust"], 0)
        prim = np.full(nd, -1, np.int64)
        second = np.full(nd, -1, np.int64)
        b2c = has_cust & ~d["is_company"]
        prim[b2c] = n_emp + (d["cust"][b2c] - nc)
        comp = d["is_company"]
        k = per_company[safe[comp]]
        first_row = emp_first[safe[comp]]
        pick1 = np.where(rng2.random(k.size) < 0.8, 0, rng2.integers(0, k))
        prim_c = first_row + pick1
        no_contact = rng2.random(k.size) < 0.1  # deals linked to the company only
        prim[comp] = np.where(no_contact, -1, prim_c)
        want2 = (~no_contact) & (k > 1) & (rng2.random(k.size) < 0.3)
        other = first_row + (pick1 + rng2.integers(1, np.maximum(k, 2))) % np.maximum(k, 1)
        second[comp] = np.where(want2 & (other != prim_c), other, -1)
        d["contact1"] = prim
        d["contact2"] = second
        d["company"] = np.where(comp, safe, -1)

    # -- activities ------------------------------------------------------------------------------
    def _activities(self) -> None:
        rng = self.rng["activities"]
        n = self.n_customers
        nc = self.plan.companies
        k = rng.poisson(1.2, n) + self.is_buyer
        cust = np.repeat(np.arange(n), k)
        na = cust.size
        created = self.cust_created[cust]
        span = np.maximum(self.now_s - created, DAY)
        at = created + (rng.random(na) * span).astype(np.int64)
        # each buyer's first activity is a touch shortly before its last purchase
        first_of = np.concatenate(([0], np.cumsum(k)[:-1]))
        buyers = np.flatnonzero(self.is_buyer)
        near = first_of[buyers]
        at[near] = np.maximum(
            self.last_purchase[buyers] - (rng.uniform(0, 7, buyers.size) * DAY).astype(np.int64), created[near]
        )
        planned = rng.random(na) < 0.04
        at = np.where(planned, self.now_s + (rng.uniform(1, 14, na) * DAY).astype(np.int64), at)
        kind = rng.choice(3, na, p=(0.55, 0.15, 0.30))  # call, meeting, email
        # owner: B2C → its contact; B2B → the company or its primary contact
        is_comp = cust < nc
        to_contact = is_comp & (rng.random(na) < 0.4)
        owner_kind = np.where(is_comp & ~to_contact, 1, 0)  # 0 contact, 1 company
        owner_row = np.where(
            is_comp,
            np.where(to_contact, self.emp_first[np.minimum(cust, nc - 1)], cust),
            self.n_emp + (cust - nc),
        )
        subjects = {kk: np.array(v, dtype=object) for kk, v in N.ACTIVITY_SUBJECTS.items()}
        subject = np.empty(na, dtype=object)
        for code, key in enumerate(("call", "meeting", "email")):
            sel = kind == code
            subject[sel] = subjects[key][rng.integers(0, subjects[key].size, int(sel.sum()))]
        self.activity = {
            "owner_kind": owner_kind,
            "owner_row": owner_row,
            "kind": kind,
            "subject": subject,
            "at": at,
            "completed": ~planned,
            "responsible": self.cust_manager[cust],
        }

    # -- ids and frames --------------------------------------------------------------------------
    def _assign_ids(self) -> None:
        """IDs grow with creation time, as in a real CRM; then every reference is remapped."""
        nc = self.plan.companies
        comp_created = self.company["created"]
        comp_order = np.argsort(comp_created, kind="stable")
        comp_id = np.empty(nc, np.int64)
        comp_id[comp_order] = np.arange(1, nc + 1)

        c = self.contact
        ncont = c["created"].size
        cont_order = np.argsort(c["created"], kind="stable")
        cont_id = np.empty(ncont, np.int64)
        cont_id[cont_order] = np.arange(1, ncont + 1)

        d = self.deal
        nd = d["created"].size
        deal_order = np.argsort(d["created"], kind="stable")
        deal_id = np.empty(nd, np.int64)
        deal_id[deal_order] = np.arange(1, nd + 1)

        a = self.activity
        na = a["at"].size
        act_order = np.argsort(np.minimum(a["at"], self.now_s), kind="stable")
        act_id = np.empty(na, np.int64)
        act_id[act_order] = np.arange(1, na + 1)

        # companies
        co = self.company
        self.companies_df = _frame(
            {
                "id": comp_id,
                "title": co["title"],
                "industry": co["industry"],
                "city": np.array(N.CITIES, dtype=object)[self.cust_city[:nc]],
                "source": np.array([s for s, _ in N.SOURCES], dtype=object)[self.cust_source[:nc]],
                "responsible_id": self.cust_manager[:nc].astype(np.int64),
                "phones": ("list", [co["phone"]]),
                "emails": ("list", [co["email"]]),
                "created_at": ("dt", co["created"]),
                "updated_at": ("dt", co["updated"]),
            },
            order=comp_order,
        )
        # contacts
        dup_of = np.where(c["dup_of_row"] >= 0, cont_id[np.maximum(c["dup_of_row"], 0)], -1)
        self.contacts_df = _frame(
            {
                "id": cont_id,
                "name": c["name"],
                "first_name": c["first_name"],
                "last_name": c["last_name"],
                "company_id": ("opt", np.where(c["company"] >= 0, comp_id[np.maximum(c["company"], 0)], -1)),
                "phones": ("list", [c["phone1"], c["phone2"]]),
                "emails": ("list", [c["email"]]),
                "city": np.array(N.CITIES, dtype=object)[c["city"]],
                "source": np.array([s for s, _ in N.SOURCES], dtype=object)[c["source"]],
                "utm_source": np.where(
                    c["utm"] >= 0, np.array(N.UTM_SOURCES, dtype=object)[np.maximum(c["utm"], 0)], None
                ),
                "responsible_id": c["responsible"].astype(np.int64),
                "created_at": ("dt", c["created"]),
                "updated_at": ("dt", c["updated"]),
                "duplicate_of": ("opt", dup_of),
                "dirt": np.array([None, "duplicate", "empty_name"], dtype=object)[c["dirt"]],
            },
            order=cont_order,
        )
        # deals
        b2c_row_of_cust = np.full(self.n_customers, -1, np.int64)
        b2c_row_of_cust[nc:] = self.n_emp + np.arange(self.plan.b2c)
        c1 = np.where(d["contact1"] >= 0, cont_id[np.maximum(d["contact1"], 0)], -1)
        c2 = np.where(d["contact2"] >= 0, cont_id[np.maximum(d["contact2"], 0)], -1)
        cents = np.round(d["amount"] * 100).astype(np.int64)
        amount_text = _money_text(cents)
        dirty = np.flatnonzero(d["dirt"] == 3)
        if dirty.size:
            styles = self.rng["dirt"].integers(0, 4, dirty.size)
            amount_text = amount_text.scatter(
                dirty, [_dirty_amount(v, s) for v, s in zip(cents[dirty].tolist(), styles.tolist(), strict=True)]
            )
        title_idx = self.rng["text"].integers(0, len(N.DEAL_TITLES), nd)
        titles = pl.Series(N.DEAL_TITLES)[title_idx] + pl.Series(deal_id).cast(pl.String)
        self.deals_df = _frame(
            {
                "id": deal_id,
                "title": ("series", titles),
                "pipeline_id": d["pipeline"],
                "stage_code": ("cat", d["stage"], STAGE_CODES),
                "status": ("cat", d["status"], ["won", "open", "lost"]),
                "company_id": ("opt", np.where(d["company"] >= 0, comp_id[np.maximum(d["company"], 0)], -1)),
                "contact_ids": ("ilist", [c1, c2]),
                "amount": d["amount"],
                "amount_text": ("series", amount_text),
                "currency": ("cat", d["currency"], [x[0] for x in CURRENCIES]),
                "source": ("cat", d["source"], [s for s, _ in N.SOURCES]),
                "responsible_id": d["responsible"].astype(np.int64),
                "created_at": ("dt", d["created"]),
                "closed_at": ("dt", d["closed"]),
                "updated_at": ("dt", d["updated"]),
                "dirt": ("cat", d["dirt"].astype(np.int64) - 1, ["no_customer", "future_date", "amount_text"]),
            },
            order=deal_order,
        )
        # activities
        owner_id = np.where(
            a["owner_kind"] == 1,
            comp_id[np.minimum(a["owner_row"], nc - 1)],
            cont_id[np.minimum(a["owner_row"], ncont - 1)],
        )
        self.activities_df = _frame(
            {
                "id": act_id,
                "owner_kind": np.array(["contact", "company"], dtype=object)[a["owner_kind"]],
                "owner_id": owner_id,
                "kind": np.array(["call", "meeting", "email"], dtype=object)[a["kind"]],
                "subject": a["subject"],
                "at": ("dt", a["at"]),
                "completed": a["completed"],
                "responsible_id": a["responsible"].astype(np.int64),
            },
            order=act_order,
        )
        # truth, keyed by CRM ids
        kind = np.where(self.kind_company, "company", "contact").astype(object)
        cid = np.empty(self.n_customers, np.int64)
        cid[:nc] = comp_id
        cid[nc:] = cont_id[b2c_row_of_cust[nc:]]
        self.truth_df = _frame(
            {
                "customer_kind": kind,
                "customer_id": cid,
                "purchase_rate": self.rate,
                "dropout_p": self.dropout,
                "alive": ("optbool", self.alive, self.is_buyer),
                "first_purchase": ("dt", self.first_purchase),
                "last_purchase": ("dt", self.last_purchase),
                "n_purchases": self.n_purchases,
                "spend_log_mean": self.mu,
            },
            order=np.lexsort((cid, ~self.kind_company)),
        ).with_columns(pl.col("purchase_rate").fill_nan(None), pl.col("dropout_p").fill_nan(None))


# --------------------------------------------------------------------------------------------------
def _norm(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _frame(columns: dict, order: np.ndarray) -> pl.DataFrame:
    """Build a polars frame from arrays, reordered by ``order``; tuples mark special column kinds."""
    out = {}
    for name, spec in columns.items():
        if isinstance(spec, tuple):
            kind = spec[0]
            if kind == "dt":
                v = spec[1][order]
                s = pl.Series(name, v * 1_000_000, dtype=pl.Int64).scatter(np.flatnonzero(v < 0), None)
                out[name] = s.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
            elif kind == "opt":
                v = spec[1][order]
                out[name] = pl.Series(name, np.where(v >= 0, v, 0), dtype=pl.Int64).scatter(np.flatnonzero(v < 0), None)
            elif kind == "optbool":
                v, valid = spec[1][order], spec[2][order]
                out[name] = pl.Series(name, v, dtype=pl.Boolean).scatter(np.flatnonzero(~valid), None)
            elif kind in ("list", "ilist"):
                # columns hold values left-aligned (a null is never followed by a value in the same row)
                parts = [p[order] for p in spec[1]]
                if kind == "ilist":
                    valid = np.stack([p >= 0 for p in parts], 1)
                    flat = pl.Series(np.stack([np.where(p >= 0, p, 0) for p in parts], 1).ravel(), dtype=pl.Int64)
                else:
                    valid = np.stack([p != None for p in parts], 1)  # noqa: E711 - elementwise on object arrays
                    flat = pl.Series(np.stack(parts, 1).ravel().tolist(), dtype=pl.String)
                count = pl.Series(valid.sum(1))
                lists = flat.reshape((len(order), len(parts))).arr.to_list()
                out[name] = (
                    pl.DataFrame({"l": lists, "c": count}).select(pl.col("l").list.head(pl.col("c")))["l"].alias(name)
                )
            elif kind == "cat":
                codes = spec[1][order]
                vals = pl.Series(spec[2], dtype=pl.String).gather(np.maximum(codes, 0))
                out[name] = vals.scatter(np.flatnonzero(codes < 0), None).alias(name)
            elif kind == "series":
                out[name] = spec[1].gather(order).alias(name)
            else:  # pragma: no cover
                raise ValueError(kind)
        else:
            v = spec[order]
            if v.dtype == object:
                out[name] = pl.Series(name, v.tolist(), dtype=pl.String)
            else:
                out[name] = pl.Series(name, v)
    return pl.DataFrame(out)


def _digits(values: np.ndarray, width: int) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.String).str.zfill(width)


def _format_phones(number: np.ndarray, style: np.ndarray) -> np.ndarray:
    """10-digit national numbers → strings as people type them (7 styles)."""
    s = _digits(number, 10)
    a, b, c, d = s.str.slice(0, 3), s.str.slice(3, 3), s.str.slice(6, 2), s.str.slice(8, 2)
    df = pl.DataFrame({"a": a, "b": b, "c": c, "d": d, "s": s, "style": style})
    out = df.select(
        pl.when(pl.col("style") == 0)
        .then(pl.format("+7 ({}) {}-{}-{}", "a", "b", "c", "d"))
        .when(pl.col("style") == 1)
        .then(pl.format("8{}", "s"))
        .when(pl.col("style") == 2)
        .then(pl.format("+7{}", "s"))
        .when(pl.col("style") == 3)
        .then(pl.format("8 {} {} {} {}", "a", "b", "c", "d"))
        .when(pl.col("style") == 4)
        .then(pl.format("+7 {} {}-{}-{}", "a", "b", "c", "d"))
        .when(pl.col("style") == 5)
        .then(pl.format("7{}", "s"))
        .otherwise(pl.format("8 ({}) {}-{}-{}", "a", "b", "c", "d"))
    )
    return out.to_series().to_numpy().astype(object)


def _money_text(cents: np.ndarray) -> pl.Series:
    """Exact "1234.50" strings from integer cents (no float formatting)."""
    whole = pl.Series(cents // 100).cast(pl.String)
    frac = pl.Series(cents % 100).cast(pl.String).str.zfill(2)
    return whole + "." + frac


def _dirty_amount(cents: int, style: int) -> str:
    whole, frac = divmod(int(cents), 100)
    grouped = f"{whole:,}".replace(",", " ")
    if style == 2 and whole < 1000:
        style = 1  # "512.30" would be clean; keep it dirty
    return (
        f"{grouped},{frac:02d}",  # "12 500,50"
        f"{whole},{frac:02d}",  # "12500,50"
        f"{grouped}.{frac:02d}",  # "12 500.50"
        f"{grouped}" if frac == 0 else f"{grouped},{frac:02d}",  # "12 500"
    )[style]


def _upper(values: np.ndarray) -> np.ndarray:
    return pl.Series(values, dtype=pl.String).str.to_uppercase().to_numpy().astype(object)


def _capitalize(values: np.ndarray) -> np.ndarray:
    s = pl.Series(values, dtype=pl.String)
    return (s.str.slice(0, 1).str.to_uppercase() + s.str.slice(1)).to_numpy().astype(object)


def _first_char(values: np.ndarray) -> np.ndarray:
    return pl.Series(values, dtype=pl.String).str.slice(0, 1).to_numpy().astype(object)


def world_summary(world: World) -> dict[str, int]:
    """Counts incl. customers and dirt rows (for logs and the CLI)."""
    out = world.summary()
    out["customers"] = world.truth.height
    out["dirty_deals"] = world.deals.filter(pl.col("dirt").is_not_null()).height
    out["dirty_contacts"] = world.contacts.filter(pl.col("dirt").is_not_null()).height
    return out


__all__ = ["SIZE_PRESETS", "SizePreset", "default_now", "generate_world", "plan_size", "world_summary"]
