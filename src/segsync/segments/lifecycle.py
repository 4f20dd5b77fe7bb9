"""Lifecycle stage of every customer, and how ready a lead is to buy.

Stages, decided in this order (thresholds scale with the customer's usual cycle, see :mod:`.churn`):

* ``lead`` — no purchase yet;
* ``new`` — first purchase within ``new_within`` days;
* ``lost`` — silent longer than ``lost_factor`` × cycle; ``lapsed`` — longer than ``lapsed_factor`` × cycle;
* ``returned`` — bought again within ``new_within`` days after a gap longer than ``lapsed_factor`` × cycle;
* ``active`` — everyone else.

Lead readiness is the warmest open deal's stage: ``hot`` > ``warm`` > ``cold``, from the admin's per-pipeline
stage map, else (``by_position``) from the stage's position among the pipeline's open stages (first third
cold, middle third warm, last third hot), else cold.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

READINESS = ("cold", "warm", "hot")


def lifecycle_stages(
    *,
    purchases: np.ndarray,
    age_days: np.ndarray,
    recency_days: np.ndarray,
    last_gap_days: np.ndarray,
    cycle_days: np.ndarray,
    new_within_days: float,
    lapsed_factor: float,
    lost_factor: float,
) -> np.ndarray:
    purchases = np.asarray(purchases)
    age = np.nan_to_num(np.asarray(age_days, dtype=np.float64), nan=np.inf)
    recency = np.nan_to_num(np.asarray(recency_days, dtype=np.float64), nan=np.inf)
    last_gap = np.nan_to_num(np.asarray(last_gap_days, dtype=np.float64), nan=0.0)
    cycle = np.asarray(cycle_days, dtype=np.float64)
    conditions = [
        purchases <= 0,
        age <= new_within_days,
        recency > lost_factor * cycle,
        recency > lapsed_factor * cycle,
        (last_gap > lapsed_factor * cycle) & (recency <= new_within_days),
    ]
    choices = ["lead", "new", "lost", "lapsed", "returned"]
    return np.select(conditions, choices, default="active").astype(object)


def stage_readiness(
    stages: pl.DataFrame, mapping: Mapping[str, Mapping[str, str]], unmapped: str = "by_position"
) -> pl.DataFrame:
    """``pipeline_id, stage_id, readiness_rank`` (0 cold, 1 warm, 2 hot) for every open stage known."""
    schema = {"pipeline_id": pl.String, "stage_id": pl.String, "readiness_rank": pl.Int8}
    rows = [
        {"pipeline_id": str(p), "stage_id": str(s), "readiness_rank": READINESS.index(level)}
        for p, stage_map in mapping.items()
        for s, level in stage_map.items()
    ]
    mapped = pl.DataFrame(rows, schema=schema)
    if unmapped != "by_position" or stages.is_empty():
        return mapped
    open_stages = (
        stages.filter(pl.col("semantic") == "open")
        .sort(["pipeline_id", "sort", "stage_id"])
        .with_columns(
            pos=pl.int_range(pl.len()).over("pipeline_id"),
            n=pl.len().over("pipeline_id"),
        )
        .select(
            pl.col("pipeline_id").cast(pl.String),
            pl.col("stage_id").cast(pl.String),
            ((pl.col("pos") * 3) // pl.col("n")).clip(0, 2).cast(pl.Int8).alias("readiness_rank"),
        )
    )
    auto = open_stages.join(mapped.select("pipeline_id").unique(), on="pipeline_id", how="anti")
    return pl.concat([mapped, auto])


def deal_readiness(open_deals: pl.DataFrame, stage_ranks: pl.DataFrame) -> np.ndarray:
    """Readiness rank of every open deal, in row order (unknown stages are cold, 0)."""
    stages = open_deals.select(pl.col("pipeline_id").cast(pl.String), pl.col("stage_id").cast(pl.String))
    ranks = stage_ranks.group_by("pipeline_id", "stage_id").agg(pl.col("readiness_rank").max())
    ranked = stages.join(ranks, on=["pipeline_id", "stage_id"], how="left", maintain_order="left")
    return ranked["readiness_rank"].fill_null(0).to_numpy().astype(np.int64)


def lead_readiness(open_deals: pl.DataFrame, stage_ranks: pl.DataFrame) -> pl.DataFrame:
    """``customer, readiness_rank``: the warmest open deal per customer (unknown stages are cold)."""
    ranked = open_deals.select("customer").with_columns(
        pl.Series("readiness_rank", deal_readiness(open_deals, stage_ranks), dtype=pl.Int8)
    )
    return ranked.group_by("customer").agg(pl.col("readiness_rank").max())
