"""The report from a real store (SQLite, or PostgreSQL with SEGSYNC_TEST_DB): reading, figures, the HTML file."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import polars as pl
import pytest
from sqlalchemy import func, select

from segsync.config.models import Rules
from segsync.config.segments import RuleSegment, SegmentsConfig
from segsync.config.sources import SourceBase
from segsync.report import render_report
from segsync.report.data import load_sources, settings_from_rules
from segsync.store import tables as t

from .builder import AS_OF, build_store

NOW = AS_OF + timedelta(hours=1)


def rules(*names: str) -> Rules:
    return Rules(
        sources=[SourceBase(name=n, kind="bitrix24") for n in names],
        segments=SegmentsConfig(custom=[RuleSegment(name="key_b2b", where="b2b", title_ru="Ключевые B2B")]),
    )


@pytest.fixture
def built(engine):
    return build_store(engine, customers=240)


def test_reads_what_the_store_holds(engine, built):
    (data,) = load_sources(engine, rules("shop"))
    with engine.connect() as conn:
        won = conn.execute(select(func.count()).select_from(t.deals).where(t.deals.c.status == "won")).scalar_one()
        tasks = conn.execute(select(func.count()).select_from(t.ledger).where(t.ledger.c.op == "task")).scalar_one()
        last_run = conn.execute(
            select(t.segment_history.c.label, func.count())
            .where(t.segment_history.c.run_id == 3)
            .group_by(t.segment_history.c.label)
        ).all()
    assert data.in_store and data.currency == "RUB" and data.state_as_of == AS_OF
    assert data.customers.height == built.customers == data.contacts.height
    assert data.purchases.height == won  # the open deal is not a purchase
    assert data.purchases["amount"].sum() > 0 and data.purchases["at"].max() <= AS_OF
    assert data.tasks.height == tasks and data.tasks["responsible_id"].null_count() == 0
    assert len(data.users) == 5 and {f.model for f in data.fits} == {"bgnbd", "gamma_gamma"}
    assert data.quarantine["count"].sum() == 4 and data.cursors.height == 3
    counted = dict(data.history.group_by("label").agg(pl.col("last_run").sum()).iter_rows())
    expected = {label: n for label, n in last_run if label in ("abc", "rfm", "lifecycle", "churn_risk")}
    assert counted == expected and not data.history_first_run
    assert data.customers.filter(data.customers["custom:key_b2b"] == "yes").height > 0
    assert data.customers["revenue_365d"].dtype.is_float() and data.customers["name"].null_count() == 0


def test_purchases_are_the_engines_with_the_same_currency_conversion(engine, built):
    """Deals without ``amount_base``: converted with the CRM's rate like ``segsync compute`` does (the report
    used to count them as 0); an amount in a currency without a rate stays unknown (0)."""
    from segsync.compute.load import load_source
    from segsync.segments.features import purchases

    day = AS_OF - timedelta(days=2)
    deal = {"source_id": built.source_id, "status": "won", "company_id": "fx", "closed_at": day, "synced_at": NOW}
    with engine.begin() as conn:
        conn.execute(
            t.currencies.insert(),
            [{"source_id": built.source_id, "code": "USD", "rate": 90.0, "is_base": False, "synced_at": NOW}],
        )
        conn.execute(
            t.deals.insert(),
            [
                {**deal, "remote_id": "fx-1", "amount": Decimal("100.50"), "currency": "USD"},
                {**deal, "remote_id": "fx-2", "amount": Decimal("50"), "currency": "EUR"},
                {**deal, "remote_id": "fx-3", "amount": Decimal("700"), "currency": "RUB"},
            ],
        )
    source = SourceBase(name="shop", kind="bitrix24", base_currency="RUB")
    (data,) = load_sources(engine, Rules(sources=[source]))
    fx = data.purchases.filter(pl.col("customer") == "company:fx").sort("amount")
    assert fx["amount"].to_list() == [0.0, 700.0, 9045.0]
    with engine.connect() as conn:
        deals = load_source(conn, built.source_id, source).inputs.deals
    engine_view = purchases(deals, AS_OF, "UTC").select("customer", "at", "amount")
    assert data.purchases.sort(pl.all()).equals(engine_view.sort(pl.all()))


def test_renders_the_report(engine, built):
    html = render_report(engine, rules("shop", "amo"), now=NOW)
    charts = set(re.findall(r'data-chart="([^"]+)"', html))
    assert {"shop-flow", "shop-revenue", "shop-matrix", "shop-rfm-customers", "shop-cohorts", "shop-tasks"} <= charts
    assert {"shop-net", "shop-duplicates", "shop-rfm-revenue"} <= charts
    assert "ещё не синхронизирован" in html  # "amo" is configured, never pulled
    top_names = [n for n in built.names if n in html]
    assert len(top_names) >= 20  # the churn list and the duplicate groups name customers
    assert "Екатерина Белова" in html and "Ключевые B2B" in html
    assert "название / ФИО" in html  # companies planted with the same name: segsync.segments.quality's match


def test_only_the_chosen_source_and_english(engine, built):
    build_store(engine, customers=30, seed=3, name="other")
    html = render_report(engine, rules("shop", "other"), sources=["other"], lang="en", now=NOW)
    assert 'data-chart="other-matrix"' in html and 'data-chart="shop-matrix"' not in html
    assert "Customer base report" in html


def test_first_run_says_there_is_nothing_to_compare(engine, built):
    with engine.begin() as conn:
        conn.execute(t.segment_history.delete().where(t.segment_history.c.run_id != 1))
    html = render_report(engine, rules("shop"), now=NOW)
    assert "Это первый расчёт" in html and 'data-chart="shop-net"' not in html


def test_a_few_thousand_customers_stay_light(engine):
    build_store(engine, customers=3000, seed=11)
    html = render_report(engine, rules("shop"), now=NOW)
    assert len(html.encode()) < 1_000_000
    assert html.count("<tr>") < 400  # long tables are capped


def test_settings_follow_the_rules():
    r = Rules(language="en", timezone="Asia/Yekaterinburg")
    s = settings_from_rules(r)
    assert (s.language, s.timezone, s.cohort_months, s.lost_after_months, s.abc_window_days) == (
        "en",
        "Asia/Yekaterinburg",
        24,
        9,  # lost_factor 3 × default cycle 90 days ≈ 9 months
        365,
    )
    assert settings_from_rules(r, "ru").language == "ru"


def test_json_keys_are_read_whatever_their_scalar_type_and_nested_values_fall_back():
    from segsync.report.data import _pick_keys

    docs = pl.Series(['{"a": 5, "b": "x", "c": true, "skip": [1]}', '{"a": 1.5}', "{}"])
    assert _pick_keys(docs, ("a", "b", "c")).rows() == [("5", "x", "true"), ("1.5", None, None), (None, None, None)]
    nested = pl.Series(['{"a": [1, 2], "b": "x"}', '{"b": "y"}'])
    assert _pick_keys(nested, ("a", "b"))["b"].to_list() == ["x", "y"]


def test_a_source_with_nothing_computed_yet_still_renders(engine):
    from segsync.app import ensure_sources

    ensure_sources(engine, [SourceBase(name="fresh", kind="bitrix24")])
    html = render_report(engine, rules("fresh"), now=NOW)
    assert "fresh" in html and "<html" in html
