"""Bitrix24 wire format: query-string encoding of batch commands, response bodies, the ``time`` block.

Pure functions only. Bitrix24 is PHP underneath, which explains the quirks handled here: nested
parameters travel as ``filter[>ID]=5`` query strings inside ``batch``, an empty map comes back as
``[]``, and a map with numeric keys comes back as a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus as _quote_plus

import orjson

#: Bitrix24 list methods always return pages of exactly this many rows.
PAGE_SIZE = 50
#: A ``batch`` takes at most this many commands.
BATCH_LIMIT = 50


def encode_query(params: Mapping[str, Any]) -> str:
    """PHP ``http_build_query`` for one ``batch`` command (what the official Python SDK sends).

    Inner keys and values are percent-encoded, the brackets between them are not. ``None`` becomes an
    empty value — never the string ``"None"`` (a known batch pitfall) — and booleans become ``Y``/``N``.
    ``$result[...]`` references are encoded like any value; the server substitutes them after decoding.
    """
    return "&".join(_pairs(params, None))


#: A chain's 50 commands repeat the same keys and selected fields: 1,300 quotings a request, few distinct.
quote_plus = lru_cache(maxsize=8192)(_quote_plus)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _pairs(value: Any, prefix: str | None) -> list[str]:
    if isinstance(value, Mapping):
        items: Sequence[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        if prefix is None:
            raise TypeError("top-level batch parameters must be a mapping")
        return [f"{prefix}={quote_plus(_scalar(value))}"]
    if prefix is not None and not items:
        return [f"{prefix}[]="]
    out: list[str] = []
    for key, inner in items:
        quoted = quote_plus(str(key))
        out.extend(_pairs(inner, quoted if prefix is None else f"{prefix}[{quoted}]"))
    return out


def decode_json(content: bytes) -> Any:
    """Parse a body (orjson: pulls are CPU-bound on parsing). ``crm.item.list`` sends amounts as JSON
    numbers; :func:`~connectors.bitrix24.mapping.parse_money` turns them into exact Decimals through
    their shortest repr, exact up to 15 significant digits (amounts below 10^13 with kopecks)."""
    return orjson.loads(content)


def parse_portal_datetime(value: Any) -> datetime | None:
    """An ISO-8601 value with the portal's offset (``2024-08-30T14:29:00+02:00``) as an aware datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class Timing:
    """The ``time`` block every response (and every batch sub-call) carries."""

    start: float | None = None
    finish: float | None = None
    date_start: datetime | None = None  # the portal's clock, with its UTC offset
    operating: float | None = None  # seconds this method used in the current 10-minute window
    operating_reset_at: float | None = None  # unix time when the oldest minute leaves that window

    @property
    def portal_tz(self) -> timezone | None:
        if self.date_start is None or self.date_start.utcoffset() is None:
            return None
        offset = self.date_start.utcoffset() or timedelta(0)
        return timezone(offset)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            parsed = parse_portal_datetime(value)  # one doc sample sends operating_reset_at as ISO text
            return parsed.timestamp() if parsed else None
    return None


def parse_timing(block: Any) -> Timing:
    if not isinstance(block, Mapping):
        return Timing()
    return Timing(
        start=_number(block.get("start")),
        finish=_number(block.get("finish")),
        date_start=parse_portal_datetime(block.get("date_start")),
        operating=_number(block.get("operating")),
        operating_reset_at=_number(block.get("operating_reset_at")),
    )


@dataclass(frozen=True, slots=True)
class CommandError:
    code: str
    description: str


@dataclass(slots=True)
class BatchReply:
    """A ``batch`` answer with every section as a dict keyed by our command keys."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, CommandError] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)
    nexts: dict[str, Any] = field(default_factory=dict)
    times: dict[str, Timing] = field(default_factory=dict)
    time: Timing = field(default_factory=Timing)


def _section(raw: Any, keys: Sequence[str], taken: set[str]) -> dict[str, Any]:
    """A result section as a dict. ``[]`` means empty; a non-empty list means PHP turned a map with
    numeric keys into a list: its entries are matched, in order, to the keys not answered elsewhere."""
    if isinstance(raw, Mapping):
        return {str(k): v for k, v in raw.items()}
    if isinstance(raw, list) and raw:
        free = [k for k in keys if k not in taken]
        return dict(zip(free, raw, strict=False))
    return {}


def parse_batch(body: Mapping[str, Any], keys: Sequence[str]) -> BatchReply:
    """Normalize ``{"result": {"result", "result_error", "result_total", "result_next", "result_time"}}``."""
    inner = body.get("result")
    if not isinstance(inner, Mapping):
        inner = {}
    results = _section(inner.get("result"), keys, set())
    raw_errors = _section(inner.get("result_error"), keys, set(results))
    errors = {}
    for key, err in raw_errors.items():
        if isinstance(err, Mapping):
            errors[key] = CommandError(str(err.get("error") or ""), str(err.get("error_description") or ""))
        else:
            errors[key] = CommandError("", str(err))
    return BatchReply(
        results=results,
        errors=errors,
        totals=_section(inner.get("result_total"), keys, set()),
        nexts=_section(inner.get("result_next"), keys, set()),
        times={k: parse_timing(v) for k, v in _section(inner.get("result_time"), keys, set()).items()},
        time=parse_timing(body.get("time")),
    )


def unwrap_list(result: Any, wrapper: str | None) -> list[Any] | None:
    """The rows of a list method's result (``crm.item.list`` wraps them in ``{"items": [...]}``)."""
    if wrapper is not None:
        if not isinstance(result, Mapping):
            return None
        result = result.get(wrapper)
    if isinstance(result, list):
        return result
    if isinstance(result, Mapping) and all(str(k).isdigit() for k in result):
        return list(result.values())  # a PHP list with holes arrives as a map
    return None
