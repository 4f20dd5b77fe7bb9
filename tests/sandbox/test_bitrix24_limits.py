"""Limits as documented (shared/api/bitrix24.md §2): leaky bucket → 503 QUERY_LIMIT_EXCEEDED after a burst
of 51; per-method operating time → 429 OPERATION_TIME_LIMIT with operating_reset_at; costly counting."""

from __future__ import annotations

import time

import httpx


def test_burst_of_51_requests_gets_query_limit_exceeded(sandbox_factory):
    # drain slowed down so that a slow shared CI machine cannot drain the bucket during the burst
    sb = sandbox_factory(b24_options={"real_delays": False, "drain_per_s": 0.001})
    hook = sb.info["bitrix24"]["webhook_url"]
    with httpx.Client() as c:
        statuses = [c.post(hook + "crm.deal.get", json={"id": 1}).status_code for _ in range(51)]
        r = c.post(hook + "crm.deal.get", json={"id": 1})
    assert statuses[:50] == [200] * 50 and statuses[50] == 503
    assert r.status_code == 503
    assert r.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    state = sb.admin("GET", "/b24/portal/_admin/state")
    assert state["counters"]["query_limit_exceeded"] == 2
    assert state["counters"]["requests"]["crm.deal.get"] == {"200": 50, "503": 2}


def test_the_bucket_drains_two_requests_per_second(sandbox_factory):
    sb = sandbox_factory(b24_options={"real_delays": False})
    hook = sb.info["bitrix24"]["webhook_url"]
    with httpx.Client() as c:
        for _ in range(200):
            if c.post(hook + "crm.deal.get", json={"id": 1}).status_code == 503:
                break
        else:
            raise AssertionError("never limited")
        time.sleep(1.2)
        assert c.post(hook + "crm.deal.get", json={"id": 1}).status_code == 200


def test_enterprise_plan_allows_a_bigger_burst(sandbox_factory):
    sb = sandbox_factory(b24_options={"plan": "enterprise", "real_delays": False})
    hook = sb.info["bitrix24"]["webhook_url"]
    with httpx.Client() as c:
        statuses = [c.post(hook + "crm.deal.get", json={"id": 1}).status_code for _ in range(120)]
    assert set(statuses) == {200}


def test_operation_time_limit_blocks_the_method_only(sandbox_factory):
    sb = sandbox_factory(b24_options={"operating_limit_s": 0.05, "cost_base_s": 0.03, "real_delays": False})
    hook = sb.info["bitrix24"]["webhook_url"]
    r1 = httpx.post(hook + "crm.deal.list", json={"select": ["ID"]}).json()
    assert r1["time"]["operating"] > 0 and isinstance(r1["time"]["operating_reset_at"], int)
    httpx.post(hook + "crm.deal.list", json={"select": ["ID"]})
    r = httpx.post(hook + "crm.deal.list", json={"select": ["ID"]})
    assert r.status_code == 429
    assert r.json()["error"] == "OPERATION_TIME_LIMIT"
    assert r.json()["error_description"] == "Method is blocked due to operation time limit."
    assert r.json()["operating_reset_at"] > time.time()
    assert httpx.post(hook + "crm.contact.list", json={"select": ["ID"]}).status_code == 200


def test_counting_total_costs_more_than_start_minus_one(sandbox_factory):
    sb = sandbox_factory(b24_options={"cost_count_per_row_s": 0.0002, "real_delays": True})
    hook = sb.info["bitrix24"]["webhook_url"]
    counted = httpx.post(hook + "crm.deal.list", json={"select": ["ID"], "start": 0}).json()["time"]
    fast = httpx.post(hook + "crm.deal.list", json={"select": ["ID"], "start": -1}).json()["time"]
    assert counted["processing"] >= 0.1 > fast["processing"]
    assert counted["duration"] >= 0.1
