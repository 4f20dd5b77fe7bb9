"""Bitrix24 error codes → segsync's exception tree (pure).

Keyed on the ``error`` string, not the HTTP status: the docs, the official SDK and the server code
disagree on statuses for several codes (INVALID_CREDENTIALS 401/403, PORTAL_DELETED 403/410/500).
Throttling and token expiry are *not* decided here: the transport handles them (pause, refresh).
"""

from __future__ import annotations

from segsync.errors import (
    AmbiguousWrite,
    CrmError,
    FatalCrmError,
    RateLimited,
    ReauthorizationRequired,
    RetriableCrmError,
    TokenExpired,
)

QUERY_LIMIT = "QUERY_LIMIT_EXCEEDED"
OPERATION_LIMIT = "OPERATION_TIME_LIMIT"
EXPIRED_TOKEN = "expired_token"

#: Codes after which retrying cannot help: the source stops and a human acts. Value = what to do.
FATAL_HINTS: dict[str, str] = {
    "NO_AUTH_FOUND": "wrong webhook code or access token: check webhook_url / re-create the webhook",
    "invalid_token": "the access token is not recognised: authorize the application again",
    "INVALID_CREDENTIALS": "the webhook/app user lacks permissions for this method",
    "insufficient_scope": "the webhook/app lacks a scope: grant crm, task and user",
    "ACCESS_DENIED": "access denied (REST needs a commercial plan, or the user lacks CRM rights)",
    "OVERLOAD_LIMIT": "REST API blocked by Bitrix24 for overload: only Bitrix24 support can lift it",
    "PAYMENT_REQUIRED": "the Bitrix24 subscription has ended",
    "user_access_error": "the application is restricted to other users",
    "authorization_error": "the webhook/app user was deactivated or removed",
    "ERROR_OAUTH": "the application is not installed on the portal",
    "APPLICATION_NOT_FOUND": "the application is not installed on the portal",
    "PORTAL_DELETED": "the portal was deleted or closed",
    "ERROR_METHOD_NOT_FOUND": "method not found (unknown method or missing scope)",
    "INVALID_REQUEST": "the portal requires HTTPS",
    "ERROR_BATCH_LENGTH_EXCEEDED": "more than 50 commands in one batch (a segsync bug)",
    "ERROR_BATCH_METHOD_NOT_ALLOWED": "method not allowed inside batch (a segsync bug)",
    "WRONG_ENCODING": "the request encoding was rejected (a segsync bug)",
    "allowed_only_intranet_user": "the webhook/app user is not an intranet user",
}
#: Codes the OAuth server answers instead of tokens; all of them need a new authorization.
REAUTH_CODES = frozenset({"invalid_grant", "invalid_client", "invalid_request", "invalid_scope", "NO_AUTH_FOUND"})
SERVER_CODES = frozenset({"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER"})


def describe(code: str, description: str, method: str) -> str:
    text = f"{method}: {code or 'error'}"
    if description:
        text += f": {description.strip()[:300]}"
    hint = FATAL_HINTS.get(code)
    return f"{text} — {hint}" if hint else text


def classify(
    code: str, description: str, *, method: str, status: int | None, write: bool, source: str | None = None
) -> CrmError:
    """The exception for a Bitrix24 error answer (top-level or one batch command)."""
    kw = {"source": source, "code": code or None, "status": status, "method": method}
    message = describe(code, description, method)
    if code == QUERY_LIMIT:
        return RateLimited(message, **kw)
    if code == OPERATION_LIMIT:
        return RateLimited(message, **kw)
    if code == EXPIRED_TOKEN:
        return TokenExpired(message, **kw)
    if code in FATAL_HINTS:
        return FatalCrmError(message, **kw)
    if code in SERVER_CODES or (status is not None and status >= 500):
        # The server failed while (maybe) executing: a read may be retried, a write may have happened.
        return AmbiguousWrite(message, **kw) if write else RetriableCrmError(message, **kw)
    # 4xx and command errors like {"error": "", "error_description": "Not found"}: the request itself
    # is wrong; the same request will fail again.
    return FatalCrmError(message, **kw)


def oauth_failure(code: str, description: str, status: int | None, source: str | None = None) -> CrmError:
    """The exception for an error answer of the OAuth server during a refresh."""
    message = f"token refresh failed: {code or status}: {description[:200]}".rstrip(": ")
    if code in REAUTH_CODES or (status is not None and status in (400, 401, 403) and not code):
        return ReauthorizationRequired(message + " — authorize segsync on the portal again", source=source, code=code)
    if status is not None and status >= 500:
        return RetriableCrmError(message, source=source, code=code or None, status=status)
    return FatalCrmError(message, source=source, code=code or None, status=status)
