"""Knobs of one emulated amoCRM / Kommo account.

Defaults follow the harsher reading of the docs (``shared/api/amocrm.md``) wherever amocrm.ru and
Kommo disagree: strict single-use refresh tokens (no Kommo grace), 100 events per page (RU) rather
than 250 (Kommo), ≤ 50 entities per write request (the SDK recommendation) rather than 250.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from segsync.sandbox.faults import FaultOptions


@dataclass
class AmoOptions:
    admin_token: str = ""  # expected value of the X-Sandbox-Admin header; empty → a random one is generated
    subdomain: str | None = None  # default: the account name
    # --- limits (K-LIM, A-REC) ---
    rate_limit_rps: float = 7.0  # requests per rolling second before 429
    block_after_violations: int = 10  # this many 429s within `block_window_seconds` → 403 block
    block_window_seconds: float = 60.0
    block_seconds: float = 900.0  # block duration is undocumented (support ticket in reality); configurable
    block_body: Literal["html", "json"] = "html"  # ISS-434: nginx HTML 403
    rate_limit_body: Literal["json", "html"] = "json"  # K-HTTP JSON with retry_after; ISS-526: gateway HTML
    retry_after_seconds: int = 300  # the `retry_after` value in the JSON 429 body (K-HTTP example)
    # --- paging ---
    max_limit: int = 250  # limit above this → 422 "Limit 250 per page"
    default_limit: int = 50
    events_max_limit: int = 100  # RU docs: 100; Kommo reference: 250
    events_order: Literal["desc", "asc"] = "desc"  # undocumented; newest first as practitioners report
    write_batch_limit: int = 50  # entities per POST/PATCH; K-LIM hard max is 250, SDK says ≤ 50
    # --- OAuth (K-OAUTH, K-LLT) ---
    access_token_ttl: int = 86_400
    refresh_token_ttl: int = 90 * 86_400
    auth_code_ttl: int = 20 * 60
    refresh_grace: bool = False  # Kommo: old refresh token stays valid until the new one is used
    long_lived_token_ttl: int = 365 * 86_400
    # --- account behaviour ---
    is_api_filter_enabled: bool = True
    filter_disabled_mode: Literal["ignore", "reject"] = "ignore"  # what filter[...] does when filtering is off
    payment_required: bool = False  # every API call → 402 (trial/paid period over)
    webhook_url: str | None = None
    webhook_timeout_seconds: float = 2.0  # K-WH: amo waits 2 s
    faults: FaultOptions = field(default_factory=FaultOptions)

    _RUNTIME_KEYS = (
        "rate_limit_rps",
        "block_after_violations",
        "block_window_seconds",
        "block_seconds",
        "block_body",
        "rate_limit_body",
        "retry_after_seconds",
        "max_limit",
        "default_limit",
        "events_max_limit",
        "events_order",
        "write_batch_limit",
        "access_token_ttl",
        "refresh_token_ttl",
        "auth_code_ttl",
        "refresh_grace",
        "long_lived_token_ttl",
        "is_api_filter_enabled",
        "filter_disabled_mode",
        "payment_required",
        "webhook_url",
        "webhook_timeout_seconds",
    )

    def update(self, values: dict[str, Any]) -> None:
        """Change knobs at run time (admin API); unknown keys raise KeyError."""
        for key, value in values.items():
            if key == "faults":
                self.faults.update(value)
                continue
            if key not in self._RUNTIME_KEYS:
                raise KeyError(key)
            current = getattr(self, key)
            if value is None or current is None:
                setattr(self, key, value)
            elif isinstance(current, bool):
                setattr(self, key, bool(value))
            else:
                setattr(self, key, type(current)(value))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["admin_token"] = "***"
        return data
