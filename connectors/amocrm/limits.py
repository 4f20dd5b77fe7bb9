"""amoCRM's limit is "7 requests per second" — a rolling second, not a leaky bucket.

A token bucket at 7/s lets 8 requests into some 1-second windows; and the server counts a request
when *it* gets to it, which can be any time between our send and its answer (a stalled server
checks a queued request late and the next one on time). Each 429 answers ``retry_after: 300`` and
repeated ones get the account blocked (403), so the limiter is conservative where it matters: a
past request counts against the rolling second until one second after its *answer* arrived (its
check happened before that), and requests are paced evenly so they do not queue at the server.
Same ``acquire``/``pause`` interface as :class:`segsync.http.RateLimiter`, plus ``release``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable


class Slot:
    """One request: counts against the window from its send until ``window`` after its answer."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended: float | None = None


class RollingWindowLimiter:
    def __init__(self, rate: float, *, window: float = 1.0, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.capacity = max(1, math.floor(rate))
        self.window = window * self.capacity / rate
        self.spacing = self.window / self.capacity
        self._clock = clock
        self._slots: deque[Slot] = deque()
        self._last_send = -math.inf
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _busy(self, now: float) -> tuple[int, float | None]:
        """(slots still counting, when the oldest finished one stops counting)."""
        while self._slots and self._slots[0].ended is not None and self._slots[0].ended + self.window <= now:
            self._slots.popleft()
        counting = 0
        free_at: float | None = None
        for slot in self._slots:
            if slot.ended is None or slot.ended + self.window > now:
                counting += 1
                if slot.ended is not None and (free_at is None or slot.ended + self.window < free_at):
                    free_at = slot.ended + self.window
        return counting, free_at

    async def acquire(self) -> Slot:
        """Wait until a request may go; hand the slot back with :meth:`release` when its answer arrived."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    delay = self._paused_until - now
                elif now < self._last_send + self.spacing:
                    delay = self._last_send + self.spacing - now
                else:
                    counting, free_at = self._busy(now)
                    if counting < self.capacity:
                        break
                    delay = (free_at - now) if free_at is not None else self.spacing / 4
                await asyncio.sleep(max(delay, 0.001))
            slot = Slot()
            self._slots.append(slot)
            self._last_send = self._clock()
            return slot

    def release(self, slot: Slot) -> None:
        if slot.ended is None:
            slot.ended = self._clock()

    def pause(self, seconds: float) -> None:
        """Hold everyone for ``seconds`` (the server said 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
