"""Start the sandbox for tests (a background thread) or benchmarks (a subprocess: no shared GIL).

handle = start_in_thread(seed=1, size="tiny")
handle.info["bitrix24"]["webhook_url"]; handle.admin("GET", "/b24/portal/_admin/state")
handle.stop()
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from segsync.sandbox.server import Sandbox, bind, make_server


@dataclass
class SandboxHandle:
    info: dict[str, Any]
    stop: Callable[[], None]
    sandbox: Sandbox | None = None  # only for in-thread sandboxes
    pid: int | None = None  # only for subprocess sandboxes (benchmarks read the server's CPU time)

    @property
    def url(self) -> str:
        return self.info["url"]

    def admin(self, method: str, path: str, json_body: Any = None) -> Any:
        """Call the admin API (path relative to the sandbox root, e.g. ``/b24/portal/_admin/state``)."""
        headers = {"X-Sandbox-Admin": self.info["admin"]["token"]}
        r = httpx.request(method, self.url + path, headers=headers, json=json_body, timeout=30)
        r.raise_for_status()
        return r.json()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    *,
    seed: int = 1,
    size: str | None = "tiny",
    customers: int | None = None,
    portals: int = 1,
    accounts: int = 0,
    b24_options: dict[str, Any] | None = None,
    amo_options: dict[str, Any] | None = None,
    host: str = "127.0.0.1",
) -> SandboxHandle:
    sandbox = Sandbox.create(
        seed=seed,
        size=size,
        customers=customers,
        portals=portals,
        accounts=accounts,
        b24_options=b24_options,
        amo_options=amo_options,
    )
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    info = sandbox.info(f"http://{host}:{port}")
    server = make_server(sandbox, sock)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name=f"sandbox:{port}", daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return SandboxHandle(info=info, stop=stop, sandbox=sandbox)


def start_subprocess(
    *,
    seed: int = 1,
    size: str = "demo",
    portals: int = 1,
    accounts: int = 1,
    extra_args: list[str] | None = None,
    timeout: float = 300.0,
) -> SandboxHandle:
    """``segsync sandbox serve --port 0`` in its own process; returns once its JSON line is printed."""
    cmd = [
        sys.executable, "-m", "segsync.cli", "sandbox", "serve", "--port", "0", "--seed", str(seed),
        "--size", size, "--portals", str(portals), "--accounts", str(accounts), *(extra_args or []),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line_holder: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        line_holder.append(proc.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not line_holder or not line_holder[0].strip():
        proc.kill()
        raise RuntimeError(f"sandbox did not start (exit code {proc.poll()})")
    info = json.loads(line_holder[0])

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()

    return SandboxHandle(info=info, stop=stop, pid=proc.pid)
