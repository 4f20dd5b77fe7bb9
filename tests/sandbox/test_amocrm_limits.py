"""Conformance: 7 req/s → 429, repeated violations → 403 block, and injected faults (§2, §7, §9.6)."""

from __future__ import annotations

import time

from segsync.sandbox.amocrm import AmoOptions
from segsync.sandbox.amocrm.testing import running_account


def burst(c, n: int) -> list:
    return [c.get("/api/v4/account") for _ in range(n)]


def test_more_than_7_requests_per_second_get_429_with_retry_after() -> None:
    with running_account(options=AmoOptions(block_after_violations=0)) as amo, amo.client() as c:
        answers = burst(c, 9)
        state = amo.admin().get("/state").json()
    codes = [r.status_code for r in answers]
    assert codes[:7] == [200] * 7 and codes[7:] == [429, 429]
    r = answers[7]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json() == {
        "title": "Too Many Requests",
        "type": "https://httpstatus.es/429",
        "status": 429,
        "detail": "You have sent too many requests in a given amount of time. Please try again later.",
        "retry_after": 300,
    }
    assert state["rate_limited_429"] == 2
    assert state["requests"]["GET /api/v4/account"] == {"200": 7, "429": 2}


def test_rate_is_a_rolling_second() -> None:
    with running_account(options=AmoOptions(block_after_violations=0)) as amo, amo.client() as c:
        assert all(r.status_code == 200 for r in burst(c, 7))
        time.sleep(1.05)
        assert all(r.status_code == 200 for r in burst(c, 7))


def test_html_429_variant() -> None:
    options = AmoOptions(block_after_violations=0, rate_limit_body="html")
    with running_account(options=options) as amo, amo.client() as c:
        r = burst(c, 8)[-1]
    assert r.status_code == 429 and r.headers["content-type"].startswith("text/html")
    assert "<html>" in r.text


def test_repeated_violations_block_every_request_with_403_for_the_configured_time() -> None:
    options = AmoOptions(block_after_violations=3, block_window_seconds=60, block_seconds=1.0)
    with running_account(options=options) as amo, amo.client() as c:
        codes = [r.status_code for r in burst(c, 11)]
        token = c.post(f"{amo.base_url}/oauth2/access_token", json={})
        state = amo.admin().get("/state").json()
        time.sleep(1.1)
        after = c.get("/api/v4/account")
    assert codes[:7] == [200] * 7 and codes[7:10] == [429] * 3 and codes[10] == 403
    assert token.status_code == 403 and token.headers["content-type"].startswith("text/html")
    assert "403 Forbidden" in token.text and "nginx" in token.text
    assert state["blocks"] == 1 and state["blocked_403"] == 2
    assert after.status_code == 200


def test_json_403_block_variant_and_admin_unblock() -> None:
    options = AmoOptions(block_after_violations=1, block_seconds=600, block_body="json")
    with running_account(options=options) as amo, amo.client() as c:
        burst(c, 8)
        r = c.get("/api/v4/account")
        amo.admin().post("/unblock")
        ok = c.get("/api/v4/account")
    assert r.status_code == 403 and r.json()["status"] == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert ok.status_code == 200


def test_injected_faults_render_in_amo_shapes() -> None:
    with running_account(options=AmoOptions(rate_limit_rps=1e9)) as amo, amo.client() as c:
        admin = amo.admin()
        admin.post("/faults", json={"html": 1.0})
        html = c.get("/api/v4/leads")
        admin.post("/faults", json={"html": 0.0, "error_5xx": 1.0})
        err = c.get("/api/v4/leads")
        admin.post("/faults", json={"error_5xx": 0.0, "rate_429": 1.0})
        limited = c.get("/api/v4/leads")
        admin.post("/faults", json={"rate_429": 0.0, "timeout": 1.0, "timeout_seconds": 0.2})
        slow = c.get("/api/v4/leads")
        admin.post("/faults", json={"timeout": 0.0, "latency_ms": 150})
        t0 = time.monotonic()
        late = c.get("/api/v4/account")
        elapsed = time.monotonic() - t0
        injected = admin.get("/faults").json()["injected"]
    assert html.status_code in (502, 503) and html.headers["content-type"].startswith("text/html")
    assert err.status_code in (500, 502, 503, 504)
    assert (
        err.headers["content-type"].startswith("application/problem+json") and err.json()["status"] == err.status_code
    )
    assert limited.status_code == 429 and limited.json()["retry_after"] == 300
    assert slow.status_code == 504 and slow.headers["content-type"].startswith("text/html")
    assert late.status_code == 200 and elapsed >= 0.15
    assert injected == {"5xx": 1, "429": 1, "html": 1, "timeout": 1}


def test_token_expiry_every_n_requests() -> None:
    with running_account(options=AmoOptions(rate_limit_rps=1e9)) as amo, amo.client() as c:
        amo.admin().post("/faults", json={"token_expiry_every": 3})
        codes = [c.get("/api/v4/account").status_code for _ in range(3)]
    assert codes == [200, 200, 401]
