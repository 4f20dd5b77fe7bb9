"""Bitrix24's two limits (docs: limits.md).

- Leaky bucket per portal: every HTTP request adds 1; the level drains at ``drain`` per second; a
  request that would lift it above ``burst`` gets 503 QUERY_LIMIT_EXCEEDED (2/50, Enterprise 5/250).
  A ``batch`` is one request.
- Operating time per (application or webhook, method): execution seconds kept in ten one-minute
  buckets; once their sum exceeds the limit (480 s), calls of that method get 429
  OPERATION_TIME_LIMIT until the oldest bucket drops out (``operating_reset_at``, 10 min after the
  first call counted in it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

WINDOW = 600.0
BUCKET = 60.0


class LeakyBucket:
    def __init__(self, drain: float, burst: int):
        self.drain = drain
        self.burst = burst
        self.level = 0.0
        self.at = 0.0

    def admit(self, now: float, *, count_rejected: bool = False) -> bool:
        self.level = max(0.0, self.level - (now - self.at) * self.drain)
        self.at = now
        if self.level + 1 > self.burst:
            if count_rejected:
                self.level += 1
            return False
        self.level += 1
        return True

    def reset(self) -> None:
        self.level = 0.0


@dataclass
class _Bucket:
    minute: int
    first_call: float
    seconds: float


class OperatingClock:
    """Per-method execution time in a sliding 10-minute window of one-minute buckets."""

    def __init__(self, limit: float):
        self.limit = limit
        self._buckets: dict[tuple[str, str], list[_Bucket]] = defaultdict(list)

    def _live(self, key: tuple[str, str], now: float) -> list[_Bucket]:
        buckets = [b for b in self._buckets[key] if b.first_call + WINDOW > now]
        self._buckets[key] = buckets
        return buckets

    def used(self, key: tuple[str, str], now: float) -> float:
        return sum(b.seconds for b in self._live(key, now))

    def reset_at(self, key: tuple[str, str], now: float) -> int | None:
        buckets = self._live(key, now)
        return int(buckets[0].first_call + WINDOW) if buckets else None

    def blocked(self, key: tuple[str, str], now: float) -> bool:
        return self.limit > 0 and self.used(key, now) > self.limit

    def add(self, key: tuple[str, str], now: float, seconds: float) -> None:
        buckets = self._live(key, now)
        minute = int(now // BUCKET)
        if buckets and buckets[-1].minute == minute:
            buckets[-1].seconds += seconds
        else:
            buckets.append(_Bucket(minute, now, seconds))

    def reset(self) -> None:
        self._buckets.clear()
