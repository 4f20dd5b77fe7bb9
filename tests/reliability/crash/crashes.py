"""The crash campaign shared by the CLI and daemon tests: seeded rounds of kills, then the comparison.

Each round is a fresh world (sandbox with the same seed, empty store). Its kill points are drawn from a seeded
generator (``SEGSYNC_CRASH_SEED`` replays a campaign); a killed run is restarted until it completes, and the
world must then equal the clean reference: store content, 0 pending ledger rows, 0 duplicate tasks, 0 lost
tag/field changes. Rounds continue until the requested number of processes has actually been killed.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .harness import World, crm_snapshot, differences, duplicate_tasks, lost_changes, store_snapshot

SEED = int(os.environ.get("SEGSYNC_CRASH_SEED", "20260510"))


@dataclass
class Reference:
    store: dict[str, Any]
    crm: dict[str, Any]


@dataclass
class Campaign:
    """Counts across rounds, reported as ``crash.*`` figures."""

    killed: Counter[str] = field(default_factory=Counter)  # per step
    missed: int = 0  # points the run had passed before it was reached (it completed first)
    points: list[str] = field(default_factory=list)  # every point tried, in order
    duplicates: int = 0
    lost: int = 0
    rounds: int = 0

    @property
    def kills(self) -> int:
        return sum(self.killed.values())


def check_world(world: World, reference: Reference, campaign: Campaign, *, exact: bool) -> None:
    """The crashed world equals the clean one: store, CRM, no pending ledger row, no duplicate, nothing lost."""
    store = store_snapshot(world.store_url, exact=exact)
    crm = crm_snapshot(world)
    duplicates = duplicate_tasks(reference.crm, crm)
    lost = lost_changes(reference.crm, crm)
    campaign.duplicates += duplicates
    campaign.lost += lost
    pending = [k for k in store if k.startswith("pending ")]
    assert not pending, f"ledger rows left pending: {pending[:10]}"
    assert duplicates == 0, f"{duplicates} duplicate task(s): {differences(reference.crm, crm)}"
    assert lost == 0, f"{lost} lost change(s): {differences(reference.crm, crm)}"
    assert crm == reference.crm, differences(reference.crm, crm)
    assert store == reference.store, differences(reference.store, store)


def run_rounds(
    make_world: Callable[[Path], World],
    folder: Path,
    reference: Reference,
    *,
    kills_wanted: int,
    per_round: int,
    play: Callable[[World, list[Any], Campaign], None],
    draw: Callable[[random.Random], Any],
    exact: bool,
) -> Campaign:
    """Rounds of ``per_round`` seeded points until ``kills_wanted`` processes were killed; every world checked."""
    rng = random.Random(SEED)
    campaign = Campaign()
    while campaign.kills < kills_wanted:
        campaign.rounds += 1
        if campaign.rounds > 3 * (kills_wanted // per_round + 1):
            raise AssertionError(f"only {campaign.kills} of {kills_wanted} kill points reached: {campaign.points}")
        points = [draw(rng) for _ in range(per_round)]
        campaign.points += [str(p) for p in points]
        print(f"crash round {campaign.rounds} (seed {SEED}): {', '.join(map(str, points))}")
        with make_world(folder / f"round-{campaign.rounds}") as world:
            play(world, points, campaign)
            check_world(world, reference, campaign, exact=exact)
    return campaign
