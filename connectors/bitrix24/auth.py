"""How calls are addressed and authorized: an inbound webhook URL, or an OAuth local application.

The webhook URL *is* a secret (it embeds the code), so it is registered with the log redactor and
never logged; logs name the method only.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

import httpx

from connectors.bitrix24.failures import oauth_failure
from connectors.bitrix24.options import Bitrix24OAuth
from segsync.contract import TokenStore
from segsync.errors import FatalCrmError, ReauthorizationRequired, RetriableCrmError
from segsync.http import looks_like_json, send
from segsync.logs import get_logger, register_secret

log = get_logger("segsync.bitrix24")
_WEBHOOK_PATH = re.compile(r"^(?P<prefix>.*?/rest/)(?P<user>\d+)/(?P<code>[^/]+)/?")


class Auth(Protocol):
    portal: str  # host name: the key of the per-portal rate limiter
    budget_key: str  # one operating budget per webhook / application
    can_refresh: bool

    async def prepare(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    async def url(self, method: str) -> httpx.URL: ...

    def relocate(self, request: httpx.URL, new: httpx.URL) -> None: ...

    async def refresh(self, client: httpx.AsyncClient) -> None: ...

    async def user_id(self) -> str | None: ...


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _moved(base: httpx.URL, request: httpx.URL, new: httpx.URL) -> httpx.URL:
    """The base URL after the portal answered ``request`` with a redirect to ``new`` (address change).

    The redirect names the same method on the new address, so whatever precedes that method in
    ``new`` is the new base; otherwise only the host changes.
    """
    if base.scheme == "https" and new.scheme != "https":
        raise FatalCrmError("the portal redirected from https to plain http; refusing to send credentials")
    suffix = request.path[len(base.path) :] if request.path.startswith(base.path) else ""
    path = new.path[: len(new.path) - len(suffix)] if suffix and new.path.endswith(suffix) else base.path
    return base.copy_with(scheme=new.scheme, host=new.host, port=new.port, path=path)


def _portal_key(url: httpx.URL, prefix: str) -> str:
    """Host (and any path before ``/rest/``, for portals served under a path) of one portal."""
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}{prefix.removesuffix('/rest/').rstrip('/')}"


class WebhookAuth:
    """``https://portal/rest/<user>/<code>/<method>.json`` — the URL carries the credentials."""

    can_refresh = False

    def __init__(self, webhook_url: str):
        url = webhook_url.strip()
        register_secret(url)
        match = _WEBHOOK_PATH.match(httpx.URL(url).path)
        if match is None:
            raise FatalCrmError("webhook_url must look like https://<portal>/rest/<user id>/<code>/")
        register_secret(match["code"])
        parsed = httpx.URL(url)
        self._base = parsed.copy_with(path=match.group(0).rstrip("/") + "/", query=None)
        self._user = match["user"]
        self.portal = _portal_key(parsed, match["prefix"])
        self.budget_key = "webhook:" + _fingerprint(url)

    async def prepare(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    async def url(self, method: str) -> httpx.URL:
        return self._base.join(f"{method}.json")

    def relocate(self, request: httpx.URL, new: httpx.URL) -> None:
        self._base = _moved(self._base, request, new)
        register_secret(str(self._base))

    async def refresh(self, client: httpx.AsyncClient) -> None:
        raise FatalCrmError("the inbound webhook was refused as expired: create a new webhook and update webhook_url")

    async def user_id(self) -> str | None:
        return self._user


class OAuthAuth:
    """A local application: ``auth=<access_token>`` in the body, refresh only on ``expired_token``.

    Tokens live in the store (:class:`~segsync.contract.TokenStore`); a refresh runs under its
    cross-process lock and the new pair is persisted before it is used (refresh tokens rotate).
    """

    can_refresh = True

    def __init__(self, options: Bitrix24OAuth, tokens: TokenStore, *, source: str | None = None):
        self.options = options
        self.store = tokens
        self.source = source
        register_secret(options.client_secret.get_secret_value())
        portal = httpx.URL(options.portal_url)
        self.portal = _portal_key(portal, portal.path)
        self.budget_key = "app:" + _fingerprint(options.client_id + "@" + portal.host)
        self._tokens: dict[str, Any] | None = None
        self._endpoint: httpx.URL | None = None

    async def _current(self) -> dict[str, Any]:
        if self._tokens is None:
            self._tokens = await self.store.load()
            if not self._tokens and self.options.refresh_token is not None:
                self._tokens = await self._bootstrap()
            if not self._tokens or not self._tokens.get("access_token"):
                raise ReauthorizationRequired(
                    "no OAuth tokens stored for this source: install/authorize the local application first",
                    source=self.source,
                )
            register_secret(self._tokens.get("access_token"))
            register_secret(self._tokens.get("refresh_token"))
        return self._tokens

    async def prepare(self, payload: dict[str, Any]) -> dict[str, Any]:
        tokens = await self._current()
        return {**payload, "auth": tokens["access_token"]}

    async def url(self, method: str) -> httpx.URL:
        if self._endpoint is None:
            tokens = await self._current()
            endpoint = tokens.get("client_endpoint") or self.options.portal_url.rstrip("/") + "/rest/"
            self._endpoint = httpx.URL(endpoint.rstrip("/") + "/")
        return self._endpoint.join(method)

    def relocate(self, request: httpx.URL, new: httpx.URL) -> None:
        if self._endpoint is not None:
            self._endpoint = _moved(self._endpoint, request, new)

    async def user_id(self) -> str | None:
        user = (await self._current()).get("user_id")
        return str(user) if user not in (None, "") else None

    async def _bootstrap(self) -> dict[str, Any]:
        """First start: trade the configured refresh token for a pair, persisted before use."""
        assert self.options.refresh_token is not None
        seed = {"refresh_token": self.options.refresh_token.get_secret_value()}
        register_secret(seed["refresh_token"])
        async with httpx.AsyncClient(timeout=30.0, follow_redirects=False) as client:

            async def refresher(current: dict[str, Any]) -> dict[str, Any]:
                # another process may have stored a pair meanwhile: refresh from it rather than the seed
                return await self._refresh_call(client, current if current.get("refresh_token") else seed)

            return await self.store.refresh(None, refresher)

    async def refresh(self, client: httpx.AsyncClient) -> None:
        seen = await self._current()

        async def refresher(current: dict[str, Any]) -> dict[str, Any]:
            return await self._refresh_call(client, current)

        self._tokens = await self.store.refresh(seen, refresher)
        register_secret(self._tokens.get("access_token"))
        register_secret(self._tokens.get("refresh_token"))

    async def _refresh_call(self, client: httpx.AsyncClient, current: dict[str, Any]) -> dict[str, Any]:
        refresh_token = current.get("refresh_token")
        if not refresh_token:
            raise ReauthorizationRequired(
                "no refresh token stored: authorize the application again", source=self.source
            )
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        body = await token_request(client, self.options, grant, source=self.source)
        log.info("oauth_refreshed", member_id=body.get("member_id"))
        fresh = {**current, **body}
        fresh.setdefault("client_endpoint", current.get("client_endpoint"))
        return fresh


async def token_request(
    client: httpx.AsyncClient, options: Bitrix24OAuth, grant: dict[str, str], *, source: str | None = None
) -> dict[str, Any]:
    """``GET {oauth_server}/oauth/token/`` (the only place ``client_secret`` is ever sent)."""
    params = {"client_id": options.client_id, "client_secret": options.client_secret.get_secret_value(), **grant}
    url = options.oauth_server.rstrip("/") + "/oauth/token/"
    response = await send(client, "GET", url, params=params, source=source)
    if not looks_like_json(response):
        raise RetriableCrmError(f"token endpoint: non-JSON answer (HTTP {response.status_code})", source=source)
    body = response.json()  # plain floats: these values go into a JSON column
    if not isinstance(body, dict) or "error" in body or not body.get("access_token"):
        error = body if isinstance(body, dict) else {}
        raise oauth_failure(
            str(error.get("error") or ""), str(error.get("error_description") or ""), response.status_code, source
        )
    register_secret(body.get("access_token"))
    register_secret(body.get("refresh_token"))
    return body


async def exchange_code(source: Any, tokens: TokenStore, code: str) -> str:
    """``segsync auth bitrix24 --code``: the first token pair of a local application (the code lives 30 s)."""
    if getattr(source, "oauth", None) is None:
        raise FatalCrmError(f"source {source.name!r} uses a webhook: there is nothing to authorize")
    register_secret(code)
    async with httpx.AsyncClient(timeout=30.0, follow_redirects=False) as client:
        grant = {"grant_type": "authorization_code", "code": code}
        body = await token_request(client, source.oauth, grant, source=source.name)
    await tokens.save(body)
    member, user = body.get("member_id", "?"), body.get("user_id", "?")
    return f"{source.name}: tokens stored for portal member {member} (user {user})"
