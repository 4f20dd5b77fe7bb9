"""OAuth 2 state of one account: authorization codes, JWT access tokens, rotating refresh tokens.

Follows K-OAUTH/K-TOKEN: codes live 20 minutes and work once; access tokens are JWTs living 24 h;
refresh tokens live 3 months and are single-use — reusing a spent one answers 401 with
``"hint": "Token has been revoked"`` (ISS-123). With ``refresh_grace`` (Kommo) the old refresh token
keeps working until the new one is used. Long-lived tokens (K-LLT) are JWTs without a refresh token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from segsync.sandbox.amocrm.options import AmoOptions
from segsync.sandbox.amocrm.problems import ApiError, oauth_error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class AccessGrant:
    expires_at: float
    user_id: int
    long_lived: bool = False
    revoked: bool = False


@dataclass
class RefreshGrant:
    expires_at: float
    spent: bool = False
    parent: str | None = None  # the refresh token this one was issued for
    child: str | None = None  # the newest token issued for this one


@dataclass
class AuthState:
    options: AmoOptions
    account_id: int
    user_id: int
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    redirect_uri: str = "https://segsync.example/amo/oauth"
    access: dict[str, AccessGrant] = field(default_factory=dict)
    refresh: dict[str, RefreshGrant] = field(default_factory=dict)
    codes: dict[str, tuple[float, bool]] = field(default_factory=dict)
    refreshes: int = 0
    exchanges: int = 0

    # --- minting ---
    def _jwt(self, now: float, ttl: int, api_domain: str | None) -> str:
        header = {"typ": "JWT", "alg": "HS256"}
        claims: dict[str, Any] = {
            "aud": self.client_id,
            "jti": secrets.token_hex(20),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + ttl),
            "sub": str(self.user_id),
            "grant_type": "",
            "account_id": self.account_id,
            "base_domain": "amocrm.ru",
            "version": 2,
            "scopes": ["crm", "files", "files_delete", "notifications", "push_notifications"],
        }
        if api_domain:
            claims["api_domain"] = api_domain
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = hmac.new(self.client_secret.encode(), signing.encode(), hashlib.sha256).digest()
        return f"{signing}.{_b64(sig)}"

    def mint_code(self, now: float) -> str:
        code = "def50200" + secrets.token_hex(180)
        self.codes[code] = (now + self.options.auth_code_ttl, False)
        return code

    def mint_pair(self, now: float, api_domain: str | None = None, parent: str | None = None) -> dict[str, Any]:
        access = self._jwt(now, self.options.access_token_ttl, api_domain)
        self.access[access] = AccessGrant(now + self.options.access_token_ttl, self.user_id)
        refresh = "def50200" + secrets.token_hex(200)
        self.refresh[refresh] = RefreshGrant(now + self.options.refresh_token_ttl, parent=parent)
        return {
            "token_type": "Bearer",
            "expires_in": self.options.access_token_ttl,
            "server_time": int(now),
            "access_token": access,
            "refresh_token": refresh,
        }

    def mint_long_lived(self, now: float, api_domain: str | None = None) -> str:
        token = self._jwt(now, self.options.long_lived_token_ttl, api_domain)
        self.access[token] = AccessGrant(now + self.options.long_lived_token_ttl, self.user_id, long_lived=True)
        return token

    # --- checking ---
    def check_bearer(self, header: str | None, now: float) -> AccessGrant | None:
        if not header or not header.startswith("Bearer "):
            return None
        grant = self.access.get(header[7:].strip())
        if grant is None or grant.revoked or grant.expires_at <= now:
            return None
        return grant

    def expire_access(self, *, include_long_lived: bool = False) -> int:
        n = 0
        for grant in self.access.values():
            if not grant.revoked and (include_long_lived or not grant.long_lived):
                grant.revoked = True
                n += 1
        return n

    def revoke_refresh(self) -> int:
        n = 0
        for grant in self.refresh.values():
            if not grant.spent:
                grant.spent = True
                n += 1
        return n

    # --- the token endpoint ---
    def exchange(self, body: dict[str, Any], now: float, api_domain: str | None) -> dict[str, Any]:
        for name in ("client_id", "client_secret", "grant_type"):
            if not body.get(name):
                raise oauth_error(400, hint=f"Check the `{name}` parameter")
        if body["client_id"] != self.client_id or not hmac.compare_digest(
            str(body["client_secret"]), self.client_secret
        ):
            raise oauth_error(401, hint=None, client=True)
        grant = body["grant_type"]
        if grant not in ("authorization_code", "refresh_token"):
            raise oauth_error(400, hint="The authorization grant type is not supported by the authorization server.")
        if not body.get("redirect_uri"):
            raise oauth_error(400, hint="Check the `redirect_uri` parameter")
        if body["redirect_uri"] != self.redirect_uri:
            raise oauth_error(401, hint=None, client=True)
        if grant == "authorization_code":
            return self._by_code(body, now, api_domain)
        return self._by_refresh(body, now, api_domain)

    def _by_code(self, body: dict[str, Any], now: float, api_domain: str | None) -> dict[str, Any]:
        code = body.get("code")
        if not code:
            raise oauth_error(400, hint="Check the `code` parameter")
        entry = self.codes.get(code)
        if entry is None:
            raise oauth_error(400, hint="Cannot decrypt the authorization code")
        expires_at, used = entry
        if used:
            raise oauth_error(400, hint="Authorization code has been revoked")
        if expires_at <= now:
            raise oauth_error(400, hint="Authorization code has expired")
        self.codes[code] = (expires_at, True)
        self.exchanges += 1
        return self.mint_pair(now, api_domain)

    def _by_refresh(self, body: dict[str, Any], now: float, api_domain: str | None) -> dict[str, Any]:
        token = body.get("refresh_token")
        if not token:
            raise oauth_error(400, hint="Check the `refresh_token` parameter")
        grant = self.refresh.get(token)
        if grant is None:
            raise oauth_error(401, hint="Cannot decrypt the refresh token")
        if grant.spent:
            raise oauth_error(401, hint="Token has been revoked")
        if grant.expires_at <= now:
            raise oauth_error(401, hint="Token has expired")
        # using a token retires its ancestors (the grace window of the parent closes)
        if grant.parent is not None and grant.parent in self.refresh:
            self.refresh[grant.parent].spent = True
        if grant.child is not None and grant.child in self.refresh:
            self.refresh[grant.child].spent = True  # only the newest pair stands
        pair = self.mint_pair(now, api_domain, parent=token)
        grant.child = pair["refresh_token"]
        if not self.options.refresh_grace:
            grant.spent = True
        self.refreshes += 1
        return pair


def token_request_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """The token endpoint accepts JSON (docs) and form bodies (the PHP SDK's league/oauth2-client)."""
    from urllib.parse import parse_qsl

    if not raw:
        raise ApiError(400, "Request data can not be empty")
    if "json" in content_type or raw.lstrip()[:1] in (b"{", b"["):
        try:
            data = json.loads(raw)
        except ValueError:
            raise oauth_error(400, hint="Invalid JSON body") from None
        if not isinstance(data, dict):
            raise oauth_error(400, hint="Invalid JSON body")
        return data
    return dict(parse_qsl(raw.decode(errors="replace")))
