"""Mapping of documented amoCRM shapes to normalized records (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.amocrm.mapping import (
    MappingOptions,
    map_customer,
    map_deal,
    map_pipelines,
    map_remote_task,
    map_touch,
)
from segsync.errors import RecordRejected

OPTS = MappingOptions(phone_region="RU", currency="RUB", fields={"segment_size": "Размер компании", "vip": "777"})

CONTACT = {
    "id": 3,
    "name": "Иван Иванов",
    "first_name": "Иван",
    "last_name": "Иванов",
    "responsible_user_id": 504141,
    "group_id": 0,
    "created_by": 504141,
    "updated_by": 504141,
    "created_at": 1582117331,
    "updated_at": 1590943929,
    "closest_task_at": None,
    "account_id": 28805383,
    "custom_fields_values": [
        {
            "field_id": 3,
            "field_name": "Телефон",
            "field_code": "PHONE",
            "field_type": "multitext",
            "values": [
                {"value": "8 (912) 345-67-89", "enum_id": 1, "enum": "WORK"},
                {"value": "+7 912 345 67 89", "enum_id": 2, "enum_code": "MOB"},
                {"value": "доб. 12"},
            ],
        },
        {
            "field_id": 4,
            "field_name": "Email",
            "field_code": "EMAIL",
            "field_type": "multitext",
            "values": [{"value": " Ivan@Example.COM ", "enum_code": "WORK"}, {"value": "not an email"}],
        },
        {"field_id": 5, "field_name": "Город", "field_code": None, "values": [{"value": "Казань"}]},
        {"field_id": 6, "field_name": "utm_source", "field_code": "UTM_SOURCE", "values": [{"value": "yandex"}]},
        {"field_id": 777, "field_name": "VIP", "field_code": None, "values": [{"value": True}]},
    ],
    "_links": {"self": {"href": "https://example.amocrm.ru/api/v4/contacts/3"}},
    "_embedded": {"tags": [{"id": 1, "name": "seg:AX"}], "companies": [{"id": 1, "_links": {}}]},
}


def test_contact_maps_channels_attrs_and_company():
    c = map_customer(CONTACT, "contact", OPTS)
    assert (c.kind, c.remote_id, c.company_id, c.responsible_id) == ("contact", "3", "1", "504141")
    assert c.phones == ["+79123456789"]  # two spellings of one number; the junk extension dropped
    assert c.emails == ["ivan@example.com"]
    assert c.updated_at == datetime(2020, 5, 31, 16, 52, 9, tzinfo=UTC)
    assert c.attrs["city"] == "Казань" and c.attrs["utm_source"] == "yandex" and c.attrs["vip"] is True
    assert c.attrs["tags"] == ["seg:AX"]
    assert "_links" not in c.raw


def test_null_custom_fields_and_name_from_parts():
    raw = {**CONTACT, "name": "", "custom_fields_values": None, "_embedded": {"tags": [], "companies": []}}
    c = map_customer(raw, "contact", OPTS)
    assert c.name == "Иван Иванов" and c.phones == [] and c.company_id is None


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"id": None}, "missing id"),
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"custom_fields_values": "x"}, "custom_fields_values"),
        ({"created_at": -5}, "created_at"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(patch, reason):
    with pytest.raises(RecordRejected, match=reason):
        map_customer({**CONTACT, **patch}, "contact", OPTS)


def test_lead_maps_status_money_and_links():
    lead = {
        "id": 17657,
        "name": "Сделка",
        "price": 25000,
        "responsible_user_id": 321123,
        "status_id": 142,
        "pipeline_id": 1113,
        "created_at": 1587741226,
        "updated_at": 1588241643,
        "closed_at": 1588241643,
        "custom_fields_values": [{"field_id": 9, "field_code": "UTM_CAMPAIGN", "values": [{"value": "spring"}]}],
        "source_id": 55,
        "_embedded": {
            "tags": [],
            "companies": [{"id": 40401297}],
            "contacts": [{"id": 5, "is_main": False}, {"id": 7, "is_main": True}],
        },
    }
    d = map_deal(lead, OPTS)
    assert d.status == "won" and d.amount == Decimal("25000") and d.currency == "RUB"
    assert d.contact_ids == ["7", "5"] and d.company_id == "40401297"
    assert d.closed_at == datetime.fromtimestamp(1588241643, UTC)
    assert d.attrs["utm_campaign"] == "spring" and d.attrs["source_id"] == "55"
    assert map_deal({**lead, "status_id": 143}, OPTS).status == "lost"
    open_deal = map_deal({**lead, "status_id": 2030, "price": 12.5}, OPTS)
    assert open_deal.status == "open" and open_deal.closed_at is None and open_deal.amount == Decimal("12.5")
    with pytest.raises(RecordRejected, match="price"):
        map_deal({**lead, "price": "много"}, OPTS)


def test_pipelines_map_won_and_lost_per_pipeline():
    stages = map_pipelines(
        [
            {
                "id": 1,
                "name": "P",
                "_embedded": {
                    "statuses": [
                        {"id": 10, "name": "New", "sort": 1},
                        {"id": 142, "name": "Won", "sort": 9},
                        {"id": 143, "name": "Lost"},
                    ]
                },
            }
        ]
    )
    assert [(s.stage_id, s.semantic) for s in stages] == [("10", "open"), ("142", "won"), ("143", "lost")]


def test_tasks_as_touches_and_remote_tasks():
    task = {
        "id": 56981,
        "entity_id": 180765,
        "entity_type": "contacts",
        "is_completed": True,
        "task_type_id": 2,
        "text": "Встреча [seg:react]",
        "complete_till": 1575910423,
        "updated_at": 1576767989,
        "responsible_user_id": 123123,
    }
    touch = map_touch(task, "contact", "180765", {"call": 1, "meeting": 2})
    assert touch.kind == "meeting" and touch.completed and touch.at == datetime.fromtimestamp(1576767989, UTC)
    assert touch.remote_id == "task:56981"
    remote = map_remote_task(task)
    assert remote is not None and remote.customer.kind == "contact" and remote.completed
    assert map_remote_task({**task, "entity_type": "leads"}) is None


def test_a_currency_field_overrides_the_account_currency():
    lead = {
        "id": 1,
        "price": 100,
        "status_id": 142,
        "updated_at": 1,
        "custom_fields_values": [
            {"field_id": 5, "field_name": "Валюта", "field_code": None, "values": [{"value": "USD", "enum_id": 7}]}
        ],
    }
    deal = map_deal(lead, OPTS)
    assert deal.currency == "USD" and deal.amount_base is None
    same = map_deal({**lead, "custom_fields_values": None}, OPTS)
    assert same.currency == "RUB" and same.amount_base == Decimal("100")


# -- found by the reliability fuzzer (tests/reliability/test_fuzz_mappers.py) ---------------------------------


def test_name_parts_that_are_not_text_are_left_out():
    c = map_customer({**CONTACT, "name": "", "first_name": "Иван", "last_name": True}, "contact", OPTS)
    assert c.name == "Иван"


def test_custom_field_values_that_are_not_a_list_are_rejected():
    broken = {**CONTACT, "custom_fields_values": [{"field_id": 3, "field_code": "PHONE", "values": True}]}
    with pytest.raises(RecordRejected, match="not a list"):
        map_customer(broken, "contact", OPTS)
