"""Crash anywhere in the daemon: ``segsync run`` killed at seeded points of its cycle, restarted, compared.

A started daemon takes its sources' leases and pulls each at once; a pull that changed the store chains
compute → push. The daemon is killed (SIGKILL, whole process group) at its N-th CRM request or some seconds
into its work, restarted, and once a restarted daemon has pulled every source and gone quiet it is stopped
cleanly and the world compared with a daemon that was never killed.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import support
from .crashes import SEED, Campaign, Reference, run_rounds
from .harness import CycleDone, KillPoint, Profile, World, crm_snapshot, draw_point, leaks_in_logs, store_snapshot

RUN = ["run"]


def run_daemon(world: World, point: KillPoint | None) -> bool:
    """One daemon process until its cycle is done (then SIGTERM) or it is killed; True when killed."""
    done = CycleDone(world.store_url)
    try:
        return world.run(RUN, point, until=done).killed
    finally:
        done.close()


def play_daemon(world: World, points: list[KillPoint], campaign: Campaign) -> None:
    queue = list(points)
    while True:
        point = queue.pop(0) if queue else None
        if run_daemon(world, point):
            campaign.killed["daemon"] += 1
            continue
        campaign.missed += (point is not None) + len(queue)
        return


def test_crash_anywhere_in_the_daemon(stores, tmp_path: Path) -> None:
    started = time.monotonic()
    customers = support.pick(120, 300)
    make_world = lambda folder: World(folder, stores(), seed=SEED % 1000, customers=customers)  # noqa: E731

    profile = Profile()
    with make_world(tmp_path / "reference") as clean:
        done = CycleDone(clean.store_url)
        try:
            outcome = clean.run(RUN, until=done)
        finally:
            done.close()
        profile.requests["daemon"], profile.work_s["daemon"] = outcome.requests, outcome.work_s
        reference = Reference(store_snapshot(clean.store_url, exact=False), crm_snapshot(clean))
    tasks = sum(len(v) for k, v in reference.crm.items() if k.startswith("task "))
    assert tasks > 0 and any(k.startswith("written ") for k in reference.store), profile

    campaign = run_rounds(
        make_world, tmp_path, reference, kills_wanted=support.pick(2, 12), per_round=support.pick(2, 4),
        play=play_daemon, draw=lambda rng: draw_point(rng, "daemon", profile), exact=False,
    )  # fmt: skip

    leaks = leaks_in_logs(tmp_path)
    assert not leaks, leaks
    support.add("crash.points_killed", campaign.kills)
    support.add("crash.restarts", campaign.kills)
    support.add("crash.duplicate_tasks", campaign.duplicates)
    support.add("crash.lost_changes", campaign.lost)
    support.record("crash.killed.daemon", campaign.killed["daemon"])
    support.record("crash.daemon.points_missed", campaign.missed)
    support.record("crash.daemon.rounds", campaign.rounds)
    support.record("crash.seed", SEED)
    support.record("crash.daemon.points", campaign.points)
    support.record("crash.daemon.reference", {"tasks": tasks, "requests": profile.requests["daemon"],
                                              "work_s": round(profile.work_s["daemon"], 1)})  # fmt: skip
    support.record("crash.daemon.seconds", round(time.monotonic() - started, 1))
