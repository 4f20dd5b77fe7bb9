"""Request parameters the way Bitrix24 (PHP) sees them.

Bitrix24 merges the query string with a JSON or form body; form and query strings use PHP's nested
array syntax (``filter[>ID]=5&select[]=ID``), and ``batch`` commands carry such query strings too.
Parameter names of classic methods are accepted in lower or upper case (``filter``/``FILTER``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

_KEY = re.compile(r"^([^\[]+)((?:\[[^\]]*\])*)$")
_PART = re.compile(r"\[([^\]]*)\]")


def parse_php_query(query: str) -> dict[str, Any]:
    """``a[b][]=1&a[b][]=2&c=3`` → ``{"a": {"b": ["1", "2"]}, "c": "3"}`` (PHP's parse_str)."""
    out: dict[str, Any] = {}
    for key, value in query_pairs(query):
        _assign(out, key, value)
    return out


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Exactly ``urllib.parse.parse_qsl(query, keep_blank_values=True)``, at a fifth of its cost: every
    request and every batch command parses a query string of some twenty pairs, and parse_qsl spends
    most of its time in per-pair helper calls that plain pairs (no ``+``, no ``%``) do not need."""
    out = []
    for field in query.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="replace")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="replace")
        out.append((name, value))
    return out


@lru_cache(maxsize=4096)
def _key_parts(key: str) -> tuple[str, ...] | None:
    """``filter[>ID]`` → ``("filter", ">ID")``; None for a key that is not PHP array syntax. Cached: a
    batch repeats the same few dozen keys (``select[0]``, ``filter[>ID]``) in every command."""
    m = _KEY.match(key)
    if not m:
        return None
    return (m.group(1), *_PART.findall(m.group(2)))


def _assign(out: dict[str, Any], key: str, value: Any) -> None:
    parts = _key_parts(key)
    if parts is None:
        out[key] = value
        return
    node: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if part == "":
                if last:
                    node.append(value)
                    return
                node.append({})
                node = node[-1]
                continue
            node = _list_to_dict(node)  # pragma: no cover - mixed forms are rare
        if last:
            if part == "" and isinstance(node, dict):
                node[str(len(node))] = value
            else:
                node[part] = value
            return
        nxt = parts[i + 1]
        if part not in node or not isinstance(node[part], dict | list):
            node[part] = [] if nxt == "" else {}
        node = node[part]


def _list_to_dict(items: list[Any]) -> dict[str, Any]:
    return {str(i): v for i, v in enumerate(items)}


def get(params: dict[str, Any], name: str, default: Any = None) -> Any:
    """Case-insensitive lookup (``filter`` / ``FILTER``); an exact match wins."""
    if name in params:
        return params[name]
    lower = name.lower()
    for key, value in params.items():
        if key.lower() == lower:
            return value
    return default


def as_list(value: Any) -> list[Any]:
    """A PHP array as a list: lists stay, maps give their values, scalars become one item."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def as_int(value: Any) -> int | None:
    """PHP-ish intval for ids: "12" → 12, "12abc"/""/None → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None
