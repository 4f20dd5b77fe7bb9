"""Pull and reconcile one source.

Fetching and writing overlap: while page N is written (in a worker thread), page N+1 is already
being fetched, mapped and converted for the store on the event loop, so a pull runs at the CRM's rate
limit rather than at limit + database time, and the database's own work (which runs without the GIL)
takes the second core instead of queueing behind the conversion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from segsync.app import now_utc
from segsync.contract import Connector, Entity, Page
from segsync.logs import get_logger
from segsync.runs import recorded_run
from segsync.store import mark_deleted
from segsync.store import tables as t
from segsync.sync.rows import ENTITY_TABLES
from segsync.sync.writer import PageWriter, restore

log = get_logger("segsync.sync")

ProgressFn = Callable[[Entity, int, int | None], None]  # (entity, rows in this page, total hint)
_DONE = object()


@dataclass
class PullResult:
    run_id: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Did the store change (drives compute → push in the daemon)? Re-read overlap rows do not count."""
        return any(c.get("changed", 0) or c.get("deleted", 0) or c.get("restored", 0) for c in self.counts.values())


def load_cursor(engine: Engine, source_id: int, stream: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        return conn.execute(
            select(t.cursors.c.state).where(t.cursors.c.source_id == source_id, t.cursors.c.stream == stream)
        ).scalar_one_or_none()


async def _drain(
    pages: AsyncIterator[Page], writer: PageWriter, counts: dict[str, int], progress: ProgressFn | None
) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(writer.prepare(page))
        finally:
            await queue.put(_DONE)

    producer = asyncio.create_task(produce())
    try:
        while True:
            prepared = await queue.get()
            if prepared is _DONE:
                break
            written = await asyncio.to_thread(writer.apply, prepared)
            for key, value in written.items():
                counts[key] = counts.get(key, 0) + value
            counts["pages"] = counts.get("pages", 0) + 1
            if progress is not None:
                progress(prepared.page.entity, len(prepared.page.records), prepared.page.total_hint)
        await producer  # re-raise a fetch error
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


async def pull_source(
    engine: Engine,
    source_id: int,
    connector: Connector,
    *,
    full: bool = False,
    entities: Sequence[Entity] | None = None,
    progress: ProgressFn | None = None,
) -> PullResult:
    """Incremental (or ``full``) pull of every entity, then the CRM's deletion feed."""
    wanted = [e for e in connector.entities() if entities is None or e in entities]
    with recorded_run(engine, "pull", source_id) as run:
        result = PullResult(run_id=run.id)
        for entity in wanted:
            cursor = None if full else await asyncio.to_thread(load_cursor, engine, source_id, entity)
            counts: dict[str, int] = {}
            writer = PageWriter(engine, source_id, run.id)
            await _drain(connector.pull(entity, cursor, full=full), writer, counts, progress)
            result.counts[entity] = counts
            run.counts[entity] = counts
            log.info("pulled", source_id=source_id, entity=entity, **counts)
        cursor = await asyncio.to_thread(load_cursor, engine, source_id, "events")
        counts = {}
        await _drain(connector.deletions(cursor), PageWriter(engine, source_id, run.id, "events"), counts, None)
        if counts:
            result.counts["events"] = counts
            run.counts["events"] = counts
        return result


def _local_live_ids(engine: Engine, source_id: int, entity: Entity) -> tuple[set[str], set[str]]:
    table, match = ENTITY_TABLES[entity]
    cond = [table.c.source_id == source_id, *[table.c[k] == v for k, v in match.items()]]
    live: set[str] = set()
    deleted: set[str] = set()
    with engine.connect() as conn:
        for remote_id, deleted_at in conn.execute(select(table.c.remote_id, table.c.deleted_at).where(*cond)):
            (deleted if deleted_at is not None else live).add(remote_id)
    return live, deleted


async def reconcile_source(
    engine: Engine,
    source_id: int,
    connector: Connector,
    *,
    entities: Sequence[Entity] = ("companies", "contacts", "deals"),
    max_delete_share: float = 0.5,
) -> dict[str, dict[str, int]]:
    """ID sweep: mark rows the CRM no longer has as deleted, restore rows it has again.

    Guarded: a listing that would delete more than ``max_delete_share`` of an entity is treated as a
    failed listing (permissions changed, wrong account) and nothing is deleted.
    """
    out: dict[str, dict[str, int]] = {}
    with recorded_run(engine, "reconcile", source_id) as run:
        for entity in entities:
            if entity not in connector.entities():
                continue
            remote: set[str] = set()
            async for chunk in connector.list_ids(entity):
                remote.update(chunk)
            live, deleted = await asyncio.to_thread(_local_live_ids, engine, source_id, entity)
            missing = sorted(live - remote)
            back = sorted(deleted & remote)
            counts = {"remote": len(remote), "local": len(live), "deleted": 0, "restored": 0, "refused": 0}
            if live and len(missing) > max_delete_share * len(live):
                counts["refused"] = len(missing)
                log.error(
                    "reconcile_refused", source_id=source_id, entity=entity, missing=len(missing), local=len(live)
                )
                missing = []
            table, match = ENTITY_TABLES[entity]

            def apply(table: Any = table, match: dict[str, Any] = match, missing: list[str] = missing,
                      back: list[str] = back) -> tuple[int, int]:  # fmt: skip
                with engine.begin() as conn:
                    return (
                        mark_deleted(conn, table, source_id, match, missing, now_utc()),
                        restore(conn, table, source_id, match, back),
                    )

            counts["deleted"], counts["restored"] = await asyncio.to_thread(apply)
            out[entity] = counts
            run.counts[entity] = counts
            log.info("reconciled", source_id=source_id, entity=entity, **counts)
    return out
