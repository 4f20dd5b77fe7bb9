"""`segsync run` as a real child process: signals, restarts, sd_notify, file modes, one daemon per SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest
from harness import DaemonProcess, contact_ids, fake_source, runs_of, write_rules
from sqlalchemy import select

from segsync.store import make_engine
from segsync.store import tables as t


def _sync_wait(predicate, within: float = 15.0, every: float = 0.05):
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        time.sleep(every)


def _cursor(store_url: str) -> int | None:
    with make_engine(store_url).connect() as conn:
        state = conn.execute(select(t.cursors.c.state).where(t.cursors.c.stream == "contacts")).scalar_one_or_none()
    return None if state is None else int(state["id"])


def test_sigterm_mid_pull_exits_cleanly_and_the_next_start_resumes(tmp_path, store_url):
    source = fake_source("slow", contacts=100, page_size=2, page_delay=0.25)
    config = write_rules(tmp_path / "rules.yaml", [source])
    first = DaemonProcess(config, store_url, tmp_path / "first.log").start()
    try:
        first.wait_ready()
        _sync_wait(lambda: (_cursor(store_url) or 0) >= 6)
        started = time.monotonic()
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0
        assert time.monotonic() - started < 30
    finally:
        first.stop()
    kept = _cursor(store_url)
    assert kept is not None and kept < 100
    # every committed page came with its cursor: the store holds exactly the contacts up to the cursor
    assert contact_ids(store_url, "slow") == {str(i) for i in range(1, kept + 1)}
    (interrupted,) = runs_of(store_url, "pull")
    assert interrupted.status == "interrupted"
    assert "daemon_stopped" in {e.get("event") for e in first.events()}

    second = DaemonProcess(config, store_url, tmp_path / "second.log").start()
    try:
        second.wait_ready()
        _sync_wait(lambda: len(contact_ids(store_url, "slow")) == 100, within=30)
        _sync_wait(lambda: runs_of(store_url, "pull")[-1].status == "ok")
    finally:
        second.stop()
    resumed = runs_of(store_url, "pull")[-1]
    assert resumed.counts["contacts"]["upserted"] == 100 - kept  # resumed from the cursor, nothing re-read


def test_sighup_with_a_broken_file_keeps_the_old_rules(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=3)], debounce=0.2)
    daemon = DaemonProcess(config, store_url, tmp_path / "daemon.log").start()
    try:
        daemon.wait_ready()
        _sync_wait(lambda: len(contact_ids(store_url, "alpha")) == 3)
        config.write_text("timezone: Mars/Olympus\nsources: []\n")
        daemon.signal(signal.SIGHUP)
        _sync_wait(lambda: "config_reload_failed" in {e.get("event") for e in daemon.events()})
        failed = next(e for e in daemon.events() if e.get("event") == "config_reload_failed")
        assert any("timezone" in issue for issue in failed["issues"])
        ready = httpx.get(f"{daemon.url}/readyz", timeout=5).json()
        assert set(ready["sources"]) == {"alpha"}
        r = httpx.post(f"{daemon.url}/webhooks/fake/alpha", data={"token": "good-token", "id": "1"}, timeout=5)
        assert r.status_code == 200
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0


def test_notifies_systemd_ready_watchdog_stopping(tmp_path, store_url):
    sock_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(20)
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=1)])
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}
    daemon = DaemonProcess(config, store_url, tmp_path / "daemon.log", env=env).start()
    seen: list[str] = []
    try:
        while "WATCHDOG=1" not in seen:
            seen += receiver.recv(4096).decode().splitlines()
        assert "READY=1" in seen and seen.index("READY=1") < seen.index("WATCHDOG=1")
        daemon.signal(signal.SIGTERM)
        while "STOPPING=1" not in seen:
            seen += receiver.recv(4096).decode().splitlines()
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        receiver.close()


def test_logs_are_json_lines_without_webhook_secrets(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=1)])
    daemon = DaemonProcess(config, store_url, tmp_path / "daemon.log").start()
    try:
        daemon.wait_ready()
        secret = "s3cr3t-path-segment-123456"
        for token in ("good-token", "forged-token"):
            httpx.post(f"{daemon.url}/webhooks/fake/alpha/{secret}", data={"token": token, "id": "1"}, timeout=5)
        _sync_wait(lambda: "webhook_rejected" in {e.get("event") for e in daemon.events()})
    finally:
        daemon.stop()
    text = daemon.log_text()
    assert secret not in text and "forged-token" not in text and "good-token" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["event"] for line in lines)


@pytest.mark.skipif(os.environ.get("SEGSYNC_TEST_DB", "sqlite").startswith("postgres"), reason="SQLite only")
def test_sqlite_store_refuses_a_second_daemon_and_stays_private(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("alpha", contacts=30, page_size=1)])
    first = DaemonProcess(config, store_url, tmp_path / "first.log").start()
    try:
        first.wait_ready()
        second = DaemonProcess(config, store_url, tmp_path / "second.log").start()
        assert second.wait(30) == 1
        assert "another segsync daemon" in second.log_text()
        assert str(first.proc.pid) in second.log_text()
        _sync_wait(lambda: len(contact_ids(store_url, "alpha")) == 30)
        db = Path(store_url.removeprefix("sqlite:///"))
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), db.with_name(db.name + ".lock")]
        for path in files:
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        first.stop()


def test_kill_9_mid_pull_loses_nothing_and_the_next_daemon_closes_the_abandoned_run(tmp_path, store_url):
    config = write_rules(tmp_path / "rules.yaml", [fake_source("slow", contacts=30, page_size=2, page_delay=0.2)])
    first = DaemonProcess(config, store_url, tmp_path / "first.log").start()
    try:
        first.wait_ready()
        _sync_wait(lambda: (_cursor(store_url) or 0) >= 4)
        first.signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.stop()
    kept = _cursor(store_url)
    assert contact_ids(store_url, "slow") == {str(i) for i in range(1, kept + 1)}
    assert runs_of(store_url, "pull")[0].status == "running"
    second = DaemonProcess(config, store_url, tmp_path / "second.log").start()
    try:
        second.wait_ready()
        _sync_wait(lambda: len(contact_ids(store_url, "slow")) == 30, within=30)
    finally:
        second.stop()
    abandoned = runs_of(store_url, "pull")[0]
    assert abandoned.status == "interrupted" and "abandoned" in abandoned.error
