"""``segsync compute`` for one source: load → engine → persist, recorded as a ``runs`` row (step "compute").

A run is deterministic for the same store, rules and ``as_of``: the engine breaks every tie by value and
state is replaced as a whole. Persisting happens in one transaction, so a crash leaves the previous state
intact and the run row says ``failed``.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, update

from segsync.app import now_utc
from segsync.compute.load import load_source
from segsync.compute.persist import write_fits, write_state
from segsync.config.models import Rules
from segsync.config.sources import SourceBase
from segsync.logs import get_logger
from segsync.segments.engine import EngineResult, run
from segsync.store import tables as t

log = get_logger(__name__)


@dataclass
class ComputeSummary:
    source: str
    run_id: int
    as_of: datetime
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    result: EngineResult | None = None


def parse_as_of(value: str | None, tz: str, *, now: datetime | None = None) -> datetime:
    """``YYYY-MM-DD`` → the end of that day in ``tz``; an ISO datetime → itself (naive = in ``tz``); None → now."""
    zone = ZoneInfo(tz)
    if value is None:
        return now or now_utc()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), dtime.min, tzinfo=zone) - timedelta(microseconds=1)
    return end


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def compute_source(
    engine: Engine, rules: Rules, source: SourceBase, source_id: int, as_of: datetime, *, keep_result: bool = False
) -> ComputeSummary:
    """Recompute every segment of ``source`` as of ``as_of`` and persist it."""
    started = now_utc()
    with engine.begin() as conn:
        run_id = int(
            conn.execute(
                t.runs.insert().values(
                    source_id=source_id, step="compute", status="running", worker=_worker(), started_at=started
                )
            ).inserted_primary_key[0]
        )
    summary = ComputeSummary(source=source.name, run_id=run_id, as_of=as_of)
    log.info("compute.start", source=source.name, run_id=run_id, as_of=as_of.isoformat())
    try:
        tick = time.perf_counter()
        with engine.connect() as conn:
            loaded = load_source(conn, source_id, source)
        summary.timings["load_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        result = run(
            loaded.inputs,
            rules.segments,
            as_of,
            tz=rules.timezone,
            pipelines=source.purchases.pipelines,
            fields=loaded.fields,
        )
        summary.timings["engine_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        now = now_utc()
        # IMMEDIATE: the state is read and then written in one transaction; a deferred one would have to turn
        # its read into a write, which SQLite refuses at once ("database is locked") when another source's run
        # committed in between
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            written = write_state(conn, source_id, run_id, result, now)
            write_fits(conn, source_id, run_id, result.fits, as_of, now)
            summary.counts = {
                "as_of": as_of.isoformat(),
                **loaded.counts,
                **written,
                "labels": result.counts(),
                "fits": {f.model: f.status for f in result.fits},
                "rfm_cuts": result.rfm_cuts,
                "quality": result.quality.counts if result.quality else {},
                "cohorts": result.cohorts.to_dicts(),
            }
            summary.timings["persist_s"] = time.perf_counter() - tick
            summary.counts["timings"] = _rounded(summary.timings)
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status="ok", finished_at=now_utc(), counts=summary.counts)
            )
            tick = time.perf_counter()
        # committing a first run moves gigabytes through the WAL: timed on its own, after the run row was
        # written (so it is in the summary, not in the row)
        summary.timings["commit_s"] = time.perf_counter() - tick
        summary.counts["timings"] = _rounded(summary.timings)
    except BaseException as exc:
        with engine.begin() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(
                    status="failed" if isinstance(exc, Exception) else "interrupted",
                    finished_at=now_utc(),
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
            )
        log.error("compute.failed", source=source.name, run_id=run_id, error=type(exc).__name__)
        raise
    log.info("compute.done", source=source.name, run_id=run_id, customers=loaded.counts["customers"], **summary.timings)
    if keep_result:
        summary.result = result
    return summary
