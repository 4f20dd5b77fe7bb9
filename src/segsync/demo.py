"""`segsync demo`: the whole flow on the embedded default, for a newcomer's first five minutes.

Starts the CRM sandbox (one Bitrix24 portal and one amoCRM account, a few thousand customers each) on a free
loopback port, writes a real rules file into the demo folder (secrets in 0600 files, referenced as
``${VAR}`` like in production), then runs the daemon's own steps — pull → compute → push — for both sources,
pushes a second time to show that nothing is written twice, renders the report and prints a summary.

Every run starts from a fresh sandbox and a fresh store with a fixed seed, so running it again gives the
same result (and never fails on leftovers). ``serve=True`` then keeps the sandbox and the daemon running so
that an edit in the sandbox triggers a webhook → pull → compute → push cycle.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from segsync.app import App, open_app
from segsync.connect import open_connector
from segsync.daemon import steps
from segsync.logs import get_logger
from segsync.sandbox.testing import SandboxHandle, start_in_thread
from segsync.secrets import write_private_file
from segsync.store import tables as t

log = get_logger("segsync.demo")

#: Environment variables the demo rules file reads its secrets from (as ``VAR_FILE`` → a 0600 file).
SECRETS = {
    "SEGSYNC_DEMO_B24_WEBHOOK": ("bitrix24", "webhook_url"),
    "SEGSYNC_DEMO_B24_APP_TOKEN": ("bitrix24", "application_token"),
    "SEGSYNC_DEMO_AMO_TOKEN": ("amocrm", "long_lived_token"),
}
AMO_WEBHOOK_SECRET = "SEGSYNC_DEMO_AMO_WEBHOOK_SECRET"

RULES = """\
# yaml-language-server: $schema={schema}
#
# Written by `segsync demo` for the built-in CRM sandbox; secrets are read from the files in ./secrets
# (see demo.env). Copy it as a starting point for your own rules — every key is in docs/rules.md.
timezone: Europe/Moscow
language: ru
store: sqlite:///{store}

sources:
  - name: shop
    kind: bitrix24
    webhook_url: ${{SEGSYNC_DEMO_B24_WEBHOOK}}
    application_token: ${{SEGSYNC_DEMO_B24_APP_TOKEN}}
    schedule: {{pull: 1m}}

  - name: amo
    kind: amocrm
    base_url: {amo_base_url}
    long_lived_token: ${{SEGSYNC_DEMO_AMO_TOKEN}}
    webhook_secret: ${{SEGSYNC_DEMO_AMO_WEBHOOK_SECRET}}
    subdomain: {amo_subdomain}
    account_id: {amo_account_id}
    schedule: {{pull: 1m}}

segments:
  vip:
    where: "abc = 'A' AND purchases >= 5"
    title_ru: VIP
  custom:
    - name: key_b2b
      where: "b2b AND abc IN ('A', 'B') AND lifecycle IN ('active', 'returned')"
      title_ru: "Ключевые B2B"
      title_en: "Key B2B"

writeback:
  publish: [abc_xyz, rfm, vip, churn_risk]
  tags: {{prefix: "seg:"}}

actions:
  - name: reactivation
    where: "churn_flag AND abc IN ('A', 'B')"
    task:
      title: "Реактивация: {{{{ customer.name }}}}"
      description: >-
        Клиент не покупает {{{{ days_silent | days }}}} при обычном цикле {{{{ usual_cycle | days }}}}.
        Последняя покупка {{{{ last_purchase.date | date }}}} на {{{{ last_purchase.amount | money }}}},
        всего {{{{ revenue_total | money }}}}. Следующий шаг: {{{{ next_step }}}}.
      type: call
      due: 2
      priority: high
    cooldown: 30d
    complete_on_purchase: true

  - name: keep-in-touch
    where: "abc_xyz IN ('AX', 'AY', 'BX')"
    cadence: {{no_touch: 30d}}
    task:
      title: "Давно не общались: {{{{ customer.name }}}}"
      type: todo
      due: 3

limits: {{daily_cap_per_manager: 10}}
daemon: {{listen: "127.0.0.1:{daemon_port}"}}
"""


@dataclass
class SourceSummary:
    name: str
    kind: str
    pulled: dict[str, int] = field(default_factory=dict)
    customers: int = 0
    segments: dict[str, dict[str, int]] = field(default_factory=dict)
    labels_written: int = 0
    tasks_by_manager: dict[str, int] = field(default_factory=dict)
    tasks_in_crm: int = 0
    second_push_writes: int = 0
    queued: int = 0
    example_customer: str | None = None  # one customer who got a task: something to `segsync explain`


@dataclass
class DemoResult:
    folder: Path
    rules_path: Path
    report_path: Path
    sandbox: dict[str, Any]
    sources: list[SourceSummary]

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "rules": str(self.rules_path),
            "report": str(self.report_path),
            "sandbox": {"url": self.sandbox["url"], "admin": self.sandbox["admin"]["url"]},
            "sources": [s.__dict__ for s in self.sources],
        }


def _schema_path() -> str:
    candidate = Path(__file__).resolve().parents[2] / "config" / "schema.json"
    return candidate.as_uri() if candidate.exists() else "https://json-schema.org/draft/2020-12/schema"


def prepare_folder(folder: Path, info: dict[str, Any], daemon_port: int) -> Path:
    """A fresh demo folder: rules file, 0600 secret files, demo.env; the old store and report removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("segsync.db", "segsync.db-wal", "segsync.db-shm", "segsync.db.lock", "report.html"):
        (folder / stale).unlink(missing_ok=True)
    secrets_dir = folder / "secrets"
    shutil.rmtree(secrets_dir, ignore_errors=True)
    secrets_dir.mkdir(mode=0o700)
    b24, amo = info["bitrix24"], info["amocrm"]
    values = {var: {"bitrix24": b24, "amocrm": amo}[crm][key] for var, (crm, key) in SECRETS.items()}
    values[AMO_WEBHOOK_SECRET] = os.urandom(12).hex()
    env_lines = []
    for var, value in values.items():
        path = secrets_dir / var.lower()
        write_private_file(path, value)
        os.environ[f"{var}_FILE"] = str(path.resolve())
        os.environ.pop(var, None)
        env_lines.append(f"{var}_FILE={path.resolve()}")
    write_private_file(folder / "demo.env", "\n".join(env_lines) + "\n")
    rules = RULES.format(
        schema=_schema_path(),
        store=(folder / "segsync.db").resolve(),
        amo_base_url=amo["base_url"],
        amo_subdomain=amo.get("subdomain", "account"),
        amo_account_id=amo["account_id"],
        daemon_port=daemon_port,
    )
    path = folder / "segsync.yaml"
    path.write_text(rules, encoding="utf-8")
    return path


def _requests_served(sandbox: SandboxHandle, kind: str) -> int:
    """All API requests a tenant has served so far (the sandbox's own counters)."""
    if kind == "bitrix24":
        counters = sandbox.admin("GET", "/b24/portal/_admin/state")["counters"]["requests"]
    else:
        counters = sandbox.admin("GET", "/amo/account/_admin/state")["requests"]
    return sum(_leaves(counters))


def _leaves(node: Any) -> list[int]:
    if isinstance(node, dict):
        return [n for value in node.values() for n in _leaves(value)]
    return [node] if isinstance(node, int) else []


def _tasks_in_crm(sandbox: SandboxHandle, kind: str) -> int:
    if kind == "bitrix24":
        tasks = sandbox.admin("GET", "/b24/portal/_admin/tasks")["tasks"]
        text = lambda task: f"{task.get('title', '')} {task.get('description', '')}"  # noqa: E731
    else:
        tasks = sandbox.admin("GET", "/amo/account/_admin/tasks")["tasks"]
        text = lambda task: task.get("text", "")  # noqa: E731
    return sum(1 for task in tasks if "[segsync:" in text(task))


def _segments(app: App, source_id: int) -> tuple[int, dict[str, dict[str, int]]]:
    counts: dict[str, Counter[str]] = {key: Counter() for key in ("abc_xyz", "rfm", "lifecycle", "churn_risk", "vip")}
    total = 0
    with app.engine.connect() as conn:
        for (labels,) in conn.execute(select(t.segment_state.c.labels).where(t.segment_state.c.source_id == source_id)):
            total += 1
            for key, counter in counts.items():
                if key in labels:
                    counter[labels[key]] += 1
    return total, {key: dict(counter.most_common()) for key, counter in counts.items()}


def _example_customer(app: App, source_id: int) -> str | None:
    ledger = t.ledger
    with app.engine.connect() as conn:
        row = conn.execute(
            select(ledger.c.customer_kind, ledger.c.customer_id)
            .where(ledger.c.source_id == source_id, ledger.c.op == "task", ledger.c.state == "done")
            .order_by(ledger.c.id)
            .limit(1)
        ).first()
    return f"{row.customer_kind}:{row.customer_id}" if row else None


def _tasks_by_manager(app: App, source_id: int) -> tuple[dict[str, int], int]:
    with app.engine.connect() as conn:
        names = {
            r.remote_id: r.name or r.remote_id
            for r in conn.execute(select(t.users.c.remote_id, t.users.c.name).where(t.users.c.source_id == source_id))
        }
        done: Counter[str] = Counter()
        queued = 0
        rows = conn.execute(
            select(t.ledger.c.state, t.ledger.c.payload).where(
                t.ledger.c.source_id == source_id, t.ledger.c.op == "task"
            )
        )
        for state, payload in rows:
            if state == "done":
                who = str((payload or {}).get("responsible_id") or "—")
                done[names.get(who, who)] += 1
            elif state in ("planned", "pending"):
                queued += 1
    return dict(done.most_common()), queued


async def run_cycle(app: App, sandbox: SandboxHandle) -> list[SourceSummary]:
    """The daemon's own chain for every source: pull → compute → push, then a second, no-op push."""
    out = []
    ids = await asyncio.to_thread(app.source_ids)
    for source in app.rules.sources:
        summary = SourceSummary(name=source.name, kind=source.kind)
        connector = open_connector(app.engine, ids[source.name], source, label_prefix=app.rules.writeback.tags.prefix)
        async with connector as conn:
            ctx = steps.StepContext(app.engine, ids[source.name], source, app.rules, conn)
            pulled = await steps.pull(ctx)
            summary.pulled = {entity: c.get("upserted", 0) for entity, c in pulled.counts.items() if entity != "events"}
            await steps.compute(ctx)
            pushed = await steps.push(ctx)
            summary.labels_written = int(pushed.get("labels_done", 0))
            before = await asyncio.to_thread(_requests_served, sandbox, source.kind)
            await steps.push(ctx)
            after = await asyncio.to_thread(_requests_served, sandbox, source.kind)
        summary.second_push_writes = after - before
        summary.customers, summary.segments = await asyncio.to_thread(_segments, app, ids[source.name])
        summary.tasks_by_manager, summary.queued = await asyncio.to_thread(_tasks_by_manager, app, ids[source.name])
        summary.tasks_in_crm = await asyncio.to_thread(_tasks_in_crm, sandbox, source.kind)
        summary.example_customer = await asyncio.to_thread(_example_customer, app, ids[source.name])
        out.append(summary)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_demo(
    folder: Path,
    *,
    seed: int = 7,
    size: str = "demo",
    serve: bool = False,
    on_ready: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the demo; with ``serve`` keep the sandbox and the daemon running until interrupted."""
    from segsync.report import render_report
    from segsync.settings import load_settings

    sandbox = start_in_thread(seed=seed, size=size, portals=1, accounts=1)
    try:
        daemon_port = free_port()
        rules_path = prepare_folder(folder, sandbox.info, daemon_port)
        settings = load_settings()
        settings.store_url = None  # the demo's own store, whatever the environment says
        app = open_app(rules_path, settings=settings)
        sources = asyncio.run(run_cycle(app, sandbox))
        report_path = folder / "report.html"
        html = render_report(app.engine, app.rules)
        report_path.write_text(html, encoding="utf-8")
        result = DemoResult(folder, rules_path, report_path, sandbox.info, sources)
        (folder / "summary.json").write_bytes(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
        if on_ready is not None:
            on_ready(result)
        if serve:
            _serve(app, sandbox, daemon_port)
        return result
    finally:
        sandbox.stop()


def _serve(app: App, sandbox: SandboxHandle, daemon_port: int) -> None:
    """Point the sandbox's outgoing webhooks at the daemon and run the daemon until Ctrl-C / SIGTERM."""
    from segsync.daemon import run_daemon
    from segsync.secrets import lookup_secret

    base = f"http://127.0.0.1:{daemon_port}"
    secret = lookup_secret(AMO_WEBHOOK_SECRET)
    sandbox.admin("POST", "/b24/portal/_admin/webhook", {"url": f"{base}/webhooks/bitrix24/shop"})
    sandbox.admin("POST", "/amo/account/_admin/webhook", {"url": f"{base}/webhooks/amocrm/amo/{secret}"})
    run_daemon(app)
