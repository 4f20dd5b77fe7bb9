"""Query-string handling: PHP-style bracket parameters, page/limit, filters and ordering.

amo reads ``filter[updated_at][from]=1``, ``filter[id][]=1&filter[id][]=2``, ``filter[id]=1,2``
(the PHP SDK implodes arrays with commas) and ``order[updated_at]=asc``. This module turns them into
plain values and raises the documented errors (422 over the page limit, 400 validation errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from segsync.sandbox.amocrm.problems import ApiError, invalid

_KEY = re.compile(r"([^\[\]]+)|\[([^\[\]]*)\]")


def parse_query(items: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][]=1`` → ``{"a": {"b": ["1"]}}``; numeric or empty brackets build lists/dicts in order."""
    root: dict[str, Any] = {}
    for raw_key, value in items:
        parts = [m.group(1) if m.group(1) is not None else m.group(2) for m in _KEY.finditer(raw_key)]
        if not parts:
            continue
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if last:
                    node.append(value)
                    break
                child: Any = {}
                node.append(child)
                node = child
                continue
            if last:
                if part == "":
                    continue
                node[part] = value
                break
            nxt = parts[i + 1]
            default: Any = [] if nxt == "" else {}
            existing = node.get(part)
            if existing is None or isinstance(existing, str):
                existing = default
                node[part] = existing
            node = existing
    return root


def as_list(value: Any) -> list[str]:
    """A filter value given as ``x``, ``x,y``, ``[]``-array or ``[0]``-map, flattened to strings."""
    if value is None:
        return []
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(as_list(v))
        return out
    if isinstance(value, dict):
        return as_list(
            [value[k] for k in sorted(value, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))]
        )
    return [v for v in str(value).split(",") if v != ""]


def as_ints(value: Any, path: str) -> list[int]:
    out = []
    for v in as_list(value):
        try:
            out.append(int(v))
        except ValueError:
            raise invalid(path, "This value should be of type int.") from None
    return out


def to_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise invalid(path, "This value should be of type int.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(path, "This value should be of type int.") from None


@dataclass(frozen=True)
class Range:
    lo: int | None
    hi: int | None
    scalar: bool = False  # given as a bare timestamp, not from/to


def parse_range(value: Any, path: str) -> Range:
    if isinstance(value, dict):
        lo = to_int(value["from"], f"{path}.from") if value.get("from") not in (None, "") else None
        hi = to_int(value["to"], f"{path}.to") if value.get("to") not in (None, "") else None
        return Range(lo, hi)
    if isinstance(value, list):
        value = ",".join(as_list(value))
    parts = str(value).split(",")
    if len(parts) == 2:  # the PHP SDK's v2-style "ts1,ts2"
        return Range(to_int(parts[0], path), to_int(parts[1], path))
    return Range(to_int(value, path), None, scalar=True)


@dataclass
class Paging:
    page: int
    limit: int


def parse_paging(q: dict[str, Any], *, default_limit: int, max_limit: int) -> Paging:
    page = to_int(q.get("page", 1), "page")
    limit = to_int(q.get("limit", default_limit), "limit")
    if limit > max_limit:
        raise ApiError(422, f"Limit {max_limit} per page")
    if page < 1:
        raise invalid("page", "This value should be greater than or equal to 1.", code="GreaterThanOrEqual")
    if limit < 1:
        raise invalid("limit", "This value should be greater than or equal to 1.", code="GreaterThanOrEqual")
    return Paging(page, limit)


def parse_with(q: dict[str, Any]) -> set[str]:
    return set(as_list(q.get("with")))


@dataclass
class Order:
    field: str
    desc: bool


def parse_order(q: dict[str, Any], allowed: tuple[str, ...], default: Order) -> Order:
    raw = q.get("order")
    if raw is None:
        return default
    if not isinstance(raw, dict) or not raw:
        raise invalid("order", "This value should be of type array.")
    name, direction = next(iter(raw.items()))
    if name not in allowed:
        raise invalid(f"order.{name}", "The value you selected is not a valid choice.", code="NotSupportedChoice")
    if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
        raise invalid(f"order.{name}", "The value you selected is not a valid choice.", code="NotSupportedChoice")
    return Order(name, direction.lower() == "desc")


@dataclass
class ListQuery:
    """A normalized entity-list request (hashable key for the query cache)."""

    ids: tuple[int, ...] | None = None
    ranges: dict[str, Range] = field(default_factory=dict)
    equals: dict[str, tuple[int, ...]] = field(default_factory=dict)
    statuses: tuple[tuple[int, int], ...] | None = None
    text: str | None = None
    only_deleted: bool = False
    order: Order = field(default_factory=lambda: Order("id", False))

    def key(self) -> tuple[Any, ...]:
        return (
            self.ids,
            tuple(sorted((k, v.lo, v.hi, v.scalar) for k, v in self.ranges.items())),
            tuple(sorted(self.equals.items())),
            self.statuses,
            self.text,
            self.only_deleted,
            self.order.field,
            self.order.desc,
        )


def page_href(base: str, path: str, items: list[tuple[str, str]], page: int, limit: int) -> str:
    """The request's own query with page/limit replaced, brackets left readable as amo prints them."""
    kept = [(k, v) for k, v in items if k not in ("page", "limit")]
    kept += [("limit", str(limit)), ("page", str(page))]
    qs = "&".join(f"{quote(k, safe='[]')}={quote(v, safe=',[]')}" for k, v in kept)
    return f"{base}{path}?{qs}"
