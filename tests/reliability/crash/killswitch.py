"""The sandbox behind a front door that can SIGKILL the process under test when its N-th API request arrives.

A kill triggered from the server side lands at an exact, reproducible point of a run — including the worst one
for exactly-once writes: the CRM has applied a write (``phase="after"``) and the client dies before it reads the
answer. ``phase="before"`` kills it while the request is in flight and the CRM never applies it. Sandbox admin
calls (``/_admin``, made by the harness itself) are neither counted nor killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from segsync.sandbox.server import Sandbox, bind, make_server
from segsync.sandbox.testing import SandboxHandle


@dataclass
class _Armed:
    pgid: int
    request: int
    phase: str  # "before" | "after"


class KillSwitch:
    """ASGI wrapper: counts the tenants' API requests since :meth:`arm` and kills a process group at number N."""

    def __init__(self, app: Any):
        self.app = app
        self.count = 0
        self.fired = False
        self._armed: _Armed | None = None
        self._lock = threading.Lock()

    def arm(self, pgid: int, request: int | None = None, phase: str = "after") -> None:
        """Start counting from zero for the process group ``pgid``; kill it at request ``request`` (None: count)."""
        if phase not in ("before", "after"):
            raise ValueError(f"phase must be 'before' or 'after', not {phase!r}")
        with self._lock:
            self.count = 0
            self.fired = False
            self._armed = _Armed(pgid, request, phase) if request is not None else None

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def _fire(self, armed: _Armed) -> None:
        try:
            os.killpg(armed.pgid, signal.SIGKILL)
        except ProcessLookupError:  # already gone: nothing left to kill
            return
        self.fired = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or "/_admin" in scope["path"]:
            return await self.app(scope, receive, send)
        with self._lock:
            self.count += 1
            armed = self._armed
            hit = armed is not None and self.count == armed.request
            if hit:
                self._armed = None
        if not hit:
            return await self.app(scope, receive, send)
        assert armed is not None
        if armed.phase == "before":
            self._fire(armed)
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return None

        async def kill_then_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self._fire(armed)
            await send(message)

        return await self.app(scope, receive, kill_then_send)


def start_sandbox(*, seed: int, customers: int) -> tuple[SandboxHandle, KillSwitch]:
    """One Bitrix24 portal and one amoCRM account (a small seeded world) in a thread, behind a kill switch."""
    sandbox = Sandbox.create(seed=seed, size="tiny", customers=customers, portals=1, accounts=1)
    sock = bind("127.0.0.1", 0)
    info = sandbox.info(f"http://127.0.0.1:{sock.getsockname()[1]}")
    switch = KillSwitch(sandbox)
    server = make_server(switch, sock)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return SandboxHandle(info=info, stop=stop, sandbox=sandbox), switch
