"""Figures for the analytics engine on the synthetic generator's data (default: 1M customers / 10M deals).

1. **In memory**: World → engine inputs (no store) → full recompute (features, ABC/XYZ/RFM, lifecycle, churn,
   BG/NBD or MBG/NBD + Gamma-Gamma, CLV, rules, cohorts, data quality). Wall time and peak RSS.
   Goal: ≤ 15 s and ≤ 3 GB.
2. **BG/NBD fit** on the same (x, t_x, T) beside ``lifetimes.BetaGeoFitter.fit`` in the same run, and the
   parameters both found next to the generator's truth. Goal: ≥ 10× faster.
3. **End to end**: the World written to a SQLite store (not timed), then ``segsync compute`` as a
   subprocess (load, engine, persist). Goal: ≤ 60 s.

    python bench/compute.py [--customers 1000000] [--seed 1] [--skip-lifetimes] [--skip-e2e] [--fresh]

The generated World's engine inputs (parquet) and the SQLite store are cached under the system temp folder
(``segsync-bench-cache/``, never committed), so a repeated run skips generation and the store load;
``--fresh`` rebuilds them. Parts 1–2 run in a child process that only reads the cached inputs, so its peak
RSS is the engine's with its inputs, not the generator's World.

Timings on a shared 2-core machine vary between runs; ratios within one run are the reliable part.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import psutil

from segsync.config.segments import SegmentsConfig
from segsync.runtime import tune_process
from segsync.sandbox.data import generate_world
from segsync.sandbox.store_loader import _world_frames, load_world
from segsync.sandbox.world import World
from segsync.segments import btyd
from segsync.segments.engine import Inputs, run

ENGINE_GOAL_S = 15.0
ENGINE_GOAL_RSS = 3 * 2**30
E2E_GOAL_S = 60
FIT_GOAL = 10.0
INPUT_FRAMES = ("deals", "customers", "touches", "stages")
RULES = {
    "vip": {"where": "abc = 'A' AND rfm_f >= 4"},
    "custom": [{"name": "b2b_lost", "where": "b2b AND lifecycle = 'lost'"}],
}


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
        .with_columns(pl.col("status", "pipeline_id", "stage_id").cast(pl.Categorical))  # as the store loader has it
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


def in_memory(cache: Path) -> tuple[float, int, int, object, dict]:
    inputs = Inputs(**{name: pl.read_parquet(cache / f"{name}.parquet") for name in INPUT_FRAMES})
    meta = json.loads((cache / "world.json").read_text())
    config = SegmentsConfig.model_validate(RULES)
    base = psutil.Process().memory_info().rss
    with PeakRss() as rss:
        tick = time.perf_counter()
        result = run(inputs, config, datetime.fromisoformat(meta["now"]), tz="Europe/Moscow")
        wall = time.perf_counter() - tick
    return wall, rss.peak, base, result, meta


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
    ratio = theirs / mine
    print(f"  speed-up                {ratio:7.1f}×, {ratio / FIT_GOAL:.2f}× the goal of ≥ {FIT_GOAL:.0f}×")


def _params(p: dict) -> str:
    return " ".join(f"{k}={float(p[k]):.4g}" for k in ("r", "alpha", "a", "b") if k in p)


def end_to_end(store: Path, now: str, workdir: Path) -> None:
    db = workdir / "bench.db"
    shutil.copyfile(store, db)  # the cached store stays as generated: every run starts from an empty state
    os.sync()  # the copy's gigabytes reach the disk now, not while the measured run reads them
    url = f"sqlite:///{db}"
    config = workdir / "rules.yaml"
    config.write_text(
        "timezone: Europe/Moscow\nsources:\n  - {name: bench, kind: csv, path: x.csv, header: false, "
        "base_currency: RUB, columns: {customer_id: 1, date: 2, amount: 3}}\n",
        encoding="utf-8",
    )
    env = os.environ | {"SEGSYNC_STORE_URL": url, "SEGSYNC_LOG_LEVEL": "warning"}
    cli = [sys.executable, "-m", "segsync.cli", "compute", "--config", str(config), "--json", "--as-of", now]
    for attempt in ("first run (history from empty)", "second run (same as-of)"):
        tick = time.perf_counter()
        done = subprocess.run(cli, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - tick
        if done.returncode != 0:
            print(done.stderr[-2000:])
            raise SystemExit(f"segsync compute failed ({done.returncode})")
        summary = json.loads(done.stdout)[0]
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"  segsync compute, {attempt}: {wall:6.1f} s wall, {wall / E2E_GOAL_S:.2f}× the goal of "
            f"{E2E_GOAL_S} s; inside: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in summary["timings"].items())
            + f"; {summary['transitions']:,} transitions; peak RSS of children so far {peak:,.0f} MiB"
        )


def prepare(args: argparse.Namespace) -> Path:
    """The cache folder with the World's engine inputs and its SQLite store (built when missing)."""
    size = "huge" if args.customers is None else str(args.customers)
    cache = Path(tempfile.gettempdir()) / "segsync-bench-cache" / f"seed{args.seed}-{size}"
    if args.fresh and cache.exists():
        shutil.rmtree(cache)
    if (cache / "done").exists():
        print(f"world: cached in {cache}")
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()
    if args.customers is None:
        world = generate_world(seed=args.seed, size="huge")
    else:
        world = generate_world(seed=args.seed, customers=args.customers)
    print(f"world: {world.summary()} generated in {time.perf_counter() - tick:.1f} s")
    inputs = world_inputs(world)
    for name in INPUT_FRAMES:
        getattr(inputs, name).write_parquet(cache / f"{name}.parquet")
    truth = {k: float(world.params[k]) for k in ("r", "alpha", "a", "b") if k in world.params}
    (cache / "world.json").write_text(json.dumps({"now": world.now.isoformat(), "truth": truth}))
    if not args.skip_e2e:
        from segsync.store import make_engine, upgrade

        tick = time.perf_counter()
        engine = make_engine(f"sqlite:///{cache / 'store.db'}")
        upgrade(engine)
        load_world(engine, world, source="bench", kind="csv")
        engine.dispose()
        print(f"  store written in {time.perf_counter() - tick:.1f} s (not part of any figure)")
    (cache / "done").write_text("ok")
    return cache


def engine_part(cache: Path, skip_lifetimes: bool) -> None:
    """Parts 1 and 2, in the child process."""
    wall, peak, base, result, meta = in_memory(cache)
    fits = ", ".join(f"{f.model} {f.status}" for f in result.fits)
    print("1. in-memory full recompute")
    print(
        f"  {result.frame.height:,} customers: {wall:.1f} s, {wall / ENGINE_GOAL_S:.2f}× the goal of "
        f"{ENGINE_GOAL_S} s; peak RSS {peak / 2**30:.2f} GiB, {peak / ENGINE_GOAL_RSS:.2f}× the goal of "
        f"{ENGINE_GOAL_RSS / 2**30:.0f} GiB ({base / 2**30:.2f} GiB held before: the inputs); {fits}"
    )
    print("2. BG/NBD fit beside lifetimes (same data, same run)")
    fit_race(result, meta["truth"], skip_lifetimes)


def main() -> None:
    tune_process()  # as every segsync process runs (cli.main)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=None, help="default: the 'huge' preset (1M / 10M deals)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached inputs and store")
    parser.add_argument("--engine-part", type=Path, help=argparse.SUPPRESS)  # the child: parts 1–2 from a cache
    args = parser.parse_args()
    if args.engine_part:
        engine_part(args.engine_part, args.skip_lifetimes)
        return

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (2 cores)")
    cache = prepare(args)
    child = [sys.executable, __file__, "--engine-part", str(cache)] + (["--skip-lifetimes"] * args.skip_lifetimes)
    subprocess.run(child, check=True)
    if not args.skip_e2e:
        print("3. end to end from SQLite")
        now = json.loads((cache / "world.json").read_text())["now"]
        with tempfile.TemporaryDirectory(prefix="segsync-bench-") as folder:
            end_to_end(cache / "store.db", now, Path(folder))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (2 cores)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
