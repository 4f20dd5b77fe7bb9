"""One configured source inside the daemon: its jobs never overlap, its failures stay its own.

Behaviour follows Home Assistant's update coordinator: a failure is logged once on the transition
to failing and once on recovery, not every tick; a fatal CRM error (bad credentials, revoked
authorization) is not retried but stops the source until the configuration is reloaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update

from segsync.app import now_utc
from segsync.config import Rules
from segsync.config.sources import SourceBase
from segsync.connect import open_connector
from segsync.contract import ChangeHint, Connector
from segsync.daemon import steps
from segsync.daemon.hints import Debouncer, DeleteBuffer
from segsync.errors import FatalCrmError, SegsyncError
from segsync.logs import get_logger, redact_text
from segsync.metrics import (
    SOURCE_FAILING,
    SOURCE_STOPPED,
    WEBHOOK_HINTS,
    record_deleted,
    record_run,
    request_hook,
    throttle_hook,
)
from segsync.store.tables import sources as sources_table

log = get_logger("segsync.daemon")

#: What a scheduled job of a source does.
JOBS = ("pull", "reconcile", "publish", "keep_alive")


def set_source_state(engine: Engine, source_id: int, state: str, reason: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(sources_table)
            .where(sources_table.c.id == source_id)
            .values(state=state, stop_reason=reason, updated_at=now_utc())
        )


class SourceWorker:
    """Runs the jobs of one source, one at a time, only while this replica holds its lease."""

    def __init__(
        self,
        *,
        source: SourceBase,
        source_id: int,
        rules: Rules,
        engine: Engine,
        is_mine: Callable[[int], bool],
        publish: Sequence[steps.Step] = steps.PUBLISH,
    ):
        self.source = source
        self.source_id = source_id
        self.rules = rules
        self.engine = engine
        self.is_mine = is_mine
        self.publish = tuple(publish)
        self.stopped: str | None = None  # stop reason while stopped by a fatal error
        self.failing_since: float | None = None
        self.last_success: dict[str, datetime] = {}  # step → when it last succeeded (seeded from `runs`)
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[Any]] = set()
        self._pull_queued = False
        self._changed_by_webhook = False
        self._parser: Connector | None = None
        self.relay: Callable[[int], None] | None = None  # hands a pull request to the lease holder
        self.publish_owed = False  # set on taking the lease: a predecessor left compute → push unfinished
        self.schedule_key: tuple[object, ...] | None = None  # what its scheduled jobs were made from
        self.debounce = Debouncer(rules.daemon.webhook_debounce, self.request_pull)
        self.deletes = DeleteBuffer(engine, source_id, self._deletes_applied)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def reconfigure(self, source: SourceBase, rules: Rules) -> None:
        """A reloaded rules file: new options, and a stopped source gets another chance at once."""
        self.source = source
        self.rules = rules
        self.debounce.delay = rules.daemon.webhook_debounce
        self._parser = None
        if self.stopped is not None:
            self.stopped = None
            SOURCE_STOPPED.labels(self.name).set(0)
            self.request_pull()

    # --- running jobs -------------------------------------------------------------------------

    async def run_job(self, job: str) -> None:
        """Entry point of the scheduler and the webhook debouncer."""
        if self.stopped is not None or not self.is_mine(self.source_id):
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            async with self._lock:
                if self.stopped is not None or not self.is_mine(self.source_id):
                    return
                if job == "pull":
                    self._pull_queued = False
                await self._guarded(job)
        finally:
            if task is not None:
                self._running.discard(task)

    def request_pull(self, *, relay: bool = True) -> None:
        """Run one incremental pull soon; requests made while one is waiting fold into it.

        On a replica that does not work this source the request is relayed to the one that does.
        """
        if self._pull_queued or self.stopped is not None:
            return
        if not self.is_mine(self.source_id):
            if relay and self.relay is not None:
                self.relay(self.source_id)
            return
        self._pull_queued = True
        asyncio.get_running_loop().create_task(self._queued_pull(), name=f"pull:{self.name}")

    async def _queued_pull(self) -> None:
        try:
            await self.run_job("pull")
        finally:  # also when the job never ran (lease lost, source stopped): later requests must not be ignored
            self._pull_queued = False

    async def _guarded(self, job: str) -> None:
        try:
            async with open_connector(
                self.engine,
                self.source_id,
                self.source,
                on_request=request_hook(self.name),
                on_throttle=throttle_hook(self.name),
                label_prefix=self.rules.writeback.tags.prefix,
            ) as connector:
                ctx = steps.StepContext(self.engine, self.source_id, self.source, self.rules, connector)
                await self._job_body(job, ctx)
        except asyncio.CancelledError:
            raise
        except FatalCrmError as exc:
            await self._stop(exc)
        except Exception as exc:
            self._failed(job, exc)
        else:
            self._recovered(job)

    async def _job_body(self, job: str, ctx: steps.StepContext) -> None:
        if job == "pull":
            result = await self._timed("pull", steps.pull, ctx)
            changed = result.changed or self._take_webhook_changes()
            if changed or self.publish_owed:
                self.publish_owed = False
                await self._publish(ctx)
        elif job == "reconcile":
            await self._timed("reconcile", steps.reconcile, ctx)
        elif job == "publish":
            await self._publish(ctx)
        elif job == "keep_alive":
            if steps.has_keep_alive(ctx.connector):
                await self._timed("keep_alive", steps.keep_alive, ctx)
        else:
            raise ValueError(f"unknown job {job!r}")

    async def _publish(self, ctx: steps.StepContext) -> None:
        for step in self.publish:
            await self._timed(step.name, step.run, ctx)

    async def _timed(self, step: str, fn: Callable[[steps.StepContext], Any], ctx: steps.StepContext) -> Any:
        started = time.monotonic()
        try:
            result = await fn(ctx)
        except asyncio.CancelledError:
            record_run(self.name, step, "interrupted", time.monotonic() - started)
            raise
        except BaseException:
            record_run(self.name, step, "failed", time.monotonic() - started)
            raise
        record_run(self.name, step, "ok", time.monotonic() - started)
        self.last_success[step] = now_utc()
        return result

    # --- state transitions (logged once each) ---------------------------------------------------

    def _failed(self, job: str, exc: Exception) -> None:
        detail = redact_text(f"{type(exc).__name__}: {exc}")[:1000]
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            SOURCE_FAILING.labels(self.name).set(1)
            log.error("source_failing", source=self.name, job=job, error=detail, exc_info=not _expected(exc))
        else:
            log.debug("source_still_failing", source=self.name, job=job, error=detail)

    def _recovered(self, job: str) -> None:
        if self.failing_since is not None:
            log.info(
                "source_recovered", source=self.name, job=job, failed_for_s=round(time.monotonic() - self.failing_since)
            )
            self.failing_since = None
            SOURCE_FAILING.labels(self.name).set(0)

    async def _stop(self, exc: FatalCrmError) -> None:
        reason = redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        self.stopped = reason
        SOURCE_STOPPED.labels(self.name).set(1)
        SOURCE_FAILING.labels(self.name).set(1)
        self.debounce.cancel()
        log.error("source_stopped", source=self.name, reason=reason, action="fix credentials, then reload the config")
        await asyncio.to_thread(set_source_state, self.engine, self.source_id, "stopped", reason)

    # --- webhooks ---------------------------------------------------------------------------------

    def parser(self) -> Connector:
        """A connector instance used only for ``parse_webhook`` (never entered: no network)."""
        if self._parser is None:
            self._parser = open_connector(self.engine, self.source_id, self.source)
        return self._parser

    def offers_keep_alive(self) -> bool:
        try:
            return steps.has_keep_alive(self.parser())
        except Exception:  # a connector that cannot even be built fails its first job, loudly, instead
            return False

    def on_hints(self, hints: Sequence[ChangeHint]) -> None:
        """In memory only: deletions go to the batch writer, the rest arms the debounced pull."""
        deletes = [h for h in hints if h.deleted]
        if deletes:
            WEBHOOK_HINTS.labels(self.name, "delete").inc(len(deletes))
            self.deletes.add(deletes)
        if len(deletes) != len(hints):
            WEBHOOK_HINTS.labels(self.name, "change").inc(len(hints) - len(deletes))
        if hints:
            self.debounce()

    def _deletes_applied(self, counts: dict[str, int]) -> None:
        for entity, n in counts.items():
            record_deleted(self.name, entity, "webhook", n)
        if any(counts.values()):
            self._changed_by_webhook = True

    def _take_webhook_changes(self) -> bool:
        changed, self._changed_by_webhook = self._changed_by_webhook, False
        return changed

    # --- shutdown / lease loss ------------------------------------------------------------------

    def running(self) -> list[asyncio.Task[Any]]:
        return [t for t in self._running if not t.done()]

    async def cancel(self, grace: float = 15.0) -> None:
        """Interrupt running jobs; a page being written still commits (it runs in a worker thread)."""
        self.debounce.cancel()
        tasks = [t for t in self._running if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)


def _expected(exc: Exception) -> bool:
    """Errors segsync raises on purpose carry their own explanation; anything else gets a traceback."""
    return isinstance(exc, SegsyncError)
