"""One emulated Bitrix24 portal: CRM data, written state, credentials, limits and counters."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from segsync.sandbox.bitrix24 import entities as E
from segsync.sandbox.bitrix24.clock import Clock
from segsync.sandbox.bitrix24.limits import LeakyBucket, OperatingClock
from segsync.sandbox.bitrix24.options import Bitrix24Options
from segsync.sandbox.bitrix24.table import EntityTable
from segsync.sandbox.faults import FaultInjector
from segsync.sandbox.world import World

SCOPES = ("crm", "task", "user", "basic")


@dataclass
class Webhook:
    user_id: int
    code: str
    scopes: tuple[str, ...] = SCOPES
    expires_at: float | None = None


@dataclass
class AccessToken:
    token: str
    user_id: int
    expires_at: float
    refresh_token: str
    revoked: bool = False
    uses: int = 0


@dataclass
class RefreshToken:
    token: str
    user_id: int
    expires_at: float
    used: bool = False


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    application_token: str
    redirect_uri: str = "http://127.0.0.1/segsync/oauth/callback"
    scopes: tuple[str, ...] = ("crm", "task", "user")


@dataclass
class Counters:
    requests: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    query_limit_exceeded: int = 0
    operation_time_limit: int = 0
    blocked_403: int = 0
    events_sent: int = 0
    events_failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {m: {str(s): n for s, n in c.items()} for m, c in self.requests.items()},
            "query_limit_exceeded": self.query_limit_exceeded,
            "operation_time_limit": self.operation_time_limit,
            "blocked_403": self.blocked_403,
            "events_sent": self.events_sent,
            "events_failed": self.events_failed,
        }


class Bitrix24Portal:
    """State behind one portal's REST API. Build with a :class:`World`; serve with ``build_app``."""

    kind = "bitrix24"

    def __init__(self, world: World, *, name: str = "portal", options: Bitrix24Options | None = None):
        self.name = name
        self.world = world
        self.options = options or Bitrix24Options()
        o = self.options
        self.clock = Clock(o.timezone_offset_hours)
        self.contacts = E.build_contacts(world, self.clock)
        self.companies = E.build_companies(world, self.clock)
        self.deals, self.deal_contact_offsets, self.deal_contact_ids = E.build_deals(
            world, self.clock, dirty_amounts=o.dirty_amounts
        )
        self.deal_contact_override: dict[int, list[int]] = {}
        self.activities = E.build_activities(world, self.clock)
        self.users = [
            {
                "id": int(r["id"]),
                "name": r["name"],
                "email": r["email"],
                "active": bool(r["active"]),
                "is_admin": bool(r["is_admin"]),
            }
            for r in world.managers.iter_rows(named=True)
        ]
        self.userfields: dict[str, list[dict[str, Any]]] = {"contact": [], "company": [], "deal": []}
        self.next_userfield_id = 100
        self.next_enum_id = 1000
        self.tasks: list[dict[str, Any]] = []
        self.next_task_id = 1
        self.member_id = hashlib.md5(f"{name}:{world.seed}".encode()).hexdigest()
        self.clock_offset = 0.0
        # credentials
        self.webhooks: dict[str, Webhook] = {}
        main = self.add_webhook(user_id=1)
        self.webhook_code = main.code
        self.app = OAuthApp(
            client_id=f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}",
            client_secret=secrets.token_urlsafe(32),
            application_token=secrets.token_hex(16),
        )
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.auth_codes: dict[str, tuple[float, int]] = {}
        self.initial_tokens = self.issue_tokens(user_id=1)
        # limits, faults, counters, events
        drain, burst = o.bucket
        self.bucket = LeakyBucket(drain, burst)
        self.operating = OperatingClock(o.operating_limit_s)
        self.faults = FaultInjector(o.faults)
        self.counters = Counters()
        self.webhook_target: str | None = None
        self.event_handler_id = 1
        self.pending_events: list[dict[str, Any]] = []
        self.base_url = ""  # set by the server when the port is known
        self.oauth_server = ""

    # -- time --------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def parse_date(self, value: Any) -> float | None:
        return self.clock.parse(value, accept_iso_offset=self.options.iso_filter_dates)

    # -- credentials -----------------------------------------------------------------------------
    def add_webhook(
        self, *, user_id: int, scopes: tuple[str, ...] = SCOPES, expires_at: float | None = None
    ) -> Webhook:
        hook = Webhook(user_id=user_id, code=secrets.token_hex(8), scopes=tuple(scopes), expires_at=expires_at)
        self.webhooks[hook.code] = hook
        return hook

    def issue_tokens(self, *, user_id: int) -> dict[str, Any]:
        now = self.now()
        access = secrets.token_hex(16)
        refresh = secrets.token_hex(16)
        self.access_tokens[access] = AccessToken(access, user_id, now + self.options.access_token_ttl_s, refresh)
        self.refresh_tokens[refresh] = RefreshToken(refresh, user_id, now + self.options.refresh_token_ttl_s)
        return {"access_token": access, "refresh_token": refresh, "expires": int(now + self.options.access_token_ttl_s)}

    def expire_tokens(self) -> int:
        now = self.now()
        n = 0
        for tok in self.access_tokens.values():
            if tok.expires_at > now:
                tok.expires_at = now - 1
                n += 1
        return n

    def user(self, user_id: int) -> dict[str, Any] | None:
        return next((u for u in self.users if u["id"] == user_id), None)

    # -- entities ----------------------------------------------------------------------------------
    def table(self, entity: str) -> EntityTable:
        return {"contact": self.contacts, "company": self.companies, "deal": self.deals, "activity": self.activities}[
            entity
        ]

    def deal_contacts(self, row: int) -> list[int]:
        return self.deal_contacts_page(np.array([row], dtype=np.int64))[0]

    def deal_contacts_page(self, rows: np.ndarray) -> list[list[int]]:
        """Contact ids of each deal row (``contactIds``), gathered from the CSR arrays in one numpy pass
        rather than a slice per row; links written later (``CONTACT_IDS``) win, deals created after the
        build have none unless written."""
        offsets = self.deal_contact_offsets
        built = np.where(rows + 1 < offsets.size, rows, 0)
        starts = np.where(rows + 1 < offsets.size, offsets[built], 0)
        lens = np.where(rows + 1 < offsets.size, offsets[built + 1] - starts, 0)
        flat = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
        values = iter(self.deal_contact_ids[flat].tolist())
        out = [list(islice(values, n)) for n in lens.tolist()]
        if self.deal_contact_override:
            for i, deal_id in enumerate(self.deals.ids[rows].tolist()):
                if deal_id in self.deal_contact_override:
                    out[i] = self.deal_contact_override[deal_id]
        return out

    def uf_defs(self, entity: str) -> list[dict[str, Any]]:
        return self.userfields.get(entity, [])

    def uf_names(self, entity: str) -> list[str]:
        return [d["FIELD_NAME"] for d in self.uf_defs(entity)]

    def multiple_ufs(self, entity: str) -> set[str]:
        return {d["FIELD_NAME"] for d in self.uf_defs(entity) if d["MULTIPLE"] == "Y"}

    def next_id(self, table: EntityTable) -> int:
        return int(table.ids.max()) + 1 if table.n else 1

    # -- events ------------------------------------------------------------------------------------
    def emit(self, entity: str, action: str, entity_id: int) -> None:
        """Queue an outgoing-webhook event (ONCRMDEALUPDATE, ...); the app's sender posts it."""
        if not self.webhook_target or entity not in ("contact", "company", "deal"):
            return
        self.pending_events.append(
            {
                "event": f"ONCRM{entity.upper()}{action.upper()}",
                "event_handler_id": str(self.event_handler_id),
                "data[FIELDS][ID]": str(entity_id),
                "ts": str(int(self.now())),
                "auth[domain]": self.domain,
                "auth[client_endpoint]": f"{self.base_url}/rest/",
                "auth[server_endpoint]": f"{self.oauth_server}rest/",
                "auth[member_id]": self.member_id,
                "auth[application_token]": self.app.application_token,
            }
        )

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[-1] if self.base_url else f"{self.name}.bitrix24.local"

    # -- summaries -------------------------------------------------------------------------------------
    def client_info(self, base_url: str, *, oauth_server: str | None = None) -> dict[str, Any]:
        """Everything a client needs to talk to this portal (printed by ``segsync sandbox serve``)."""
        self.base_url = base_url.rstrip("/")
        root = self.base_url.rsplit("/b24/", 1)[0]
        self.oauth_server = oauth_server or f"{root}/b24oauth/"
        return {
            "name": self.name,
            "portal_url": self.base_url,
            "webhook_url": f"{self.base_url}/rest/1/{self.webhook_code}/",
            "oauth": {
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "redirect_uri": self.app.redirect_uri,
                "oauth_server": self.oauth_server,
                "token_url": f"{self.oauth_server}oauth/token/",
                "portal_url": self.base_url,
                "client_endpoint": f"{self.base_url}/rest/",
                "access_token": self.initial_tokens["access_token"],
                "refresh_token": self.initial_tokens["refresh_token"],
                "expires": self.initial_tokens["expires"],
            },
            "application_token": self.app.application_token,
            "member_id": self.member_id,
            "admin_url": f"{self.base_url}/_admin/",
            "counts": {
                "contacts": len(self.contacts),
                "companies": len(self.companies),
                "deals": len(self.deals),
                "users": len(self.users),
            },
        }

    def admin_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "counters": self.counters.as_dict(),
            "faults_injected": dict(self.faults.injected),
            "entities": {
                "contacts": len(self.contacts),
                "companies": len(self.companies),
                "deals": len(self.deals),
                "activities": len(self.activities),
                "tasks": len(self.tasks),
                "userfields": {k: len(v) for k, v in self.userfields.items()},
            },
            "bucket_level": round(self.bucket.level, 3),
            "clock_offset": self.clock_offset,
            "webhook_target": self.webhook_target,
            "options": self.options.as_dict(),
        }

    def written_fields(self, entity: str, ids: list[int] | None = None) -> dict[str, dict[str, Any]]:
        """UF values per entity id (what a write-back left behind)."""
        t = self.table(entity)
        out: dict[str, dict[str, Any]] = {}
        for name, values in t.uf.items():
            for row, value in values.items():
                eid = int(t.ids[row])
                if t.deleted[row] or (ids is not None and eid not in ids):
                    continue
                out.setdefault(str(eid), {})[name] = value
        return out


def rows_array(rows: list[int]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64)
