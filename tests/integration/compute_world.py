"""A small hand-made :class:`World` for compute tests: every number in it is chosen, so tests can assert
exact segments. (The synthetic generator covers scale; this covers meaning.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from segsync.sandbox.world import World

AS_OF = datetime(2025, 6, 30, 12, tzinfo=UTC)
DT = pl.Datetime("us", "UTC")


def _days_ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def tiny_world() -> World:
    """Companies 1–2 (B2B) and contacts 10–14; contact 10 works at company 1.

    * company 1 ("Альфа"): won deals 400, 200, 100 days ago (100k each, one in USD) → the big customer;
      a contact's deal without company also exists (contact 13) → its own customer under company_else_contact
    * company 2: one won deal 30 days ago (5k) and an open deal in stage PREPARATION
    * contact 11: a lead with an open deal in stage EXECUTING (late in the pipeline → hot by position)
    * contact 12: won 900 and 800 days ago (1k each) → long silent
    * contact 13: won 10 days ago (2k)
    * contact 14: duplicate of 12 by phone, no deals, no touches
    """
    managers = pl.DataFrame(
        {
            "id": [1, 2],
            "name": ["Иван", "Мария"],
            "email": ["i@x.ru", "m@x.ru"],
            "active": [True, True],
            "is_admin": [True, False],
        }
    )
    pipelines = pl.DataFrame({"id": [0], "name": ["Основная"], "sort": [10]})
    stages = pl.DataFrame(
        {
            "pipeline_id": [0, 0, 0, 0, 0],
            "code": ["NEW", "PREPARATION", "EXECUTING", "WON", "LOSE"],
            "name": ["Новая", "Подготовка", "В работе", "Успешно", "Провал"],
            "sort": [10, 20, 30, 40, 50],
            "semantic": ["open", "open", "open", "won", "lost"],
        }
    )
    old = _days_ago(1000)
    companies = pl.DataFrame(
        {
            "id": [1, 2],
            "title": ["Альфа", "Бета"],
            "industry": ["IT", "Retail"],
            "city": ["Москва", "Казань"],
            "source": ["web", "call"],
            "responsible_id": [1, 2],
            "phones": [["+7 (495) 111-22-33"], []],
            "emails": [["Info@Alfa.ru"], []],
            "created_at": [old, old],
            "updated_at": [old, old],
        },
        schema_overrides={
            "created_at": DT,
            "updated_at": DT,
            "phones": pl.List(pl.String),
            "emails": pl.List(pl.String),
        },
    )
    contacts = pl.DataFrame(
        {
            "id": [10, 11, 12, 13, 14],
            "name": ["Пётр", "Анна", "Олег", "Нина", "Олег"],
            "first_name": ["Пётр", "Анна", "Олег", "Нина", "Олег"],
            "last_name": [None, None, None, None, None],
            "company_id": [1, None, None, None, None],
            "phones": [["89161234567"], [], ["+7 916 555-44-33"], ["+79160000001"], ["8 (916) 555-44-33"]],
            "emails": [["petr@alfa.ru"], [], [], ["Nina@Mail.ru"], []],
            "city": ["Москва", None, "Тула", "Сочи", "Тула"],
            "source": ["web", "ads", "web", "web", "web"],
            "utm_source": [None, "yandex", None, None, None],
            "responsible_id": [1, 2, 2, 1, 2],
            "created_at": [old] * 5,
            "updated_at": [old] * 5,
            "duplicate_of": [None, None, None, None, 12],
        },
        schema_overrides={
            "created_at": DT,
            "updated_at": DT,
            "company_id": pl.Int64,
            "last_name": pl.String,
            "utm_source": pl.String,
            "duplicate_of": pl.Int64,
            "city": pl.String,
        },
    )
    rows = [
        # id, status, stage, company, contacts, amount, currency, days ago closed
        (100, "won", "WON", 1, [10], 100_000.0, "RUB", 400),
        (101, "won", "WON", 1, [10], 100_000.0, "RUB", 200),
        (102, "won", "WON", 1, [10], 1_000.0, "USD", 100),  # 1000 USD × 100 = 100k RUB
        (103, "won", "WON", 2, [], 5_000.0, "RUB", 30),
        (104, "open", "PREPARATION", 2, [], 7_000.0, "RUB", None),
        (105, "open", "EXECUTING", None, [11], 3_000.0, "RUB", None),
        (106, "won", "WON", None, [12], 1_000.0, "RUB", 900),
        (107, "won", "WON", None, [12], 1_000.0, "RUB", 800),
        (108, "won", "WON", None, [13], 2_000.0, "RUB", 10),
        (109, "lost", "LOSE", None, [13], 9_000.0, "RUB", 5),
    ]
    deals = pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "title": [f"Сделка {r[0]}" for r in rows],
            "pipeline_id": [0] * len(rows),
            "stage_code": [r[2] for r in rows],
            "status": [r[1] for r in rows],
            "company_id": [r[3] for r in rows],
            "contact_ids": [r[4] for r in rows],
            "amount": [r[5] for r in rows],
            "amount_text": [str(r[5]) for r in rows],
            "currency": [r[6] for r in rows],
            "source": ["web"] * len(rows),
            "responsible_id": [1] * len(rows),
            "created_at": [_days_ago((r[7] or 20) + 5) for r in rows],
            "closed_at": [None if r[7] is None else _days_ago(r[7]) for r in rows],
            "updated_at": [_days_ago(1)] * len(rows),
        },
        schema_overrides={
            "created_at": DT,
            "closed_at": DT,
            "updated_at": DT,
            "company_id": pl.Int64,
            "contact_ids": pl.List(pl.Int64),
        },
    )
    activities = pl.DataFrame(
        {
            "id": [500, 501, 502],
            "owner_kind": ["contact", "deal", "company"],
            "owner_id": [10, 106, 2],
            "kind": ["call", "email", "meeting"],
            "subject": ["a", "b", "c"],
            "at": [_days_ago(3), _days_ago(50), _days_ago(400)],
            "completed": [True, True, True],
            "responsible_id": [1, 1, 2],
        },
        schema_overrides={"at": DT},
    )
    currencies = pl.DataFrame({"code": ["RUB", "USD"], "rate": [1.0, 100.0], "is_base": [True, False]})
    truth = pl.DataFrame(
        schema={
            "customer_kind": pl.String,
            "customer_id": pl.Int64,
            "purchase_rate": pl.Float64,
            "dropout_p": pl.Float64,
            "alive": pl.Boolean,
            "first_purchase": DT,
            "n_purchases": pl.Int64,
        }
    )
    return World(
        seed=0,
        now=AS_OF,
        base_currency="RUB",
        managers=managers,
        pipelines=pipelines,
        stages=stages,
        companies=companies,
        contacts=contacts,
        deals=deals,
        activities=activities,
        currencies=currencies,
        truth=truth,
    )
