"""The `runs` table: every step's start, end, counts and error — the operator's history."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from segsync.app import now_utc
from segsync.store.tables import runs as runs_table

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Run:
    id: int
    step: str
    source_id: int | None
    counts: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def start_run(engine: Engine, step: str, source_id: int | None) -> Run:
    with engine.begin() as conn:
        run_id = conn.execute(
            runs_table.insert().values(
                source_id=source_id, step=step, status="running", worker=WORKER, started_at=now_utc(), counts={}
            )
        ).inserted_primary_key[0]
    return Run(id=run_id, step=step, source_id=source_id)


def finish_run(engine: Engine, run: Run, status: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            runs_table.update()
            .where(runs_table.c.id == run.id)
            .values(status=status, finished_at=now_utc(), counts=run.counts, error=error)
        )


@contextmanager
def recorded_run(engine: Engine, step: str, source_id: int | None) -> Iterator[Run]:
    """Record a run; an exception marks it failed (KeyboardInterrupt/cancel: interrupted) and propagates."""
    run = start_run(engine, step, source_id)
    try:
        yield run
    except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
        finish_run(engine, run, "interrupted", type(exc).__name__)
        raise
    except BaseException as exc:
        status = "interrupted" if type(exc).__name__ == "CancelledError" else "failed"
        finish_run(engine, run, status, f"{type(exc).__name__}: {exc}"[:2000])
        raise
    else:
        finish_run(engine, run, "ok")
