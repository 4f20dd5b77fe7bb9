"""``segsync run`` as a child process with the real connectors, against sandbox tenants on loopback.

Shared by the bad-rules, secrets and load checks: secrets go into 0600 files referenced as ``${VAR}`` with
``VAR_FILE`` (as in production), logs are JSON lines in a file the tests scan afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from segsync.sandbox.testing import SandboxHandle
from segsync.secrets import write_private_file
from segsync.store import make_engine
from segsync.store import tables as t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], within: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        time.sleep(0.05)


def secret_env(folder: Path, secrets: dict[str, str]) -> dict[str, str]:
    """Each secret in its own 0600 file; the environment names the files (``VAR_FILE``), never the values."""
    env = {}
    for name, value in secrets.items():
        path = folder / "secrets" / name.lower()
        write_private_file(path, value)
        env[f"{name}_FILE"] = str(path)
    return env


def sources_yaml(handle: SandboxHandle, *, b24: str | None = "shop", amo: str | None = "amo") -> tuple[str, dict]:
    """Source blocks for the sandbox's tenants and the secrets they read (``${VAR}``)."""
    blocks, secrets = [], {}
    if b24:
        info = handle.info["bitrix24"]
        secrets |= {"REL_B24_WEBHOOK": info["webhook_url"], "REL_B24_APP_TOKEN": info["application_token"]}
        blocks.append(
            f"  - name: {b24}\n    kind: bitrix24\n    webhook_url: ${{REL_B24_WEBHOOK}}\n"
            f"    application_token: ${{REL_B24_APP_TOKEN}}\n    schedule: {{pull: 1h}}\n"
        )
    if amo:
        info = handle.info["amocrm"]
        secrets |= {"REL_AMO_TOKEN": info["long_lived_token"], "REL_AMO_HOOK_SECRET": "hook-path-secret-4f1c9b"}
        blocks.append(
            f"  - name: {amo}\n    kind: amocrm\n    base_url: {info['base_url']}\n"
            f"    long_lived_token: ${{REL_AMO_TOKEN}}\n    webhook_secret: ${{REL_AMO_HOOK_SECRET}}\n"
            f"    subdomain: {info['subdomain']}\n    account_id: {info['account_id']}\n    schedule: {{pull: 1h}}\n"
        )
    return "".join(blocks), secrets


def rules_yaml(sources: str, *, debounce: float = 1.0) -> str:
    return f"timezone: Europe/Moscow\nsources:\n{sources}daemon: {{webhook_debounce: {debounce}}}\n"


class Service:
    """One ``segsync run`` child: start, wait for its first pulls, signal, read its JSON log, stop."""

    def __init__(self, folder: Path, rules: str, store_url: str, env: dict[str, str] | None = None):
        self.folder = folder
        self.config = folder / "segsync.yaml"
        self.config.write_text(rules)
        self.log_path = folder / "segsync.log"
        self.store_url = store_url
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SEGSYNC_")},
            "SEGSYNC_STORE_URL": store_url, "SEGSYNC_LISTEN": f"127.0.0.1:{self.port}", "SEGSYNC_LOG_FORMAT": "json",
            "SEGSYNC_LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1", **(env or {}),
        }  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, pulls: int = 1) -> Service:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "segsync.cli", "run", "--config", str(self.config)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
            )  # fmt: skip
        wait_until(self._healthy, 60, "daemon healthy")
        wait_until(lambda: self.finished_pulls() >= pulls, 120, f"{pulls} first pull(s)")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def finished_pulls(self) -> int:
        return self._pulls(t.runs.c.status != "running")

    def running_pulls(self) -> int:
        return self._pulls(t.runs.c.status == "running")

    def _pulls(self, condition: Any) -> int:
        q = select(func.count()).where(t.runs.c.step == "pull", condition)
        with make_engine(self.store_url).connect() as conn:
            return int(conn.execute(q).scalar_one())

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                event = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung daemon fails the test below
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
