"""Scale-out on PostgreSQL: 3 replicas, 6 sources; each source worked by exactly one replica at a time."""

from __future__ import annotations

import itertools
import signal
import time
from datetime import UTC, datetime

import httpx
from harness import DaemonProcess, fake_source, running_daemon, runs_of, wait_for, write_rules

TAKEOVER_LIMIT = 60.0


def _worked_by(replicas: list[DaemonProcess]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for i, replica in enumerate(replicas):
        if replica.proc.poll() is not None:
            continue
        try:
            sources = httpx.get(f"{replica.url}/readyz", timeout=5).json()["sources"]
        except (httpx.TransportError, ValueError):
            continue
        out[i] = {name for name, info in sources.items() if info["worked_here"]}
    return out


def _wait(predicate, within: float, every: float = 0.25):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {within}s")


def _split_evenly(replicas: list[DaemonProcess], names: set[str], alive: int) -> bool:
    held = _worked_by(replicas)
    if len(held) != alive:
        return False
    together = [name for names_ in held.values() for name in names_]
    return sorted(together) == sorted(names) and max(len(v) for v in held.values()) <= -(-len(names) // alive)


def test_three_replicas_split_six_sources_and_survive_a_kill(tmp_path, postgres_url):
    names = {f"s{i}" for i in range(6)}
    sources = [fake_source(n, contacts=4, page_size=2, page_delay=0.05, schedule={"pull": "2s"}) for n in sorted(names)]
    config = write_rules(tmp_path / "rules.yaml", sources)
    env = {"SEGSYNC_LEASE_REFRESH": "2"}
    replicas = [DaemonProcess(config, postgres_url, tmp_path / f"r{i}.log", env=env).start() for i in range(3)]
    try:
        for replica in replicas:
            replica.wait_ready()
        _wait(lambda: _split_evenly(replicas, names, 3), within=30)
        time.sleep(4)  # let every source run a few pulls

        victim_index, victim_sources = max(_worked_by(replicas).items(), key=lambda kv: len(kv[1]))
        victim = replicas[victim_index]
        killed_at = datetime.now(UTC)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        _wait(lambda: _split_evenly(replicas, names, 2), within=TAKEOVER_LIMIT)

        def taken_over() -> bool:
            after = [r for r in runs_of(postgres_url, "pull") if r.started_at > killed_at]
            return victim_sources <= {r.name for r in after}

        _wait(taken_over, within=TAKEOVER_LIMIT)
        takeover = max(
            min(r.started_at for r in runs_of(postgres_url, "pull") if r.name == n and r.started_at > killed_at)
            for n in victim_sources
        )
        print(f"takeover after {(takeover - killed_at).total_seconds():.1f}s")
        assert (takeover - killed_at).total_seconds() <= TAKEOVER_LIMIT
    finally:
        for replica in replicas:
            replica.stop()

    victim_worker = f":{victim.proc.pid}"
    runs = runs_of(postgres_url)
    assert {r.name for r in runs} == names
    workers_per_source: dict[str, set[str]] = {}
    for source in names:
        mine = sorted((r for r in runs if r.name == source), key=lambda r: r.started_at)
        workers_per_source[source] = {r.worker for r in mine}
        for earlier, later in itertools.pairwise(mine):
            end = earlier.finished_at
            if end is None:  # the killed replica never finished it: it ended with the process
                assert earlier.worker.endswith(victim_worker), earlier
                end = killed_at
            assert later.started_at >= end, f"{source}: {earlier.worker} and {later.worker} overlapped"
    assert any(len(w) > 1 for w in workers_per_source.values())  # sources did change hands


async def test_a_webhook_on_any_replica_reaches_the_one_that_works_the_source(tmp_path, postgres_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source(f"s{i}", contacts=2) for i in range(4)], debounce=0.1)

    def held(daemon) -> set[str]:
        return {name for name, w in daemon.workers().items() if w.is_mine(w.source_id)}

    async with (
        running_daemon(config, postgres_url, lease_interval=0.5) as one,
        running_daemon(config, postgres_url, lease_interval=0.5) as two,
    ):
        await wait_for(lambda: len(held(one)) == 2 and len(held(two)) == 2, within=30)
        name = sorted(held(two))[0]
        holder = two.workers()[name]
        await wait_for(lambda: "pull" in holder.last_success and not holder.busy)
        sent_at = datetime.now(UTC)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{one.port}") as client:  # not the holder
            r = await client.post(f"/webhooks/fake/{name}", data={"token": "good-token", "id": "1"})
            assert r.status_code == 200
        await wait_for(lambda: holder.last_success["pull"] > sent_at, within=10)
