"""docs/rules.md documents every key of the rules file (the JSON Schema is the list of keys)."""

from __future__ import annotations

import re
from pathlib import Path

from segsync.config import json_schema

DOC = Path(__file__).resolve().parents[3] / "docs" / "rules.md"


def _keys(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            out.add(key)
            _keys(value, out)
        for value in node.values():
            _keys(value, out)
    elif isinstance(node, list):
        for value in node:
            _keys(value, out)
    return out


def test_every_rules_key_is_documented():
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(k for k in _keys(json_schema(), set()) if f"`{k}`" not in text and not re.search(rf"\b{k}:", text))
    assert not missing, f"keys missing from docs/rules.md: {missing}"


def test_russian_quick_start_is_there():
    text = DOC.read_text(encoding="utf-8")
    assert "## Быстрый старт: как настроить сегменты и задачи" in text
