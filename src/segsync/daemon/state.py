"""What the daemon reads and writes about its sources in the store, outside the steps themselves."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, func, select, update

from segsync.app import now_utc
from segsync.runs import WORKER
from segsync.store.tables import runs as runs_table
from segsync.store.tables import sources as sources_table


def reactivate_sources(engine: Engine, names: Sequence[str]) -> list[str]:
    """Clear the fatal-error stop of these sources (start and reload give them another chance)."""
    if not names:
        return []
    with engine.begin() as conn:
        stopped = [
            r.name
            for r in conn.execute(
                select(sources_table.c.name).where(sources_table.c.name.in_(names), sources_table.c.state == "stopped")
            )
        ]
        if stopped:
            conn.execute(
                update(sources_table)
                .where(sources_table.c.name.in_(stopped))
                .values(state="active", stop_reason=None, updated_at=now_utc())
            )
    return stopped


def stored_stop(engine: Engine, source_id: int) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(sources_table.c.state, sources_table.c.stop_reason).where(sources_table.c.id == source_id)
        ).one_or_none()
    return (row.stop_reason or "stopped") if row is not None and row.state == "stopped" else None


def close_abandoned_runs(engine: Engine, source_id: int) -> int:
    """Runs left ``running`` by a worker that died: whoever takes the source's lease knows they are over."""
    with engine.begin() as conn:
        return (
            conn.execute(
                update(runs_table)
                .where(runs_table.c.source_id == source_id, runs_table.c.status == "running",
                       runs_table.c.worker != WORKER)
                .values(status="interrupted", finished_at=now_utc(), error="abandoned: its worker stopped mid-run")
            ).rowcount
            or 0
        )  # fmt: skip


def last_successes(engine: Engine, source_ids: Sequence[int]) -> dict[int, dict[str, object]]:
    out: dict[int, dict[str, object]] = {sid: {} for sid in source_ids}
    if not source_ids:
        return out
    with engine.connect() as conn:
        for sid, step, finished in conn.execute(
            select(runs_table.c.source_id, runs_table.c.step, func.max(runs_table.c.finished_at))
            .where(runs_table.c.source_id.in_(list(source_ids)), runs_table.c.status == "ok")
            .group_by(runs_table.c.source_id, runs_table.c.step)
        ):
            if finished is not None:
                out[sid][step] = finished
    return out


def publish_owed(engine: Engine, source_id: int) -> bool:
    """Did a pull, compute or push since the last completed push leave the chain unfinished?

    A daemon that was killed between a pull that changed the store and the end of its push leaves work
    that no later pull would trigger (the next pull finds nothing new), so whoever takes the source's lease
    asks this first. A pull that did not finish counts as a change: its committed pages may be one.
    """
    with engine.connect() as conn:
        last_push = conn.execute(
            select(func.max(runs_table.c.id)).where(
                runs_table.c.source_id == source_id, runs_table.c.step == "push", runs_table.c.status == "ok"
            )
        ).scalar_one_or_none()
        since = conn.execute(
            select(runs_table.c.step, runs_table.c.status, runs_table.c.counts).where(
                runs_table.c.source_id == source_id,
                runs_table.c.step.in_(("pull", "compute", "push")),
                runs_table.c.id > (last_push or 0),
            )
        )
        return any(step != "pull" or status != "ok" or _pull_changed(counts) for step, status, counts in since)


def _pull_changed(counts: object) -> bool:
    """The stored counts of a finished pull, read the way :attr:`PullResult.changed` reads them."""
    if not isinstance(counts, dict):
        return False
    return any(
        isinstance(c, dict) and (c.get("changed", 0) or c.get("deleted", 0) or c.get("restored", 0))
        for c in counts.values()
    )
