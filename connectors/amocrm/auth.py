"""amoCRM / Kommo authentication: a long-lived token, or an OAuth pair whose refresh token rotates.

Refresh tokens die on use (amocrm.ru: «Refresh token можно обменять только один раз»), so a refresh
runs inside :meth:`TokenStore.refresh` — a cross-process DB lock that re-reads the row and commits
the new pair before anyone uses it. In-process, one asyncio lock makes concurrent requests that hit
401 together refresh once. A refresh the server refuses means the refresh token is dead: the source
stops with :class:`ReauthorizationRequired`, never a retry loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.amocrm.options import AmoCRMOAuth, AmoCRMSource
from connectors.amocrm.transport import account_limiter, problem_detail
from segsync.contract import TokenStore
from segsync.errors import FatalCrmError, ReauthorizationRequired, RetriableCrmError
from segsync.http import looks_like_json, send
from segsync.logs import get_logger, register_secret

log = get_logger("connectors.amocrm.auth")
TOKEN_PATH = "/oauth2/access_token"
KEEP_ALIVE_MAX_AGE = 6 * 86400  # refresh at least this often so an idle source keeps its 3-month refresh token
LONG_LIVED_WARN_DAYS = 14


def reauthorize_hint(source: str | None) -> str:
    return f"re-authorize: segsync auth amocrm --source {source or 'NAME'} --code CODE"


def jwt_claims(token: str) -> dict[str, Any]:
    """The unverified payload of a JWT (amoCRM access and long-lived tokens are JWTs); {} if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_record(body: Any, now: float, base_url: str) -> dict[str, Any]:
    """The stored form of a token answer: tokens plus absolute times (``expires_in`` is read, never assumed)."""
    if not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
        raise RetriableCrmError("token endpoint answered without access_token/refresh_token")
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 86400.0
    record = {
        "access_token": str(body["access_token"]),
        "refresh_token": str(body["refresh_token"]),
        "token_type": body.get("token_type", "Bearer"),
        "expires_in": lifetime,
        "expires_at": now + lifetime,
        "obtained_at": now,
        "base_url": base_url,
    }
    register_secret(record["access_token"])
    register_secret(record["refresh_token"])
    return record


async def _token_call(
    client: httpx.AsyncClient,
    base_url: str,
    form: dict[str, Any],
    *,
    source: str | None,
    clock: Callable[[], float],
    rate: float | None = None,
) -> dict[str, Any]:
    # The token endpoint counts against the account's requests per second like any API call.
    limiter = account_limiter(base_url, rate) if rate else None
    slot = await limiter.acquire() if limiter else None
    try:
        response = await send(client, "POST", f"{base_url}{TOKEN_PATH}", source=source, json=form)
    finally:
        if limiter and slot:
            limiter.release(slot)
    status = response.status_code
    if status == 200:
        return token_record(response.json() if looks_like_json(response) else None, clock(), base_url)
    detail = problem_detail(response)
    if status in (400, 401, 403, 404):
        raise ReauthorizationRequired(
            f"amoCRM refused the token request ({status}: {detail}); {reauthorize_hint(source)}",
            source=source, status=status,
        )  # fmt: skip
    raise RetriableCrmError(f"token endpoint answered {status}: {detail}", source=source, status=status)


async def exchange_code(
    source: AmoCRMSource, code: str, client: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Trade an authorization code (single use, 20 minutes) for the first token pair."""
    if source.oauth is None:
        raise FatalCrmError(f"source {source.name!r} uses a long-lived token; there is no code to exchange")
    oauth = source.oauth
    register_secret(code)
    form = {
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret.get_secret_value(),
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": oauth.redirect_uri,
    }
    try:
        return await _token_call(client, source.base_url, form, source=source.name, clock=clock, rate=source.rate_limit)
    except ReauthorizationRequired as exc:
        raise FatalCrmError(
            f"the authorization code was refused ({exc}); codes work once and expire after 20 minutes — get a new one",
            source=source.name,
        ) from None


class LongLivedAuth:
    """A private integration's long-lived token: never refreshed; its JWT ``exp`` is watched."""

    def __init__(self, token: str, *, source: str | None = None, clock: Callable[[], float] = time.time):
        register_secret(token)
        self.token = token
        self.source = source
        self.clock = clock
        exp = jwt_claims(token).get("exp")
        self.expires_at: float | None = float(exp) if isinstance(exp, int | float) else None

    async def access_token(self) -> str:
        return self.token

    async def unauthorized(self, used: str) -> None:
        raise ReauthorizationRequired(
            "amoCRM rejected the long-lived token (expired or revoked): generate a new one in the private "
            "integration (Keys and scopes) and update long_lived_token",
            source=self.source, status=401,
        )  # fmt: skip

    async def keep_alive(self) -> dict[str, Any]:
        """Warn well before the token's expiry date (a long-lived token cannot be renewed by software)."""
        if self.expires_at is None:
            return {"kind": "long_lived", "expires_at": None}
        days_left = (self.expires_at - self.clock()) / 86400
        if days_left < LONG_LIVED_WARN_DAYS:
            log.warning("amocrm_long_lived_token_expiring", source=self.source, days_left=round(days_left, 1))
        return {
            "kind": "long_lived",
            "expires_at": datetime.fromtimestamp(self.expires_at, UTC).isoformat(),
            "days_left": round(days_left, 1),
            "warning": days_left < LONG_LIVED_WARN_DAYS,
        }


class OAuthAuth:
    """Rotating OAuth pair kept in the DB; refreshed proactively, on 401 once, and by ``keep_alive``."""

    def __init__(
        self,
        store: TokenStore,
        oauth: AmoCRMOAuth,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        source: str | None = None,
        refresh_before: float = 3600.0,
        rate: float | None = None,
        clock: Callable[[], float] = time.time,
        on_reauth: Callable[[], None] = lambda: None,
    ):
        register_secret(oauth.client_secret.get_secret_value())
        self.store = store
        self.oauth = oauth
        self.base_url = base_url
        self.client = client
        self.source = source
        self.refresh_before = refresh_before
        self.rate = rate
        self.clock = clock
        self.on_reauth = on_reauth
        self.refreshes = 0  # done by this process
        self._current: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def _tokens(self) -> dict[str, Any]:
        if self._current is None:
            self._current = await self.store.load()
            if not self._current or not self._current.get("refresh_token"):
                self._current = None
                raise ReauthorizationRequired(
                    f"no amoCRM tokens stored for this source; {reauthorize_hint(self.source)}", source=self.source
                )
        return self._current

    def _due(self, tokens: dict[str, Any]) -> bool:
        lifetime = float(tokens.get("expires_in") or 86400.0)
        margin = min(self.refresh_before, lifetime / 2)
        return float(tokens.get("expires_at") or 0) - self.clock() < margin

    async def access_token(self) -> str:
        tokens = await self._tokens()
        if self._due(tokens):
            tokens = await self._refresh(tokens)
        return str(tokens["access_token"])

    async def unauthorized(self, used: str) -> None:
        tokens = await self._tokens()
        if tokens.get("access_token") != used:
            return  # another request of this process already refreshed
        await self._refresh(tokens)

    async def keep_alive(self, max_age: float = KEEP_ALIVE_MAX_AGE) -> dict[str, Any]:
        """Schedule daily (the daemon does): refreshes when the pair is older than ``max_age`` or about to expire,
        so a source that makes no API calls for months still never loses its 3-month refresh token."""
        self._current = None  # another process may have refreshed: read the row again
        tokens = await self._tokens()
        age = self.clock() - float(tokens.get("obtained_at") or 0)
        refreshed = False
        if age > max_age or self._due(tokens):
            tokens = await self._refresh(tokens)
            refreshed = True
        return {
            "kind": "oauth",
            "refreshed": refreshed,
            "expires_at": datetime.fromtimestamp(float(tokens["expires_at"]), UTC).isoformat(),
        }

    async def _refresh(self, seen: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if self._current is not None and self._current.get("refresh_token") != seen.get("refresh_token"):
                return self._current  # refreshed while we waited for the lock
            try:
                self._current = await self.store.refresh(seen, self._call_refresh)
            except ReauthorizationRequired:
                self.on_reauth()
                log.error("amocrm_reauthorization_required", source=self.source)
                raise
            return self._current

    async def _call_refresh(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Runs under the DB lock with the freshest stored pair; its result is committed before use."""
        form = {
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret.get_secret_value(),
            "grant_type": "refresh_token",
            "refresh_token": stored["refresh_token"],
            "redirect_uri": self.oauth.redirect_uri,
        }
        try:
            fresh = await _token_call(
                self.client, self.base_url, form, source=self.source, clock=self.clock, rate=self.rate
            )
        except RetriableCrmError:
            # The answer may have been lost after amoCRM issued a new pair. Kommo documents that the old
            # refresh token stays valid until the new one is used: try it once more, then give up for now
            # (the transaction rolls back; the stored pair is unchanged).
            log.warning("amocrm_refresh_retry", source=self.source)
            fresh = await _token_call(
                self.client, self.base_url, form, source=self.source, clock=self.clock, rate=self.rate
            )
        self.refreshes += 1
        log.info("amocrm_token_refreshed", source=self.source)
        return fresh
