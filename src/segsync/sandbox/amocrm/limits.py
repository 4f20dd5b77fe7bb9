"""Request-rate limit (7 req/s → 429) and the escalation to a 403 block after repeated violations (K-LIM).

One limiter per account: the sandbox serves one integration per account, so the RU "per
integration" and the Kommo "per IP" scopes coincide here. Rejected requests do not count toward
the rolling second; each 429 is a violation, and enough violations within the window block every
request (API and OAuth alike) for ``block_seconds``.
"""

from __future__ import annotations

import time
from collections import deque

from segsync.sandbox.amocrm.options import AmoOptions


class Limiter:
    def __init__(self, options: AmoOptions):
        self.options = options
        self._window: deque[float] = deque()
        self._violations: deque[float] = deque()
        self.blocked_until = 0.0
        self.rejected_429 = 0
        self.rejected_403 = 0
        self.blocks = 0

    def check(self, now: float | None = None) -> int | None:
        """None when the request may proceed, else the status to answer (403 or 429)."""
        now = time.monotonic() if now is None else now
        o = self.options
        if now < self.blocked_until:
            self.rejected_403 += 1
            return 403
        window = self._window
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= o.rate_limit_rps:
            self.rejected_429 += 1
            v = self._violations
            v.append(now)
            while v and now - v[0] > o.block_window_seconds:
                v.popleft()
            if o.block_after_violations > 0 and len(v) >= o.block_after_violations:
                self.blocked_until = now + o.block_seconds
                self.blocks += 1
                v.clear()
            return 429
        window.append(now)
        return None

    def unblock(self) -> None:
        self.blocked_until = 0.0
        self._violations.clear()
        self._window.clear()

    def blocked_for(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.blocked_until - now)
