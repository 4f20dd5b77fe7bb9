"""amo error bodies: RFC 7807 problem+json (K-HTTP), OAuth problems (ISS-123/235) and gateway HTML.

Handlers raise :class:`ApiError`; the app turns it into the documented body. Bodies that real
gateways send as HTML (403 blocks, some 429s and 5xx — ISS-434, ISS-526) are rendered here too.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response

PROBLEM = "application/problem+json"
HAL = "application/hal+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "ErrInternalServer",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
OAUTH_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
OAUTH_BAD_REQUEST = "В запросе отсутствует ряд параметров или параметры невалидны"


class ApiError(Exception):
    """A documented error answer; ``body`` overrides the default problem document."""

    def __init__(self, status: int, detail: str = "", *, body: dict[str, Any] | None = None, title: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.body = body

    def response(self) -> Response:
        body = self.body or problem_body(self.status, self.detail, title=self.title)
        return json_response(body, self.status, PROBLEM)


def problem_body(status: int, detail: str, *, title: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = dict(extra)
    body.update(
        {
            "title": title or TITLES.get(status, "Error"),
            "type": f"https://httpstatus.es/{status}",
            "status": status,
            "detail": detail,
        }
    )
    return body


def json_response(body: Any, status: int = 200, media_type: str = HAL) -> Response:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(raw, status_code=status, media_type=media_type)


class ValidationErrors:
    """Collects per-element validation errors into the documented 400 body."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, request_id: str, code: str, path: str, detail: str) -> None:
        for item in self.items:
            if item["request_id"] == request_id:
                item["errors"].append({"code": code, "path": path, "detail": detail})
                return
        self.items.append({"request_id": request_id, "errors": [{"code": code, "path": path, "detail": detail}]})

    def __bool__(self) -> bool:
        return bool(self.items)

    def error(self) -> ApiError:
        body = {"validation-errors": self.items}
        body.update(problem_body(400, "Request validation failed"))
        return ApiError(400, body=body)


def invalid(path: str, detail: str, code: str = "InvalidType", request_id: str = "0") -> ApiError:
    errs = ValidationErrors()
    errs.add(request_id, code, path, detail)
    return errs.error()


def unauthorized() -> ApiError:
    return ApiError(401, "Invalid user name or password")


def oauth_error(status: int, *, hint: str | None, client: bool = False) -> ApiError:
    if client:
        body: dict[str, Any] = {
            "title": "Некорректный клиент",
            "type": OAUTH_TYPE,
            "status": status,
            "detail": "Авторизация клиента не прошла",
        }
    else:
        body = {"hint": hint, "title": "Некорректный запрос", "type": OAUTH_TYPE, "status": status}
        body["detail"] = OAUTH_BAD_REQUEST
        if hint is None:
            del body["hint"]
    return ApiError(status, body=body)


def too_many_requests(retry_after: int, *, html: bool) -> Response:
    if html:
        return html_response(429, "429 Too Many Requests")
    body = problem_body(429, "You have sent too many requests in a given amount of time. Please try again later.")
    body["retry_after"] = retry_after
    return json_response(body, 429, PROBLEM)


def forbidden_block(*, html: bool) -> Response:
    if html:
        return html_response(403, "403 Forbidden")
    return json_response(problem_body(403, "Access denied: too many requests"), 403, PROBLEM)


def server_error(status: int) -> Response:
    if status == 500:
        body = {
            "title": "ErrInternalServer",
            "type": "https://httpstatus.es/500",
            "status": 500,
            "detail": "Our team are probably already working on the elimination of the problem",
            "trace_id": uuid.uuid4().hex[:16],
        }
    else:
        body = problem_body(status, TITLES.get(status, "Error"))
    return json_response(body, status, PROBLEM)


def html_response(status: int, title: str) -> Response:
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(page.encode(), status_code=status, media_type="text/html")
