"""Crash anywhere in ``segsync pull → compute → push``: SIGKILL at seeded points, restart, compare with a clean run.

The promise: a crash at any point → the next run resumes, with no duplicate task and no lost change. Bounded in
CI (a few kill points); ``SEGSYNC_RELIABILITY=full`` kills the processes at ≥ 40 points here (≥ 50 with the
daemon test). The seed and every point are printed and recorded so that a failure can be replayed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from .. import support
from .crashes import SEED, Campaign, Reference, run_rounds
from .harness import (
    COMMANDS,
    STEPS,
    KillPoint,
    Profile,
    World,
    crm_snapshot,
    draw_point,
    leaks_in_logs,
    store_snapshot,
)  # fmt: skip

#: How a kill point is shared out between the steps (push holds the exactly-once writes: the most).
WEIGHTS = {"pull": 0.35, "compute": 0.2, "push": 0.45}


def play_pipeline(world: World, points: list[KillPoint], campaign: Campaign) -> None:
    """pull → compute → push, each step killed at its points in turn and restarted until it completes."""
    for step in STEPS:
        queue = [p for p in points if p.step == step]
        while True:
            point = queue.pop(0) if queue else None
            outcome = world.run(COMMANDS[step], point)
            if outcome.killed:
                campaign.killed[step] += 1
                continue
            campaign.missed += (point is not None) + len(queue)
            break


def test_crash_anywhere_in_pull_compute_push(stores, tmp_path: Path) -> None:
    started = time.monotonic()
    customers = support.pick(120, 300)
    make_world = lambda folder: World(folder, stores(), seed=SEED % 1000, customers=customers)  # noqa: E731

    profile = Profile()
    with make_world(tmp_path / "reference") as clean:
        for step in STEPS:
            outcome = clean.run(COMMANDS[step])
            profile.requests[step], profile.work_s[step] = outcome.requests, outcome.work_s
        reference = Reference(store_snapshot(clean.store_url), crm_snapshot(clean))
    tasks = sum(len(v) for k, v in reference.crm.items() if k.startswith("task "))
    labelled = sum(1 for k in reference.crm if k.startswith(("tags ", "fields ")))
    assert tasks > 0 and labelled > 0 and profile.requests["push"] > 2, (tasks, labelled, profile)

    def draw(rng: random.Random) -> KillPoint:
        step = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        return draw_point(rng, step, profile)

    def ordered(world: World, points: list[KillPoint], campaign: Campaign) -> None:
        play_pipeline(world, sorted(points, key=lambda p: STEPS.index(p.step)), campaign)

    campaign = run_rounds(
        make_world, tmp_path, reference, kills_wanted=support.pick(3, 40), per_round=support.pick(4, 8),
        play=ordered, draw=draw, exact=True,
    )  # fmt: skip

    leaks = leaks_in_logs(tmp_path)
    assert not leaks, leaks
    support.add("crash.points_killed", campaign.kills)
    support.add("crash.restarts", campaign.kills)
    support.add("crash.duplicate_tasks", campaign.duplicates)
    support.add("crash.lost_changes", campaign.lost)
    for step in STEPS:
        support.record(f"crash.killed.{step}", campaign.killed[step])
    support.record("crash.cli.points_missed", campaign.missed)
    support.record("crash.cli.rounds", campaign.rounds)
    support.record("crash.seed", SEED)
    support.record("crash.cli.points", campaign.points)
    support.record("crash.cli.reference", {"tasks": tasks, "labelled_entities": labelled, **profile.requests})
    support.record("crash.cli.seconds", round(time.monotonic() - started, 1))
