"""Authorization code exchange, proactive and weekly refresh, dead refresh tokens, long-lived expiry."""

from __future__ import annotations

import base64
import json
import time

import pytest
from typer.testing import CliRunner

from connectors.amocrm.auth import LongLivedAuth, exchange_code
from segsync.errors import FatalCrmError, ReauthorizationRequired
from segsync.http import make_client
from segsync.logs import known_secrets

from .conftest import connector, make_source, seed_tokens


async def test_code_exchange_stores_a_pair(fake, store):
    async with make_client() as client:
        record = await exchange_code(make_source(), "good-code", client)
        with pytest.raises(FatalCrmError, match="20 minutes"):
            await exchange_code(make_source(), "stale-code", client)
    assert fake.token_calls[0] == {"client_id": "cid", "client_secret": "csecret-123456",
                                   "grant_type": "authorization_code", "code": "good-code",
                                   "redirect_uri": "https://segsync.example/cb"}  # fmt: skip
    assert record["refresh_token"] == "refresh-token-1" and record["expires_at"] > time.time() + 86000
    assert "refresh-token-1" in known_secrets() and "access-token-1" in known_secrets()


async def test_access_token_is_refreshed_before_it_expires(fake, store):
    await seed_tokens(store, fake, expires_at=time.time() + 120)  # inside the refresh margin
    async with connector(store) as amo:
        assert amo.auth.refreshes == 1
    assert [r.headers["authorization"] for r in fake.requests if r.url.path == "/api/v4/account"] == [
        "Bearer access-token-1"
    ]


async def test_keep_alive_refreshes_an_idle_pair_weekly(fake, store):
    await seed_tokens(store, fake)
    amo = connector(store)
    assert (await amo.keep_alive())["refreshed"] is False
    stored = await store.load()
    await store.save({**stored, "obtained_at": time.time() - 7 * 86400})
    assert (await amo.keep_alive())["refreshed"] is True
    assert (await store.load())["refresh_token"] == "refresh-token-1"
    await amo.client.aclose()


async def test_dead_refresh_token_stops_with_a_reauthorize_message_and_a_metric(fake, store):
    await seed_tokens(store, fake, expires_at=time.time() - 1)
    fake.revoked.add("refresh-token-0")
    seen: list[tuple[str, object]] = []
    amo = connector(store)
    amo.ctx.on_request = lambda method, status: seen.append((method, status))
    with pytest.raises(ReauthorizationRequired, match="re-authorize: segsync auth amocrm --source amo --code"):
        await amo.__aenter__()
    assert len(fake.token_calls) == 1  # no retry loop
    assert ("POST /oauth2/access_token", "reauthorization_required") in seen
    assert (await store.load())["refresh_token"] == "refresh-token-0"  # nothing overwritten


async def test_no_stored_tokens_asks_for_authorization(fake, store):
    with pytest.raises(ReauthorizationRequired, match="segsync auth amocrm"):
        await connector(store).__aenter__()


def _jwt(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'RS256'})}.{enc(claims)}.sig"


async def test_long_lived_token_expiry_is_watched():
    soon = LongLivedAuth(_jwt({"exp": time.time() + 3 * 86400}))
    later = LongLivedAuth(_jwt({"exp": time.time() + 300 * 86400}))
    assert (await soon.keep_alive())["warning"] is True
    assert (await later.keep_alive())["warning"] is False


def test_cli_auth_command_stores_tokens(fake, tmp_path, monkeypatch):
    from segsync.cli import app
    from segsync.tokens import DbTokenStore

    db = tmp_path / "s.db"
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
store: sqlite:///{db}
sources:
  - name: amo
    kind: amocrm
    base_url: https://example.amocrm.ru
    oauth: {{client_id: cid, client_secret: csecret-123456, redirect_uri: "https://segsync.example/cb"}}
""")
    monkeypatch.delenv("SEGSYNC_STORE_URL", raising=False)
    result = CliRunner().invoke(app, ["auth", "amocrm", "--source", "amo", "--code", "good-code", "-c", str(rules)])
    assert result.exit_code == 0, result.output
    assert "good-code" not in result.output
    from segsync.store import make_engine

    stored = __import__("asyncio").run(DbTokenStore(make_engine(f"sqlite:///{db}"), 1).load())
    assert stored["refresh_token"] == "refresh-token-1"
    bad = CliRunner().invoke(app, ["auth", "amocrm", "--source", "amo", "--code", "stale", "-c", str(rules)])
    assert bad.exit_code == 1
