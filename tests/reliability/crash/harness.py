"""Crash-anywhere harness: run segsync commands as real processes against the sandbox and SIGKILL them.

A :class:`World` is one fresh sandbox (same seed → same CRM data) plus one fresh store and a rules file. A
:class:`Runner` starts ``segsync <command>`` in its own process group and kills the whole group at a
:class:`KillPoint`: either when the sandbox receives the process's N-th API request (see ``killswitch``) or a
number of seconds after the process wrote its first log line (its imports done, real work begun). The
snapshots read what must survive any crash: the store (customers, deals, segment labels, ledger) and what a
manager sees in the CRM (segsync's tasks, tags, user fields), compared on content, never on remote ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from segsync.sandbox.data import default_now
from segsync.store import tables as t
from segsync.store.engine import normalize_url

from .. import support
from .killswitch import KillSwitch, start_sandbox

MARKER = re.compile(r"\[segsync:[a-z0-9_-]+:[0-9a-f]{12}\]")
STEPS = ("pull", "compute", "push")
#: Every credential a world handed to segsync: none may appear in any output.
SECRETS: list[str] = []


def first_monday_after(moment: datetime) -> datetime:
    """10:00 in Moscow on the first Monday after ``moment``: a business day whatever day the suite runs."""
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 7, 0, tzinfo=UTC)


#: The CLI pipeline's clock: the same ``--as-of`` in every run, so crashed and clean runs plan the same ops.
AS_OF = first_monday_after(default_now())
AS_OF_ARG = AS_OF.strftime("%Y-%m-%dT%H:%M:%S")
COMMANDS: dict[str, list[str]] = {
    "pull": ["pull"],
    "compute": ["compute", "--as-of", AS_OF_ARG],
    "push": ["push", "--as-of", AS_OF_ARG],
}

RULES = """\
timezone: Europe/Moscow
language: ru
sources:
  - name: b24
    kind: bitrix24
    webhook_url: ${{CRASH_B24_WEBHOOK}}
    schedule: {{pull: 10m}}
  - name: amo
    kind: amocrm
    base_url: {amo_base_url}
    long_lived_token: ${{CRASH_AMO_TOKEN}}
    schedule: {{pull: 10m}}
segments:
  churn: {{min_repeaters: 1}}
  vip: {{where: "abc = 'A'"}}
writeback:
  publish: [abc_xyz, rfm, vip, churn_risk]
  tags: {{prefix: "seg:"}}
actions:
  - name: reactivation
    where: "churn_flag AND abc IN ('A', 'B')"
    task: {{title: "Реактивация: {{{{ customer.name }}}}", type: call, due: 2, priority: high}}
    cooldown: 30d
  - name: keep-in-touch
    where: "abc_xyz IN ('AX', 'AY', 'BX')"
    cadence: {{no_touch: 30d}}
    task: {{title: "Давно не общались: {{{{ customer.name }}}}", type: todo, due: 3}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- kill points ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where to kill one run of a step: at its N-th CRM request, or ``at`` seconds into its work."""

    step: str  # pull | compute | push | daemon
    how: str  # request | delay
    at: float
    phase: str = "after"  # request kills: the write applied ("after") or not ("before")

    def __str__(self) -> str:
        if self.how == "request":
            return f"{self.step}@req{int(self.at)}/{self.phase}"
        return f"{self.step}@{self.at:.2f}s"


@dataclass
class Profile:
    """What a clean run of each step costs: CRM requests and seconds of work (after its first log line)."""

    requests: dict[str, int] = field(default_factory=dict)
    work_s: dict[str, float] = field(default_factory=dict)


def draw_point(rng: random.Random, step: str, profile: Profile) -> KillPoint:
    """A seeded kill point inside ``step``'s clean run (compute makes no request: time only)."""
    requests = profile.requests.get(step, 0)
    if requests and rng.random() < 0.6:
        return KillPoint(step, "request", rng.randint(1, requests), rng.choice(("before", "after")))
    return KillPoint(step, "delay", round(rng.uniform(0.0, max(profile.work_s.get(step, 1.0), 0.2)), 2))


# -- one world: sandbox + store + rules ----------------------------------------------------------------------


@dataclass
class Outcome:
    killed: bool
    returncode: int
    work_s: float  # from the first log line to the exit
    requests: int


class World:
    """A fresh sandbox (``seed``) and a fresh store, with the rules file and the environment segsync runs in."""

    def __init__(self, folder: Path, store_url: str, *, seed: int, customers: int):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.store_url = store_url
        self.handle, self.switch = start_sandbox(seed=seed, customers=customers)
        b24, amo = self.handle.info["bitrix24"], self.handle.info["amocrm"]
        self.config = folder / "segsync.yaml"
        self.config.write_text(RULES.format(amo_base_url=amo["base_url"]), encoding="utf-8")
        self.secrets = [b24["webhook_url"], b24["webhook_url"].rstrip("/").rsplit("/", 1)[-1],
                        amo["long_lived_token"], self.handle.info["admin"]["token"]]  # fmt: skip
        SECRETS.extend(self.secrets)
        self.env = {
            **os.environ,
            "CRASH_B24_WEBHOOK": b24["webhook_url"],
            "CRASH_AMO_TOKEN": amo["long_lived_token"],
            "SEGSYNC_STORE_URL": store_url,
            "SEGSYNC_LOG_FORMAT": "json",
            "SEGSYNC_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        }
        self.runs = 0

    def close(self) -> None:
        self.handle.stop()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running processes -------------------------------------------------------------------------------

    def start(self, args: list[str], extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Any]:
        self.runs += 1
        log = open(self.folder / f"{self.runs:03d}-{args[0]}.log", "wb")  # noqa: SIM115 - closed by the caller
        proc = subprocess.Popen(
            [sys.executable, "-m", "segsync.cli", *args, "--config", str(self.config)],
            env={**self.env, **(extra_env or {})}, stdout=log, stderr=log, cwd=self.folder,
            start_new_session=True,  # its own process group: SIGKILL takes any child along
        )  # fmt: skip
        return proc, log

    def run(
        self, args: list[str], point: KillPoint | None = None, *, until: Callable[[int], bool] | None = None,
        timeout: float = 240.0,
    ) -> Outcome:  # fmt: skip
        """Run ``segsync <args>`` to its end, or kill it at ``point``.

        ``until(pid)``: for the daemon, which never ends by itself — polled; when true the daemon is stopped
        with SIGTERM (a clean shutdown) and the run counts as completed.
        """
        proc, log = self.start(args, {"SEGSYNC_LISTEN": f"127.0.0.1:{free_port()}"} if args[0] == "run" else None)
        log_path = Path(log.name)
        if point is not None and point.how == "request":
            self.switch.arm(proc.pid, int(point.at), point.phase)
        else:
            self.switch.arm(proc.pid)  # count only
        first_line = _FirstLine(log_path, proc)
        timer = None
        if point is not None and point.how == "delay":
            timer = threading.Thread(target=_kill_later, args=(proc, first_line, point.at), daemon=True)
            timer.start()
        started = time.monotonic()
        try:
            while proc.poll() is None:
                first_line.seen()
                if time.monotonic() - started > timeout:
                    raise AssertionError(f"segsync {args[0]} still running after {timeout}s:\n{_tail(log_path)}")
                if until is not None and first_line.seen() and until(proc.pid):
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
                    break
                time.sleep(0.05)
        finally:
            self.switch.disarm()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        ended = time.monotonic()
        killed = proc.returncode == -signal.SIGKILL
        if not killed and proc.returncode != 0:
            raise AssertionError(f"segsync {' '.join(args)} exited {proc.returncode}:\n{_tail(log_path)}")
        work = ended - (first_line.at or ended)
        return Outcome(killed, proc.returncode, work, self.switch.count)


class _FirstLine:
    """When the process wrote its first log line (its imports are done): the anchor of time-based kills."""

    def __init__(self, path: Path, proc: subprocess.Popen[bytes]):
        self.path, self.proc, self.at = path, proc, None

    def seen(self) -> bool:
        if self.at is None and self.path.stat().st_size > 0:
            self.at = time.monotonic()
        return self.at is not None

    def wait(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.seen():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _kill_later(proc: subprocess.Popen[bytes], first_line: _FirstLine, delay: float) -> None:
    if not first_line.wait():
        return
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:]


# -- the daemon: when has a (re)started `segsync run` finished its cycle? ------------------------------------


class CycleDone:
    """``until`` for the daemon: every source pulled by this process, nothing running, quiet for a moment."""

    def __init__(self, store_url: str, quiet_s: float = 1.5):
        self.engine = create_engine(normalize_url(store_url), poolclass=NullPool)
        self.quiet_s = quiet_s
        self._quiet_since: float | None = None

    def __call__(self, pid: int) -> bool:
        runs = t.runs
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(select(runs.c.source_id, runs.c.step, runs.c.status).where(runs.c.worker.like(f"%:{pid}")))
            )
            sources = {r[0] for r in conn.execute(select(t.sources.c.id))}
        failed = [r for r in rows if r.status == "failed"]
        if failed:
            raise AssertionError(f"the daemon failed a step: {failed}")
        pulled = {r.source_id for r in rows if r.step == "pull" and r.status == "ok"}
        idle = sources and pulled >= sources and not any(r.status == "running" for r in rows)
        if not idle:
            self._quiet_since = None
            return False
        self._quiet_since = self._quiet_since or time.monotonic()
        return time.monotonic() - self._quiet_since >= self.quiet_s

    def close(self) -> None:
        self.engine.dispose()


# -- snapshots -----------------------------------------------------------------------------------------------


_STAMP = re.compile(r"\d{8}T\d{6}Z")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def store_snapshot(store_url: str, *, exact: bool = True) -> dict[str, Any]:
    """What the store must hold after any crash, keyed by content (source name, CRM ids, idempotency keys).

    ``exact=False`` (the daemon, whose clock is the wall clock): ledger rows are compared as the done task
    ops per (rule, customer) — their keys carry the moment of the run, and label rows are covered by
    ``labels_written`` and the CRM itself.
    """
    engine = create_engine(normalize_url(store_url), poolclass=NullPool)
    out: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            names = dict(conn.execute(select(t.sources.c.id, t.sources.c.name)).all())
            cu, de, ss, lg, lw = t.customers, t.deals, t.segment_state, t.ledger, t.labels_written
            for row in conn.execute(select(cu)):
                out[f"customer {names[row.source_id]} {row.kind}:{row.remote_id}"] = (
                    _digest(row.name or ""), row.responsible_id, row.company_id, row.deleted_at is None)  # fmt: skip
            for row in conn.execute(select(de)):
                live = row.deleted_at is None
                out[f"deal {names[row.source_id]} {row.remote_id}"] = (
                    row.status, str(row.amount), row.contact_id, row.company_id, row.stage_id, live)  # fmt: skip
            for row in conn.execute(select(ss)):
                out[f"labels {names[row.source_id]} {row.customer_kind}:{row.customer_id}"] = dict(row.labels)
            for row in conn.execute(select(lw)):
                out[f"written {names[row.source_id]} {row.customer_kind}:{row.customer_id}"] = dict(row.labels)
            for row in conn.execute(select(lg)):
                where = f"{names[row.source_id]} {row.customer_kind}:{row.customer_id}"
                if row.state == "pending":
                    out[f"pending {where} {row.op}"] = out.get(f"pending {where} {row.op}", 0) + 1
                if exact:
                    out[f"ledger {names[row.source_id]} {row.key}"] = (
                        row.op, row.customer_kind, row.customer_id, row.rule, row.state)  # fmt: skip
                elif row.op != "labels" and row.state == "done":
                    key = f"done {where} {row.op} {row.rule}"
                    out[key] = out.get(key, 0) + 1
    finally:
        engine.dispose()
    return out


def crm_snapshot(world: World) -> dict[str, Any]:
    """What a manager sees: segsync's tasks, amoCRM tags and Bitrix24 user fields per entity.

    A task is keyed by its CRM, customer and rule and valued by its content (text without the marker,
    assignee, deadline, status), so a crashed run and a clean one compare equal whatever their clocks
    and remote ids. ``marker duplicates`` counts tasks sharing one exact marker (the same op sent twice).
    """
    admin = world.handle.admin
    tasks: dict[str, list[str]] = {}
    markers: Counter[str] = Counter()

    def add(crm: str, entity: str, text: str, *content: Any) -> None:
        marker = MARKER.search(text)
        if marker is None:
            return  # the world's own tasks
        markers[f"{crm} {entity} {marker.group(0)}"] += 1
        rule = marker.group(0).rsplit(":", 1)[0]
        tasks.setdefault(f"task {crm} {entity} {rule}", []).append(
            "|".join(map(str, (_digest(MARKER.sub("", text)), *content)))
        )

    for raw in admin("GET", "/amo/account/_admin/tasks")["tasks"]:
        deadline = datetime.fromtimestamp(raw["complete_till"], UTC).isoformat()
        add("amo", f"{raw['entity_type']}:{raw['entity_id']}", str(raw["text"]),
            raw["responsible_user_id"], deadline, raw["is_completed"])  # fmt: skip
    for raw in admin("GET", "/b24/portal/_admin/tasks")["tasks"]:
        low = {k.lower(): v for k, v in raw.items()}
        text = f"{low['title']}\n{low.get('description') or ''}"
        add("b24", str(low["ufcrmtask"]), text, low.get("responsibleid", low.get("responsible_id")),
            low["deadline"], low.get("status"))  # fmt: skip
    out: dict[str, Any] = {key: sorted(values) for key, values in tasks.items()}
    out["marker duplicates"] = sum(n - 1 for n in markers.values() if n > 1)
    tags = admin("GET", "/amo/account/_admin/tags")["tags"]
    for entity in ("contacts", "companies"):
        for remote_id, names in tags.get(entity, {}).items():
            out[f"tags amo {entity}:{remote_id}"] = sorted(names)
    for kind in ("contact", "company"):
        for remote_id, values in admin("GET", f"/b24/portal/_admin/fields?entity={kind}")["fields"].items():
            out[f"fields b24 {kind}:{remote_id}"] = dict(sorted(values.items()))
    return out


def duplicate_tasks(reference: dict[str, Any], crm: dict[str, Any]) -> int:
    """Tasks beyond the clean run's for one (CRM, customer, rule), plus ops sent twice under one marker."""
    extra = sum(max(0, len(v) - len(reference.get(k, []))) for k, v in crm.items() if k.startswith("task "))
    return extra + crm.get("marker duplicates", 0)


def lost_changes(reference: dict[str, Any], crm: dict[str, Any]) -> int:
    """Tags/fields of the clean run that differ here, plus the clean run's tasks missing or different here."""
    lost = 0
    for key, value in reference.items():
        if key.startswith(("tags ", "fields ")) and crm.get(key) != value:
            lost += 1
        elif key.startswith("task "):
            lost += sum((Counter(value) - Counter(crm.get(key, []))).values())
    return lost


def differences(reference: dict[str, Any], got: dict[str, Any], limit: int = 20) -> list[str]:
    """Keys (ids only, never values: they hold customer names) that differ between two snapshots."""
    keys = sorted(k for k in reference.keys() | got.keys() if reference.get(k) != got.get(k))
    shown = [f"{k}: {'missing' if k not in got else 'extra' if k not in reference else 'differs'}" for k in keys]
    return shown[:limit] + ([f"… {len(shown) - limit} more"] if len(shown) > limit else [])


def leaks_in_logs(folder: Path) -> list[str]:
    """Secrets, phones or e-mails in any log or output of the processes run under ``folder``."""
    text = "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))
    assert text.strip(), f"no process output under {folder}"
    return support.leaks(text, SECRETS)


__all__ = ["AS_OF", "COMMANDS", "STEPS", "CycleDone", "KillPoint", "KillSwitch", "Outcome", "Profile", "World"]
