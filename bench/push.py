"""Write-back at scale: 50,000 customers changing segment and 5,000 new tasks, on each CRM's sandbox.

For each CRM the sandbox runs in a subprocess at its default limits (Bitrix24: leaky bucket, burst 50,
2 requests/s; amoCRM: 7 requests in any rolling second) with its bench-sized world. Then:

1. users, companies and contacts are pulled through the connector into a fresh SQLite store (not timed);
2. 50,000 of those customers get new segment labels and ``labels_written`` holds the labels a previous push
   wrote (other values), so every one of them changes segment; 5,000 of them become churned A customers
   whom the action ``reactivation`` gives a task (daily cap 5,000, so all go out today);
3. ``push_source`` runs once (timed): the connector's own request counter is read around each connector call,
   so requests are split into write calls (labels, field/tag creation, task creation — counting the few
   dictionary reads they make too, so the write figure is an upper bound) and lookups (open tasks by marker
   before creating); the sandbox's counters cross-check the total (amoCRM's also split by HTTP verb);
4. a second push with nothing changed: the sandbox's counters must not move (amoCRM: opening a connector
   reads the account once, no write).

Rate-limit bound: the least time the CRM's limit allows for the R requests the push sent.
Bitrix24: the first B = 50 pass at once, the rest drain at Y = 2/s → (R − B) / Y seconds.
amoCRM: at most 7 in any second → request k can go at ⌊(k − 1) / 7⌋ s → ⌈R / 7⌉ − 1 seconds.
Printed: wall time, the bound, their ratio (1.00 = as fast as the limit allows), and write requests per
changed object (labelled customer or created task; required ≤ 1/40).

    python bench/push.py [--crm both|bitrix24|amocrm] [--customers 50000] [--tasks 5000] [--size PRESET]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from segsync.actions import push_source
from segsync.app import ensure_sources
from segsync.config import parse_rules
from segsync.config.models import Rules
from segsync.connect import open_connector
from segsync.contract import CustomerRef, LabelChange, RemoteTask, TaskRequest, WriteResult
from segsync.logs import configure_logging
from segsync.runtime import tune_process
from segsync.sandbox.data import default_now
from segsync.sandbox.testing import SandboxHandle, start_subprocess
from segsync.segments.names import display
from segsync.store import make_engine, upgrade
from segsync.store import tables as t
from segsync.store.upsert import upsert
from segsync.sync import pull_source

B24_BURST, B24_RATE = 50, 2.0
AMO_RATE = 7
OLD = {"abc_xyz": "BY", "rfm": "loyal_customers", "churn_risk": "low"}
NEW = ({"abc": "C", "abc_xyz": "CZ", "rfm": "hibernating", "churn_risk": "medium"},
       {"abc": "B", "abc_xyz": "BZ", "rfm": "need_attention", "churn_risk": "medium"})  # fmt: skip
CHURNED = {"abc": "A", "abc_xyz": "AX", "rfm": "at_risk", "churn_risk": "high", "churn_flag": "yes", "vip": "yes"}
RULES = """\
timezone: Europe/Moscow
sources:
{source}
writeback:
  publish: [abc_xyz, rfm, churn_risk]
  tags: {{prefix: "seg:"}}
actions:
  - name: reactivation
    where: "churn_flag AND abc IN ('A', 'B')"
    task:
      title: "Реактивация: {{{{ customer.name }}}}"
      description: "Не покупает {{{{ days_silent | days }}}}, обычно раз в {{{{ usual_cycle | days }}}}. Выручка: {{{{ revenue_total | money }}}}."
      due: 2
      fallback_user: "{fallback}"
limits:
  daily_cap_per_manager: {cap}
"""  # noqa: E501


def monday_morning() -> datetime:
    """10:00 in Moscow on the next Monday: a business day, so every task may go out now."""
    day = default_now().date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 7, tzinfo=UTC)


class CountingConnector:
    """Delegates to a connector and attributes its HTTP requests to writes or lookups."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.requests: Counter[str] = Counter()
        self.objects: Counter[str] = Counter()

    async def _timed(self, kind: str, call: Any) -> Any:
        before = self.inner.requests
        result = await call
        self.requests[kind] += self.inner.requests - before
        return result

    async def prepare_writeback(self, labels: Sequence[str]) -> None:
        await self._timed("write", self.inner.prepare_writeback(labels))

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        self.objects["labels"] += len(changes)
        return await self._timed("write", self.inner.set_labels(changes))

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        self.objects["tasks"] += len(tasks)
        return await self._timed("write", self.inner.create_tasks(tasks))

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]:
        self.objects["completions"] += len(keys_and_ids)
        return await self._timed("write", self.inner.complete_tasks(keys_and_ids))

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        return await self._timed("lookup", self.inner.find_tasks(customers, marker))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def source_block(crm: str, sb: SandboxHandle) -> str:
    if crm == "bitrix24":
        return f"  - {{name: bench, kind: bitrix24, webhook_url: {sb.info['bitrix24']['webhook_url']}}}"
    info = sb.info["amocrm"]
    return (
        f"  - {{name: bench, kind: amocrm, base_url: {info['base_url']}, long_lived_token: {info['long_lived_token']}}}"
    )


def sandbox_requests(crm: str, sb: SandboxHandle) -> Counter[str]:
    if crm == "bitrix24":
        by_key = sb.admin("GET", "/b24/portal/_admin/state")["counters"]["requests"]
    else:
        by_key = sb.admin("GET", "/amo/account/_admin/state")["requests"]
    return Counter({key: sum(by_status.values()) for key, by_status in by_key.items()})


def seed(engine: Engine, sid: int, customers: int, tasks: int, as_of: datetime) -> tuple[int, int]:
    """New labels for ``customers`` customers, a previous push's labels for them, churn for ``tasks`` of them."""
    cu = t.customers
    with engine.connect() as conn:
        refs = conn.execute(
            select(cu.c.kind, cu.c.remote_id).where(cu.c.source_id == sid).order_by(cu.c.kind, cu.c.remote_id)
        ).all()[:customers]
    old = {k: display(k, v, "ru") for k, v in OLD.items()}
    state, written = [], []
    for i, (kind, remote_id) in enumerate(refs):
        labels = CHURNED if i < tasks else NEW[i % 2]
        features = {"recency_days": 120 + i % 200, "cycle_days": 30 + i % 40, "revenue_total": 10_000 + i,
                    "clv": float(100_000 - i)}  # fmt: skip
        state.append({"source_id": sid, "customer_kind": kind, "customer_id": remote_id, "labels": labels,
                      "features": features, "as_of": as_of, "updated_at": as_of})  # fmt: skip
        written.append({"source_id": sid, "customer_kind": kind, "customer_id": remote_id, "labels": old,
                        "updated_at": as_of - timedelta(days=7)})  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(state), 1000):
            upsert(conn, t.segment_state, state[start : start + 1000], ["source_id", "customer_kind", "customer_id"])
            upsert(conn, t.labels_written, written[start : start + 1000], ["source_id", "customer_kind", "customer_id"])
    return len(refs), min(tasks, len(refs))


async def pull(engine: Engine, sid: int, rules: Rules) -> None:
    async with open_connector(engine, sid, rules.sources[0]) as conn:
        await pull_source(engine, sid, conn, full=True, entities=["users", "companies", "contacts"])


async def push(engine: Engine, sid: int, rules: Rules, as_of: datetime, counting: bool) -> tuple[Any, Any]:
    async with open_connector(engine, sid, rules.sources[0], label_prefix=rules.writeback.tags.prefix) as conn:
        wrapped = CountingConnector(conn) if counting else conn
        result = await push_source(engine, sid, rules, wrapped, as_of=as_of)  # type: ignore[arg-type]
    return result, wrapped


def bound_seconds(crm: str, requests: int) -> float:
    if crm == "bitrix24":
        return max(0, requests - B24_BURST) / B24_RATE
    return max(0, math.ceil(requests / AMO_RATE) - 1)


def say(crm: str, text: str) -> None:
    print(f"[{crm}] {text}", flush=True)


def prepare(crm: str, sb: SandboxHandle, engine: Engine, customers: int, tasks: int, as_of: datetime) -> tuple:
    """Pull the CRM's users and customers, then seed segments and the previous push; returns (rules, source id)."""
    block = source_block(crm, sb)
    rules = parse_rules(RULES.format(source=block, fallback="0", cap=tasks), "bench.yaml", env={})
    sid = ensure_sources(engine, rules.sources)["bench"]
    asyncio.run(pull(engine, sid, rules))
    with engine.connect() as conn:
        users = conn.execute(select(t.users.c.remote_id).where(t.users.c.active.is_(True))).scalars()
        active = sorted(str(u) for u in users)
    rules = parse_rules(RULES.format(source=block, fallback=active[0], cap=tasks), "bench.yaml", env={})
    seeded, _ = seed(engine, sid, customers, tasks, as_of)
    return rules, sid, seeded


def measured_push(crm: str, sb: SandboxHandle, engine: Engine, sid: int, rules: Rules, as_of: datetime) -> dict:
    if crm == "bitrix24":
        sb.admin("POST", "/b24/portal/_admin/reset-limits")  # the measured push starts with a full burst
    time.sleep(1.5)  # and, on amoCRM, with an empty rolling second
    before = sandbox_requests(crm, sb)
    started = time.perf_counter()
    result, counted = asyncio.run(push(engine, sid, rules, as_of, counting=True))
    wall = time.perf_counter() - started
    seen = sandbox_requests(crm, sb) - before
    done = result.counts
    changed = done.get("labels_done", 0) + done.get("task_done", 0)
    writes, total = counted.requests["write"], sum(seen.values())
    bound = bound_seconds(crm, total)
    ratio = f"{wall / bound:.2f}" if bound else "n/a (within the burst)"
    verbs: Counter[str] = Counter()
    for key, n in seen.items():
        verbs[key.split(" ", 1)[0] if crm == "amocrm" else key] += n
    say(crm, f"plan: {result.plan.counts()}; notes: {result.plan.notes}")
    say(crm, f"push: {done.get('labels_done', 0):,} customers relabelled, {done.get('task_done', 0):,} tasks created, "
             f"failed {done.get('failed', 0)}, parked {done.get('parked', 0)}")  # fmt: skip
    say(crm, f"  write requests {writes:,} for {changed:,} changed objects = 1/{changed / writes:.1f} per object "
             f"(required ≤ 1/40; counted as every request inside a write call, incl. the field/tag dictionary "
             f"reads they make); open-task lookups {counted.requests['lookup']:,}")  # fmt: skip
    say(crm, f"  requests seen by the sandbox {total:,} {dict(verbs)}; sent inside connector calls "
             f"{sum(counted.requests.values()):,}")  # fmt: skip
    say(crm, f"  wall {wall:.1f} s; rate-limit bound {bound:.1f} s for {total:,} requests → ratio {ratio}")
    return {"customers_relabelled": done.get("labels_done", 0), "tasks_created": done.get("task_done", 0),
            "failed": done.get("failed", 0), "write_requests": writes, "lookup_requests": counted.requests["lookup"],
            "sandbox_requests": dict(seen), "objects_per_write_request": changed / writes, "wall_s": wall,
            "bound_s": bound, "ratio": wall / bound if bound else None, "plan": result.plan.counts(),
            "notes": result.plan.notes}  # fmt: skip


def noop_push(crm: str, sb: SandboxHandle, engine: Engine, sid: int, rules: Rules, as_of: datetime) -> dict:
    before = sandbox_requests(crm, sb)
    again, _ = asyncio.run(push(engine, sid, rules, as_of, counting=False))
    delta = sandbox_requests(crm, sb) - before
    writes = {k: n for k, n in delta.items() if n and not k.startswith("GET ")}
    say(crm, f"second push, nothing changed: plan {again.plan.counts() or 'empty'}; requests {dict(delta) or 0}, "
             f"writes {writes or 0}")  # fmt: skip
    return {"noop_requests": dict(delta), "noop_writes": writes}


def run_crm(crm: str, customers: int, tasks: int, size: str | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    size = size or ("bench-b24" if crm == "bitrix24" else "bench-amo")
    portals, accounts = (1, 0) if crm == "bitrix24" else (0, 1)
    sb = start_subprocess(size=size, portals=portals, accounts=accounts, timeout=1800)
    say(crm, f"sandbox {size} up in {time.perf_counter() - t0:.0f} s (pid {sb.pid})")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            upgrade(engine)
            as_of = monday_morning()
            t1 = time.perf_counter()
            rules, sid, seeded = prepare(crm, sb, engine, customers, tasks, as_of)
            say(
                crm,
                f"pulled users and customers, seeded {seeded:,} changed customers in {time.perf_counter() - t1:.0f} s",
            )
            out = measured_push(crm, sb, engine, sid, rules, as_of)
            out.update(noop_push(crm, sb, engine, sid, rules, as_of + timedelta(hours=1)))
            engine.dispose()
            return out
    finally:
        sb.stop()


def main() -> None:
    tune_process()  # as every segsync process runs (cli.main)
    ap = argparse.ArgumentParser()
    ap.add_argument("--crm", choices=["both", "bitrix24", "amocrm"], default="both")
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--tasks", type=int, default=5_000)
    ap.add_argument("--size", default=None, help="sandbox size preset (default: bench-b24 / bench-amo)")
    args = ap.parse_args()
    configure_logging("warning")
    crms = ["bitrix24", "amocrm"] if args.crm == "both" else [args.crm]
    report = {crm: run_crm(crm, args.customers, args.tasks, args.size) for crm in crms}
    print(json.dumps(report, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
