"""`segsync run`: the scheduler, the HTTP side and the workers in one asyncio process.

Lifecycle: take the store's lease(s) → start the scheduler and the HTTP server → READY=1 → work
until SIGTERM/SIGINT → STOPPING=1, interrupt running jobs (a page being written still commits),
give back the leases, exit 0. SIGHUP or a changed rules file reloads the rules: validated first,
kept when invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from segsync.app import App, ensure_sources
from segsync.config import Rules, load_rules
from segsync.daemon import steps
from segsync.daemon.leases import Leases, open_leases
from segsync.daemon.notify import notify, watchdog_interval
from segsync.daemon.nudges import PgNudges, channel_for
from segsync.daemon.schedule import JOB_DEFAULTS, schedule_source, unschedule
from segsync.daemon.server import Server, bind, parse_listen
from segsync.daemon.state import (
    close_abandoned_runs,
    last_successes,
    publish_owed,
    reactivate_sources,
    stored_stop,
)
from segsync.daemon.web import RouteFactory, build_app
from segsync.daemon.worker import SourceWorker
from segsync.errors import ConfigError, SegsyncError, StoreError
from segsync.logs import get_logger
from segsync.metrics import CONFIG_LAST_RELOAD, CONFIG_RELOADS, LEASE_HELD, forget_source, prime_source

log = get_logger("segsync.daemon")

HEARTBEAT_SECONDS = 5.0
SHUTDOWN_GRACE = 5.0  # running jobs may finish on their own this long before they are interrupted
SHUTDOWN_DEADLINE = 25.0  # systemd's default TimeoutStopSec is 90 s; the promise is 30 s


class Daemon:
    """One process working the configured sources (all of them on SQLite; its share on PostgreSQL)."""

    def __init__(
        self,
        app: App,
        *,
        publish: Sequence[steps.Step] = steps.PUBLISH,
        routes: Sequence[RouteFactory] = (),
        lease_interval: float | None = None,
        watch_interval: float = 2.0,
    ):
        self.app = app
        self.rules: Rules = app.rules
        self.publish = tuple(publish)
        self.route_factories = tuple(routes)
        self.lease_interval = lease_interval or app.settings.lease_refresh
        self.watch_interval = watch_interval
        self.engine: Engine = None  # type: ignore[assignment]  # set in run()
        self.port: int | None = None
        self._workers: dict[str, SourceWorker] = {}
        self._ids: dict[str, int] = {}
        self._leases: Leases | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._heartbeat = time.monotonic()
        self._config_stamp: tuple[int, int, int] | None = None
        self._config_digest: str | None = None
        self._reload_lock = asyncio.Lock()
        self._lease_lock = asyncio.Lock()
        self._nudges: PgNudges | None = None

    # --- what the web app reads ------------------------------------------------------------------

    def workers(self) -> Mapping[str, SourceWorker]:
        return self._workers

    def is_running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running and not self._stopping

    def _is_mine(self, source_id: int) -> bool:
        return self._leases is not None and self._leases.holds(source_id) and not self._stopping

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until asked to stop; return the exit code."""
        os.umask(0o077)  # the store, its WAL and the lock file hold customer data
        self.engine = await asyncio.to_thread(lambda: self.app.engine)
        self._leases = await asyncio.to_thread(open_leases, self.engine)
        try:
            return await self._serve()
        finally:
            await self._leases.close()

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        listen = self.app.settings.listen or self.rules.daemon.listen
        host, port = parse_listen(listen)
        sock = bind(host, port)  # first: a taken port fails the start before anything else happens
        self.port = sock.getsockname()[1]
        self._config_stamp = self._stamp()
        self._config_digest = self._digest()
        if self.engine.dialect.name == "postgresql":
            channel = await asyncio.to_thread(channel_for, self.engine)
            self._nudges = PgNudges(self.engine, channel, self._on_nudge)
            self._nudges.start()
        await self._apply_sources(self.rules, starting=True)
        self._scheduler = AsyncIOScheduler(timezone=self.rules.timezone, job_defaults=JOB_DEFAULTS)
        self._scheduler.add_job(self._beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), id="_heartbeat")
        self._scheduler.add_job(self._refresh_leases, IntervalTrigger(seconds=self.lease_interval), id="_leases")
        self._scheduler.add_job(self._watch_config, IntervalTrigger(seconds=self.watch_interval), id="_config")
        for worker in self._workers.values():
            schedule_source(self._scheduler, worker, self.rules.timezone)
        await self._refresh_leases()
        self._scheduler.start()

        routes = [r for factory in self.route_factories for r in factory(self)]
        config = uvicorn.Config(
            build_app(self, routes),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=3,
            backlog=2048,
        )
        server = Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers a flag, no event
            await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
            raise StoreError(f"the HTTP server on {listen} stopped at startup")

        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload("SIGHUP")))
        watchdog = self._start_watchdog()
        log.info(
            "daemon_started",
            listen=f"{host}:{self.port}",
            sources=sorted(self._workers),
            worked_here=sorted(w.name for w in self._workers.values() if self._is_mine(w.source_id)),
            store=self.engine.url.get_backend_name(),
            pid=os.getpid(),
        )
        notify("READY=1", f"STATUS=working {len(self._workers)} source(s)", f"MAINPID={os.getpid()}")

        await self._stop.wait()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await self._shutdown(server, serving, watchdog)
        return 0

    def request_stop(self, why: str = "request") -> None:
        if not self._stop.is_set():
            log.info("daemon_stopping", signal=why)
            self._stop.set()

    async def _shutdown(self, server: Server, serving: asyncio.Task[None], watchdog: asyncio.Task[None] | None) -> None:
        notify("STOPPING=1", "STATUS=stopping")
        self._stopping = True
        deadline = threading.Timer(SHUTDOWN_DEADLINE, _forced_exit)
        deadline.daemon = True
        deadline.start()
        try:
            assert self._scheduler is not None
            self._scheduler.pause()
            running = [t for w in self._workers.values() for t in w.running()]
            if running:  # a short push batch may finish by itself; a long pull is interrupted after its page
                await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
            await asyncio.gather(*(w.cancel() for w in self._workers.values()))
            self._scheduler.shutdown(wait=False)
            for worker in self._workers.values():
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(worker.deletes.drain(), timeout=5)
            if self._nudges is not None:
                await self._nudges.stop()
            server.should_exit = True
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(serving, timeout=5)
            if watchdog is not None:
                watchdog.cancel()
            for worker in self._workers.values():
                LEASE_HELD.labels(worker.name).set(0)
            log.info("daemon_stopped")
        finally:
            deadline.cancel()

    # --- sources ---------------------------------------------------------------------------------

    async def _apply_sources(self, rules: Rules, *, starting: bool) -> None:
        """Create, update or drop workers to match ``rules`` (raises StoreError on a kind change)."""
        ids = await asyncio.to_thread(ensure_sources, self.engine, rules.sources)
        enabled = {s.name: s for s in rules.sources if s.enabled}
        again = await asyncio.to_thread(reactivate_sources, self.engine, sorted(enabled))
        if again:
            log.info("sources_reactivated", sources=again, why="start" if starting else "config reload")
        for name in [n for n in self._workers if n not in enabled]:
            worker = self._workers.pop(name)
            await worker.cancel()
            if self._scheduler is not None:
                unschedule(self._scheduler, name)
            forget_source(name)
            log.info("source_removed", source=name)
        seeded = await asyncio.to_thread(
            last_successes, self.engine, [ids[n] for n in enabled if n not in self._workers]
        )
        for name, source in enabled.items():
            worker = self._workers.get(name)
            if worker is None:
                worker = SourceWorker(
                    source=source, source_id=ids[name], rules=rules, engine=self.engine,
                    is_mine=self._is_mine, publish=self.publish,
                )  # fmt: skip
                worker.last_success.update(seeded.get(ids[name], {}))  # type: ignore[arg-type]
                worker.relay = self._relay if self._nudges is not None else None
                self._workers[name] = worker
                prime_source(name)
                if not starting:
                    log.info("source_added", source=name)
            else:
                worker.reconfigure(source, rules)
            if self._scheduler is not None:
                schedule_source(self._scheduler, worker, rules.timezone)
        self._ids = ids
        self.rules = rules
        self.app.rules = rules

    async def _refresh_leases(self) -> None:
        """Take this replica's share of the sources; stop working the ones it lost."""
        assert self._leases is not None
        if self._stopping:
            return
        by_id = {w.source_id: w for w in self._workers.values()}
        try:
            async with self._lease_lock:
                change = await self._leases.refresh(by_id, lambda sid: by_id[sid].busy if sid in by_id else False)
        except Exception as exc:
            log.error("lease_refresh_failed", error=str(exc)[:500])
            return
        for sid in change.lost:
            worker = by_id.get(sid)
            if worker is not None:
                LEASE_HELD.labels(worker.name).set(0)
                log.warning("lease_lost", source=worker.name)
                await worker.cancel()
        for i, sid in enumerate(sorted(change.gained)):
            worker = by_id.get(sid)
            if worker is None:
                continue
            LEASE_HELD.labels(worker.name).set(1)
            worker.stopped = await asyncio.to_thread(stored_stop, self.engine, sid)
            await asyncio.to_thread(close_abandoned_runs, self.engine, sid)
            worker.publish_owed = await asyncio.to_thread(publish_owed, self.engine, sid)
            log.info("lease_taken", source=worker.name, stopped=worker.stopped is not None,
                     publish_owed=worker.publish_owed)  # fmt: skip
            # a fresh holder pulls at once (staggered), then on its interval
            asyncio.get_running_loop().call_later(0.2 * i, worker.request_pull)

    def _relay(self, source_id: int) -> None:
        if self._nudges is not None and not self._stopping:
            asyncio.get_running_loop().create_task(self._nudges.send(source_id))

    def _on_nudge(self, source_id: int) -> None:
        for worker in self._workers.values():
            if worker.source_id == source_id:
                worker.request_pull(relay=False)

    # --- config reload ---------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = Path(self.app.config_path).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(Path(self.app.config_path).read_bytes()).hexdigest()
        except OSError:
            return None

    async def _watch_config(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        if self._digest() != self._config_digest:  # touched but unchanged (config management): nothing to do
            await self.reload("file changed")

    async def reload(self, why: str) -> bool:
        """Load and validate the rules file; apply it when valid, keep the running rules otherwise."""
        async with self._reload_lock:
            self._config_stamp = self._stamp()
            self._config_digest = self._digest()
            path = self.app.config_path
            try:
                rules = await asyncio.to_thread(load_rules, path)
                self._warn_restart_only(rules)
                await self._apply_sources(rules, starting=False)
            except ConfigError as exc:
                CONFIG_RELOADS.labels("invalid").inc()
                log.error("config_reload_failed", why=why, file=str(path), issues=[str(i) for i in exc.issues],
                          kept="the last good rules")  # fmt: skip
                return False
            except SegsyncError as exc:
                CONFIG_RELOADS.labels("invalid").inc()
                log.error("config_reload_failed", why=why, file=str(path), error=str(exc), kept="the last good rules")
                return False
            CONFIG_RELOADS.labels("ok").inc()
            CONFIG_LAST_RELOAD.set(time.time())
            log.info("config_reloaded", why=why, sources=sorted(self._workers))
        await self._refresh_leases()
        return True

    def _warn_restart_only(self, rules: Rules) -> None:
        if rules.store != self.rules.store:
            log.warning("config_needs_restart", key="store", note="the store is only chosen at start")
        if rules.daemon.listen != self.rules.daemon.listen:
            log.warning("config_needs_restart", key="daemon.listen", note="the listen address is only bound at start")

    # --- liveness --------------------------------------------------------------------------------

    async def _beat(self) -> None:
        self._heartbeat = time.monotonic()

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        interval = watchdog_interval()
        if interval is None:
            return None

        async def ping() -> None:
            while True:
                await asyncio.sleep(interval)
                # Ping only while the scheduler is alive: a free-running ping would defeat the watchdog.
                if time.monotonic() - self._heartbeat < max(3 * HEARTBEAT_SECONDS, 2 * interval):
                    notify("WATCHDOG=1")
                else:
                    log.error("watchdog_withheld", heartbeat_age_s=round(time.monotonic() - self._heartbeat))

        return asyncio.create_task(ping(), name="watchdog")


def _forced_exit() -> None:
    log.error("shutdown_deadline_passed", seconds=SHUTDOWN_DEADLINE)
    os._exit(1)


def run_daemon(app: App, **options: object) -> int:
    """Blocking entry point of ``segsync run`` (on uvloop where installed: webhook bursts need the speed)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(Daemon(app, **options).run())  # type: ignore[arg-type]
    return uvloop.run(Daemon(app, **options).run())  # type: ignore[arg-type]
