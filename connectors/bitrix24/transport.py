"""One Bitrix24 portal over HTTP: every call passes the portal's rate limiter and the method budget.

The transport turns answers into values or typed errors and owns the reactions that need state:
``QUERY_LIMIT_EXCEEDED`` pauses the shared limiter (all chains stop, not just the unlucky one),
``OPERATION_TIME_LIMIT`` holds that method until its reset time, ``expired_token`` refreshes once,
a 302 from a moved portal is followed with the same POST. Retries (5xx, HTML, timeouts) use
:func:`segsync.http.with_retries`, with jittered exponential waits and a bounded number of attempts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.bitrix24.auth import Auth
from connectors.bitrix24.failures import OPERATION_LIMIT, QUERY_LIMIT, classify
from connectors.bitrix24.limits import MethodBudget
from connectors.bitrix24.wire import (
    BATCH_LIMIT,
    BatchReply,
    CommandError,
    Timing,
    decode_json,
    encode_query,
    parse_batch,
    parse_timing,
)
from segsync.contract import ConnectorContext
from segsync.errors import (
    AmbiguousWrite,
    CrmError,
    FatalCrmError,
    RateLimited,
    ReauthorizationRequired,
    RetriableCrmError,
    TokenExpired,
)
from segsync.http import RateLimiter, looks_like_json, make_client, send, with_retries
from segsync.logs import get_logger

log = get_logger("segsync.bitrix24")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class Reply:
    result: Any
    total: int | None
    next: int | None
    time: Timing


Command = tuple[str, Mapping[str, Any]]  # (method, params)


class Transport:
    def __init__(
        self,
        auth: Auth,
        *,
        limiter: RateLimiter,
        budget: MethodBudget,
        ctx: ConnectorContext,
        source: str | None = None,
        client: httpx.AsyncClient | None = None,
        attempts: int = 8,
        max_wait: float = 60.0,
    ):
        self.auth = auth
        self.limiter = limiter
        self.budget = budget
        self.ctx = ctx
        self.source = source
        self.client = client or make_client(timeout=ctx.timeout, user_agent=ctx.user_agent)
        self.attempts = attempts
        self.max_wait = max_wait
        self.requests = 0  # HTTP requests sent to the portal (figures, tests)
        self.waited = 0.0  # seconds spent waiting for the rate limiter or a method budget
        self.server_seconds = 0.0  # the portal's own time.duration, summed: where a slow pull spends its time
        self.last_time: Timing | None = None
        self._limit_streak = 0

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- public calls -------------------------------------------------------------------------

    async def call(self, method: str, params: Mapping[str, Any] | None = None, *, write: bool = False) -> Reply:
        body = await self._request(method, dict(params or {}), methods=(method,), write=write)
        return Reply(
            body.get("result"), _int(body.get("total")), _int(body.get("next")), parse_timing(body.get("time"))
        )

    async def batch(self, commands: Mapping[str, Command], *, halt: bool = False, write: bool = False) -> BatchReply:
        """Up to 50 commands in one HTTP request; per-command errors come back in ``errors``."""
        if not commands or len(commands) > BATCH_LIMIT:
            raise ValueError(f"a batch takes 1..{BATCH_LIMIT} commands, got {len(commands)}")
        if any(key.isdigit() for key in commands):
            raise ValueError("numeric batch keys turn answers into lists; use keys like 'c0'")
        payload = {"halt": 1 if halt else 0, "cmd": {k: f"{m}?{encode_query(p)}" for k, (m, p) in commands.items()}}
        methods = {m for m, _ in commands.values()}
        body = await self._request("batch", payload, methods=methods, write=write)
        reply = parse_batch(body, list(commands))
        for key, timing in reply.times.items():
            if key in commands:
                self.budget.observe(commands[key][0], timing)
        for key, error in reply.errors.items():
            if error.code == OPERATION_LIMIT and key in commands:
                self.budget.block(commands[key][0])
                self.ctx.on_throttle("operation_time_limit")
        return reply

    def command_failure(self, method: str, error: CommandError, *, write: bool = False) -> CrmError:
        """The exception a failed batch command stands for (the batch itself answered 200)."""
        return classify(error.code, error.description, method=method, status=None, write=write, source=self.source)

    async def user_id(self) -> str | None:
        return await self.auth.user_id()

    # -- machinery ----------------------------------------------------------------------------

    async def _request(
        self, method: str, payload: dict[str, Any], *, methods: Iterable[str], write: bool
    ) -> dict[str, Any]:
        methods = tuple(methods)
        refreshed = False

        async def attempt() -> dict[str, Any]:
            nonlocal refreshed
            started = time.monotonic()
            await self.budget.wait(methods, on_wait=lambda s: self.ctx.on_throttle("operating_budget"))
            self.waited += time.monotonic() - started
            for _ in range(2):
                waited = await self.limiter.acquire()
                self.waited += waited
                if waited > 0.01:
                    self.ctx.on_throttle("rate_limit")
                try:
                    return await self._exchange(method, payload, methods=methods, write=write)
                except TokenExpired:
                    if refreshed:
                        raise ReauthorizationRequired(
                            "the portal still says expired_token right after a refresh: authorize again",
                            source=self.source,
                            method=method,
                        ) from None
                    await self.auth.refresh(self.client)  # a webhook raises FatalCrmError here
                    refreshed = True
            raise AssertionError("unreachable")  # pragma: no cover

        return await with_retries(attempt, attempts=self.attempts, max_wait=self.max_wait)

    async def _exchange(
        self, method: str, payload: dict[str, Any], *, methods: tuple[str, ...], write: bool
    ) -> dict[str, Any]:
        url = await self.auth.url(method)
        body = await self.auth.prepare(payload)
        for _ in range(MAX_REDIRECTS + 1):
            started = time.monotonic()
            self.requests += 1  # counted when sent: a timed-out request still reached the portal
            response = await send(self.client, "POST", str(url), json=body, is_write=write, source=self.source)
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                moved_to = response.url.join(location)
                self.auth.relocate(response.url, moved_to)
                url = await self.auth.url(method)
                log.warning("bitrix24_portal_moved", method=method, new_host=moved_to.host, status=response.status_code)
                continue
            log.debug(
                "bitrix24_call",
                method=method,
                status=response.status_code,
                ms=round((time.monotonic() - started) * 1000),
            )
            return self._decode(response, method, methods=methods, write=write)
        raise FatalCrmError(f"{method}: more than {MAX_REDIRECTS} redirects", source=self.source, method=method)

    def _decode(
        self, response: httpx.Response, method: str, *, methods: tuple[str, ...], write: bool
    ) -> dict[str, Any]:
        status = response.status_code
        body: Any = None
        if looks_like_json(response):
            try:
                body = decode_json(response.content)
            except ValueError:
                body = None
        if not isinstance(body, dict):
            # nginx error pages, truncated bodies: the server, not the request, failed
            self.ctx.on_request(method, status)
            message = f"{method}: unexpected non-JSON answer (HTTP {status})"
            kind = AmbiguousWrite if write else RetriableCrmError
            raise kind(message, source=self.source, status=status, method=method)
        if ("error" in body and "result" not in body) or status >= 400:
            code = str(body.get("error") or "")
            self.ctx.on_request(method, code or status)
            raise self._failure(code, str(body.get("error_description") or ""), method, status, methods, write)
        self.ctx.on_request(method, status)
        self._limit_streak = 0
        timing = parse_timing(body.get("time"))
        self.last_time = timing
        if timing.start is not None and timing.finish is not None:
            self.server_seconds += max(0.0, timing.finish - timing.start)
        if method != "batch":  # the outer batch is not counted against any method
            self.budget.observe(method, timing)
        return body

    def _failure(
        self, code: str, description: str, method: str, status: int, methods: tuple[str, ...], write: bool
    ) -> CrmError:
        # Throttling answers mean "not executed": safe to repeat even for writes.
        exc = classify(code, description, method=method, status=status, write=write, source=self.source)
        if code == QUERY_LIMIT and isinstance(exc, RateLimited):
            self._limit_streak += 1
            pause = min(self.max_wait, (2.0 / self.limiter.rate) * 2 ** (self._limit_streak - 1))
            self.limiter.pause(pause)
            self.ctx.on_throttle("query_limit_exceeded")
            log.warning("bitrix24_query_limit", method=method, pause_s=round(pause, 2))
            exc.retry_after = pause
        elif code == OPERATION_LIMIT and isinstance(exc, RateLimited):
            exc.retry_after = max(self.budget.block(m) for m in methods)
            self.ctx.on_throttle("operation_time_limit")
            log.warning("bitrix24_method_blocked", methods=sorted(methods), wait_s=round(exc.retry_after))
        return exc  # expired_token: _request refreshes and repeats


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
