"""HTTP building blocks every connector uses: one client factory, a rate limiter, a retry policy.

Policy is declared here once; classification of a response into "retry", "wait", "refresh" or
"stop" is CRM-specific and lives in each connector, which raises the typed errors from
:mod:`segsync.errors`. Transport failures are translated at one boundary (:func:`send`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import tenacity

from segsync import __version__
from segsync.errors import AmbiguousWrite, RateLimited, RetriableCrmError, Transient
from segsync.logs import get_logger

T = TypeVar("T")
log = get_logger("segsync.http")


def make_client(
    *, base_url: str = "", timeout: float = 60.0, user_agent: str | None = None, max_connections: int = 10
) -> httpx.AsyncClient:
    """An httpx client that never follows redirects by itself (a moved Bitrix24 portal answers 302 to a
    POST, which must be repeated as a POST, not silently turned into a GET)."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=10.0),
        follow_redirects=False,
        headers={"User-Agent": user_agent or f"segsync/{__version__}", "Accept": "application/json"},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


class RateLimiter:
    """Client-side token bucket mirroring a server's leaky bucket: ``burst`` at once, then ``rate``/s.

    Shared by every call of one source, so concurrent pages never exceed the CRM's limit together.
    ``pause(seconds)`` holds all callers after the server said "too many".
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    delay = self._paused_until - now
                else:
                    self._refill(now)
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return waited
                    delay = (1 - self._tokens) / self.rate
                waited += delay
                await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Stop everyone for ``seconds`` and empty the bucket (the server's counter is full)."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._tokens = 0.0
        self._stamp = max(now, self._paused_until)


def _wait(max_wait: float) -> Callable[[tenacity.RetryCallState], float]:
    expo = tenacity.wait_exponential_jitter(multiplier=0.5, max=max_wait, jitter=0.5)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), max(max_wait, exc.retry_after)) + random.uniform(0, 0.25)
        return expo(state)

    return wait


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 8,
    max_wait: float = 60.0,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """Run ``call`` until it succeeds, retrying only :class:`~segsync.errors.Transient` errors.

    Waits grow exponentially with jitter and honour a server's ``retry_after``. Anything else —
    including :class:`~segsync.errors.AmbiguousWrite` — propagates at once.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            log.info("retrying", error=type(exc).__name__, detail=str(exc)[:200], attempt=state.attempt_number)
            if on_retry is not None:
                on_retry(exc, state.attempt_number)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, Transient) and not isinstance(e, AmbiguousWrite)),
        wait=_wait(max_wait),
        stop=tenacity.stop_after_attempt(attempts),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover


async def send(
    client: httpx.AsyncClient, method: str, url: str, *, is_write: bool = False, source: str | None = None, **kw: Any
) -> httpx.Response:
    """Send one request, translating transport failures into segsync errors.

    A connection that never got established is safe to retry. A timeout or a dropped connection
    *after* a write was sent is ambiguous: the CRM may have applied it, so the caller must reconcile
    before trying again.
    """
    try:
        return await client.request(method, url, **kw)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise RetriableCrmError(f"cannot connect: {type(exc).__name__}", source=source) from None
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        if is_write:
            raise AmbiguousWrite(f"write outcome unknown: {type(exc).__name__}", source=source) from None
        raise RetriableCrmError(f"request failed: {type(exc).__name__}", source=source) from None
    except httpx.TransportError as exc:
        raise RetriableCrmError(f"transport error: {type(exc).__name__}", source=source) from None


def looks_like_json(response: httpx.Response) -> bool:
    """CRMs answer HTML error pages under load (nginx 502/503, blocks): never ``json()`` blindly."""
    ctype = response.headers.get("content-type", "")
    if "json" in ctype:
        return True
    head = response.content[:1].strip()
    return head in (b"{", b"[")
