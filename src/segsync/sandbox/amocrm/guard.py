"""The request pipeline every non-admin route runs through, in amo's order of refusals:
403 block → 429 rate limit → injected faults → 401 token → 402 payment → the handler.
It also counts requests by endpoint and status for the admin API."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.auth import AccessGrant
from segsync.sandbox.amocrm.problems import (
    ApiError,
    forbidden_block,
    html_response,
    server_error,
    too_many_requests,
    unauthorized,
)

Handler = Callable[[AmoAccount, Request, AccessGrant | None], Awaitable[Response]]


def base_of(request: Request) -> str:
    """The account's base URL as the client sees it: scheme, host and the mount point (root_path)."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}".rstrip("/")


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "Request data can not be empty")
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Request data can not be empty") from None


def guarded(
    acc: AmoAccount, endpoint: str, handler: Handler, *, auth: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    rng = random.Random(acc.options.faults.seed + 7)

    async def endpoint_fn(request: Request) -> Response:
        response = await _run(acc, request, handler, auth, rng)
        acc.requests[(f"{request.method} {endpoint}", response.status_code)] += 1
        return response

    return endpoint_fn


async def _run(acc: AmoAccount, request: Request, handler: Handler, auth: bool, rng: random.Random) -> Response:
    o = acc.options
    if acc.public_base is None:
        acc.public_base = base_of(request)
    acc.api_requests += 1
    verdict = acc.limiter.check()
    if verdict == 403:
        return forbidden_block(html=o.block_body == "html")
    if verdict == 429:
        return too_many_requests(o.retry_after_seconds, html=o.rate_limit_body == "html")
    faults = o.faults
    if faults.latency_ms > 0:
        await asyncio.sleep(faults.latency_ms / 1000)
    fault = acc.faults.decide()
    if fault == "5xx":
        return server_error(rng.choice((500, 502, 503, 504)))
    if fault == "429":
        return too_many_requests(o.retry_after_seconds, html=o.rate_limit_body == "html")
    if fault == "html":
        return html_response(
            rng.choice((502, 503)), rng.choice(("502 Bad Gateway", "503 Service Temporarily Unavailable"))
        )
    if fault == "timeout":
        await asyncio.sleep(faults.timeout_seconds)
        return html_response(504, "504 Gateway Time-out")
    if faults.token_expiry_every > 0 and acc.api_requests % faults.token_expiry_every == 0:
        acc.auth.expire_access()
    grant = None
    if auth:
        grant = acc.auth.check_bearer(request.headers.get("authorization"), acc.now())
        if grant is None:
            return unauthorized().response()
        if o.payment_required:
            return ApiError(402, "Payment required").response()
    try:
        response = await handler(acc, request, grant)
    except ApiError as exc:
        response = exc.response()
    response.headers["X-Request-Id"] = uuid.uuid4().hex
    return response
