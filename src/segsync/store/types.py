"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has neither timezones nor exact decimals: times are stored as naive UTC and come back
aware; money is stored as integer minor units (exact, and still summable in SQL) and comes back
as :class:`~decimal.Decimal`. PostgreSQL gets native ``timestamptz``, ``numeric`` and ``jsonb``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Numeric, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

MONEY_SCALE = 2
_QUANT = Decimal(1).scaleb(-MONEY_SCALE)
_FACTOR = 10**MONEY_SCALE


NAIVE_DATETIME = "naive datetime given to a UTC column; attach a timezone first"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive input is rejected."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(NAIVE_DATETIME)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite stores text; SQLAlchemy's generic formatter/parser costs ~1.5 µs a value, which dominates
    # bulk upserts and full-table reads. The text format is identical ("YYYY-MM-DD HH:MM:SS.ffffff").
    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is UTC:
                return value.isoformat(" ", "microseconds")[:26]
            if value.tzinfo is None:
                raise ValueError(NAIVE_DATETIME)
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

        return process


class Money(TypeDecorator[Decimal]):
    """Decimal with 2 places: NUMERIC on PostgreSQL, integer minor units on SQLite.

    Rounded half away from zero, as PostgreSQL's numeric does, so both stores hold the same cents.
    """

    impl = Numeric(20, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        amount = Decimal(value).quantize(_QUANT, rounding=ROUND_HALF_UP)
        return int(amount * _FACTOR) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _FACTOR).quantize(_QUANT)
        return Decimal(value).quantize(_QUANT)


JsonDoc = JSON().with_variant(JSONB(), "postgresql")
