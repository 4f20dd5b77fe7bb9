"""Task and label texts from admin-written Jinja2 templates, rendered in a sandbox.

Templates come from a rules file an admin edits, so they run in Jinja2's
:class:`~jinja2.sandbox.SandboxedEnvironment` (no attribute tricks, no I/O) and are checked when the
rules file loads: a syntax error or an unknown name is a config error with a line number, not a
failed push at night. Numbers, money, dates and plurals are formatted with Babel so Russian text
reads naturally ("1 250 000 ₽", "12 марта 2026", "21 день"); dates are the calendar day in the rules'
``timezone`` (a purchase at 23:30 UTC was made "tomorrow" in Moscow).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

#: Names a task title/description/next_step template may use (see docs/rules.md, "Task texts").
TASK_NAMES = frozenset(
    {
        "customer",
        "segment",
        "labels",
        "codes",
        "features",
        "last_purchase",
        "revenue_total",
        "revenue_365d",
        "n_purchases",
        "days_silent",
        "usual_cycle",
        "p_alive",
        "clv",
        "next_step",
        "rule",
        "due",
        "currency",
        "language",
    }
)
#: Names a label display template may use.
LABEL_NAMES = frozenset({"label", "code", "title", "language"})

_NO_VALUE = "—"
_DAY_WORDS = {
    "ru": {"one": "день", "few": "дня", "many": "дней", "other": "дня"},
    "en": {"one": "day", "other": "days"},
}


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _as_date(value: Any, zone: ZoneInfo | None = None) -> date | None:
    """The calendar day of ``value`` in ``zone``; naive datetimes are UTC, as the store keeps them."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if zone is None:
            return value.date()
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(zone).date()
    if isinstance(value, date):
        return value
    return None


@functools.cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def plural(n: Any, language: str, forms: Mapping[str, str]) -> str:
    """The plural form of a word for ``n`` (CLDR categories: one/few/many/other)."""
    number = _number(n)
    category = _locale(language).plural_form(number if number is not None else 0)
    return forms.get(category) or forms.get("other") or forms.get("many") or next(iter(forms.values()))


def _filters(language: str, zone: ZoneInfo | None) -> dict[str, Any]:
    whole_money = Locale.parse(language).currency_formats["standard"].pattern.split(";")[0].replace(".00", "")

    @jinja2.pass_context
    def money(ctx: Any, value: Any, currency: str | None = None) -> str:
        amount = _number(value)
        if amount is None:
            return _NO_VALUE
        code = currency or ctx.get("currency") or "RUB"
        return format_currency(amount, code, format=whole_money, locale=language, currency_digits=False)

    def number(value: Any, digits: int = 0) -> str:
        amount = _number(value)
        if amount is None:
            return _NO_VALUE
        return format_decimal(
            round(amount, digits), format="#,##0." + "#" * digits if digits else "#,##0", locale=language
        )

    def percent(value: Any) -> str:
        share = _number(value)
        return _NO_VALUE if share is None else format_percent(share, locale=language)

    def long_date(value: Any) -> str:
        day = _as_date(value, zone)
        return _NO_VALUE if day is None else format_date(day, "d MMMM y", locale=language)

    def days(value: Any) -> str:
        amount = _number(value)
        if amount is None:
            return _NO_VALUE
        whole = int(amount.to_integral_value())
        return f"{format_decimal(whole, locale=language)} {plural(whole, language, _DAY_WORDS[language])}"

    def plural_filter(value: Any, one: str, few: str, many: str | None = None) -> str:
        forms = {"one": one, "few": few, "many": many or few, "other": few if language == "ru" else many or few}
        return plural(value, language, forms)

    return {"money": money, "number": number, "percent": percent, "date": long_date, "days": days,
            "plural": plural_filter}  # fmt: skip


def _finalize(value: Any) -> Any:
    return _NO_VALUE if value is None else value


@functools.cache
def environment(language: str = "ru", timezone: str | None = None) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=False, finalize=_finalize, keep_trailing_newline=False)
    env.filters.update(_filters(language, ZoneInfo(timezone) if timezone else None))
    return env


def check_template(text: str, allowed: frozenset[str]) -> None:
    """Raise ValueError if ``text`` does not parse or names something the context will not have."""
    try:
        parsed = environment("ru").parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template error on its line {exc.lineno}: {exc.message}") from None
    unknown = sorted(meta.find_undeclared_variables(parsed) - allowed)
    if unknown:
        raise ValueError(f"unknown name(s) in template: {', '.join(unknown)}; available: {', '.join(sorted(allowed))}")


@functools.lru_cache(maxsize=256)
def _compiled(text: str, language: str, timezone: str | None) -> jinja2.Template:
    return environment(language, timezone).from_string(text)


def render(text: str, context: Mapping[str, Any], language: str = "ru", timezone: str | None = None) -> str:
    """Render a checked template; surrounding whitespace is trimmed. ``timezone``: where dates are shown."""
    return _compiled(text, language, timezone).render(**context).strip()
