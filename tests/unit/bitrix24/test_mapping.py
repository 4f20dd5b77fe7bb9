"""Mapping edge cases: money, dates, phones, e-mails, semantics, win dates, currencies, touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.bitrix24.mapping import (
    MappingContext,
    Unmappable,
    deal_owner,
    map_activity,
    map_company,
    map_contact,
    map_currencies,
    map_deal,
    map_stage,
    map_user,
    parse_datetime,
    parse_money,
)
from segsync.contract import Customer, Deal, Rejected, Touch

from .fakeportal import company, contact, deal

MSK = timezone(timedelta(hours=3))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1000000.00", "1000000.00"),
        ("12 500,50", "12500.50"),
        ("12\u00a0500,50 руб.", "12500.50"),
        ("1.234,5", "1234.5"),
        ("1,234.50", "1234.50"),
        ("1,234,567", "1234567"),
        ("1.234.567", "1234567"),
        ("$ 99.90", "99.90"),
        (Decimal("19999.99"), "19999.99"),
        (19000, "19000"),
        (0.1, "0.1"),
        ("-15,5", "-15.5"),
    ],
)
def test_money(raw, expected):
    assert parse_money(raw) == Decimal(expected)


@pytest.mark.parametrize("raw", ["abc", "n/a", "—", True])
def test_money_garbage_is_unmappable(raw):
    with pytest.raises(Unmappable):
        parse_money(raw)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_money_round_trips_russian_formatting(value):
    text = f"{value:,.2f}".replace(",", " ").replace(".", ",")  # "12 500,50"
    assert parse_money(text) == value


def test_dates_with_offsets_become_utc():
    assert parse_datetime("2024-08-30T14:29:00+02:00") == datetime(2024, 8, 30, 12, 29, tzinfo=UTC)
    assert parse_datetime("2024-09-09", MSK) == datetime(2024, 9, 8, 21, 0, tzinfo=UTC)
    assert parse_datetime("2025-10-31 00:00:00", MSK) == datetime(2025, 10, 30, 21, 0, tzinfo=UTC)
    assert parse_datetime("") is None and parse_datetime(None) is None
    with pytest.raises(Unmappable):
        parse_datetime("31.12.2024")


def test_contact_mapping_with_custom_fields():
    row = contact(
        5,
        COMPANY_ID="9",
        ADDRESS_CITY=" Казань ",
        UTM_SOURCE="yandex",
        UF_CRM_INDUSTRY="retail",
        PHONE=[{"VALUE": "+7 912 345 67 89"}, {"VALUE": "8-912-345-67-89"}, {"VALUE": ""}],
    )
    customer = map_contact(row, MappingContext(fields={"industry": "UF_CRM_INDUSTRY"}))
    assert isinstance(customer, Customer)
    assert (customer.kind, customer.remote_id, customer.company_id) == ("contact", "5", "9")
    assert customer.name == "Name5 Test"
    assert customer.phones == ["+79123456789"]  # deduplicated after normalization
    assert customer.emails == ["user5@example.com"]
    assert customer.attrs == {
        "type": "CLIENT",
        "source": "WEB",
        "utm_source": "yandex",
        "city": "Казань",
        "industry": "retail",
    }
    assert customer.updated_at == datetime(2025, 6, 1, 7, 0, tzinfo=UTC)


def test_company_mapping():
    customer = map_company(company(3, IS_MY_COMPANY="Y", COMPANY_ID="1"), MappingContext())
    assert isinstance(customer, Customer)
    assert customer.kind == "company" and customer.company_id is None
    assert customer.attrs["industry"] == "IT" and customer.attrs["is_my_company"] is True


def test_bad_rows_are_rejected_with_a_reason():
    assert isinstance(map_contact({"NAME": "x"}, MappingContext()), Rejected)
    rejected = map_contact(contact(7, DATE_MODIFY="yesterday"), MappingContext())
    assert isinstance(rejected, Rejected) and rejected.remote_id == "7" and "yesterday" in rejected.reason
    bad_amount = map_deal(deal(8, opportunity="about a million"), MappingContext())
    assert isinstance(bad_amount, Rejected) and bad_amount.entity == "deals" and "amount" in bad_amount.reason


@pytest.mark.parametrize(("semantic", "status"), [("S", "won"), ("F", "lost"), ("P", "open")])
def test_deal_semantics_and_win_date(semantic, status):
    mapped = map_deal(deal(1, stageSemanticId=semantic), MappingContext())
    assert isinstance(mapped, Deal) and mapped.status == status
    if status == "open":
        assert mapped.closed_at is None
    else:  # movedTime: the move to the final stage
        assert mapped.closed_at == datetime(2025, 3, 2, 12, 30, tzinfo=UTC)


def test_win_date_falls_back_to_closedate_and_semantic_to_stage_dictionary():
    ctx = MappingContext(semantics={("3", "C3:WON"): "won"})
    mapped = map_deal(deal(1, stageSemanticId=None, categoryId=3, stageId="C3:WON", movedTime=None), ctx)
    assert isinstance(mapped, Deal) and mapped.status == "won" and mapped.pipeline_id == "3"
    assert mapped.closed_at == datetime(2025, 2, 28, 21, 0, tzinfo=UTC)
    unknown = map_deal(deal(2, stageSemanticId=None, stageId="ODD"), MappingContext())
    assert isinstance(unknown, Rejected) and "semantic" in unknown.reason


def test_deal_contacts_amounts_and_conversion():
    currencies, rejected = map_currencies(
        [
            {"CURRENCY": "RUB", "AMOUNT_CNT": 1, "AMOUNT": "1", "BASE": "Y"},
            {"CURRENCY": "USD", "AMOUNT_CNT": 1, "AMOUNT": "90.5000", "BASE": "N"},
            {"CURRENCY": "KZT", "AMOUNT_CNT": 100, "AMOUNT": "18.0000", "BASE": "N"},
        ],
        None,
    )
    assert not rejected
    rates = {c.code: c.rate for c in currencies}
    assert rates == {"RUB": Decimal(1), "USD": Decimal("90.5"), "KZT": Decimal("0.18")}
    ctx = MappingContext(base_currency="RUB", rates=rates)
    mapped = map_deal(
        deal(4, opportunity=Decimal("100.10"), currencyId="USD", companyId=12, contactId=7, contactIds=[3, 7, 0]), ctx
    )
    assert isinstance(mapped, Deal)
    assert mapped.contact_ids == ["7", "3"] and mapped.company_id == "12"
    assert mapped.amount == Decimal("100.10") and mapped.amount_base == Decimal("9059.05")
    no_currency = map_deal(deal(5, currencyId="", opportunity="12 500,50"), ctx)
    assert (
        isinstance(no_currency, Deal)
        and no_currency.currency == "RUB"
        and no_currency.amount_base == Decimal("12500.50")
    )


def test_currencies_rebased_on_configured_base():
    currencies, _ = map_currencies(
        [
            {"CURRENCY": "RUB", "AMOUNT_CNT": 1, "AMOUNT": "1", "BASE": "Y"},
            {"CURRENCY": "USD", "AMOUNT_CNT": 1, "AMOUNT": "80", "BASE": "N"},
        ],
        "USD",
    )
    by_code = {c.code: c for c in currencies}
    assert by_code["USD"].is_base and by_code["USD"].rate == 1
    assert by_code["RUB"].rate == Decimal(1) / Decimal(80)


def test_stages_and_users():
    won = map_stage({"STATUS_ID": "C1:WON", "NAME": "Won", "SORT": "60", "SEMANTICS": "S"}, "1", "Shop")
    extra = map_stage({"STATUS_ID": "LOSE", "SEMANTICS": None, "EXTRA": {"SEMANTICS": "failure"}}, "0", None)
    plain = map_stage({"STATUS_ID": "NEW", "SEMANTICS": None}, "0", None)
    assert (won.semantic, won.sort, won.pipeline_name) == ("won", 60, "Shop")
    assert extra.semantic == "lost" and plain.semantic == "open"
    assert map_user({"ID": "3", "NAME": "Ann", "ACTIVE": False}).active is False


def test_touches_for_contacts_companies_and_deals():
    ctx = MappingContext()
    call = {
        "ID": "20",
        "OWNER_TYPE_ID": "3",
        "OWNER_ID": "15",
        "TYPE_ID": "2",
        "PROVIDER_ID": "VOXIMPLANT_CALL",
        "COMPLETED": "Y",
        "START_TIME": "2020-09-27T13:25:00+03:00",
    }
    touch = map_activity(call, ctx, {})
    assert isinstance(touch, Touch)
    assert (touch.customer_kind, touch.customer_id, touch.kind, touch.completed) == ("contact", "15", "call", True)
    assert touch.at == datetime(2020, 9, 27, 10, 25, tzinfo=UTC)
    on_deal = map_activity(
        {**call, "ID": "21", "OWNER_TYPE_ID": "2", "OWNER_ID": "5", "TYPE_ID": "4", "PROVIDER_ID": "CRM_EMAIL"},
        ctx,
        {"5": ("company", "9")},
    )
    assert isinstance(on_deal, Touch) and (on_deal.customer_kind, on_deal.customer_id, on_deal.kind) == (
        "company",
        "9",
        "email",
    )
    assert map_activity({**call, "OWNER_TYPE_ID": "1"}, ctx, {}) is None  # a lead is nobody's customer yet
    assert map_activity({**call, "OWNER_TYPE_ID": "2", "OWNER_ID": "6"}, ctx, {}) is None
    undated = map_activity({"ID": "22", "OWNER_TYPE_ID": "4", "OWNER_ID": "1"}, ctx, {})
    assert isinstance(undated, Rejected)


def test_deal_owner_prefers_what_the_source_analyses():
    item = {"companyId": 9, "contactId": 4, "contactIds": [4, 5]}
    assert deal_owner(item, "company") == ("company", "9")
    assert deal_owner(item, "contact") == ("contact", "4")
    assert deal_owner({"companyId": 0, "contactIds": []}, "company") is None


# -- found by the reliability fuzzer (tests/reliability/test_fuzz_mappers.py) ---------------------------------


def test_a_list_where_text_belongs_is_not_text():
    mapped = map_contact(contact(1, ADDRESS_CITY=[], NAME=["x"]), MappingContext())
    assert isinstance(mapped, Customer) and "city" not in mapped.attrs and mapped.name == "Test"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+03:00", "9999-12-31T23:00:00-05:00"])
def test_a_date_with_no_utc_equivalent_is_quarantined(moment):
    mapped = map_company(company(1, DATE_CREATE=moment), MappingContext())
    assert isinstance(mapped, Rejected) and "out of range" in mapped.reason


def test_contact_ids_that_are_not_a_list_are_quarantined():
    mapped = map_deal(deal(1, contactIds=True), MappingContext())
    assert isinstance(mapped, Rejected) and "contactIds" in mapped.reason
    assert deal_owner(deal(1, contactIds=True, contactId=0, companyId=0), "company") is None
