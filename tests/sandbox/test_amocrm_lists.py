"""Conformance: reading lists and entities as shared/api/amocrm.md §3 describes (plain httpx, real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from segsync.sandbox.amocrm import AmoOptions
from segsync.sandbox.amocrm.testing import RunningAccount, running_account, small_world

HAL = "application/hal+json"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def amo() -> Iterator[RunningAccount]:
    world = small_world(seed=3, companies=6, contacts=30, deals=40, activities=6)
    with running_account(world, options=AmoOptions(rate_limit_rps=1e9)) as running:
        yield running


def walk(client, path: str, **params) -> list[dict]:
    """Follow `_links.next` until 204 or no next link, as the docs' robust loop does."""
    rows: list[dict] = []
    url: str | None = path
    first = True
    while url:
        r = client.get(url, params=params if first else None)
        first = False
        if r.status_code == 204:
            break
        assert r.status_code == 200, r.text
        body = r.json()
        key = next(iter(body["_embedded"]))
        rows += body["_embedded"][key]
        url = body["_links"].get("next", {}).get("href")
    return rows


def test_list_envelope_is_hal_with_page_links_and_embedded(amo: RunningAccount) -> None:
    with amo.client() as c:
        r = c.get("/api/v4/contacts", params={"limit": 2, "page": 2})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(HAL)
    body = r.json()
    assert body["_page"] == 2
    assert body["_links"]["self"]["href"] == f"{amo.base_url}/api/v4/contacts?limit=2&page=2"
    assert body["_links"]["next"]["href"] == f"{amo.base_url}/api/v4/contacts?limit=2&page=3"
    assert body["_links"]["prev"]["href"] == f"{amo.base_url}/api/v4/contacts?limit=2&page=1"
    assert len(body["_embedded"]["contacts"]) == 2
    assert "_total_items" not in body  # no total count for entity lists (ISS-193)


def test_empty_result_and_page_past_end_are_204_without_body(amo: RunningAccount) -> None:
    with amo.client() as c:
        past = c.get("/api/v4/leads", params={"limit": 250, "page": 2})
        empty = c.get("/api/v4/contacts", params={"filter[id][]": 1})
        missing = c.get("/api/v4/leads/1")
    for r in (past, empty, missing):
        assert r.status_code == 204
        assert r.content == b""


def test_next_link_is_generated_on_a_full_last_page_and_leads_to_204(amo: RunningAccount) -> None:
    with amo.client() as c:
        r = c.get("/api/v4/contacts", params={"limit": 10, "page": 3})  # 30 contacts: page 3 is full and last
        assert r.status_code == 200
        nxt = r.json()["_links"]["next"]["href"]
        assert c.get(nxt).status_code == 204


def test_limit_over_250_is_422_problem_json(amo: RunningAccount) -> None:
    with amo.client() as c:
        r = c.get("/api/v4/leads", params={"limit": 251})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json() == {
        "title": "Unprocessable Entity",
        "type": "https://httpstatus.es/422",
        "status": 422,
        "detail": "Limit 250 per page",
    }


def test_default_limit_is_50_and_walk_returns_every_row_once(amo: RunningAccount) -> None:
    with amo.client() as c:
        r = c.get("/api/v4/leads")
        assert len(r.json()["_embedded"]["leads"]) == 40
        rows = walk(c, "/api/v4/leads", limit=7)
    assert len(rows) == 40 == len({row["id"] for row in rows})


def test_lead_shape_statuses_timestamps_and_with_contacts(amo: RunningAccount) -> None:
    with amo.client() as c:
        plain = c.get("/api/v4/leads", params={"limit": 250}).json()["_embedded"]["leads"]
        rich = c.get("/api/v4/leads", params={"limit": 250, "with": "contacts"}).json()["_embedded"]["leads"]
        pipelines = c.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    expected = {
        "id", "name", "price", "responsible_user_id", "group_id", "status_id", "pipeline_id", "loss_reason_id",
        "created_by", "updated_by", "created_at", "updated_at", "closed_at", "closest_task_at", "is_deleted",
        "custom_fields_values", "score", "account_id", "_links", "_embedded",
    }  # fmt: skip
    assert expected <= set(plain[0])
    assert "contacts" not in plain[0]["_embedded"]
    assert "companies" in plain[0]["_embedded"] and "tags" in plain[0]["_embedded"]
    statuses = {row["status_id"] for row in plain}
    assert {142, 143} <= statuses
    for row in plain:
        assert isinstance(row["created_at"], int) and isinstance(row["updated_at"], int)
        assert (row["closed_at"] is not None) == (row["status_id"] in (142, 143))
        assert isinstance(row["price"], int)
    with_contacts = [row for row in rich if row["_embedded"]["contacts"]]
    assert with_contacts
    for row in with_contacts:
        mains = [c for c in row["_embedded"]["contacts"] if c["is_main"]]
        assert len(mains) == 1
        assert row["_embedded"]["contacts"][0]["_links"]["self"]["href"].startswith(f"{amo.base_url}/api/v4/contacts/")
    for p in pipelines:
        ids = {s["id"] for s in p["_embedded"]["statuses"]}
        assert {142, 143} <= ids
        assert any(s["type"] == 1 for s in p["_embedded"]["statuses"])
    assert sum(p["is_main"] for p in pipelines) == 1


def test_contact_custom_fields_values_shapes(amo: RunningAccount) -> None:
    with amo.client() as c:
        contacts = walk(c, "/api/v4/contacts", limit=250)
    phones = [f for row in contacts for f in (row["custom_fields_values"] or []) if f["field_code"] == "PHONE"]
    assert phones
    for f in phones:
        assert f["field_type"] == "multitext"
        for v in f["values"]:
            assert set(v) == {"value", "enum_id", "enum_code"}
            assert v["enum_code"] in ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")
    emails = [f for row in contacts for f in (row["custom_fields_values"] or []) if f["field_code"] == "EMAIL"]
    assert emails and all(v["enum_code"] in ("WORK", "PRIV", "OTHER") for f in emails for v in f["values"])
    assert all(row["custom_fields_values"] is None or row["custom_fields_values"] for row in contacts)  # null, not []
    assert all(len(row["_embedded"]["companies"]) <= 1 for row in contacts)


def test_get_by_id_and_with_leads(amo: RunningAccount) -> None:
    with amo.client() as c:
        lead = c.get("/api/v4/leads", params={"with": "contacts", "limit": 250}).json()["_embedded"]["leads"]
        linked = next(row for row in lead if row["_embedded"]["contacts"])
        contact_id = linked["_embedded"]["contacts"][0]["id"]
        r = c.get(f"/api/v4/contacts/{contact_id}", params={"with": "leads"})
    assert r.status_code == 200 and r.headers["content-type"].startswith(HAL)
    body = r.json()
    assert body["id"] == contact_id
    assert linked["id"] in [x["id"] for x in body["_embedded"]["leads"]]


def test_filter_updated_at_range_and_order(amo: RunningAccount) -> None:
    with amo.client() as c:
        everything = walk(c, "/api/v4/leads", limit=250)
        stamps = sorted(row["updated_at"] for row in everything)
        lo, hi = stamps[10], stamps[29]
        params = {"filter[updated_at][from]": lo, "filter[updated_at][to]": hi, "order[updated_at]": "asc", "limit": 5}
        window = walk(c, "/api/v4/leads", **params)
        desc = c.get("/api/v4/leads", params={"order[updated_at]": "desc", "limit": 250}).json()["_embedded"]["leads"]
    expected = {row["id"] for row in everything if lo <= row["updated_at"] <= hi}
    assert {row["id"] for row in window} == expected
    assert [row["updated_at"] for row in window] == sorted(row["updated_at"] for row in window)
    assert [row["updated_at"] for row in desc] == sorted((row["updated_at"] for row in desc), reverse=True)


def test_filter_updated_at_as_bare_timestamp_finds_nothing(amo: RunningAccount) -> None:
    # ISS-358: a single timestamp instead of from/to answered 204
    with amo.client() as c:
        r = c.get("/api/v4/leads", params={"filter[updated_at]": 1})
    assert r.status_code == 204


def test_filter_by_ids_in_each_documented_spelling(amo: RunningAccount) -> None:
    with amo.client() as c:
        ids = [row["id"] for row in c.get("/api/v4/contacts", params={"limit": 3}).json()["_embedded"]["contacts"]]
        brackets = c.get("/api/v4/contacts", params=[("filter[id][]", i) for i in ids])
        indexed = c.get("/api/v4/contacts", params={f"filter[id][{n}]": i for n, i in enumerate(ids)})
        commas = c.get("/api/v4/contacts", params={"filter[id]": ",".join(map(str, ids))})
    for r in (brackets, indexed, commas):
        assert sorted(x["id"] for x in r.json()["_embedded"]["contacts"]) == sorted(ids)


def test_order_by_id_desc_and_unsupported_order_is_400(amo: RunningAccount) -> None:
    with amo.client() as c:
        rows = c.get("/api/v4/companies", params={"order[id]": "desc"}).json()["_embedded"]["companies"]
        bad = c.get("/api/v4/contacts", params={"order[created_at]": "asc"})
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert bad.status_code == 400
    body = bad.json()
    assert body["detail"] == "Request validation failed"
    assert body["validation-errors"][0]["errors"][0]["path"] == "order.created_at"


def test_account_reports_api_filter_flag_and_task_types(amo: RunningAccount) -> None:
    with amo.client() as c:
        plain = c.get("/api/v4/account").json()
        rich = c.get("/api/v4/account", params={"with": "is_api_filter_enabled,task_types"}).json()
    assert "is_api_filter_enabled" not in plain
    assert rich["is_api_filter_enabled"] is True
    assert {t["id"] for t in rich["_embedded"]["task_types"]} == {1, 2}
    assert rich["id"] == amo.info["account_id"] and rich["subdomain"] == amo.info["subdomain"]
    # the account model of the official SDK: one account currency, with its symbol
    assert plain["currency"] == "RUB" and plain["currency_symbol"] == "₽"
    assert {"created_at", "created_by", "updated_at", "current_user_id", "country"} <= set(plain)


def test_users_and_custom_field_definitions(amo: RunningAccount) -> None:
    with amo.client() as c:
        users = c.get("/api/v4/users").json()
        fields = c.get("/api/v4/contacts/custom_fields").json()["_embedded"]["custom_fields"]
    assert users["_total_items"] == 3
    assert all({"id", "name", "email", "rights"} <= set(u) for u in users["_embedded"]["users"])
    codes = {f["code"] for f in fields}
    assert {"PHONE", "EMAIL"} <= codes
    phone = next(f for f in fields if f["code"] == "PHONE")
    assert {e["value"] for e in phone["enums"]} >= {"WORK", "MOB"}


def test_unknown_route_is_404_problem(amo: RunningAccount) -> None:
    with amo.client() as c:
        r = c.get("/api/v4/unknown_things")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["detail"].startswith("Cannot GET ")


def test_filters_ignored_when_api_filtering_is_off() -> None:
    options = AmoOptions(rate_limit_rps=1e9, is_api_filter_enabled=False)
    with running_account(small_world(contacts=12), options=options) as amo, amo.client() as c:
        flag = c.get("/api/v4/account", params={"with": "is_api_filter_enabled"}).json()["is_api_filter_enabled"]
        r = c.get(
            "/api/v4/contacts",
            params={"filter[updated_at][from]": 2_000_000_000, "filter[updated_at][to]": 2_000_000_001},
        )
        ordered = c.get("/api/v4/contacts", params={"order[updated_at]": "desc"}).json()["_embedded"]["contacts"]
        state = amo.admin().get("/state").json()
    assert flag is False
    assert r.status_code == 200 and len(r.json()["_embedded"]["contacts"]) == 12  # silently unfiltered
    assert [x["updated_at"] for x in ordered] == sorted((x["updated_at"] for x in ordered), reverse=True)
    assert state["filters_ignored"] == 1


def test_filters_rejected_when_configured() -> None:
    options = AmoOptions(rate_limit_rps=1e9, is_api_filter_enabled=False, filter_disabled_mode="reject")
    with running_account(small_world(), options=options) as amo, amo.client() as c:
        r = c.get("/api/v4/leads", params={"filter[updated_at][from]": 1, "filter[updated_at][to]": 2})
    assert r.status_code == 400
    assert r.json()["validation-errors"][0]["errors"][0]["path"] == "filter"
