"""`segsync report` end to end through the CLI, on the store of the ``engine`` fixture."""

from __future__ import annotations

from typer.testing import CliRunner

from segsync.cli import app

from .builder import build_store

RULES = """\
language: en
sources:
  - name: shop
    kind: bitrix24
    webhook_url: https://example.bitrix24.ru/rest/1/abcdef123456/
"""


def test_report_command_writes_one_file(engine, store_url, tmp_path, monkeypatch):
    built = build_store(engine, customers=120)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    monkeypatch.setenv("SEGSYNC_STORE_URL", store_url)
    out = tmp_path / "out" / "report.html"

    result = CliRunner().invoke(app, ["report", "-c", str(rules), "--out", str(out), "--lang", "ru"])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert '<html lang="ru">' in html and 'data-chart="shop-matrix"' in html
    assert not list(out.parent.glob(".*.tmp"))
    # names go into the report, never into what the command prints or logs
    assert not any(name in result.output for name in built.names)

    result = CliRunner().invoke(app, ["report", "-c", str(rules), "--out", str(out)])
    assert result.exit_code == 0 and '<html lang="en">' in out.read_text(encoding="utf-8")  # rules' language

    result = CliRunner().invoke(app, ["report", "-c", str(rules), "--source", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
