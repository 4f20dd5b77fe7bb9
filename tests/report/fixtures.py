"""Hand-made report inputs (no database): small enough to check every figure by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from segsync.report.inputs import (
    CONTACTS_SCHEMA,
    CURSORS_SCHEMA,
    HISTORY_SCHEMA,
    PURCHASES_SCHEMA,
    QUARANTINE_SCHEMA,
    RUNS_SCHEMA,
    TASKS_SCHEMA,
    FitInfo,
    Settings,
    SourceData,
    state_schema,
)

NOW = datetime(2025, 6, 16, 9, 0, tzinfo=UTC)
SETTINGS = Settings(timezone="Europe/Moscow", language="ru", cohort_months=12, lost_after_months=3, churn_rows=3)


def at(year: int, month: int, day: int = 10) -> datetime:
    return datetime(year, month, day, 9, 0, tzinfo=UTC)


def state(rows: list[dict]) -> pl.DataFrame:
    """Customers with labels and features; missing keys are null."""
    columns = state_schema(("custom:key_b2b",))
    filled = []
    for row in rows:
        kind, _, remote = row["customer"].partition(":")
        filled.append({"kind": kind, "remote_id": remote, **{c: None for c in columns}, **row})
    return pl.DataFrame(filled, schema=columns)


def sample_source() -> SourceData:
    customers = state(
        [
            {"customer": "company:1", "abc": "A", "xyz": "X", "rfm": "champions", "lifecycle": "active",
             "churn_risk": "low", "vip": "yes", "custom:key_b2b": "yes", "revenue_window": 500.0,
             "revenue_365d": 500.0, "p_alive": 0.95, "recency_days": 5, "name": "ООО «Альфа»", "responsible_id": "7"},
            {"customer": "company:2", "abc": "A", "xyz": "Y", "rfm": "at_risk", "lifecycle": "lapsed",
             "churn_risk": "high", "churn_flag": "yes", "revenue_window": 300.0, "revenue_365d": 300.0,
             "p_alive": 0.2, "recency_days": 120, "days_since_touch": 90, "name": "АО «Вектор»",
             "responsible_id": "8"},
            {"customer": "contact:3", "abc": "B", "xyz": "Z", "rfm": "hibernating", "lifecycle": "lost",
             "churn_risk": "high", "churn_flag": "yes", "revenue_window": 150.0, "revenue_365d": 150.0,
             "p_alive": 0.1, "recency_days": 200, "name": "Иванов <script>alert(1)</script> Иван",
             "responsible_id": "7"},
            {"customer": "contact:4", "abc": "C", "xyz": "once", "rfm": "new_customers", "lifecycle": "new",
             "churn_risk": "low", "revenue_window": 50.0, "revenue_365d": 50.0, "p_alive": 1.0, "recency_days": 3,
             "name": "Петрова Анна", "responsible_id": None},
            {"customer": "contact:5", "lifecycle": "lead", "name": "Лид Без Покупок", "responsible_id": "8"},
        ]
    )  # fmt: skip
    purchases = pl.DataFrame(
        [
            ("company:1", at(2025, 1), 100.0),
            ("company:1", at(2025, 3), 200.0),
            ("company:1", at(2025, 6), 200.0),
            ("company:2", at(2024, 6), 80.0),
            ("company:2", at(2025, 2), 300.0),
            ("contact:3", at(2024, 11), 150.0),
            ("contact:4", at(2025, 6, 12), 50.0),
        ],
        schema=PURCHASES_SCHEMA,
        orient="row",
    )
    contacts = pl.DataFrame(
        [
            ("company:1", "company", "ООО «Альфа»", None, "7", [], []),
            ("company:2", "company", "АО «Вектор»", None, "8", ["+7 912 000-00-01"], []),
            ("contact:3", "contact", "Иванов Иван", None, "7", ["8 (912) 000-00-01"], ["IVAN@example.ru "]),
            ("contact:4", "contact", "Петрова Анна", None, None, [], ["not-an-email"]),
            ("contact:5", "contact", "Лид", None, "8", [], ["lead@example.ru"]),
            ("contact:6", "contact", "Сидоров", "1", "7", ["+7 999 123-45-67"], []),  # reaches company 1
            ("contact:7", "contact", "Иванов Иван", None, "7", ["+7 912 000-00-01"], ["ivan@example.ru"]),
        ],
        schema=CONTACTS_SCHEMA,
        orient="row",
    )
    tasks = pl.DataFrame(
        [
            ("7", "done", NOW - timedelta(days=20), NOW - timedelta(days=20)),
            ("7", "done", NOW - timedelta(days=2), NOW - timedelta(days=2)),
            ("7", "planned", NOW, NOW),
            ("8", "done", NOW - timedelta(days=1), NOW - timedelta(days=1)),
            ("8", "parked", NOW, NOW),
            (None, "failed", NOW, NOW),
        ],
        schema=TASKS_SCHEMA,
        orient="row",
    )
    history = pl.DataFrame(
        [
            ("lifecycle", "active", "lapsed", 1, 2),
            ("lifecycle", "lapsed", "lost", 1, 1),
            ("lifecycle", None, "new", 1, 1),
            ("rfm", "loyal_customers", "at_risk", 0, 1),
            ("abc", "A", "B", 1, 1),
        ],
        schema=HISTORY_SCHEMA,
        orient="row",
    )
    runs = pl.DataFrame(
        [
            ("pull", "ok", NOW - timedelta(minutes=10), NOW - timedelta(minutes=9), None),
            ("pull", "failed", NOW - timedelta(hours=3), NOW - timedelta(hours=3), "TransportError: timed out"),
            ("compute", "ok", NOW - timedelta(hours=2), NOW - timedelta(hours=2), None),
            ("push", "failed", NOW - timedelta(hours=1), NOW - timedelta(hours=1), "RateLimited: 429"),
            ("pull", "ok", NOW - timedelta(days=9), NOW - timedelta(days=9), None),
        ],
        schema=RUNS_SCHEMA,
        orient="row",
    )
    return SourceData(
        name="shop",
        kind="bitrix24",
        currency="RUB",
        state_as_of=NOW,
        customers=customers,
        custom_labels=("custom:key_b2b",),
        history=history,
        history_as_of=NOW,
        fits=[FitInfo("bgnbd", "fitted", None, NOW)],
        purchases=purchases,
        contacts=contacts,
        users={"7": "Екатерина Белова", "8": "Михаил Орлов"},
        tasks=tasks,
        runs=runs,
        cursors=pl.DataFrame([("deals", NOW - timedelta(minutes=9))], schema=CURSORS_SCHEMA, orient="row"),
        quarantine=pl.DataFrame([("deal", "amount is not a number", 3, NOW)], schema=QUARANTINE_SCHEMA, orient="row"),
    )
