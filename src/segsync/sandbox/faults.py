"""Fault-injection knobs shared by both emulators (each renders faults in its own CRM's shapes)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

Fault = Literal["5xx", "429", "html", "timeout"]


@dataclass
class FaultOptions:
    """Shares are probabilities per request (0..1); all off by default."""

    error_5xx: float = 0.0  # a 500/502/503/504 with the CRM's JSON error body
    rate_429: float = 0.0  # a spurious rate-limit answer in the CRM's shape
    html: float = 0.0  # an HTML error page (nginx style) instead of JSON, status 502/503
    timeout: float = 0.0  # hang for `timeout_seconds` before answering 504
    timeout_seconds: float = 65.0
    latency_ms: float = 0.0  # added to every request
    token_expiry_every: int = 0  # expire the current access token after this many requests (0 = never)
    seed: int = 0

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if not hasattr(self, key):
                raise KeyError(key)
            setattr(self, key, type(getattr(self, key))(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Decides, deterministically from a seed, which request gets which fault."""

    def __init__(self, options: FaultOptions | None = None):
        self.options = options or FaultOptions()
        self._rng = random.Random(self.options.seed)
        self.injected: dict[str, int] = {"5xx": 0, "429": 0, "html": 0, "timeout": 0}

    def reseed(self) -> None:
        self._rng = random.Random(self.options.seed)

    def decide(self) -> Fault | None:
        o = self.options
        roll = self._rng.random()
        for name, share in (("5xx", o.error_5xx), ("429", o.rate_429), ("html", o.html), ("timeout", o.timeout)):
            if roll < share:
                self.injected[name] += 1
                return name  # type: ignore[return-value]
            roll -= share
        return None
