"""Response classification over documented shapes: 204, problem+json, HTML 429/403, 5xx, 401 → refresh."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from segsync.errors import FatalCrmError, ReauthorizationRequired

from .conftest import connector, seed_tokens
from .fake import html, problem


async def test_204_is_an_empty_list_and_next_links_are_followed(fake, store):
    await seed_tokens(store, fake)
    for i in range(260):
        fake.add("contacts", i + 1, 1_700_000_000 + i)
    async with connector(store) as amo:
        ids = [i for chunk in [c async for c in amo.list_ids("contacts")] for i in chunk]
    assert len(set(ids)) == 260
    lists = [r for r in fake.requests if r.url.path == "/api/v4/contacts"]
    assert all(r.headers["authorization"] == "Bearer access-token-0" for r in lists)


async def test_429_json_retry_after_then_html_429_back_off_and_succeed(fake, store):
    await seed_tokens(store, fake)
    throttles: list[str] = []
    async with connector(store) as amo:
        amo.ctx.on_throttle = throttles.append
        fake.canned = [problem(429, "Too many", retry_after=0.2), html(429)]
        started = time.monotonic()
        pages = [p async for p in amo.pull("users", None)]
    assert [u.remote_id for u in pages[0].records] == ["504141"]
    assert throttles == ["429", "429"]
    assert time.monotonic() - started >= 0.2 + 1.0  # honoured retry_after, then ≥ 1 s for the bodiless HTML one


async def test_403_block_stops_at_once_and_alerts(fake, store):
    await seed_tokens(store, fake)
    throttles: list[str] = []
    async with connector(store) as amo:
        amo.ctx.on_throttle = throttles.append
        fake.canned = [html(403), html(403), html(403)]
        before = len(fake.requests)
        with pytest.raises(FatalCrmError, match="403"):
            [p async for p in amo.pull("users", None)]
    assert len(fake.requests) - before == 1  # never hammered
    assert throttles == ["blocked"]


async def test_5xx_and_html_200_are_retried(fake, store):
    await seed_tokens(store, fake)
    async with connector(store) as amo:
        fake.canned = [
            problem(500, "Our team are probably already working", trace_id="t"),
            html(502),
            httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>oops</html>"),
        ]
        pages = [p async for p in amo.pull("users", None)]
    assert pages[0].records


async def test_402_payment_required_is_fatal(fake, store):
    await seed_tokens(store, fake)
    fake.canned = [problem(402, "Payment required")]
    with pytest.raises(FatalCrmError, match="402"):
        async with connector(store):
            pass


async def test_401_refreshes_once_persists_rotation_and_retries(fake, store):
    await seed_tokens(store, fake)
    fake.tokens = {
        "access": "access-token-server",
        "refresh": "refresh-token-0",
    }  # the server invalidated our access token
    async with connector(store) as amo:
        pages = [p async for p in amo.pull("users", None)]
    assert pages[0].records
    assert [c["grant_type"] for c in fake.token_calls] == ["refresh_token"]
    call = fake.token_calls[0]
    assert call["refresh_token"] == "refresh-token-0" and call["redirect_uri"] == "https://segsync.example/cb"
    stored = await store.load()
    assert (
        stored["refresh_token"] == "refresh-token-1" and stored["access_token"] == "access-token-1"
    )  # rotated pair persisted
    assert "refresh-token-0" in fake.revoked


async def test_second_401_after_refresh_is_reauthorization(fake, store):
    await seed_tokens(store, fake)
    fake.canned = [problem(401, "Invalid user name or password"), problem(401, "Invalid user name or password")]
    with pytest.raises(ReauthorizationRequired, match="segsync auth amocrm --source amo"):
        async with connector(store):
            pass
    assert len(fake.token_calls) == 1


async def test_long_lived_token_is_never_refreshed(fake, store):
    fake.long_lived.add("llt-secret-token")
    async with connector(store, long_lived_token="llt-secret-token") as amo:
        assert [p async for p in amo.pull("users", None)][0].records  # noqa: RUF015
        fake.long_lived.clear()
        with pytest.raises(ReauthorizationRequired, match="long-lived"):
            [p async for p in amo.pull("users", None)]
    assert fake.token_calls == []


async def test_bodies_are_never_parsed_blindly(fake, store):
    await seed_tokens(store, fake)
    fake.canned = [httpx.Response(404, headers={"content-type": "text/html"}, content=b"<html>Not Found</html>")]
    with pytest.raises(FatalCrmError, match="404 non-JSON body"):
        async with connector(store):
            pass
    assert json.dumps({"ok": True})  # the HTML body did not blow up json()
