"""The steps the daemon chains for one source, each a small async function of a :class:`StepContext`.

``pull`` runs on its interval and after webhooks, ``reconcile`` on its cron, and the
:data:`PUBLISH` chain (compute → plan → push) after every pull that changed something and on the
daily compute cron. Every step records its own ``runs`` row (the functions it calls do that).

Wiring another step is a function here with the same signature and a line in :data:`PUBLISH`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from segsync.app import now_utc
from segsync.config import Rules
from segsync.config.sources import SourceBase
from segsync.contract import Connector
from segsync.metrics import record_deleted, record_ops, record_pull_counts, record_segment_sizes, record_token_expiry
from segsync.sync import PullResult, pull_source, reconcile_source


@dataclass(frozen=True)
class StepContext:
    """Everything a step may use; ``connector`` is entered (``async with``) for the duration of the job."""

    engine: Engine
    source_id: int
    source: SourceBase
    rules: Rules
    connector: Connector


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], Awaitable[Mapping[str, Any]]]


async def pull(ctx: StepContext) -> PullResult:
    """Incremental pull of every entity and the CRM's deletion feed."""
    result = await pull_source(ctx.engine, ctx.source_id, ctx.connector)
    record_pull_counts(ctx.source.name, result.counts)
    return result


async def reconcile(ctx: StepContext) -> Mapping[str, Any]:
    """ID sweep for deletions the event feed missed."""
    counts = await reconcile_source(ctx.engine, ctx.source_id, ctx.connector)
    for entity, c in counts.items():
        record_deleted(ctx.source.name, entity, "sweep", c.get("deleted", 0))
    return counts


def has_keep_alive(connector: Connector) -> bool:
    """Connectors whose credentials die when unused (amoCRM refresh tokens: 3 months) offer ``keep_alive()``."""
    return callable(getattr(connector, "keep_alive", None))


async def keep_alive(ctx: StepContext) -> Mapping[str, Any]:
    """Keep the credentials valid (scheduled daily when the connector offers it); export their expiry."""
    result = await ctx.connector.keep_alive()  # type: ignore[attr-defined]
    result = result if isinstance(result, Mapping) else {}
    record_token_expiry(ctx.source.name, result.get("expires_at"))
    return result


async def compute(ctx: StepContext) -> Mapping[str, Any]:
    """Recompute the source's segments as of now (CPU work: in a worker thread, the event loop keeps serving)."""
    from segsync.compute.run import compute_source

    summary = await asyncio.to_thread(compute_source, ctx.engine, ctx.rules, ctx.source, ctx.source_id, now_utc())
    record_segment_sizes(ctx.source.name, summary.counts.get("labels", {}))
    return summary.counts


async def push(ctx: StepContext) -> Mapping[str, Any]:
    """Plan and apply labels and tasks (``push_source`` plans, saves the plan to the ledger, then applies it)."""
    from segsync.actions import push_source

    result = await push_source(ctx.engine, ctx.source_id, ctx.rules, ctx.connector)
    planned = Counter(op.op for op in result.plan.ops if op.state != "skipped")
    for op, n in planned.items():
        record_ops(ctx.source.name, op, "planned", n)
    for key, n in result.counts.items():
        if key.endswith("_done"):
            record_ops(ctx.source.name, key.removesuffix("_done"), "applied", n)
    for status in ("failed", "parked"):
        record_ops(ctx.source.name, "any", status, result.counts.get(status, 0))
    return result.counts


#: compute → plan → push, in this order; run after a pull that changed something and on the compute cron.
#: (``push_source`` plans, saves the plan to the ledger and applies it: plan is not a step of its own.)
PUBLISH: tuple[Step, ...] = (Step("compute", compute), Step("push", push))
