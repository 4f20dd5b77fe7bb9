"""What the daemon does with webhook change hints: deletions at once, everything else as one pull later.

A burst of thousands of webhooks must be answered in milliseconds each, so a request only appends
to memory; deletions are written in one batch by a background task, and the rest arms a debouncer
that folds the burst into a single incremental pull.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from segsync.app import now_utc
from segsync.contract import ChangeHint
from segsync.logs import get_logger
from segsync.store import mark_deleted
from segsync.sync.rows import ENTITY_TABLES

log = get_logger("segsync.daemon.hints")


class Debouncer:
    """Run ``action`` once a burst of calls has been quiet for ``delay`` seconds (at the latest ``max_wait``).

    A burst of any length becomes one action after it ends; a stream that never goes quiet still
    gets one every ``max_wait`` seconds. Calls only store a timestamp, so a call costs nanoseconds.
    """

    def __init__(self, delay: float, action: Callable[[], None], *, max_wait: float | None = None):
        self.delay = delay
        self.max_wait = max_wait
        self.action = action
        self._handle: asyncio.TimerHandle | None = None
        self._first = 0.0
        self._last = 0.0

    def _limit(self) -> float:
        return self.max_wait if self.max_wait is not None else max(10 * self.delay, 60.0)

    def __call__(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._handle is None:
            self._first = self._last
            self._handle = loop.call_at(self._last + self.delay, self._fire)

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        due = min(self._last + self.delay, self._first + self._limit())
        if due > loop.time() + 0.001:
            self._handle = loop.call_at(due, self._fire)
            return
        self._handle = None
        self.action()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _entity_key(hint: ChangeHint) -> str:
    """Customers may be hinted as entity "contacts"/"companies" or by ``kind``; the table key is the entity."""
    if hint.entity in ("contacts", "companies") or hint.kind is None:
        return hint.entity
    return "companies" if hint.kind == "company" else "contacts"


def apply_deletes(engine: Engine, source_id: int, hints: Sequence[ChangeHint]) -> dict[str, int]:
    """Soft-delete the hinted records in one transaction; return rows newly marked, per entity."""
    by_entity: dict[str, set[str]] = defaultdict(set)
    for hint in hints:
        if hint.deleted and hint.remote_id is not None:
            by_entity[_entity_key(hint)].add(hint.remote_id)
    counts: dict[str, int] = {}
    now = now_utc()
    with engine.begin() as conn:
        for entity, ids in by_entity.items():
            if entity not in ENTITY_TABLES:
                continue
            table, match = ENTITY_TABLES[entity]  # type: ignore[index]
            counts[entity] = mark_deleted(conn, table, source_id, match, sorted(ids), now)
    return counts


class DeleteBuffer:
    """Collects delete hints and writes them in batches from a background task."""

    def __init__(self, engine: Engine, source_id: int, on_applied: Callable[[dict[str, int]], None]):
        self.engine = engine
        self.source_id = source_id
        self.on_applied = on_applied
        self.retry_after = 5.0
        self._pending: list[ChangeHint] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, hints: Sequence[ChangeHint]) -> None:
        self._pending.extend(hints)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of a burst arrive before the first write
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                counts = await asyncio.to_thread(apply_deletes, self.engine, self.source_id, batch)
            except Exception as exc:  # store unavailable: keep the hints and try again
                log.error("webhook_deletes_failed", source_id=self.source_id, error=str(exc)[:500], held=len(batch))
                self._pending[:0] = batch
                await asyncio.sleep(self.retry_after)
                continue
            self.on_applied(counts)

    async def drain(self) -> None:
        """Wait for pending deletions to be written (shutdown)."""
        if self._task is not None and not self._task.done():
            await self._task
