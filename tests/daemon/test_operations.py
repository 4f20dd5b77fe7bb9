"""Operator tools: `segsync status`, `segsync backup`, private file modes, systemd notify, metric helpers."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from segsync import metrics
from segsync.app import ensure_sources
from segsync.backup import backup_sqlite
from segsync.config.sources import SourceBase
from segsync.daemon.notify import notify, watchdog_interval
from segsync.errors import StoreError
from segsync.runs import recorded_run
from segsync.secrets import write_private_file
from segsync.status import collect_status
from segsync.store import make_engine, upgrade
from segsync.store import tables as t
from segsync.tokens import DbTokenStore

SQLITE_ONLY = pytest.mark.skipif(
    os.environ.get("SEGSYNC_TEST_DB", "sqlite").startswith("postgres"), reason="SQLite store only"
)


async def test_status_reports_runs_per_step_cursors_quarantine_parked_ops_and_token_expiry(engine):
    ids = ensure_sources(engine, [SourceBase(name="shop", kind="fake")])
    sid = ids["shop"]
    with recorded_run(engine, "pull", sid) as run:
        run.add("pages")
    with pytest.raises(RuntimeError), recorded_run(engine, "pull", sid):
        raise RuntimeError("portal down")
    with recorded_run(engine, "reconcile", sid):
        pass
    now = datetime.now(UTC)
    expires = now + timedelta(hours=20)
    secret = "access-token-that-must-not-be-printed"
    await DbTokenStore(engine, sid).save({"access_token": secret, "refresh_token": "r" * 20,
                                          "expires_at": expires.timestamp()})  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(t.cursors).values(source_id=sid, stream="deals", state={"id": 5}, updated_at=now))
        conn.execute(insert(t.quarantine).values(source_id=sid, entity="deals", remote_id="9", reason="bad date",
                                                 created_at=now))  # fmt: skip
        for i, state in enumerate(("parked", "parked", "done")):
            op = {"key": f"k{i}", "op": "task", "customer_kind": "contact", "customer_id": "1", "state": state}
            conn.execute(insert(t.ledger).values(source_id=sid, created_at=now, updated_at=now, **op))

    report = collect_status(engine, ids)["sources"]["shop"]
    assert report["last_runs"]["pull"]["status"] == "failed"
    assert "portal down" in report["last_runs"]["pull"]["error"]
    assert report["last_runs"]["pull"]["last_success_age_s"] is not None  # the earlier pull succeeded
    assert report["last_runs"]["reconcile"]["status"] == "ok"
    assert report["cursor_age_s"]["deals"] < 60
    assert report["quarantined"] == 1
    assert report["parked_ops"] == 2
    token = report["token"]
    assert abs(token["access_expires_in_s"] - 20 * 3600) < 120
    assert token["renewals"] == 1
    assert secret not in repr(report)


@SQLITE_ONLY
def test_backup_is_a_consistent_private_copy_taken_while_writing(engine, tmp_path: Path):
    ensure_sources(engine, [SourceBase(name="shop", kind="fake")])
    stop = threading.Event()

    def writer() -> None:  # the daemon keeps writing while the backup runs
        i = 0
        while not stop.is_set():
            with engine.begin() as conn:
                conn.execute(insert(t.runs).values(source_id=1, step="pull", status="ok", started_at=datetime.now(UTC)))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        target = tmp_path / "backups" / "copy.db"
        size = backup_sqlite(engine, target, pages_per_step=4)
    finally:
        stop.set()
        thread.join()
    assert size > 0 and stat.S_IMODE(target.stat().st_mode) == 0o600
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT name FROM sources").fetchall() == [("shop",)]
        assert copy.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
    assert not list(target.parent.glob(".*partial"))
    with pytest.raises(StoreError, match="must not be the store itself"):
        backup_sqlite(engine, Path(engine.url.database))


def test_backup_of_postgres_points_to_pg_dump(postgres_url):
    with pytest.raises(StoreError, match="pg_dump"):
        backup_sqlite(make_engine(postgres_url), Path("/tmp/never.db"))


@SQLITE_ONLY
def test_sqlite_files_are_private_even_with_a_permissive_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path / 'store.db'}"
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(t.sources).values(name="x", kind="fake", created_at=datetime.now(UTC),
                                                  updated_at=datetime.now(UTC)))  # fmt: skip
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["store.db", "store.db-shm", "store.db-wal"]
        for name in files:
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        write_private_file(tmp_path / "tokens" / "shop.token", "secret")
        assert stat.S_IMODE((tmp_path / "tokens" / "shop.token").stat().st_mode) == 0o600
        engine.dispose()
        make_engine.cache_clear()
    finally:
        os.umask(old)


def test_notify_speaks_the_sd_notify_protocol(tmp_path: Path, monkeypatch):
    assert notify("READY=1") is False  # not under systemd: a no-op
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1", "STATUS=working")
        assert receiver.recv(100) == b"READY=1\nSTATUS=working"
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval() is None


def test_metric_helpers_follow_prometheus_naming():
    metrics.prime_source("m1")
    metrics.record_run("m1", "pull", "ok", 2.5)
    metrics.record_pull_counts("m1", {"deals": {"upserted": 7, "quarantined": 2}, "events": {"deleted": 3}})
    metrics.record_segment_sizes("m1", {"abc": {"A": 5, "B": 9}})
    metrics.record_segment_sizes("m1", {"abc": {"A": 6}})
    metrics.record_ops("m1", "task", "applied", 4)
    metrics.request_hook("m1")("crm.deal.list", 200)
    metrics.throttle_hook("m1")("QUERY_LIMIT_EXCEEDED")
    text = metrics.render()[0].decode()
    value = metrics.REGISTRY.get_sample_value
    assert value("segsync_runs_total", {"source": "m1", "step": "pull", "status": "ok"}) == 1
    assert value("segsync_runs_total", {"source": "m1", "step": "push", "status": "failed"}) == 0  # pre-exported
    assert value("segsync_run_duration_seconds_count", {"source": "m1", "step": "pull"}) == 1
    assert value("segsync_last_success_timestamp_seconds", {"source": "m1", "step": "pull"}) > 0
    assert value("segsync_records_pulled_total", {"source": "m1", "entity": "deals"}) == 7
    assert value("segsync_records_quarantined_total", {"source": "m1", "entity": "deals"}) == 2
    assert value("segsync_records_deleted_total", {"source": "m1", "entity": "events", "via": "events"}) == 3
    assert value("segsync_segment_customers", {"source": "m1", "segment": "abc", "value": "B"}) == 0
    assert value("segsync_segment_customers", {"source": "m1", "segment": "abc", "value": "A"}) == 6
    assert value("segsync_tasks_created_total", {"source": "m1"}) == 4
    assert value("segsync_crm_requests_total", {"source": "m1", "method": "crm.deal.list", "status": "200"}) == 1
    assert value("segsync_crm_throttles_total", {"source": "m1", "reason": "QUERY_LIMIT_EXCEEDED"}) == 1
    assert 'segsync_build_info{version="' in text and "_created{" not in text and "_created " not in text


def test_json_logs_carry_a_syslog_priority_prefix_on_the_journal(tmp_path: Path, monkeypatch):
    import logging

    from segsync.logs import configure_logging, get_logger

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        with open(tmp_path / "journal", "w+") as stream:
            st = os.fstat(stream.fileno())
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
            configure_logging("info", "json", stream=stream)
            get_logger("t").error("broken", source="shop")
            get_logger("t").info("fine")
            with open(tmp_path / "other", "w+") as elsewhere:  # stderr redirected away from the journal
                configure_logging("info", "json", stream=elsewhere)
                get_logger("t").error("plain")
                elsewhere.seek(0)
                assert elsewhere.read().startswith('{"')
            stream.seek(0)
            lines = stream.read().splitlines()
        assert lines[0].startswith('<3>{"') and '"event": "broken"' in lines[0]
        assert lines[1].startswith("<6>{")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
