"""pull → compute → push against the CRM sandbox over HTTP, and what the sandbox then holds.

Shared by ``test_writeback_bitrix24.py`` and ``test_writeback_amocrm.py``. A :class:`Flow` drives one source
through the real steps (connector, store, analytics, planner); :class:`Crm` reads the sandbox's admin API in
the CRM's own shapes, so the tests check what a manager would see, not what segsync believes it wrote.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from segsync.actions import PushResult, plan_source, push_source
from segsync.actions.model import Plan
from segsync.app import ensure_sources
from segsync.compute.run import compute_source
from segsync.config import parse_rules
from segsync.config.models import Rules
from segsync.connect import open_connector
from segsync.contract import Connector, CustomerRef
from segsync.sandbox.data import default_now
from segsync.sandbox.testing import SandboxHandle
from segsync.segments.names import display
from segsync.store import tables as t
from segsync.sync import pull_source

PREFIX = "seg:"
PUBLISH = ("abc_xyz", "rfm", "vip", "churn_risk")
MARKER = re.compile(r"\[segsync:[a-z0-9_-]+:[0-9a-f]{12}\]")


def first_monday_after(moment: datetime) -> datetime:
    """10:00 in Moscow on the first Monday after ``moment``: a business day whatever day the suite runs."""
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 7, 0, tzinfo=UTC)


#: The sandbox world ends "today 00:00 UTC"; segments and tasks are computed a few days later, on a Monday.
AS_OF = first_monday_after(default_now())

DESCRIPTION = (
    "Не покупает {{ days_silent | days }}. Последняя покупка {{ last_purchase.date | date }} "
    "на {{ last_purchase.amount | money }}. Следующий шаг: {{ next_step }}."
)


def rules_text(
    source: str, *, fallback_user: str, where: str = "churn_flag AND abc IN ('A', 'B')", cap: int = 50,
    cooldown: str = "30d",
) -> str:  # fmt: skip
    """A rules file with one source block (YAML text), the published labels and one action."""
    return f"""\
timezone: Europe/Moscow
language: ru
sources:
{source}
segments:
  churn: {{min_repeaters: 1}}
  vip: {{where: "abc = 'A'"}}
writeback:
  publish: [{", ".join(PUBLISH)}]
  tags: {{prefix: "{PREFIX}"}}
actions:
  - name: reactivation
    where: "{where}"
    task:
      title: "Реактивация: {{{{ customer.name }}}}"
      description: "{DESCRIPTION}"
      due: 2
      fallback_user: "{fallback_user}"
    cooldown: {cooldown}
limits:
  daily_cap_per_manager: {cap}
"""


def b24_source_block(handle: SandboxHandle, name: str = "b24") -> str:
    return f"  - name: {name}\n    kind: bitrix24\n    webhook_url: {handle.info['bitrix24']['webhook_url']}\n"


def amo_source_block(handle: SandboxHandle, name: str = "amo") -> str:
    info = handle.info["amocrm"]
    return (
        f"  - name: {name}\n    kind: amocrm\n    base_url: {info['base_url']}\n"
        f"    long_lived_token: {info['long_lived_token']}\n"
    )


@dataclass
class Flow:
    """One configured source driven through pull → compute → plan/push on a real store."""

    engine: Engine
    rules: Rules
    config_text: str
    source_name: str
    sid: int = 0

    @classmethod
    def create(cls, engine: Engine, config_text: str) -> Flow:
        rules = parse_rules(config_text, "segsync.yaml", env={})
        (source,) = rules.sources
        sid = ensure_sources(engine, rules.sources)[source.name]
        return cls(engine, rules, config_text, source.name, sid)

    def with_rules(self, config_text: str) -> Flow:
        """The same source and store under another rules file (e.g. once the CRM's users are known)."""
        rules = parse_rules(config_text, "segsync.yaml", env={})
        assert rules.sources[0].name == self.source_name
        return Flow(self.engine, rules, config_text, self.source_name, self.sid)

    @property
    def source(self) -> Any:
        return self.rules.sources[0]

    def connector(self) -> Connector:
        return open_connector(self.engine, self.sid, self.source, label_prefix=self.rules.writeback.tags.prefix)

    async def pull(self, *, full: bool = False) -> None:
        async with self.connector() as conn:
            await pull_source(self.engine, self.sid, conn, full=full)

    def compute(self, as_of: datetime) -> None:
        compute_source(self.engine, self.rules, self.source, self.sid, as_of)

    def plan(self, as_of: datetime) -> Plan:
        return plan_source(self.engine, self.sid, self.rules, as_of=as_of)

    async def push(self, as_of: datetime) -> PushResult:
        async with self.connector() as conn:
            return await push_source(self.engine, self.sid, self.rules, conn, as_of=as_of)

    # -- the store -------------------------------------------------------------------------------

    def states(self) -> dict[CustomerRef, dict[str, Any]]:
        """Each computed customer's labels (``segment_state``)."""
        ss = t.segment_state
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ss.c.customer_kind, ss.c.customer_id, ss.c.labels).where(ss.c.source_id == self.sid)
            )
            return {CustomerRef(k, i): labels or {} for k, i, labels in rows}

    def features(self) -> dict[CustomerRef, dict[str, Any]]:
        ss = t.segment_state
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ss.c.customer_kind, ss.c.customer_id, ss.c.features).where(ss.c.source_id == self.sid)
            )
            return {CustomerRef(k, i): f or {} for k, i, f in rows}

    def expected_labels(self) -> dict[CustomerRef, dict[str, str]]:
        """What the rules say managers should see: the Russian display value of every published label."""
        out = {}
        for ref, labels in self.states().items():
            shown = {key: display(key, labels.get(key), "ru") for key in PUBLISH}
            out[ref] = {k: v for k, v in shown.items() if v}
        return out

    def customers(self) -> dict[CustomerRef, tuple[str | None, str | None]]:
        """(name, responsible id) of every stored customer."""
        cu = t.customers
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(cu.c.kind, cu.c.remote_id, cu.c.name, cu.c.responsible_id).where(cu.c.source_id == self.sid)
            )
            return {CustomerRef(k, i): (name, resp) for k, i, name, resp in rows}

    def raw(self, ref: CustomerRef) -> dict[str, Any]:
        """The customer's record as the CRM sent it."""
        cu = t.customers
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(cu.c.raw).where(
                    cu.c.source_id == self.sid, cu.c.kind == ref.kind, cu.c.remote_id == ref.remote_id
                )
            ).scalar_one()
        return json.loads(raw) if isinstance(raw, str) else raw

    def active_users(self) -> set[str]:
        u = t.users
        with self.engine.connect() as conn:
            rows = conn.execute(select(u.c.remote_id).where(u.c.source_id == self.sid, u.c.active.is_(True)))
            return {str(r) for (r,) in rows}

    def ledger(self, op: str | None = None) -> list[Any]:
        lg = t.ledger
        q = select(lg).where(lg.c.source_id == self.sid).order_by(lg.c.id)
        if op is not None:
            q = q.where(lg.c.op == op)
        with self.engine.connect() as conn:
            return list(conn.execute(q))


# -- what the sandbox holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteTask:
    id: str
    customer: CustomerRef
    title: str
    text: str  # everything the manager reads: title and description
    responsible: str
    deadline: datetime
    completed: bool


class Crm:
    """The sandbox's view of one tenant (admin API), and a manager's hands (the CRM's REST API)."""

    kind: str
    admin_prefix: str

    def __init__(self, handle: SandboxHandle):
        self.handle = handle

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.handle.admin(method, self.admin_prefix + path, body)

    def requests(self) -> Counter[str]:
        """HTTP requests the tenant answered so far, by method (Bitrix24) or endpoint (amoCRM)."""
        raise NotImplementedError

    def tasks(self) -> list[RemoteTask]:
        raise NotImplementedError

    def segsync_tasks(self) -> list[RemoteTask]:
        """Tasks carrying a segsync marker (the world's own tasks are left out)."""
        return [task for task in self.tasks() if MARKER.search(task.text)]


class AmoCrm(Crm):
    kind = "amocrm"
    admin_prefix = "/amo/account/_admin/"

    def requests(self) -> Counter[str]:
        by_key = self.admin("GET", "state")["requests"]
        return Counter({key: sum(by_status.values()) for key, by_status in by_key.items()})

    def tasks(self) -> list[RemoteTask]:
        out = []
        for raw in self.admin("GET", "tasks")["tasks"]:
            kind = {"contacts": "contact", "companies": "company"}.get(raw["entity_type"])
            if kind is None:
                continue
            text = str(raw["text"])
            ref = CustomerRef(kind, str(raw["entity_id"]))
            deadline = datetime.fromtimestamp(raw["complete_till"], UTC)
            title = text.split("\n", 1)[0]
            responsible = str(raw["responsible_user_id"])
            out.append(RemoteTask(str(raw["id"]), ref, title, text, responsible, deadline, bool(raw["is_completed"])))
        return out

    def tags(self) -> dict[CustomerRef, set[str]]:
        """Every tag of every contact/company."""
        data = self.admin("GET", "tags")["tags"]
        out: dict[CustomerRef, set[str]] = {}
        for entity, kind in (("contacts", "contact"), ("companies", "company")):
            for remote_id, names in data.get(entity, {}).items():
                out[CustomerRef(kind, str(remote_id))] = set(names)
        return out

    def tag_dictionary(self) -> set[str]:
        """Names in the contacts' and companies' tag dictionaries."""
        data = self.admin("GET", "tags")["dictionary"]
        return {str(name) for entity in ("contacts", "companies") for name in data.get(entity, {})}

    # -- a manager at work -------------------------------------------------------------------------

    def edit(self, ref: CustomerRef, fields: dict[str, Any]) -> None:
        entity = "contacts" if ref.kind == "contact" else "companies"
        self.admin("POST", "edit", {"entity_type": entity, "id": int(ref.remote_id), "fields": fields})

    def add_tags(self, ref: CustomerRef, names: list[str]) -> None:
        self.edit(ref, {"tags_to_add": [{"name": n} for n in names]})

    def set_city(self, ref: CustomerRef, city: str, raw: Mapping[str, Any]) -> None:
        (field_id,) = [f["field_id"] for f in raw["custom_fields_values"] if f["field_name"] == "Город"]
        self.edit(ref, {"custom_fields_values": [{"field_id": field_id, "values": [{"value": city}]}]})

    def complete_task(self, task_id: str) -> None:
        """As a manager would, here through the API. A manager's clicks do not count against the integration's
        7 requests/s, but this call does in the sandbox: it keeps a second clear of segsync's own requests
        on both sides, or segsync would meet a 429 (``retry_after`` 300 s) it could not have avoided."""
        info = self.handle.info["amocrm"]
        body = [{"id": int(task_id), "is_completed": True, "result": {"text": "Позвонил"}}]
        headers = {"Authorization": f"Bearer {info['long_lived_token']}"}
        time.sleep(1.1)
        r = httpx.patch(f"{info['base_url']}/api/v4/tasks", headers=headers, json=body)
        time.sleep(1.1)
        r.raise_for_status()


class B24Crm(Crm):
    kind = "bitrix24"
    admin_prefix = "/b24/portal/_admin/"

    def requests(self) -> Counter[str]:
        by_key = self.admin("GET", "state")["counters"]["requests"]
        return Counter({key: sum(by_status.values()) for key, by_status in by_key.items()})

    def tasks(self) -> list[RemoteTask]:
        out = []
        for raw in self.admin("GET", "tasks")["tasks"]:
            lower = {k.lower(): v for k, v in raw.items()}
            (binding,) = lower["ufcrmtask"]
            prefix, _, remote_id = str(binding).partition("_")
            ref = CustomerRef("company" if prefix == "CO" else "contact", remote_id)
            title = str(lower["title"])
            responsible = lower.get("responsibleid", lower.get("responsible_id"))
            out.append(RemoteTask(str(lower["id"]), ref, title, f"{title}\n{lower.get('description') or ''}",
                                  str(responsible), datetime.fromisoformat(str(lower["deadline"])),
                                  str(lower.get("status")) in ("5", "7")))  # fmt: skip
        return out

    def fields(self) -> dict[CustomerRef, dict[str, Any]]:
        """User-field values per contact/company."""
        out: dict[CustomerRef, dict[str, Any]] = {}
        for kind in ("contact", "company"):
            for remote_id, values in self.admin("GET", f"fields?entity={kind}")["fields"].items():
                out[CustomerRef(kind, str(remote_id))] = dict(values)
        return out

    def userfields(self) -> dict[str, list[dict[str, Any]]]:
        return self.admin("GET", "userfields")

    # -- a manager at work -------------------------------------------------------------------------

    def rest(self, method: str, params: dict[str, Any]) -> Any:
        """As a manager would, through the webhook (sharing the portal's 2 requests/s with segsync)."""
        for _ in range(20):
            r = httpx.post(self.handle.info["bitrix24"]["webhook_url"] + f"{method}.json", json=params)
            if r.status_code != 503:  # QUERY_LIMIT_EXCEEDED
                break
            time.sleep(0.5)
        r.raise_for_status()
        return r.json()["result"]

    def edit(self, ref: CustomerRef, fields: dict[str, Any]) -> None:
        self.admin("POST", f"entities/{ref.kind}/{ref.remote_id}", fields)

    def set_city(self, ref: CustomerRef, city: str, raw: Mapping[str, Any]) -> None:
        self.edit(ref, {"ADDRESS_CITY": city})

    def complete_task(self, task_id: str) -> None:
        self.rest("tasks.task.complete", {"taskId": task_id})


# -- the CLI in a subprocess (crash tests) ------------------------------------------------------------


def cli_process(args: list[str], config: Path, store_url: str, **popen: Any) -> subprocess.Popen[str]:
    """``segsync <args> --config CONFIG`` in its own process, on the test's store."""
    env = {**os.environ, "SEGSYNC_STORE_URL": store_url, "SEGSYNC_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "segsync.cli", *args, "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def run_cli(args: list[str], config: Path, store_url: str, timeout: float = 120) -> tuple[int, Any, str]:
    proc = cli_process(args, config, store_url)
    out, err = proc.communicate(timeout=timeout)
    try:
        parsed = json.loads(out) if out.strip() else None
    except ValueError:
        parsed = out
    return proc.returncode, parsed, err


def per_customer(tasks: list[RemoteTask]) -> Mapping[CustomerRef, int]:
    return Counter(task.customer for task in tasks)


@contextmanager
def crash_before_task_done(engine: Engine, *, stall_s: float = 3.0) -> Iterator[None]:
    """A fault hook in the store: marking a task ``done`` fails, so a push dies after the CRM created the task
    and before the ledger says so. On PostgreSQL the update first stalls ``stall_s`` seconds, long enough for
    the test to SIGKILL the process right there."""
    if engine.dialect.name == "sqlite":
        create = ["CREATE TRIGGER segsync_test_crash BEFORE UPDATE OF state ON ledger "
                  "WHEN NEW.state = 'done' AND NEW.op = 'task' "
                  "BEGIN SELECT RAISE(ABORT, 'injected crash before the ledger commit'); END"]  # fmt: skip
        drop = ["DROP TRIGGER segsync_test_crash"]
    else:
        create = [
            "CREATE FUNCTION segsync_test_crash() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_sleep({stall_s}); RAISE EXCEPTION 'injected crash before the ledger commit'; "
            "END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER segsync_test_crash BEFORE UPDATE ON ledger FOR EACH ROW "
            "WHEN (NEW.state = 'done' AND NEW.op = 'task') EXECUTE FUNCTION segsync_test_crash()",
        ]
        drop = ["DROP TRIGGER segsync_test_crash ON ledger", "DROP FUNCTION segsync_test_crash()"]
    with engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


def wait_for(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def cli_time(moment: datetime) -> str:
    """``--as-of`` as the CLI parses it (naive = UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def crash_a_push(flow: Flow, crm: Crm, config: Path, store_url: str) -> list[RemoteTask]:
    """Run ``segsync push`` in a subprocess that dies between creating tasks and committing them to the ledger.

    SQLite: the ledger update fails and the process exits with an error. PostgreSQL: the process is killed
    with SIGKILL while its ledger update is stalled. Returns the tasks the CRM holds afterwards.
    """
    with crash_before_task_done(flow.engine):
        proc = cli_process(["push", "--as-of", cli_time(AS_OF), "--json"], config, store_url)
        try:
            if flow.engine.dialect.name == "sqlite":
                _out, err = proc.communicate(timeout=120)
                assert proc.returncode != 0 and "injected crash" in err, err[-2000:]
            else:
                wait_for(crm.segsync_tasks)
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                assert proc.returncode == -signal.SIGKILL
        finally:
            if proc.poll() is None:  # pragma: no cover - a failed assertion above
                proc.kill()
                proc.communicate()
    return crm.segsync_tasks()
