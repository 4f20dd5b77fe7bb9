"""The whole analytics pass for one source: features → ABC/XYZ/RFM/lifecycle/churn/model → rule segments,
plus cohorts and data quality. Pure: frames in, frames out; the same inputs, rules and ``as_of`` give the
same result (every tie is broken by value, never by row order).

The label columns of :attr:`EngineResult.frame` are the contract documented in :mod:`.names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from segsync.config.segments import SegmentsConfig
from segsync.segments import btyd, grouping
from segsync.segments.abc import abc_classes
from segsync.segments.churn import churn_flag, usual_cycle
from segsync.segments.cohorts import cohort_table, month_index
from segsync.segments.columns import FEATURE_COLUMNS, where_columns
from segsync.segments.expr import parse
from segsync.segments.features import (
    DEALS_SCHEMA,
    STAGES_SCHEMA,
    Features,
    as_of_day,
    coded_features,
    conform,
    purchases,
)
from segsync.segments.lifecycle import READINESS, deal_readiness, lifecycle_stages, stage_readiness
from segsync.segments.names import rfm_rules
from segsync.segments.quality import Quality, data_quality
from segsync.segments.rfm import rfm_scores, rfm_segments
from segsync.segments.xyz import abc_xyz, xyz_classes

#: Label keys in output order; custom segments follow as ``custom:<name>``.
LABEL_KEYS: tuple[str, ...] = (
    "abc",
    "xyz",
    "abc_xyz",
    "rfm",
    "rfm_score",
    "lifecycle",
    "readiness",
    "churn_flag",
    "churn_risk",
    "vip",
)
_BOOL_LABELS = ("churn_flag", "vip")


@dataclass
class Inputs:
    deals: pl.DataFrame
    customers: pl.DataFrame | None = None
    touches: pl.DataFrame | None = None
    stages: pl.DataFrame | None = None


@dataclass
class EngineResult:
    as_of: datetime
    frame: pl.DataFrame  # one row per customer: features, label columns, ``_`` internals
    fits: list[btyd.Fit] = field(default_factory=list)
    rfm_cuts: dict[str, list[float]] = field(default_factory=dict)
    cohorts: pl.DataFrame = field(default_factory=pl.DataFrame)
    quality: Quality | None = None
    custom: tuple[str, ...] = ()

    @property
    def feature_columns(self) -> list[str]:
        skip = set(LABEL_KEYS) | set(self.custom) | {"customer", "phones", "emails", "company_id"}
        return [c for c in self.frame.columns if not c.startswith("_") and c not in skip]

    def labels_json(self) -> pl.Series:
        """Per customer the labels dict as compact JSON (absent keys for labels that do not apply)."""
        pieces = []
        for key in (*LABEL_KEYS, *(f"custom:{n}" for n in self.custom)):
            column = key.removeprefix("custom:")
            col = pl.col(column)
            value = pl.when(col).then(pl.lit("yes")) if key in _BOOL_LABELS or key.startswith("custom:") else col
            pieces.append(pl.lit(f'"{key}":"') + value + pl.lit('"'))
        body = pl.concat_str(pieces, separator=",", ignore_nulls=True)
        return self.frame.select((pl.lit("{") + body + pl.lit("}")).alias("labels")).to_series()

    def labels(self) -> list[dict[str, str]]:
        import json

        return [json.loads(text) for text in self.labels_json()]

    def features_json(self) -> pl.Series:
        """Per customer the features as compact JSON: NULL features left out, floats to 7 significant digits
        (a million customers' state stays a few hundred MB)."""
        return self.frame.select(self.features_expr()).to_series()

    def features_expr(self) -> pl.Expr:
        """:meth:`features_json` as an expression over :attr:`frame`'s columns, for any slice of its rows."""
        columns = [
            pl.col(c).round_sig_figs(7) if self.frame.schema[c] == pl.Float64 else pl.col(c)
            for c in self.feature_columns
        ]
        text = pl.struct(columns).struct.json_encode()
        return text.str.replace_all(r'"[^"]+":null,?', "").str.replace(r",\}$", "}").alias("features")

    def counts(self) -> dict[str, dict[str, int]]:
        """label → value → customers (absent labels not counted)."""
        out: dict[str, dict[str, int]] = {}
        for key in (*LABEL_KEYS, *(f"custom:{n}" for n in self.custom)):
            column = key.removeprefix("custom:")
            series = self.frame[column]
            if series.dtype == pl.Boolean:
                hits = int(series.sum() or 0)
                if hits:
                    out[key] = {"yes": hits}
                continue
            vc = series.drop_nulls().value_counts(sort=False)
            if vc.height:
                out[key] = dict(sorted((str(k), int(v)) for k, v in vc.iter_rows()))
        return out


def _window(value: Any) -> timedelta | None:
    return None if value == "all" else value


def run(
    inputs: Inputs,
    config: SegmentsConfig,
    as_of: datetime,
    *,
    tz: str = "UTC",
    pipelines: Sequence[str] | None = None,
    fields: Sequence[str] = (),
    quality: bool = False,
) -> EngineResult:
    """Compute every segment for every customer as of ``as_of`` (aware)."""
    as_of = as_of.astimezone(UTC)
    inputs = Inputs(
        deals=conform(inputs.deals, DEALS_SCHEMA),
        customers=inputs.customers,
        touches=inputs.touches,
        stages=conform(inputs.stages, STAGES_SCHEMA),
    )
    purchase_rows = purchases(inputs.deals, as_of, tz, pipelines)
    coded = coded_features(
        inputs.deals,
        as_of,
        customers=inputs.customers,
        touches=inputs.touches,
        tz=tz,
        abc_window=_window(config.abc.window),
        rfm_window=config.rfm.window,
        xyz_period=config.xyz.period,
        xyz_periods=config.xyz.periods,
        pipelines=pipelines,
        bought=purchase_rows,
    )
    frame = coded.frame
    purchase_rows = purchase_rows.select("day", "cents")  # all the cohorts need: let the rest go
    n = frame.height
    for name in fields:  # mapped CRM fields always exist as columns, even when no customer has them
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    bought = frame["purchases"].to_numpy() > 0
    result = EngineResult(as_of=as_of, frame=frame)

    # ABC
    if config.abc.enabled:
        abc = abc_classes(frame["revenue_window"].to_numpy(), config.abc.shares.A, config.abc.shares.B)
        abc_labels = abc.labels
        frame = frame.with_columns(
            pl.Series("abc", abc.labels, dtype=pl.String),
            pl.Series("abc_share", abc.share),
            pl.Series("abc_cum_share", abc.cum_share).fill_nan(None),
        )
    else:
        abc_labels = np.full(n, None, dtype=object)
        frame = frame.with_columns(
            pl.lit(None, dtype=pl.String).alias("abc"),
            pl.lit(None, dtype=pl.Float64).alias("abc_share"),
            pl.lit(None, dtype=pl.Float64).alias("abc_cum_share"),
        )

    # XYZ and ABC×XYZ
    if config.xyz.enabled:
        variant = config.xyz.variant
        freq = np.full(n, variant == "frequency") if variant != "auto" else frame["b2b"].fill_null(False).to_numpy()
        xyz = xyz_classes(
            purchases=frame["purchases"].to_numpy(),
            periods=frame["_xyz_n"].to_numpy(),
            active_periods=frame["_xyz_k"].to_numpy(),
            revenue=frame["_xyz_rev"].to_numpy(),
            cv=frame["xyz_cv"].fill_null(np.nan).to_numpy(),
            frequency=freq,
            min_periods=config.xyz.min_periods,
            cv_x=config.xyz.cv.X,
            cv_y=config.xyz.cv.Y,
            active_x=config.xyz.active.X,
            active_y=config.xyz.active.Y,
        )
        xyz_series = pl.Series("xyz", xyz, dtype=pl.String)
        combined = abc_xyz(frame["abc"], xyz_series) if config.abc.enabled else pl.Series([None] * n, dtype=pl.String)
        frame = frame.with_columns(xyz_series, combined.alias("abc_xyz"))
    else:
        frame = frame.with_columns(
            pl.lit(None, dtype=pl.String).alias("xyz"), pl.lit(None, dtype=pl.String).alias("abc_xyz")
        )

    # RFM (customers with a purchase in the RFM window are scored; other buyers are "none")
    frame, result.rfm_cuts = _rfm(frame, config, bought)

    # usual cycle, lifecycle, readiness, churn flag
    cycle, cycle_source = usual_cycle(
        frame["median_gap_days"].fill_null(np.nan).to_numpy(),
        frame["_gaps"].to_numpy(),
        abc_labels,
        min_gaps=config.churn.min_gaps,
        default_days=config.lifecycle.default_cycle.total_seconds() / 86400.0,
        start=config.churn.cycle,
    )
    cycle = np.where(bought, cycle, np.nan)
    frame = frame.with_columns(
        pl.Series("cycle_days", cycle).fill_nan(None),
        pl.Series("cycle_source", np.where(bought, cycle_source, None), dtype=pl.String),
    )
    recency = frame["recency_days"].fill_null(np.nan).to_numpy()
    frame = _lifecycle(frame, config, inputs, coded, cycle, recency)
    if config.churn.enabled:
        frame = frame.with_columns(pl.Series("churn_flag", churn_flag(recency, cycle, config.churn.factor) & bought))
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Boolean).alias("churn_flag"))

    # probabilistic churn model and spend
    frame, result.fits = _churn_model(frame, config, bought, recency, cycle)

    # rule segments: VIP first, then the admin's own, in order
    columns = where_columns(fields)
    if config.vip is not None:
        frame = frame.with_columns(parse(config.vip.where, columns).to_polars().alias("vip"))
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Boolean).alias("vip"))
    for rule in config.custom:
        frame = frame.with_columns(parse(rule.where, columns).to_polars().alias(rule.name))
    result.custom = tuple(rule.name for rule in config.custom)

    # reports
    if config.cohorts.enabled:
        bought_rows = purchase_rows.select(
            pl.Series("customer", coded.purchase_code), month_index(pl.col("day")).alias("month"), "cents"
        )
        result.cohorts = cohort_table(bought_rows, _month_of(as_of, tz), config.cohorts.months)
    if quality:
        result.quality = data_quality(
            frame.filter(pl.col("kind").is_not_null()),
            frame.select("customer", "last_purchase", "last_touch"),
            as_of,
            config.quality.inactive_after.total_seconds() / 86400.0,
        )
    result.frame = frame
    return result


def _month_of(as_of: datetime, tz: str) -> int:
    day = as_of_day(as_of, tz)
    return day.year * 12 + day.month - 1


def _rfm(frame: pl.DataFrame, config: SegmentsConfig, bought: np.ndarray) -> tuple[pl.DataFrame, dict]:
    n = frame.height
    empty = [
        pl.lit(None, dtype=pl.Int64).alias("rfm_r"),
        pl.lit(None, dtype=pl.Int64).alias("rfm_f"),
        pl.lit(None, dtype=pl.Int64).alias("rfm_m"),
        pl.lit(None, dtype=pl.String).alias("rfm_score"),
        pl.lit(None, dtype=pl.String).alias("rfm"),
    ]
    if not config.rfm.enabled:
        return frame.with_columns(empty), {}
    scored = frame["_rfm_f"].to_numpy() > 0
    idx = np.flatnonzero(scored)
    scores = rfm_scores(
        frame["recency_days"].to_numpy()[idx],
        frame["_rfm_f"].to_numpy()[idx],
        frame["_rfm_m"].to_numpy()[idx],
        config.rfm.bins,
    )
    r = np.zeros(n, dtype=np.int64)
    f = np.zeros(n, dtype=np.int64)
    m = np.zeros(n, dtype=np.int64)
    r[idx], f[idx], m[idx] = scores.r, scores.f, scores.m
    segment = np.full(n, None, dtype=object)
    segment[bought] = "none"
    segment[idx] = rfm_segments(scores.r, scores.f, scores.m, rfm_rules(config.rfm.map, config.rfm.split_lost))
    frame = frame.with_columns(
        pl.Series("rfm_r", r).replace(0, None),
        pl.Series("rfm_f", f).replace(0, None),
        pl.Series("rfm_m", m).replace(0, None),
        pl.Series("rfm", segment, dtype=pl.String),
    )
    frame = frame.with_columns(
        pl.when(pl.col("rfm_r").is_not_null()).then(pl.concat_str(["rfm_r", "rfm_f", "rfm_m"])).alias("rfm_score")
    )
    return frame, scores.cuts


def _lifecycle(
    frame: pl.DataFrame,
    config: SegmentsConfig,
    inputs: Inputs,
    coded: Features,
    cycle: np.ndarray,
    recency: np.ndarray,
) -> pl.DataFrame:
    if not config.lifecycle.enabled:
        return frame.with_columns(
            pl.lit(None, dtype=pl.String).alias("lifecycle"), pl.lit(None, dtype=pl.String).alias("readiness")
        )
    lc = config.lifecycle
    stages = lifecycle_stages(
        purchases=frame["purchases"].to_numpy(),
        age_days=frame["age_days"].fill_null(np.nan).to_numpy(),
        recency_days=recency,
        last_gap_days=frame["_last_gap"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        cycle_days=np.nan_to_num(cycle, nan=np.inf),
        new_within_days=lc.new_within.total_seconds() / 86400.0,
        lapsed_factor=lc.lapsed_factor,
        lost_factor=lc.lost_factor,
    )
    ranks = stage_readiness(inputs.stages, lc.readiness, lc.readiness_unmapped)
    warmest = deal_readiness(coded.open_deals, ranks)  # the warmest open deal per customer (lead_readiness)
    rank = grouping.largest(coded.open_code, warmest, coded.size)[coded.row_code]
    level = pl.Series(np.maximum(rank, 0)).replace_strict(dict(enumerate(READINESS)), return_dtype=pl.String)
    return frame.with_columns(
        pl.Series("lifecycle", stages, dtype=pl.String),
        pl.when(pl.Series(stages == "lead")).then(level).alias("readiness"),
    )


def _risk_band(p_alive: np.ndarray, config: SegmentsConfig) -> np.ndarray:
    return np.where(
        p_alive < config.churn.at_risk_below, "high", np.where(p_alive < config.churn.medium_below, "medium", "low")
    ).astype(object)


def _churn_model(
    frame: pl.DataFrame, config: SegmentsConfig, bought: np.ndarray, recency: np.ndarray, cycle: np.ndarray
) -> tuple[pl.DataFrame, list[btyd.Fit]]:
    n = frame.height
    churn = config.churn
    nan = np.full(n, np.nan)
    outputs = {"p_alive": nan, "expected_purchases": nan.copy(), "p_no_purchase": nan.copy()}
    outputs |= {"expected_spend": nan.copy(), "clv": nan.copy()}
    fits: list[btyd.Fit] = []
    # rule-based risk: always available, and the fallback when the model is not fitted
    with np.errstate(invalid="ignore"):
        rule = np.where(recency > churn.factor * cycle, "high", np.where(recency > cycle, "medium", "low")).astype(
            object
        )
    risk = np.where(bought, rule, None)
    idx = np.flatnonzero(bought)
    if churn.enabled and churn.model != "none" and idx.size:
        x = frame["_x"].to_numpy()[idx]
        t_x = frame["_t_x"].to_numpy()[idx]
        T = frame["_T"].to_numpy()[idx]
        grouped = btyd.group_rows(x, t_x, T)
        gx, gt, gT = grouped.columns
        fit = btyd.fit_frequency_model(churn.model, gx, gt, gT, grouped.weights, min_repeaters=churn.min_repeaters)
        fits.append(fit)
        if fit.fitted:
            params = fit.values()
            horizon = churn.horizon.total_seconds() / 86400.0
            inv = grouped.inverse
            alive = btyd.p_alive(churn.model, params, gx, gt, gT)
            outputs["p_alive"][idx] = alive[inv]
            outputs["expected_purchases"][idx] = btyd.expected_purchases(churn.model, params, horizon, gx, gt, gT)[inv]
            outputs["p_no_purchase"][idx] = btyd.p_no_purchase(churn.model, params, horizon, gx, gt, gT)[inv]
            band = _risk_band(outputs["p_alive"][idx], config)
            if churn.model == "bgnbd":  # BG/NBD gives one-time buyers P(alive) = 1 (FHL 2005 §6): keep the rule
                band = np.where(x > 0, band, rule[idx])
            risk[idx] = band
        m_x = frame["_m_x"].fill_null(np.nan).to_numpy()[idx]
        gg = btyd.fit_gamma_gamma(x, m_x, min_repeaters=churn.min_repeaters)
        fits.append(gg)
        if gg.fitted:
            spend = btyd.expected_spend(gg.values(), x, m_x)
            outputs["expected_spend"][idx] = spend
            if fit.fitted:
                outputs["clv"][idx] = _clv(churn.model, fit.values(), spend, grouped, config)
    columns = [pl.Series(name, values).fill_nan(None) for name, values in outputs.items()]
    frame = frame.with_columns(
        *columns, pl.Series("churn_risk", risk if churn.enabled else [None] * n, dtype=pl.String)
    )
    return frame, fits


def _clv(model: str, params: tuple[float, ...], spend, grouped: btyd.Grouped, config: SegmentsConfig) -> np.ndarray:
    """CLV = E[M] × discounted expected purchases; the purchase part depends only on (x, t_x, T), so it is
    computed once per distinct row."""
    gx, gt, gT = grouped.columns
    per_unit = btyd.clv(
        model,  # type: ignore[arg-type]
        params,
        np.ones_like(gx),
        gx,
        gt,
        gT,
        months=config.churn.clv.months,
        discount=config.churn.clv.discount,
    )
    return per_unit[grouped.inverse] * spend


__all__ = ["FEATURE_COLUMNS", "LABEL_KEYS", "EngineResult", "Inputs", "run"]
