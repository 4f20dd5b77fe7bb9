"""The committed JSON Schema is current and the example rules file is valid and editor-ready."""

from __future__ import annotations

import json
from pathlib import Path

from segsync.config import json_schema, load_rules

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_committed_schema_is_current():
    committed = json.loads((CONFIG / "schema.json").read_text(encoding="utf-8"))
    assert committed == json_schema(), "config/schema.json is stale: run `segsync schema > config/schema.json`"


def test_example_starts_with_the_editor_modeline():
    first = (CONFIG / "segsync.example.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./schema.json"


def test_example_is_valid(monkeypatch):
    monkeypatch.setenv("B24_WEBHOOK_URL", "https://example.bitrix24.ru/rest/1/abcdefgh/")
    monkeypatch.setenv("AMO_TOKEN", "long-lived-token-value")
    rules = load_rules(CONFIG / "segsync.example.yaml")
    assert [s.name for s in rules.sources] == ["shop", "amo"]
    assert rules.sources[0].webhook_url.get_secret_value().endswith("/abcdefgh/")


def test_secret_values_do_not_leak_through_the_model(monkeypatch):
    monkeypatch.setenv("B24_WEBHOOK_URL", "https://example.bitrix24.ru/rest/1/abcdefgh/")
    monkeypatch.setenv("AMO_TOKEN", "long-lived-token-value")
    rules = load_rules(CONFIG / "segsync.example.yaml")
    assert "abcdefgh" not in repr(rules) and "long-lived-token-value" not in rules.model_dump_json()
