"""Figures for the analytics engine on the synthetic generator's data (default: 1M customers / 10M deals).

1. **In memory**: World → engine inputs (no store) → full recompute (features, ABC/XYZ/RFM, lifecycle, churn,
   BG/NBD or MBG/NBD + Gamma-Gamma, CLV, rules, cohorts, data quality). Wall time and peak RSS.
   Goal: ≤ 15 s and ≤ 3 GB.
2. **BG/NBD fit** on the same (x, t_x, T) beside ``lifetimes.BetaGeoFitter.fit`` in the same run, and the
   parameters both found next to the generator's truth. Goal: ≥ 10× faster.
3. **End to end**: the World written to a SQLite store (not timed), then ``segsync compute`` as a
   subprocess (load, engine, persist). Goal: ≤ 60 s.

    python bench/compute.py [--customers 1000000] [--seed 1] [--skip-lifetimes] [--skip-e2e]

Timings on a shared 2-core machine vary between runs; ratios within one run are the reliable part.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import psutil

from segsync.config.segments import SegmentsConfig
from segsync.sandbox.data import generate_world
from segsync.sandbox.store_loader import _world_frames, load_world
from segsync.sandbox.world import World
from segsync.segments import btyd
from segsync.segments.engine import Inputs, run


class PeakRss:
    """Samples the process RSS every 20 ms (ru_maxrss is for the whole life of the process)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def __enter__(self) -> PeakRss:
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def world_inputs(world: World) -> Inputs:
    """The engine's inputs straight from a World, resolved like the store loader does (company, else contact)."""
    frames = _world_frames(world, 1, world.now)
    customers = frames["customers"].select(
        (pl.col("kind") + ":" + pl.col("remote_id")).alias("customer"),
        "kind",
        "remote_id",
        "name",
        "responsible_id",
        "company_id",
        "created_at",
        "phones",
        "emails",
        pl.col("attrs").struct.field("type").alias("customer_type"),
        pl.col("attrs").struct.field("channel").alias("channel"),
        pl.col("attrs").struct.field("city").alias("city"),
        pl.col("attrs").struct.field("industry").alias("industry"),
    )
    deals = (
        frames["deals"]
        .select(
            pl.when(pl.col("company_id").is_not_null())
            .then(pl.lit("company:") + pl.col("company_id"))
            .otherwise(pl.lit("contact:") + pl.col("contact_id"))
            .alias("customer"),
            "status",
            pl.col("amount_base").alias("amount"),
            "closed_at",
            "created_at",
            "pipeline_id",
            "stage_id",
        )
        .drop_nulls("customer")
    )
    in_deals = deals.select("customer").unique()
    customers = customers.filter(
        (pl.col("kind") == "company")
        | pl.col("company_id").is_null()
        | pl.col("customer").is_in(in_deals["customer"].implode())
    )
    contact_company = (
        frames["customers"]
        .filter(pl.col("kind") == "contact")
        .select(pl.col("remote_id").alias("customer_id"), pl.col("company_id").alias("_company"))
    )
    touches = (
        frames["touches"]
        .join(contact_company, on="customer_id", how="left")
        .select(
            pl.when((pl.col("customer_kind") == "contact") & pl.col("_company").is_not_null())
            .then(pl.lit("company:") + pl.col("_company"))
            .otherwise(pl.col("customer_kind") + ":" + pl.col("customer_id"))
            .alias("customer"),
            "at",
            "completed",
        )
    )
    stages = frames["stages"].select("pipeline_id", "stage_id", "semantic", "sort")
    return Inputs(deals=deals, customers=customers, touches=touches, stages=stages)


def in_memory(world: World, config: SegmentsConfig) -> tuple[float, int, int, object]:
    inputs = world_inputs(world)
    base = psutil.Process().memory_info().rss
    with PeakRss() as rss:
        tick = time.perf_counter()
        result = run(inputs, config, world.now, tz="Europe/Moscow")
        wall = time.perf_counter() - tick
    return wall, rss.peak, base, result


def fit_race(result, truth: dict, skip_lifetimes: bool) -> None:
    frame = result.frame.filter(pl.col("purchases") > 0)
    x, t_x, T = (frame[c].to_numpy() for c in ("_x", "_t_x", "_T"))
    tick = time.perf_counter()
    ours = btyd.fit_bgnbd(x, t_x, T)
    mine = time.perf_counter() - tick
    print(f"  segsync BG/NBD fit      {mine:7.2f} s  on {len(x):,} customers  {_params(ours.params)}")
    print(f"  generator truth                     {_params(truth)}")
    if skip_lifetimes:
        return
    import lifetimes

    warnings.filterwarnings("ignore")
    tick = time.perf_counter()
    fitter = lifetimes.BetaGeoFitter().fit(x, t_x, T)
    theirs = time.perf_counter() - tick
    print(f"  lifetimes BG/NBD fit    {theirs:7.2f} s                        {_params(dict(fitter.params_))}")
    print(f"  speed-up                {theirs / mine:7.1f}×  (goal ≥ 10×)")


def _params(p: dict) -> str:
    return " ".join(f"{k}={float(p[k]):.4g}" for k in ("r", "alpha", "a", "b") if k in p)


def end_to_end(world: World, workdir: Path) -> None:
    db = workdir / "bench.db"
    url = f"sqlite:///{db}"
    from segsync.store import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    tick = time.perf_counter()
    load_world(engine, world, source="bench", kind="csv")
    print(
        f"  store written in {time.perf_counter() - tick:.1f} s (not part of the figure), {db.stat().st_size >> 20} MiB"
    )
    config = workdir / "rules.yaml"
    config.write_text(
        "timezone: Europe/Moscow\nsources:\n  - {name: bench, kind: csv, path: x.csv, header: false, "
        "base_currency: RUB, columns: {customer_id: 1, date: 2, amount: 3}}\n",
        encoding="utf-8",
    )
    env = os.environ | {"SEGSYNC_STORE_URL": url, "SEGSYNC_LOG_LEVEL": "warning"}
    cli = [sys.executable, "-m", "segsync.cli", "compute", "--config", str(config), "--json",
           "--as-of", world.now.isoformat()]  # fmt: skip
    for attempt in ("first run (history from empty)", "second run (same as-of)"):
        tick = time.perf_counter()
        done = subprocess.run(cli, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - tick
        if done.returncode != 0:
            print(done.stderr[-2000:])
            raise SystemExit(f"segsync compute failed ({done.returncode})")
        import json

        summary = json.loads(done.stdout)[0]
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"  segsync compute, {attempt}: {wall:6.1f} s wall (goal ≤ 60 s); inside: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in summary["timings"].items())
            + f"; {summary['transitions']:,} transitions; peak RSS of children {peak:,.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=None, help="default: the 'huge' preset (1M / 10M deals)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()

    tick = time.perf_counter()
    if args.customers is None:
        world = generate_world(seed=args.seed, size="huge")
    else:
        world = generate_world(seed=args.seed, customers=args.customers)
    summary = world.summary()
    print(f"world: {summary} generated in {time.perf_counter() - tick:.1f} s")

    config = SegmentsConfig.model_validate(
        {
            "vip": {"where": "abc = 'A' AND rfm_f >= 4"},
            "custom": [{"name": "b2b_lost", "where": "b2b AND lifecycle = 'lost'"}],
        }
    )
    wall, peak, base, result = in_memory(world, config)
    fits = ", ".join(f"{f.model} {f.status}" for f in result.fits)
    print("1. in-memory full recompute")
    print(
        f"  {result.frame.height:,} customers: {wall:.1f} s (goal ≤ 15 s); peak RSS {peak / 2**30:.2f} GiB "
        f"(goal ≤ 3 GiB; {base / 2**30:.2f} GiB held before: world + inputs); {fits}"
    )
    print("2. BG/NBD fit beside lifetimes (same data, same run)")
    fit_race(result, world.params, args.skip_lifetimes)
    del result
    if not args.skip_e2e:
        print("3. end to end from SQLite")
        with tempfile.TemporaryDirectory(prefix="segsync-bench-") as folder:
            end_to_end(world, Path(folder))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
