"""The whole engine: labels for every customer, determinism, degenerate data, rule segments, recovery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from segsync.config.segments import SegmentsConfig
from segsync.segments.engine import LABEL_KEYS, Inputs, run
from segsync.segments.names import LABEL_TITLES, display

AS_OF = datetime(2025, 1, 1, tzinfo=UTC)
DT = pl.Datetime("us", "UTC")


def simulate_deals(n: int, params=(0.75, 40.0, 1.6, 7.0), seed: int = 3, days: int = 1000) -> pl.DataFrame:
    """BG/NBD purchase histories (time unit: days) as won deals, vectorized."""
    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    first = rng.uniform(0, days * 0.8, n)
    who, when = [np.arange(n)], [first]
    clock = first.copy()
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1.0 / lam[idx])
        ok = clock[idx] < days
        hit = idx[ok]
        who.append(hit)
        when.append(clock[hit].copy())
        alive[idx[~ok]] = False
        alive[hit[rng.random(hit.size) < p[hit]]] = False
    who_all, when_all = np.concatenate(who), np.concatenate(when)
    start = AS_OF - timedelta(days=days)
    amounts = rng.gamma(4.0, 1000.0, who_all.size).round(2)
    return pl.DataFrame(
        {
            "customer": pl.Series(who_all).cast(pl.String).str.pad_start(6, "0").str.replace("^", "contact:"),
            "status": "won",
            "amount": amounts,
            "closed_at": pl.Series((when_all * 86_400e6).astype(np.int64)).cast(pl.Duration("us")) + start,
        }
    ).with_columns(pl.col("closed_at").cast(DT))


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return simulate_deals(3000)


CONFIG = SegmentsConfig.model_validate(
    {
        "vip": {"where": "abc = 'A' AND rfm_f >= 4"},
        "custom": [{"name": "whales", "where": "revenue_365d > 50000", "title_ru": "Киты"}],
    }
)


def test_every_customer_gets_labels_and_no_label_is_nan(sample):
    leads = pl.DataFrame({"customer": ["contact:lead"], "status": ["open"], "amount": [1.0]})
    result = run(Inputs(deals=pl.concat([sample, leads], how="diagonal")), CONFIG, AS_OF, tz="Europe/Moscow")
    labels = result.labels()
    assert len(labels) == result.frame.height == sample["customer"].n_unique() + 1
    for row in labels:
        assert all(isinstance(v, str) and v and v != "NaN" for v in row.values())
        assert set(row) <= {*LABEL_KEYS, "custom:whales"}
        assert "lifecycle" in row and "abc" in row
    lead = labels[result.frame["customer"].to_list().index("contact:lead")]
    assert lead == {"abc": "N", "lifecycle": "lead", "readiness": "cold"}
    assert {f.model for f in result.fits} == {"mbgnbd", "gamma_gamma"}
    assert all(f.fitted for f in result.fits)
    counts = result.counts()
    assert sum(counts["abc"].values()) == result.frame.height
    assert counts["vip"]["yes"] == int(result.frame["vip"].sum())
    assert not result.frame.select(pl.col("p_alive", "clv", "expected_spend").is_nan().any()).row(0)[0]


def test_the_result_is_deterministic_and_independent_of_row_order(sample):
    first = run(Inputs(deals=sample), CONFIG, AS_OF)
    again = run(Inputs(deals=sample.sample(fraction=1.0, shuffle=True, seed=11)), CONFIG, AS_OF)
    assert first.labels_json().to_list() == again.labels_json().to_list()
    one, two = first.features_json().to_list(), again.features_json().to_list()
    for a, b in zip(one, two, strict=True):
        fa, fb = json.loads(a), json.loads(b)
        assert fa.keys() == fb.keys()
        for key in fa:
            if isinstance(fa[key], float):
                assert fa[key] == pytest.approx(fb[key], rel=1e-9), key
            else:
                assert fa[key] == fb[key], key


def test_degenerate_data_gives_model_not_fitted_and_rule_based_risk():
    deals = pl.DataFrame(
        {
            "customer": ["contact:1", "contact:2", "contact:2"],
            "status": ["won"] * 3,
            "amount": [10.0, 20.0, 30.0],
            "closed_at": [AS_OF - timedelta(days=d) for d in (400, 300, 10)],
        },
        schema_overrides={"closed_at": DT},
    )
    result = run(Inputs(deals=deals), SegmentsConfig(), AS_OF)
    assert [f.status for f in result.fits] == ["not_fitted", "not_fitted"]
    assert "repeat buyers" in result.fits[0].detail
    assert result.frame["p_alive"].null_count() == 2
    assert set(result.frame["churn_risk"].to_list()) <= {"low", "medium", "high"}
    assert result.frame["xyz"].to_list()[0] == "once"


def test_disabled_methods_leave_their_labels_absent(sample):
    config = SegmentsConfig.model_validate(
        {"abc": {"enabled": False}, "rfm": {"enabled": False}, "churn": {"enabled": False}, "xyz": {"enabled": False}}
    )
    labels = run(Inputs(deals=sample.head(200)), config, AS_OF).labels()
    assert all(set(row) == {"lifecycle"} for row in labels)


def test_bgnbd_keeps_the_rule_for_one_time_buyers(sample):
    config = SegmentsConfig.model_validate({"churn": {"model": "bgnbd"}})
    result = run(Inputs(deals=sample), config, AS_OF)
    once = result.frame.filter(pl.col("purchase_days") == 1)
    assert (once["p_alive"] == 1.0).all()
    rule = (
        pl.when(pl.col("recency_days") > 2.0 * pl.col("cycle_days"))
        .then(pl.lit("high"))
        .when(pl.col("recency_days") > pl.col("cycle_days"))
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
    assert once["churn_risk"].to_list() == once.select(rule).to_series().to_list()
    assert "high" in once["churn_risk"].to_list()  # P(alive) = 1 alone would call them all "low"


def test_engine_recovers_the_simulated_parameters_through_features():
    """Deals → calendar days → (x, t_x, T) → MLE gives back the generating BG/NBD parameters (days)."""
    truth = {"r": 0.75, "alpha": 40.0, "a": 1.6, "b": 7.0}
    deals = simulate_deals(40_000, tuple(truth.values()), seed=5)
    config = SegmentsConfig.model_validate({"churn": {"model": "bgnbd"}, "cohorts": {"enabled": False}})
    result = run(Inputs(deals=deals), config, AS_OF, quality=False)
    fit = result.fits[0]
    assert fit.model == "bgnbd" and fit.fitted
    for name, value in truth.items():
        assert fit.params[name] == pytest.approx(value, rel=0.15), name


def test_display_names_cover_every_code(sample):
    result = run(Inputs(deals=sample), CONFIG, AS_OF)
    from segsync.segments.names import titles_from_config

    titles = titles_from_config(CONFIG)
    for label, values in result.counts().items():
        for value in values:
            for language in ("ru", "en"):
                shown = display(label, value, language, titles=titles)
                assert shown and (shown != value or label in ("abc_xyz", "rfm_score")), (label, value)
    assert display("custom:whales", "yes", "ru", titles=titles) == "Киты"
    assert display("rfm", "champions", "ru") == "Чемпионы" and display("rfm", "champions", "en") == "Champions"
    assert display("abc_xyz", "A-once", "ru") == "A, Разовая покупка"
    assert display("abc", None) is None
    assert set(LABEL_TITLES) == set(LABEL_KEYS)


@pytest.mark.parametrize("pipelines", [None, ["0"]])
def test_categorical_deal_columns_give_the_result_text_gives(sample, pipelines):
    """The store loader hands status, pipeline and stage over as categoricals (4 bytes a row); the result is
    the one the same deals as text give — with a pipeline filter and open deals' readiness too."""
    leads = pl.DataFrame(
        {
            "customer": ["contact:lead", "contact:000001", "contact:000002"],
            "status": ["open", "open", "won"],
            "amount": [1.0, 2.0, 3.0],
            "pipeline_id": ["0", "1", "1"],
            "stage_id": ["NEW", "C1:PREPARATION", "C1:WON"],
            "closed_at": [None, None, AS_OF - timedelta(days=3)],
        }
    )
    deals = pl.concat([sample.with_columns(pipeline_id=pl.lit("0"), stage_id=pl.lit("WON")), leads], how="diagonal")
    as_text = run(Inputs(deals=deals), CONFIG, AS_OF, pipelines=pipelines)
    categorical = deals.with_columns(pl.col("status", "pipeline_id", "stage_id").cast(pl.Categorical))
    as_codes = run(Inputs(deals=categorical), CONFIG, AS_OF, pipelines=pipelines)
    assert as_codes.labels_json().equals(as_text.labels_json())
    assert as_codes.features_json().equals(as_text.features_json())
