"""One door to the amoCRM API: rate limit, auth header, response classification, retries.

Classification (documented shapes, bodies never trusted to be JSON):
204 → no data; 401 → refresh once and repeat once; 402 → paid period over (stop);
403 → blocked by amoCRM (stop the source and alert, never hammer); 429 → back off (JSON
``retry_after`` or a ``Retry-After`` header, else exponential) and pause the whole account;
5xx / HTML → retry reads, report writes as ambiguous; 400/422 → returned to writers that map
``validation-errors`` per element, fatal for reads.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from connectors.amocrm.limits import RollingWindowLimiter
from segsync.contract import ConnectorContext
from segsync.errors import (
    AmbiguousWrite,
    FatalCrmError,
    RateLimited,
    ReauthorizationRequired,
    RetriableCrmError,
)
from segsync.http import looks_like_json, send, with_retries
from segsync.logs import get_logger

log = get_logger("connectors.amocrm")
_IDS = re.compile(r"/\d+")


class Auth(Protocol):
    """What the transport needs from an auth strategy (long-lived token or rotating OAuth pair)."""

    async def access_token(self) -> str:
        """A token to send now (refreshing proactively when it is about to expire)."""
        ...

    async def unauthorized(self, used: str) -> None:
        """The server said 401 to ``used``: get a new token or raise ReauthorizationRequired."""
        ...


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON, or None for 204 / empty
    headers: Mapping[str, str]


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RollingWindowLimiter]] = (
    weakref.WeakKeyDictionary()
)


def account_limiter(base_url: str, rate: float) -> RollingWindowLimiter:
    """One limiter per account and event loop: every connector of the account shares the 7 req/s."""
    loop = asyncio.get_running_loop()
    per_loop = _limiters.setdefault(loop, {})
    parts = urlsplit(base_url)
    host = f"{parts.netloc}{parts.path}".lower() or base_url
    limiter = per_loop.get(host)
    if limiter is None or limiter.rate != rate:
        limiter = per_loop[host] = RollingWindowLimiter(rate)
    return limiter


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429: the documented JSON ``retry_after``, else a ``Retry-After`` header."""
    if looks_like_json(response):
        try:
            value = response.json().get("retry_after")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value)
        except (ValueError, AttributeError):
            pass
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def problem_detail(response: httpx.Response) -> str:
    """A short, log-safe description of an error answer (problem+json ``title``/``detail`` or 'HTML page')."""
    if not looks_like_json(response):
        return "non-JSON body" if response.content else "empty body"
    try:
        body = response.json()
    except ValueError:
        return "unparsable JSON body"
    if not isinstance(body, Mapping):
        return "unexpected JSON body"
    parts = [str(body.get(k)) for k in ("title", "detail", "hint") if body.get(k)]
    return ": ".join(parts)[:300] or "no detail"


class Transport:
    """HTTP to one amoCRM account. Every request goes through the account's limiter."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        ctx: ConnectorContext,
        *,
        rate: float = 7.0,
        source: str | None = None,
        client: httpx.AsyncClient | None = None,
        attempts: int = 8,
    ):
        from segsync.http import make_client

        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.ctx = ctx
        self.rate = rate
        self.source = source
        self.attempts = attempts
        self.client = client or make_client(base_url=self.base_url, timeout=ctx.timeout, user_agent=ctx.user_agent)
        self.requests = 0  # made, for benchmarks and tests
        self._limiter: RollingWindowLimiter | None = None

    @property
    def limiter(self) -> RollingWindowLimiter:
        if self._limiter is None:
            self._limiter = account_limiter(self.base_url, self.rate)
        return self._limiter

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, params: Any = None) -> Reply:
        return await with_retries(lambda: self._once("GET", path, params=params), attempts=self.attempts)

    async def write(self, method: str, path: str, body: Any, *, idempotent: bool) -> Reply:
        """A write. Non-idempotent ones (POST tasks) are never repeated once they may have been applied:
        429 and connection failures are retried (nothing was processed), a timeout or 5xx raises
        :class:`AmbiguousWrite`. 400/422 come back as a :class:`Reply` for per-element mapping."""
        return await with_retries(
            lambda: self._once(method, path, json=body, write=True, idempotent=idempotent), attempts=self.attempts
        )

    async def _once(
        self, method: str, path: str, *, params: Any = None, json: Any = None, write: bool = False,
        idempotent: bool = True,
    ) -> Reply:  # fmt: skip
        retried_auth = False
        while True:
            token = await self.auth.access_token()
            slot = await self.limiter.acquire()
            started = time.monotonic()
            self.requests += 1
            try:
                response = await send(
                    self.client, method, path, is_write=write, source=self.source, params=params, json=json,
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip
            except (RetriableCrmError, AmbiguousWrite) as exc:
                self.ctx.on_request(self._metric_name(method, path), type(exc).__name__)
                raise
            finally:
                self.limiter.release(slot)
            status = response.status_code
            self.ctx.on_request(self._metric_name(method, path), status)
            log.debug(
                "amocrm_request", method=method, path=_IDS.sub("/{id}", path), status=status,
                ms=round((time.monotonic() - started) * 1000), request_id=response.headers.get("x-request-id"),
            )  # fmt: skip
            if status == 401:
                if retried_auth:
                    raise ReauthorizationRequired(
                        "amoCRM rejected a freshly issued token (integration disabled or access revoked); "
                        f"re-authorize: segsync auth amocrm --source {self.source or 'NAME'} --code CODE",
                        source=self.source, status=401,
                    )  # fmt: skip
                await self.auth.unauthorized(token)
                retried_auth = True
                continue
            return self._classify(method, path, response, write=write, idempotent=idempotent)

    def _metric_name(self, method: str, path: str) -> str:
        return f"{method} {_IDS.sub('/{id}', path)}"

    def _classify(self, method: str, path: str, response: httpx.Response, *, write: bool, idempotent: bool) -> Reply:
        status = response.status_code
        where = f"{method} {_IDS.sub('/{id}', path)}"
        if status == 204:
            return Reply(204, None, response.headers)
        if 200 <= status < 300:
            if not response.content.strip():
                return Reply(status, None, response.headers)
            if not looks_like_json(response):
                if write and not idempotent:
                    raise AmbiguousWrite(f"{where}: {status} with a non-JSON body", source=self.source, status=status)
                raise RetriableCrmError(f"{where}: {status} with a non-JSON body", source=self.source, status=status)
            try:
                return Reply(status, response.json(), response.headers)
            except ValueError:
                raise RetriableCrmError(f"{where}: unparsable JSON", source=self.source, status=status) from None
        detail = problem_detail(response)
        if status == 429:
            wait = retry_after(response)
            self.limiter.pause(wait if wait is not None else 1.0)
            self.ctx.on_throttle("429")
            log.warning("amocrm_throttled", path=where, retry_after=wait)
            raise RateLimited(f"{where}: 429 {detail}", retry_after=wait, source=self.source, status=429)
        if status == 402:
            raise FatalCrmError(
                f"{where}: 402 payment required — the account's paid period is over", source=self.source, status=402
            )
        if status == 403:
            self.ctx.on_throttle("blocked")
            log.error("amocrm_forbidden", path=where, detail=detail)
            raise FatalCrmError(
                f"{where}: 403 forbidden ({detail}). amoCRM blocks an IP/account after repeated limit violations; "
                "the source is stopped — check the integration's rights, or ask amoCRM support to lift the block",
                source=self.source, status=403,
            )  # fmt: skip
        if status in (400, 422) and write:
            body = response.json() if looks_like_json(response) else None
            return Reply(status, body, response.headers)
        if status >= 500:
            # 504 on a write: amoCRM advises fewer entities per request; writers split idempotent batches.
            if write and (not idempotent or status == 504):
                raise AmbiguousWrite(f"{where}: {status} {detail}", source=self.source, status=status)
            raise RetriableCrmError(f"{where}: {status} {detail}", source=self.source, status=status)
        raise FatalCrmError(f"{where}: {status} {detail}", source=self.source, status=status)
