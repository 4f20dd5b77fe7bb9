"""Small value types shared by the rules-file sections (durations, shares, cron, time zones)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"30d"``, ``"10m"``, ``"12h"``, ``"2w"``, ``"45s"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30d, 12h, 10m or 45s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            number, unit = match.groups()
            return timedelta(seconds=float(number) * _UNITS[unit.lower()])
    raise ValueError("must be a duration like 30d, 12h, 10m or 45s")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?\s*(s|sec|m|min|h|d|w)$", "examples": ["30d"]}),
]


def _check_share(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


Share = Annotated[float, AfterValidator(_check_share), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
PositiveInt = Annotated[int, Field(gt=0)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a known IANA time zone (e.g. Europe/Moscow)") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"is not a valid crontab expression ({exc})") from None
    return value


CronExpr = Annotated[str, AfterValidator(_check_cron), WithJsonSchema({"type": "string", "examples": ["0 3 * * *"]})]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError("must be a time of day as HH:MM")
    return value


TimeOfDay = Annotated[str, AfterValidator(_check_hhmm)]
