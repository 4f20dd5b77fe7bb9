"""Data quality as ``segsync quality`` and the report both count it: who is reachable, where duplicates are
searched, which e-mails count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from segsync.segments.quality import data_quality, duplicate_groups, normalize_email, unreachable

AS_OF = datetime(2025, 6, 30, 21, 0, tzinfo=UTC)
DT = pl.Datetime("us", "UTC")


def customers(rows: list[tuple]) -> pl.DataFrame:
    """rows: (customer, company_id, phones, emails, name)."""
    return pl.DataFrame(
        [(c, c.partition(":")[0], name, company, phones, emails, AS_OF - timedelta(days=10))
         for c, company, phones, emails, name in rows],
        schema={"customer": pl.String, "kind": pl.String, "name": pl.String, "company_id": pl.String,
                "phones": pl.List(pl.String), "emails": pl.List(pl.String), "created_at": DT},
        orient="row",
    )  # fmt: skip


def test_an_email_needs_a_dot_in_its_domain():
    raw = pl.Series(["IVAN@Example.RU ", "ivan@mailru", "not-an-email", "a b@x.ru", ""])
    assert pl.select(normalize_email(pl.lit(raw))).to_series().to_list() == ["ivan@example.ru", None, None, None, None]


def test_a_company_is_reached_through_its_contacts_but_not_the_other_way_round():
    store = customers(
        [
            ("company:1", None, [], [], "Альфа"),  # its contact has a phone
            ("company:2", None, [], [], "Бета"),  # its contact has only a broken e-mail
            ("company:3", None, ["+7 495 000-00-00"], [], "Гамма"),
            ("contact:10", "1", ["8 916 123-45-67"], [], "Пётр"),
            ("contact:11", "2", [], ["boss@beta"], "Олег"),
            ("contact:12", "3", [], [], "Нина"),  # the company's switchboard is not hers
        ]
    )
    analysed = store.select("customer")
    assert unreachable(analysed, store)["customer"].to_list() == ["company:2", "contact:11", "contact:12"]
    only_companies = analysed.filter(pl.col("customer").str.starts_with("company:"))
    assert unreachable(only_companies, store)["customer"].to_list() == ["company:2"]


def test_duplicates_are_searched_in_the_whole_store_and_counted_apart_from_the_analysed():
    store = customers(
        [
            ("company:1", None, ["+7 495 111-22-33"], [], "ООО «Альфа»"),
            ("contact:10", "1", [], [], "Ёлкин Пётр"),  # two records of one person at company 1, no deals
            ("contact:11", "1", [], [], "елкин  петр"),
            ("contact:12", None, ["+74951112233"], [], "Секретарь"),  # a contact with the company's phone: fine
        ]
    )
    analysed = store.filter(pl.col("customer") == "company:1")
    activity = pl.DataFrame(
        {"customer": ["company:1"], "last_purchase": [AS_OF - timedelta(days=5)], "last_touch": [None]},
        schema={"customer": pl.String, "last_purchase": DT, "last_touch": DT},
    )
    q = data_quality(analysed, activity, AS_OF, 365, store=store)
    assert q.duplicates.select("match", "customer").rows() == [
        ("name_company", "contact:10"),
        ("name_company", "contact:11"),
    ]
    assert q.counts == {"duplicate_groups": 1, "duplicate_customers": 2, "unreachable": 0, "inactive": 0}
    # without the store only the analysed customers are looked at
    assert data_quality(analysed, activity, AS_OF, 365).counts["duplicate_groups"] == 0


def test_an_empty_store_has_no_quality_findings():
    empty = customers([])
    assert duplicate_groups(empty).is_empty() and unreachable(empty.select("customer"), empty).is_empty()
