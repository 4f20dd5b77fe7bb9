"""Bitrix24 list methods as documented: 50-row pages, start/next/total, start=-1, filters, order, select.

Plain httpx against the running sandbox; expectations come from shared/api/bitrix24.md §4.
"""

from __future__ import annotations

import re

import httpx
import pytest

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")


@pytest.fixture(scope="module")
def hook(sandbox):
    return sandbox.info["bitrix24"]["webhook_url"]


def call(hook, method, **params):
    r = httpx.post(hook + method + ".json", json=params, timeout=30)
    return r.status_code, r.json()


def test_first_page_has_50_rows_next_total_and_time(hook):
    status, body = call(hook, "crm.deal.list", order={"ID": "ASC"}, select=["ID"])
    assert status == 200
    assert len(body["result"]) == 50
    assert body["next"] == 50
    assert body["total"] == 500
    t = body["time"]
    assert {"start", "finish", "duration", "processing", "date_start", "date_finish"} <= set(t)
    assert ISO.match(t["date_start"]) and ISO.match(t["date_finish"])
    assert isinstance(t["start"], float) and t["finish"] >= t["start"]


def test_start_pages_through_and_last_page_has_no_next(hook):
    status, body = call(hook, "crm.deal.list", order={"ID": "ASC"}, select=["ID"], start=450)
    assert status == 200 and len(body["result"]) == 50 and "next" not in body and body["total"] == 500
    assert body["result"][0]["ID"] == "451"


def test_start_is_rounded_down_to_a_page(hook):
    _, body = call(hook, "crm.deal.list", order={"ID": "ASC"}, select=["ID"], start=75)
    assert body["result"][0]["ID"] == "51" and body["next"] == 100


def test_start_minus_one_skips_counting(hook):
    _, body = call(hook, "crm.deal.list", order={"ID": "ASC"}, select=["ID"], start=-1, filter={">ID": 100})
    assert body["total"] == 0 and "next" not in body
    assert [r["ID"] for r in body["result"]] == [str(i) for i in range(101, 151)]


def test_values_are_strings_and_dates_carry_the_portal_offset(hook):
    _, body = call(hook, "crm.deal.get", id=1)
    deal = body["result"]
    for key in ("ID", "OPPORTUNITY", "CATEGORY_ID", "ASSIGNED_BY_ID"):
        assert isinstance(deal[key], str), key
    assert re.match(r"^\d+\.\d\d$", deal["OPPORTUNITY"])
    assert ISO.match(deal["DATE_CREATE"]) and ISO.match(deal["DATE_MODIFY"])
    assert deal["STAGE_SEMANTIC_ID"] in ("P", "S", "F")
    assert deal["CLOSED"] in ("Y", "N")


def test_filter_prefixes(hook):
    _, body = call(hook, "crm.deal.list", filter={">=ID": 10, "<ID": 13}, select=["ID"])
    assert [r["ID"] for r in body["result"]] == ["10", "11", "12"]
    _, body = call(hook, "crm.deal.list", filter={"@ID": [3, 5, 7]}, select=["ID"])
    assert [r["ID"] for r in body["result"]] == ["3", "5", "7"]
    _, body = call(
        hook, "crm.deal.list", filter={"!STAGE_SEMANTIC_ID": "S", "<=ID": 40}, select=["ID", "STAGE_SEMANTIC_ID"]
    )
    assert body["result"] and all(r["STAGE_SEMANTIC_ID"] != "S" for r in body["result"])
    _, body = call(hook, "crm.deal.list", filter={"=STAGE_SEMANTIC_ID": "S"}, select=["ID", "STAGE_SEMANTIC_ID"])
    assert all(r["STAGE_SEMANTIC_ID"] == "S" for r in body["result"]) and body["total"] > 0
    _, body = call(hook, "crm.company.list", filter={"%TITLE": "ооо"}, select=["ID", "TITLE"])
    assert body["total"] > 0 and all("ооо" in r["TITLE"].lower() for r in body["result"])


def test_date_filter_with_offset_and_plain_forms(hook):
    _, all_ = call(hook, "crm.deal.list", select=["ID", "DATE_MODIFY"], order={"DATE_MODIFY": "DESC"})
    pivot = all_["result"][10]["DATE_MODIFY"]
    _, iso = call(hook, "crm.deal.list", filter={">=DATE_MODIFY": pivot}, select=["ID"])
    plain = pivot[:10] + " " + pivot[11:19]
    _, sql = call(hook, "crm.deal.list", filter={">=DATE_MODIFY": plain}, select=["ID"])
    assert iso["total"] == sql["total"] == 11


def test_order_desc(hook):
    _, body = call(hook, "crm.deal.list", order={"ID": "DESC"}, select=["ID"])
    assert body["result"][0]["ID"] == "500"
    _, body = call(hook, "crm.deal.list", order={"OPPORTUNITY": "DESC"}, select=["ID", "OPPORTUNITY"], start=-1)
    amounts = [float(r["OPPORTUNITY"]) for r in body["result"]]
    assert amounts == sorted(amounts, reverse=True)


def test_select_star_excludes_multifields_and_explicit_phone_email(hook):
    _, body = call(hook, "crm.contact.list", select=["*"], filter={"HAS_PHONE": "Y"})
    assert "PHONE" not in body["result"][0] and "NAME" in body["result"][0]
    _, body = call(hook, "crm.contact.list", select=["ID", "PHONE", "EMAIL"], filter={"HAS_PHONE": "Y"})
    row = body["result"][0]
    assert set(row) <= {"ID", "PHONE", "EMAIL"}
    phone = row["PHONE"][0]
    assert set(phone) == {"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"} and phone["TYPE_ID"] == "PHONE"


def test_select_always_returns_id(hook):
    _, body = call(hook, "crm.company.list", select=["TITLE"], start=-1)
    assert set(body["result"][0]) == {"ID", "TITLE"}


def test_phone_filter_matches_exactly(hook):
    _, body = call(hook, "crm.contact.list", select=["ID", "PHONE"], filter={"HAS_PHONE": "Y"}, start=-1)
    row = body["result"][0]
    _, found = call(hook, "crm.contact.list", select=["ID"], filter={"PHONE": row["PHONE"][0]["VALUE"]})
    assert row["ID"] in [r["ID"] for r in found["result"]]


def test_uppercase_parameter_names_are_accepted(hook):
    _, body = call(hook, "crm.deal.list", SELECT=["ID"], FILTER={"<ID": 3}, ORDER={"ID": "DESC"})
    assert [r["ID"] for r in body["result"]] == ["2", "1"]


def test_filter_must_be_an_array(hook):
    status, body = call(hook, "crm.deal.list", filter="ID=1")
    assert status == 400 and body == {"error": "", "error_description": "Parameter 'filter' must be array."}


def test_form_encoded_body_and_get_query(hook):
    r = httpx.post(hook + "crm.deal.list", data={"select[]": "ID", "filter[<ID]": "3"})
    assert [x["ID"] for x in r.json()["result"]] == ["1", "2"]
    r = httpx.get(hook + "crm.deal.list.json?select[0]=ID&filter[<ID]=3")
    assert [x["ID"] for x in r.json()["result"]] == ["1", "2"]


def test_item_list_is_typed_camel_case_with_contact_ids(hook):
    status, body = call(
        hook, "crm.item.list", entityTypeId=2, select=["id", "opportunity", "contactIds", "stageId"], filter={"<id": 20}
    )
    assert status == 200 and "items" in body["result"] and body["total"] == 19
    item = body["result"]["items"][0]
    assert (
        isinstance(item["id"], int) and isinstance(item["opportunity"], float) and isinstance(item["contactIds"], list)
    )
    status, body = call(hook, "crm.item.list", entityTypeId=2, filter={"NOPE": 1})
    assert status == 400 and body["error"] == "INVALID_ARG_VALUE"


def test_item_list_fm_for_contacts_with_star(hook):
    _, body = call(hook, "crm.item.list", entityTypeId=3, select=["*"], filter={"hasPhone": "Y"}, start=-1)
    fm = body["result"]["items"][0]["fm"]
    assert {"id", "typeId", "valueType", "value"} <= set(fm[0])


def test_dictionaries(hook):
    _, stages = call(hook, "crm.status.list", filter={"ENTITY_ID": "DEAL_STAGE_1"})
    assert stages["result"] and all(s["STATUS_ID"].startswith("C1:") for s in stages["result"])
    assert {s["EXTRA"]["SEMANTICS"] for s in stages["result"]} == {"process", "success", "failure"}
    _, cats = call(hook, "crm.category.list", entityTypeId=2)
    assert {c["id"] for c in cats["result"]["categories"]} >= {0, 1}
    _, cur = call(hook, "crm.currency.list")
    assert [c["CURRENCY"] for c in cur["result"] if c["BASE"] == "Y"] == ["RUB"]
    _, users = call(hook, "user.get")
    assert users["total"] >= 3 and any(u["ACTIVE"] is False for u in users["result"])


def test_deal_contact_items(hook):
    _, body = call(hook, "crm.item.list", entityTypeId=2, select=["id", "contactIds"], start=-1)
    deal = next(i for i in body["result"]["items"] if i["contactIds"])
    _, links = call(hook, "crm.deal.contact.items.get", id=deal["id"])
    assert [x["CONTACT_ID"] for x in links["result"]] == deal["contactIds"]
    assert links["result"][0]["IS_PRIMARY"] == "Y"


def test_activity_list_filters_by_owner(hook):
    _, body = call(
        hook,
        "crm.activity.list",
        filter={"OWNER_TYPE_ID": 3},
        select=["ID", "OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID", "COMPLETED"],
    )
    assert body["total"] > 0 and all(a["OWNER_TYPE_ID"] == "3" for a in body["result"])
