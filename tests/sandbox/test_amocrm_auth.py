"""Conformance: OAuth 2 code exchange, refresh rotation, long-lived tokens and 401/402 bodies (§1, §7)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from segsync.sandbox.amocrm import AmoOptions
from segsync.sandbox.amocrm.testing import RunningAccount, running_account

OAUTH_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"


@pytest.fixture
def amo() -> Iterator[RunningAccount]:
    with running_account(options=AmoOptions(rate_limit_rps=1e9)) as running:
        yield running


def token_body(amo: RunningAccount, **extra: str) -> dict[str, str]:
    return {
        "client_id": amo.info["client_id"],
        "client_secret": amo.info["client_secret"],
        "redirect_uri": amo.info["redirect_uri"],
        **extra,
    }


def post_token(amo: RunningAccount, body: dict[str, str], *, form: bool = False) -> httpx.Response:
    url = f"{amo.base_url}/oauth2/access_token"
    return httpx.post(url, data=body) if form else httpx.post(url, json=body)


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_authorization_code_exchange_json_then_code_is_single_use(amo: RunningAccount) -> None:
    body = token_body(amo, grant_type="authorization_code", code=amo.info["authorization_code"])
    r = post_token(amo, body)
    assert r.status_code == 200
    pair = r.json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 86400
    assert {"access_token", "refresh_token", "server_time"} <= set(pair)
    assert claims(pair["access_token"])["exp"] - claims(pair["access_token"])["iat"] == 86400
    with amo.client(pair["access_token"]) as c:
        assert c.get("/api/v4/account").status_code == 200
    again = post_token(amo, body)
    assert again.status_code == 400
    assert again.json()["hint"] == "Authorization code has been revoked"


def test_code_exchange_accepts_form_bodies_and_codes_expire_after_20_minutes(amo: RunningAccount) -> None:
    admin = amo.admin()
    code = admin.post("/auth-code").json()["code"]
    assert post_token(amo, token_body(amo, grant_type="authorization_code", code=code), form=True).status_code == 200
    late = admin.post("/auth-code").json()["code"]
    admin.post("/clock", json={"advance": 20 * 60 + 1})
    r = post_token(amo, token_body(amo, grant_type="authorization_code", code=late))
    assert r.status_code == 400 and r.json()["hint"] == "Authorization code has expired"


def test_refresh_rotates_and_the_spent_token_is_revoked(amo: RunningAccount) -> None:
    old = amo.info["refresh_token"]
    r = post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=old))
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != old and new["access_token"] != amo.info["access_token"]
    reused = post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=old))
    assert reused.status_code == 401
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert reused.json() == {
        "hint": "Token has been revoked",
        "title": "Некорректный запрос",
        "type": OAUTH_TYPE,
        "status": 401,
        "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
    }
    assert (
        post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=new["refresh_token"])).status_code
        == 200
    )
    assert amo.admin().get("/state").json()["token_refreshes"] == 2


def test_kommo_grace_keeps_the_old_refresh_token_until_the_new_one_is_used() -> None:
    with running_account(options=AmoOptions(rate_limit_rps=1e9, refresh_grace=True)) as amo:
        old = amo.info["refresh_token"]
        first = post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=old)).json()
        retry = post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=old))  # "lost" response
        assert retry.status_code == 200
        newest = retry.json()["refresh_token"]
        stale = post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=first["refresh_token"]))
        assert stale.status_code == 401  # only the newest pair stands
        assert post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=newest)).status_code == 200
        assert post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=old)).status_code == 401


def test_bad_client_credentials(amo: RunningAccount) -> None:
    body = token_body(amo, grant_type="refresh_token", refresh_token=amo.info["refresh_token"])
    body["client_secret"] = "wrong"
    r = post_token(amo, body)
    assert r.status_code == 401
    assert r.json() == {
        "title": "Некорректный клиент",
        "type": OAUTH_TYPE,
        "status": 401,
        "detail": "Авторизация клиента не прошла",
    }
    missing = post_token(amo, {"client_id": amo.info["client_id"], "grant_type": "refresh_token"})
    assert missing.status_code == 400 and missing.json()["title"] == "Некорректный запрос"


def test_access_token_expires_after_24_hours_with_documented_401(amo: RunningAccount) -> None:
    with amo.client() as c:
        assert c.get("/api/v4/account").status_code == 200
        amo.admin().post("/clock", json={"advance": 86_400})
        r = c.get("/api/v4/account")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json() == {
        "title": "Unauthorized",
        "type": "https://httpstatus.es/401",
        "status": 401,
        "detail": "Invalid user name or password",
    }
    # the refresh token still works (3 months) and yields a working access token
    pair = post_token(amo, token_body(amo, grant_type="refresh_token", refresh_token=amo.info["refresh_token"])).json()
    with amo.client(pair["access_token"]) as c:
        assert c.get("/api/v4/account").status_code == 200


def test_long_lived_token_works_without_refresh_and_survives_access_expiry(amo: RunningAccount) -> None:
    token = amo.info["long_lived_token"]
    assert "exp" in claims(token)
    amo.admin().post("/expire-tokens", json={})
    with amo.client(token) as c:
        assert c.get("/api/v4/leads", params={"limit": 1}).status_code == 200
    with amo.client() as c:
        assert c.get("/api/v4/leads", params={"limit": 1}).status_code == 401
    amo.admin().post("/expire-tokens", json={"long_lived": True})
    with amo.client(token) as c:
        assert c.get("/api/v4/leads", params={"limit": 1}).status_code == 401


def test_missing_or_malformed_authorization_is_401(amo: RunningAccount) -> None:
    assert httpx.get(f"{amo.base_url}/api/v4/leads").status_code == 401
    assert httpx.get(f"{amo.base_url}/api/v4/leads", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_payment_required_is_402() -> None:
    with running_account(options=AmoOptions(rate_limit_rps=1e9, payment_required=True)) as amo, amo.client() as c:
        r = c.get("/api/v4/leads")
    assert r.status_code == 402
    assert r.json() == {
        "title": "Payment Required",
        "type": "https://httpstatus.es/402",
        "status": 402,
        "detail": "Payment required",
    }
