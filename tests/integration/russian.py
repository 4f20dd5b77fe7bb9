"""Russian forms written out by hand, to check task texts independently of the renderer (Babel)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

MONTHS = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
          "ноября", "декабря")  # fmt: skip
MOSCOW = ZoneInfo("Europe/Moscow")


def days(n: int) -> str:
    """1 день, 2 дня, 5 дней, 11 дней, 21 день, 112 дней."""
    if n % 10 == 1 and n % 100 != 11:
        word = "день"
    elif n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        word = "дня"
    else:
        word = "дней"
    return f"{grouped(n)} {word}"


def grouped(n: int) -> str:
    return f"{n:,}".replace(",", "\xa0")  # CLDR ru: every group of three, no-break space


def long_date(moment: Any) -> str:
    """The calendar day in Moscow: "26 августа 2026"."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    day = moment.astimezone(MOSCOW).date() if isinstance(moment, datetime) else moment
    assert isinstance(day, date)
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def roubles(amount: Any) -> str:
    whole = int(Decimal(str(amount)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return f"{grouped(whole)}\xa0₽"
