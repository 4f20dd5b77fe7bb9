"""Helpers for daemon tests: rules files with fake sources, an in-process daemon, a subprocess daemon."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fakecrm
import httpx
from sqlalchemy import select

from segsync.app import open_app
from segsync.daemon import Daemon
from segsync.settings import Settings
from segsync.store import make_engine
from segsync.store import tables as t

FAKECRM = Path(fakecrm.__file__).resolve()
REPO = FAKECRM.parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_source(name: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "kind": "fake", "schedule": {"pull": "10m"}, **options}


def write_rules(path: Path, sources: list[dict[str, Any]], *, debounce: float = 0.2, extra: str = "") -> Path:
    """A rules file (JSON is valid YAML) with fake sources."""
    doc = {"timezone": "UTC", "sources": sources, "daemon": {"webhook_debounce": debounce}}
    path.write_text(json.dumps(doc, indent=1) + "\n" + extra)
    return path


async def wait_for(predicate: Callable[[], Any], within: float = 10.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(every)


def runs_of(store_url: str, step: str | None = None) -> list[Any]:
    engine = make_engine(store_url)
    query = select(t.runs, t.sources.c.name).join(t.sources, t.sources.c.id == t.runs.c.source_id)
    if step is not None:
        query = query.where(t.runs.c.step == step)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(t.runs.c.id)))


def contact_ids(store_url: str, source: str, *, live: bool = True) -> set[str]:
    engine = make_engine(store_url)
    query = (
        select(t.customers.c.remote_id)
        .join(t.sources, t.sources.c.id == t.customers.c.source_id)
        .where(t.sources.c.name == source)
    )
    if live:
        query = query.where(t.customers.c.deleted_at.is_(None))
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(query)}


@asynccontextmanager
async def running_daemon(config: Path, store_url: str, **options: Any) -> AsyncIterator[Daemon]:
    """A daemon in this event loop, on a free loopback port; stopped (and awaited) on exit."""
    settings = Settings(store_url=store_url, listen=f"127.0.0.1:{free_port()}", config=config)
    daemon = Daemon(open_app(config, settings=settings), **options)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: (daemon.is_running() and daemon.port) or task.done())
        if task.done():
            task.result()
        yield daemon
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 30) == 0


class DaemonProcess:
    """``segsync run`` (with the fake connector) as a child process, logging JSON to a file."""

    def __init__(self, config: Path, store_url: str, log_path: Path, *, port: int | None = None, env=None):
        self.port = port or free_port()
        self.log_path = log_path
        self.env = {
            **os.environ,
            "SEGSYNC_STORE_URL": store_url,
            "SEGSYNC_LISTEN": f"127.0.0.1:{self.port}",
            "SEGSYNC_LOG_FORMAT": "json",
            "SEGSYNC_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKECRM), "run", "--config", str(self.config)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(self.config.parent),
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not healthy within {timeout}s:\n{self.log_text()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
