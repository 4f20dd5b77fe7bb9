"""Staying inside Bitrix24's two limits.

1. The request-rate leaky bucket (2 req/s, 50 burst; Enterprise 5/250) is counted per *portal* and
   source IP, so every source of this process that talks to one portal shares one
   :class:`~segsync.http.RateLimiter` (:func:`portal_limiter`).
2. The per-method "operating" budget (≈480 s of server time per method per 10 minutes, per webhook
   or app) is reported in every ``time`` block. :class:`MethodBudget` remembers the latest figure per
   method and holds a method back until ``operating_reset_at`` when it is nearly spent, or after the
   server answered ``429 OPERATION_TIME_LIMIT``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from connectors.bitrix24.wire import Timing
from segsync.http import RateLimiter

#: Wait this long for a blocked method when no reset time is known (operating buckets are 1 minute).
UNKNOWN_RESET_WAIT = 60.0

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RateLimiter]] = weakref.WeakKeyDictionary()
_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, MethodBudget]] = weakref.WeakKeyDictionary()


#: Share of the portal's burst the client leaves unused. The portal counts a request when it *arrives*; arrivals
#: jitter (network, a busy event loop), so a client that runs the bucket exactly full meets an occasional
#: QUERY_LIMIT_EXCEEDED in steady state (measured: 1 in ~300 requests on the reliability suite's 3,000-customer
#: portal). A few slots of slack absorb seconds of jitter and cost nothing at the steady rate.
HEADROOM = 0.1


def client_burst(burst: int) -> int:
    """The burst the client allows itself: the portal's, less :data:`HEADROOM` (at least one request)."""
    return max(1, burst - max(1, round(burst * HEADROOM)))


def portal_limiter(portal: str, rate: float, burst: int) -> RateLimiter:
    """The one limiter of ``portal`` (a host name) in the running event loop; ``burst`` is the portal's."""
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    if portal not in per_loop:
        per_loop[portal] = RateLimiter(rate, client_burst(burst))
    return per_loop[portal]


def shared_budget(key: str, limit_seconds: float) -> MethodBudget:
    """The operating budget of one webhook/app (``key``) in the running event loop."""
    per_loop = _budgets.setdefault(asyncio.get_running_loop(), {})
    if key not in per_loop:
        per_loop[key] = MethodBudget(limit_seconds)
    return per_loop[key]


@dataclass
class _MethodState:
    operating: float = 0.0
    reset_at: float | None = None  # local clock
    blocked_until: float = 0.0  # local clock


class MethodBudget:
    """Per-method server-time budget, fed by ``time.operating`` of every answer and batch sub-call.

    ``margin`` keeps a reserve: one more heavy batch must still fit under the limit, or the server
    blocks the method for up to ten minutes.
    """

    def __init__(self, limit_seconds: float, *, margin: float = 0.15, clock: Callable[[], float] = time.time):
        self.limit = limit_seconds
        self.margin = margin
        self._clock = clock
        self._methods: dict[str, _MethodState] = {}

    def _state(self, method: str) -> _MethodState:
        return self._methods.setdefault(method, _MethodState())

    def observe(self, method: str, timing: Timing) -> None:
        """Record what the server said about ``method``; its clock is mapped onto ours."""
        if timing.operating is None:
            return
        state = self._state(method)
        state.operating = timing.operating
        if timing.operating_reset_at is not None:
            skew = (timing.finish - self._clock()) if timing.finish is not None else 0.0
            state.reset_at = timing.operating_reset_at - skew

    def block(self, method: str) -> float:
        """The server refused ``method`` (429): hold it until its reset time; return the seconds to wait."""
        state = self._state(method)
        now = self._clock()
        until = state.reset_at if state.reset_at is not None and state.reset_at > now else now + UNKNOWN_RESET_WAIT
        state.blocked_until = max(state.blocked_until, until)
        state.operating = self.limit
        return state.blocked_until - now

    def delay(self, methods: Iterable[str]) -> float:
        """Seconds to wait before calling all of ``methods``."""
        now = self._clock()
        wait = 0.0
        for method in methods:
            state = self._methods.get(method)
            if state is None:
                continue
            if state.blocked_until > now:
                wait = max(wait, state.blocked_until - now)
            elif state.reset_at is not None and state.reset_at <= now:
                state.operating, state.reset_at = 0.0, None  # the window moved on; the next answer tells more
            elif state.operating >= self.limit * (1 - self.margin) and state.reset_at is not None:
                wait = max(wait, state.reset_at - now)
        return wait

    async def wait(self, methods: Iterable[str], on_wait: Callable[[float], None] | None = None) -> None:
        methods = list(methods)
        while (delay := self.delay(methods)) > 0:
            if on_wait is not None:
                on_wait(delay)
            await asyncio.sleep(min(delay, UNKNOWN_RESET_WAIT))
