"""Knobs of an emulated portal: plan limits, server costs, auth lifetimes and faults.

Defaults follow the docs (cloud, non-Enterprise plan). The cost coefficients model what the docs
measured ("49.9 s → 0.097 s per request" for counting 2.39M rows, php-sdk: 50-row pages 0.38–3.19 s
with count vs 0.22–0.49 s without on 100k contacts): the defaults are deliberately milder than those
extremes so benchmarks finish, yet counting and deep offsets stay clearly more expensive than
``start=-1`` ID windows. Costs are real delays and count into ``operating``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from segsync.sandbox.faults import FaultOptions


@dataclass
class Bitrix24Options:
    plan: str = "standard"  # "enterprise" → 5 req/s, burst 250
    drain_per_s: float | None = None  # override the plan's leaky-bucket drain
    burst: int | None = None  # override the plan's burst
    count_rejected: bool = False  # a rejected request also fills the bucket (harsher)
    operating_limit_s: float = 480.0  # per method and app/webhook in 10 minutes; 0 = off (self-hosted)
    # server cost model (seconds): counted into `operating` and slept for real
    cost_base_s: float = 0.0005  # every method call
    cost_per_row_s: float = 0.00001  # per returned row
    cost_count_per_row_s: float = 0.0000005  # counting `total`: × rows in the table
    cost_offset_per_row_s: float = 0.0000002  # deep `start`: × offset
    real_delays: bool = True  # sleep the modelled cost (False: account only)
    timezone_offset_hours: float = 3.0  # portal server zone; dates render as ...+03:00
    iso_filter_dates: bool = True  # False: ISO-with-offset filter values do not filter (issue #215)
    dirty_amounts: bool = False  # OPPORTUNITY as typed by people ("12 500,50"); real portals store decimals
    batch_overflow: str = "per_command"  # >50 commands: "per_command" result_error or "reject" the request
    access_token_ttl_s: int = 3600
    refresh_token_ttl_s: int = 180 * 86_400  # older docs: 28 days
    refresh_invalidates_access: bool = True  # older docs: refreshing kills the previous access token too
    auth_code_ttl_s: int = 30
    commercial_plan: bool = True  # False: 403 ACCESS_DENIED "REST API is available only on commercial plans"
    overload_block: bool = False  # True: 503 OVERLOAD_LIMIT (manual block)
    moved_to: str | None = None  # absolute URL prefix of the portal's new address → 302 for every REST call
    faults_after_processing: float = 0.5  # share of injected 5xx/timeouts that hit after the call ran
    events_on_api_writes: bool = True  # REST updates fire outgoing-webhook events like UI edits do
    faults: FaultOptions = field(default_factory=FaultOptions)

    @property
    def bucket(self) -> tuple[float, int]:
        drain, burst = (5.0, 250) if self.plan == "enterprise" else (2.0, 50)
        return (drain if self.drain_per_s is None else self.drain_per_s, self.burst or burst)

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key == "faults":
                self.faults.update(value)
                continue
            if key not in names:
                raise KeyError(key)
            current = getattr(self, key)
            if value is None or value == "":
                setattr(self, key, None)
            elif current is None:
                numeric = {"drain_per_s": float, "burst": int}.get(key, str)
                setattr(self, key, numeric(value))
            elif isinstance(current, bool):
                setattr(self, key, value in (True, 1, "1", "true", "Y", "y", "yes"))
            else:
                setattr(self, key, type(current)(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
