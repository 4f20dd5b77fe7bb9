"""plan_source / push_source: apply the plan through a connector, exactly once.

Order of a push:

1. **Reconcile** ``pending`` rows left by an interrupted push: tasks are looked up in the CRM by
   their marker (found → done with its id; not found → safe to send again); label writes are sent
   again as they were (setting the same tags/fields twice is harmless). Nothing is resent before this.
2. **Plan** (the same code as ``segsync plan``) and save it to the ledger.
3. **Apply** due ops in chunks: each chunk is committed ``pending`` before the call and ``done`` with
   the remote id after. Before creating tasks the CRM is asked for open tasks of the same action on
   those customers, so a task is never duplicated even if the ledger was lost.

A push with nothing to do makes no CRM request at all.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from segsync.actions import ledger as lg
from segsync.actions.keys import rule_marker
from segsync.actions.load import load_input, load_keys
from segsync.actions.model import LedgerRow, Plan
from segsync.actions.planner import compute_firings, make_plan
from segsync.app import now_utc
from segsync.config.models import Rules
from segsync.contract import Connector, CustomerRef, LabelChange, RemoteTask, TaskRequest, WriteResult
from segsync.errors import AmbiguousWrite, RetriableCrmError
from segsync.logs import get_logger
from segsync.runs import recorded_run

log = get_logger("segsync.actions")

CHUNK = 200  # ops per connector call: 4 CRM batches of 50; bounds what a crash can leave pending


@dataclass
class PushResult:
    plan: Plan
    dry_run: bool
    run_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "run_id": self.run_id, "applied": self.counts, "plan": self.plan.to_json()}


def _plan(engine: Engine, source_id: int, rules: Rules, as_of: datetime) -> Plan:
    inp = load_input(engine, source_id, rules, as_of)
    firings = compute_firings(inp, rules, as_of)
    loaded = {r.key for r in inp.ledger}
    missing = firings.keys(inp.source) - loaded
    if missing:
        inp.ledger.extend(load_keys(engine, source_id, missing))
    return make_plan(inp, rules, as_of, firings=firings)


def plan_source(engine: Engine, source_id: int, rules: Rules, *, as_of: datetime | None = None) -> Plan:
    """What a push would do at ``as_of`` (default now). Reads the store only."""
    return _plan(engine, source_id, rules, as_of or now_utc())


async def push_source(
    engine: Engine,
    source_id: int,
    rules: Rules,
    connector: Connector,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
) -> PushResult:
    """Reconcile, plan, save, apply (see the module docstring). ``dry_run``: the plan only."""
    as_of = as_of or now_utc()
    if dry_run:
        plan = await asyncio.to_thread(_plan, engine, source_id, rules, as_of)
        return PushResult(plan=plan, dry_run=True)
    with recorded_run(engine, "push", source_id) as run:
        pusher = _Pusher(engine, source_id, rules, connector, as_of)
        await pusher.reconcile_pending()
        plan = await asyncio.to_thread(_plan, engine, source_id, rules, as_of)
        saved = await asyncio.to_thread(lg.save_plan, engine, source_id, plan, as_of)
        await pusher.apply()
        counts = dict(sorted(pusher.stats.items()))
        run.counts.update({"plan": plan.counts(), "saved": saved, "applied": counts})
        log.info("pushed", source_id=source_id, **counts)
        return PushResult(plan=plan, dry_run=False, run_id=run.id, counts=counts)


def _chunks(rows: Sequence[LedgerRow], size: int = CHUNK) -> list[Sequence[LedgerRow]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


class _Pusher:
    def __init__(self, engine: Engine, source_id: int, rules: Rules, connector: Connector, now: datetime):
        self.engine = engine
        self.source_id = source_id
        self.rules = rules
        self.conn = connector
        self.now = now
        self.stats: Counter[str] = Counter()

    async def _db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)

    # -- reconciliation -------------------------------------------------------------------------

    async def _remote_tasks(self, rows: Sequence[LedgerRow]) -> dict[str, list[RemoteTask]]:
        """segsync's tasks in the CRM per rule, for these rows' customers."""
        by_rule: dict[str, set[CustomerRef]] = defaultdict(set)
        for row in rows:
            by_rule[row.rule or ""].add(row.customer)
        found: dict[str, list[RemoteTask]] = {}
        for rule, customers in by_rule.items():
            refs = sorted(customers, key=lambda c: (c.kind, c.remote_id))
            found[rule] = await self.conn.find_tasks(refs, rule_marker(rule))
            self.stats["find_calls"] += 1
        return found

    async def _settle_by_lookup(self, rows: Sequence[LedgerRow], error: str | None) -> None:
        """After a crash or an ambiguous answer: done if the CRM has it, else failed/planned (safe to resend)."""
        if not rows:
            return
        found = await self._remote_tasks(rows)
        done: list[tuple[LedgerRow, str | None]] = []
        absent: list[LedgerRow] = []
        for row in rows:
            remote = found.get(row.rule or "", [])
            if row.op == "task":
                hit = next((t for t in remote if row.payload.get("marker", "\0") in t.text), None)
                (done.append((row, hit.remote_id)) if hit else absent.append(row))
            else:  # complete
                hit = next((t for t in remote if t.remote_id == row.payload.get("task_id")), None)
                (done.append((row, row.payload.get("task_id"))) if hit is None or hit.completed else absent.append(row))
        await self._db(lg.mark_done, self.engine, self.source_id, done, self.now)
        self.stats["reconciled_done"] += len(done)
        if error is None:
            await self._db(lg.mark_planned, self.engine, absent, self.now)
            self.stats["reconciled_resend"] += len(absent)
        else:
            failed, parked = await self._db(
                lg.mark_failed, self.engine, [(r, error, True) for r in absent], self.now, self.rules.limits
            )
            self.stats["failed"] += failed
            self.stats["parked"] += parked

    async def reconcile_pending(self) -> None:
        pending = await self._db(lg.rows_in_state, self.engine, self.source_id, "pending")
        if not pending:
            return
        log.warning("reconciling_pending", source_id=self.source_id, n=len(pending))
        labels = [r for r in pending if r.op == "labels"]
        await self._db(lg.mark_planned, self.engine, labels, self.now, uncertain=True)
        self.stats["reconciled_resend"] += len(labels)
        others = [r for r in pending if r.op != "labels"]
        for chunk in _chunks(others):
            await self._settle_by_lookup(chunk, None)

    # -- applying -------------------------------------------------------------------------------

    async def apply(self) -> None:
        labels = await self._db(lg.due_rows, self.engine, self.source_id, "labels", self.now)
        if labels:
            await self.conn.prepare_writeback(list(self.rules.writeback.publish))
            for chunk in _chunks(labels):
                await self._send_labels(chunk)
        tasks = await self._db(lg.due_rows, self.engine, self.source_id, "task", self.now)
        for chunk in _chunks(tasks):
            await self._send_tasks(chunk)
        completes = await self._db(lg.due_rows, self.engine, self.source_id, "complete", self.now)
        for chunk in _chunks(completes):
            await self._send_completions(chunk)

    async def _call(
        self, rows: Sequence[LedgerRow], call: Callable[[], Awaitable[list[WriteResult]]], lookup: bool
    ) -> None:
        """pending → call → done / failed / parked; ambiguous outcomes are looked up, never resent blindly."""
        if not rows:
            return
        await self._db(lg.mark_pending, self.engine, rows, self.now)
        self.stats["write_calls"] += 1
        try:
            results = await call()
        except (AmbiguousWrite, RetriableCrmError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if lookup:
                await self._settle_by_lookup(rows, error)
            else:
                failed, parked = await self._db(
                    lg.mark_failed, self.engine, [(r, error, True) for r in rows], self.now, self.rules.limits,
                    uncertain=True,
                )  # fmt: skip
                self.stats["failed"] += failed
                self.stats["parked"] += parked
            return
        by_key = {r.key: r for r in results}
        done, failures, unsure = [], [], []
        for row in rows:
            res = by_key.get(row.key)
            if res is not None and res.ok:
                done.append((row, res.remote_id))
            elif res is None or res.ambiguous:
                unsure.append(row)
            else:
                failures.append((row, res.error or "rejected by the CRM", res.retriable))
        await self._db(lg.mark_done, self.engine, self.source_id, done, self.now)
        self.stats[f"{rows[0].op}_done"] += len(done)
        failed, parked = await self._db(lg.mark_failed, self.engine, failures, self.now, self.rules.limits)
        self.stats["failed"] += failed
        self.stats["parked"] += parked
        if unsure and lookup:
            await self._settle_by_lookup(unsure, "outcome unknown and not found in the CRM")
        elif unsure:
            failed, parked = await self._db(
                lg.mark_failed, self.engine, [(r, "outcome unknown", True) for r in unsure], self.now,
                self.rules.limits, uncertain=True,
            )  # fmt: skip
            self.stats["failed"] += failed
            self.stats["parked"] += parked

    async def _send_labels(self, rows: Sequence[LedgerRow]) -> None:
        changes = [
            LabelChange(r.key, r.customer, r.payload.get("before", {}), r.payload.get("after", {})) for r in rows
        ]
        await self._call(rows, lambda: self.conn.set_labels(changes), lookup=False)

    async def _send_tasks(self, rows: Sequence[LedgerRow]) -> None:
        found = await self._remote_tasks(rows)
        adopt: list[tuple[LedgerRow, str | None]] = []
        skip: list[tuple[LedgerRow, str]] = []
        send: list[LedgerRow] = []
        for row in rows:
            remote = [t for t in found.get(row.rule or "", []) if t.customer == row.customer]
            mine = next((t for t in remote if row.payload.get("marker", "\0") in t.text), None)
            open_same_rule = next((t for t in remote if not t.completed), None)
            if mine is not None:
                adopt.append((row, mine.remote_id))
            elif open_same_rule is not None:
                skip.append((row, f"not created: task {open_same_rule.remote_id} of this action is still open"))
            else:
                send.append(row)
        await self._db(lg.mark_done, self.engine, self.source_id, adopt, self.now)
        await self._db(lg.mark_skipped, self.engine, skip, self.now)
        self.stats["task_adopted"] += len(adopt)
        self.stats["task_skipped_open"] += len(skip)
        requests = [
            TaskRequest(
                key=r.key,
                customer=r.customer,
                title=r.payload["title"],
                description=r.payload.get("description", ""),
                due=datetime.fromisoformat(r.payload["due"]),
                type=r.payload.get("type", "call"),
                responsible_id=r.payload.get("responsible_id"),
                marker=r.payload["marker"],
            )
            for r in send
        ]
        await self._call(send, lambda: self.conn.create_tasks(requests), lookup=True)

    async def _send_completions(self, rows: Sequence[LedgerRow]) -> None:
        found = await self._remote_tasks(rows)
        skip: list[tuple[LedgerRow, str]] = []
        send: list[LedgerRow] = []
        for row in rows:
            hit = next((t for t in found.get(row.rule or "", []) if t.remote_id == row.payload.get("task_id")), None)
            if hit is None:
                skip.append((row, "not completed: the task is no longer in the CRM"))
            elif hit.completed:
                skip.append((row, "not completed: the manager already closed the task"))
            else:
                send.append(row)
        await self._db(lg.mark_skipped, self.engine, skip, self.now)
        self.stats["complete_skipped"] += len(skip)
        pairs = [(r.key, r.payload["task_id"]) for r in send]
        await self._call(send, lambda: self.conn.complete_tasks(pairs), lookup=True)
