"""`segsync plan [--json]` and `segsync push [--dry-run]` end to end from one rules file with both sandbox CRMs."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import func, select
from typer.testing import CliRunner

from segsync.cli import app
from segsync.store import tables as t

from .writeback_flow import (
    AS_OF,
    DESCRIPTION,
    PREFIX,
    AmoCrm,
    B24Crm,
    amo_source_block,
    b24_source_block,
    cli_time,
    per_customer,
)


def rules(handle) -> str:
    return f"""\
timezone: Europe/Moscow
sources:
{b24_source_block(handle)}{amo_source_block(handle)}
segments:
  churn: {{min_repeaters: 1}}
writeback:
  publish: [abc_xyz, rfm, churn_risk]
  tags: {{prefix: "{PREFIX}"}}
actions:
  - name: reactivation
    where: "churn_flag AND abc IN ('A', 'B')"
    task: {{title: "Реактивация: {{{{ customer.name }}}}", description: "{DESCRIPTION}", type: call, due: 2}}
"""


def writes(crm, delta: Counter) -> Counter:
    if crm.kind == "amocrm":
        return Counter({k: n for k, n in delta.items() if n and not k.startswith("GET ")})
    return Counter({k: n for k, n in delta.items() if n})  # Bitrix24: every write is a batch; reads too


def test_plan_and_push_from_a_rules_file_against_both_crms(engine, store_url, sandbox_factory, tmp_path, monkeypatch):
    handle = sandbox_factory(seed=41, size="tiny", accounts=1)
    config = tmp_path / "segsync.yaml"
    config.write_text(rules(handle), encoding="utf-8")
    monkeypatch.setenv("SEGSYNC_STORE_URL", store_url)
    monkeypatch.setenv("SEGSYNC_LOG_LEVEL", "warning")
    runner = CliRunner()

    def cli(*args: str):
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result

    cli("pull", "--full")
    cli("compute", "--as-of", AS_OF.isoformat())
    crms = {"b24": B24Crm(handle), "amo": AmoCrm(handle)}
    at = cli_time(AS_OF)

    planned = json.loads(cli("plan", "--json", "--as-of", at).stdout)
    assert set(planned) == {"b24", "amo"}
    for name, plan in planned.items():
        assert plan["counts"]["customers_relabelled"] > 0 and plan["counts"]["tasks_create"] > 0, name
        assert all(op["reason"] for op in plan["ops"])
        task = next(op for op in plan["ops"] if op["op"] == "task")
        assert task["payload"]["title"].startswith("Реактивация: ") and "Не покупает" in task["payload"]["description"]
    table = cli("plan", "--as-of", at, "--show", "5").stdout
    assert "tasks_create" in table and "customers_relabelled" in table and "company:" in table

    before = {name: crm.requests() for name, crm in crms.items()}
    dry = json.loads(cli("push", "--dry-run", "--json", "--as-of", at).stdout)
    for name, crm in crms.items():
        assert dry[name]["dry_run"] is True and dry[name]["applied"] == {}
        assert dry[name]["plan"]["counts"] == planned[name]["counts"]
        assert writes(crm, crm.requests() - before[name]) == Counter(), name  # dry run: no CRM call at all
        assert crm.segsync_tasks() == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.ledger)).scalar_one() == 0  # nor in the store

    pushed = json.loads(cli("push", "--json", "--as-of", at).stdout)
    for name, crm in crms.items():
        counts = planned[name]["counts"]
        assert pushed[name]["dry_run"] is False
        assert pushed[name]["applied"]["labels_done"] == counts["customers_relabelled"]
        assert pushed[name]["applied"]["task_done"] == counts["tasks_create"]
        tasks = crm.segsync_tasks()
        assert len(tasks) == counts["tasks_create"] and max(per_customer(tasks).values()) == 1
    human = cli("push", "--as-of", cli_time(AS_OF.replace(hour=9))).stdout
    assert human.count("nothing to do") == 2 and "applied:" not in human

    after = json.loads(cli("plan", "--json", "--as-of", cli_time(AS_OF.replace(hour=10))).stdout)
    assert {name: plan["counts"] for name, plan in after.items()} == {"b24": {}, "amo": {}}
    before = {name: crm.requests() for name, crm in crms.items()}
    again = json.loads(cli("push", "--json", "--as-of", cli_time(AS_OF.replace(hour=11))).stdout)
    for name, crm in crms.items():
        assert again[name]["plan"]["counts"] == {}
        assert writes(crm, crm.requests() - before[name]) == Counter(), name
