"""The analytics CLI end to end on a real store: compute, segments, explain, quality, check-config."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from segsync.cli import app
from segsync.sandbox.store_loader import load_world
from segsync.store import tables as t

from .compute_world import AS_OF, tiny_world

RULES = """\
timezone: Europe/Moscow
language: en
sources:
  - name: shop
    kind: csv
    path: unused.csv
    header: false
    columns: {customer_id: 1, date: 2, amount: 3}
    base_currency: RUB
segments:
  churn: {min_repeaters: 1}
  custom:
    - {name: it, where: "industry = 'IT'", title_en: "IT companies"}
"""


@pytest.fixture
def cli(engine, store_url, tmp_path, monkeypatch):
    config = tmp_path / "segsync.yaml"
    config.write_text(RULES, encoding="utf-8")
    monkeypatch.setenv("SEGSYNC_STORE_URL", store_url)
    monkeypatch.setenv("SEGSYNC_LOG_LEVEL", "warning")
    load_world(engine, tiny_world(), source="shop", kind="csv")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--config", str(config)])

    return invoke


def test_compute_then_segments_then_explain(cli):
    result = cli("compute", "--as-of", "2025-06-30", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["source"] == "shop" and summary["customers"] == 6
    assert summary["as_of"].startswith("2025-06-30T23:59:59")

    result = cli("segments", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["shop"]
    assert counts["customers"] == 6
    assert counts["labels"]["lifecycle"]["lead"] == 2
    assert counts["labels"]["custom:it"] == {"yes": 1}

    table = cli("segments")
    assert table.exit_code == 0 and "IT companies" in table.stdout and "Lifecycle" in table.stdout

    result = cli("explain", "company:1", "--json")
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert explained["labels"]["abc"] == "A"
    assert explained["reasons"]["abc"].startswith("A: revenue 200 000")
    assert explained["features"]["purchases"] == 3
    # complete months up to May 2025 (June is the as-of month); the USD deal closed in March
    assert explained["revenue_series"][-4:] == [0.0, 100000.0, 0.0, 0.0]
    assert {h["label"] for h in explained["history"]} >= {"abc", "lifecycle"}
    assert explained["writeback"] == {"labels_written": [], "episodes": [], "ops": []}  # nothing pushed yet

    human = cli("explain", "12", "--source", "shop")
    assert human.exit_code == 0, human.output
    assert "lost: silent" in human.stdout and "history" in human.stdout and "write-back and tasks" in human.stdout


def test_explain_reports_unknown_customers_and_sources(cli):
    assert cli("compute", "--as-of", "2025-06-30").exit_code == 0
    missing = cli("explain", "contact:999")
    assert missing.exit_code == 1 and "no computed customer" in missing.output
    wrong = cli("segments", "--source", "nope")
    assert wrong.exit_code == 1 and "unknown source 'nope'" in wrong.output


def test_quality_lists_duplicates_and_unreachable(cli):
    result = cli("quality", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["shop"]
    assert report["counts"]["duplicate_groups"] == 1
    assert [d["customer"] for d in report["duplicates"]] == ["contact:12", "contact:14"]
    assert report["unreachable"] == ["company:2", "contact:11"]
    assert "duplicate groups" in cli("quality").stdout


def test_quality_looks_at_every_customer_and_reaches_a_company_through_its_contacts(cli, engine):
    """Two records of one person at company 2 (no deals: not analysed) are still duplicates, and the phone of
    one of them makes company 2 reachable — the same definitions as the report's data-quality section."""
    with engine.begin() as conn:
        sid = conn.execute(select(t.sources.c.id).where(t.sources.c.name == "shop")).scalar_one()
        person = {"source_id": sid, "kind": "contact", "company_id": "2", "emails": [], "synced_at": AS_OF}
        conn.execute(
            insert(t.customers),
            [
                {**person, "remote_id": "20", "name": "Олег Бета", "phones": ["+7 495 222-33-44"]},
                {**person, "remote_id": "21", "name": "олег  бета", "phones": []},
            ],
        )
    report = json.loads(cli("quality", "--json").stdout)["shop"]
    assert report["unreachable"] == ["contact:11"]
    groups = {(d["match"], d["customer"]) for d in report["duplicates"]}
    assert groups == {("phone", "contact:12"), ("phone", "contact:14"), ("name_company", "contact:20"),
                      ("name_company", "contact:21")}  # fmt: skip
    assert report["counts"]["duplicate_groups"] == 2


def test_check_config_points_at_a_broken_condition(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(RULES.replace("industry = 'IT'", "industry = 'IT' AND revnue > 1"), encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    assert f"{path}:13:" in result.output and "revnue" in result.output
