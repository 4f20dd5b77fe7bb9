"""The OAuth server (emulating oauth.bitrix.info) shared by all portals of a sandbox.

``GET|POST /oauth/token/?grant_type=authorization_code|refresh_token&client_id=&client_secret=&...``
→ the documented token response (docs: settings/oauth/index.md, auto-renewal.md). Access tokens live
1 hour; a refresh token works once (rotation) and, by default, also retires the access token issued
with it (older docs; harsher).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from segsync.sandbox.bitrix24.portal import Bitrix24Portal


def _reply(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(code: str, description: str, status: int = 400) -> Response:
    return _reply({"error": code, "error_description": description}, status)


class OAuthServer:
    def __init__(self) -> None:
        self.portals: dict[str, Bitrix24Portal] = {}

    def register(self, portal: Bitrix24Portal) -> None:
        self.portals[portal.app.client_id] = portal

    async def token(self, request: Request) -> Response:
        q = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            q.update({k: str(v) for k, v in form.items()})
        p = self.portals.get(q.get("client_id", ""))
        if p is None or q.get("client_secret") != p.app.client_secret:
            return _error("invalid_client", "Invalid client credentials", 401)
        grant = q.get("grant_type")
        now = p.now()
        if grant == "authorization_code":
            entry = p.auth_codes.pop(q.get("code", ""), None)
            if entry is None or entry[0] < now:
                return _error("invalid_grant", "Invalid authorization code")
            user_id = entry[1]
        elif grant == "refresh_token":
            rt = p.refresh_tokens.get(q.get("refresh_token", ""))
            if rt is None or rt.used or rt.expires_at < now:
                return _error("invalid_grant", "Invalid refresh token")
            rt.used = True
            if p.options.refresh_invalidates_access:
                for tok in p.access_tokens.values():
                    if tok.refresh_token == rt.token:
                        tok.revoked = True
            user_id = rt.user_id
        else:
            return _error("invalid_request", "Unsupported grant_type")
        issued = p.issue_tokens(user_id=user_id)
        return _reply(
            {
                "access_token": issued["access_token"],
                "expires": issued["expires"],
                "expires_in": p.options.access_token_ttl_s,
                "scope": ",".join(p.app.scopes),
                "domain": "oauth.bitrix.info",
                "server_endpoint": f"{p.oauth_server}rest/",
                "status": "L",
                "client_endpoint": f"{p.base_url}/rest/",
                "member_id": p.member_id,
                "user_id": user_id,
                "refresh_token": issued["refresh_token"],
            }
        )


def build_oauth_app(server: OAuthServer) -> Starlette:
    return Starlette(routes=[Route("/oauth/token/", server.token, methods=["GET", "POST"])])
