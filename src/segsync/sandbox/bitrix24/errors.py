"""Bitrix24 error bodies: ``{"error": CODE, "error_description": TEXT}`` with the documented HTTP status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the API answers with; ``code`` may be "" (many CRM method errors have an empty code)."""

    def __init__(self, status: int, code: str, description: str, *, extra: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def crm_error(description: str, status: int = 400) -> ApiError:
    """CRM methods report most failures with an empty error code (docs: crm.deal.list, crm.contact.get)."""
    return ApiError(status, "", description)


METHOD_NOT_FOUND = (404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
NO_AUTH = (401, "NO_AUTH_FOUND", "Wrong authorization data")
EXPIRED = (401, "expired_token", "The access token provided has expired.")
INSUFFICIENT_SCOPE = (
    403,
    "insufficient_scope",
    "The request requires higher privileges than provided by the webhook token",
)
QUERY_LIMIT = (503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
OPERATION_LIMIT = (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
ACCESS_DENIED_PLAN = (403, "ACCESS_DENIED", "REST API is available only on commercial plans")
OVERLOAD = (503, "OVERLOAD_LIMIT", "REST API is blocked due to overload.")
INTERNAL = (500, "INTERNAL_SERVER_ERROR", "Internal server error")
BATCH_LENGTH = (400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
BATCH_METHOD = (405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")


def err(spec: tuple[int, str, str], **extra: Any) -> ApiError:
    return ApiError(spec[0], spec[1], spec[2], extra=extra)
