"""One emulated amoCRM account: entity tables, dictionaries, logs, auth, limits and counters."""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from segsync.sandbox.amocrm.auth import AuthState
from segsync.sandbox.amocrm.events import EventLog
from segsync.sandbox.amocrm.limits import Limiter
from segsync.sandbox.amocrm.links import Links
from segsync.sandbox.amocrm.mapping import Mapped, account_id_for, map_world
from segsync.sandbox.amocrm.model import KINDS, SINGULAR, EntityTable, Kind, Record
from segsync.sandbox.amocrm.options import AmoOptions
from segsync.sandbox.amocrm.tags import TagDict
from segsync.sandbox.amocrm.tasks import TaskStore
from segsync.sandbox.amocrm.webhooks import WebhookSender, payload
from segsync.sandbox.faults import FaultInjector
from segsync.sandbox.world import World


class AmoAccount:
    """State of one account, built from a World. Mutations go through the methods below so that
    `updated_at`, the events log, caches and outgoing webhooks stay consistent."""

    def __init__(self, world: World, *, name: str, options: AmoOptions | None = None):
        self.name = name
        self.options = options or AmoOptions()
        if not self.options.admin_token:
            self.options.admin_token = secrets.token_urlsafe(24)
        self.subdomain = self.options.subdomain or re.sub(r"[^a-z0-9-]", "", name.lower()) or "sandbox"
        self.account_id = account_id_for(name)
        self.currency = world.base_currency  # amoCRM keeps one account currency (`currency` on /account)
        self.created_at = int(world.now.timestamp()) - 5 * 365 * 86400
        self.clock_offset = 0.0
        self.public_base: str | None = None
        mapped: Mapped = map_world(world)
        self.users = mapped.users
        self.pipelines = mapped.pipelines
        self.fields = mapped.fields
        self.admin_user_id = mapped.admin_user_id
        self.tables: dict[Kind, EntityTable] = {
            "leads": EntityTable("leads", mapped.leads),
            "contacts": EntityTable("contacts", mapped.contacts),
            "companies": EntityTable("companies", mapped.companies),
        }
        self.links = Links()
        for r in mapped.leads:
            self.links.add_lead(r)
        for r in mapped.contacts:
            self.links.add_contact(r)
        self.tags: dict[Kind, TagDict] = {
            "leads": TagDict("leads", 100_001),
            "contacts": TagDict("contacts", 200_001),
            "companies": TagDict("companies", 300_001),
        }
        self.tasks = TaskStore(mapped.tasks, first_new_id=55_000_000)
        self.notes: dict[int, dict[str, Any]] = {}
        self._next_note = 70_000_000
        self.events = EventLog(seed=world.seed)
        self.auth = AuthState(self.options, self.account_id, self.admin_user_id)
        self.limiter = Limiter(self.options)
        self.faults = FaultInjector(self.options.faults)
        self.webhooks = WebhookSender()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.api_requests = 0
        self.filters_ignored = 0
        self._client_info: dict[str, Any] | None = None
        self.statuses = {s.id for p in self.pipelines for s in p.statuses}
        self.pipeline_statuses = {p.id: {s.id for s in p.statuses} for p in self.pipelines}
        self.user_ids = {u.id for u in self.users}

    # --- time ---
    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    # --- what a client needs ---
    def client_info(self, base_url: str) -> dict[str, Any]:
        base = base_url.rstrip("/")
        if self._client_info is None or self._client_info["base_url"] != base:
            self.public_base = base
            domain = urlsplit(base).netloc
            now = self.now()
            pair = self.auth.mint_pair(now, domain)
            self._client_info = {
                "base_url": base,
                "access_token": pair["access_token"],
                "refresh_token": pair["refresh_token"],
                "expires_in": pair["expires_in"],
                "client_id": self.auth.client_id,
                "client_secret": self.auth.client_secret,
                "redirect_uri": self.auth.redirect_uri,
                "long_lived_token": self.auth.mint_long_lived(now, domain),
                "account_id": self.account_id,
                "subdomain": self.subdomain,
                "authorization_code": self.auth.mint_code(now),
            }
        return dict(self._client_info)

    # --- mutations shared by the API and the admin routes ---
    def touch(self, kind: Kind, r: Record, actor: int, *, at: int | None = None) -> None:
        r.updated_at = self.now() if at is None else at
        r.updated_by = actor
        self.tables[kind].touch(r)

    def log(
        self,
        type_: str,
        kind: str,
        entity_id: int,
        actor: int,
        after: list[Any] | None = None,
        before: list[Any] | None = None,
    ) -> None:
        singular = SINGULAR.get(kind, kind)
        self.events.add(type_, singular, entity_id, by=actor, at=self.now(), after=after, before=before)

    def notify(self, kind: Kind, r: Record, action: str, extra: dict[str, Any] | None = None) -> None:
        url = self.options.webhook_url
        if url:
            self.webhooks.submit(url, payload(self, kind, r, action, extra), self.options.webhook_timeout_seconds)

    def delete(self, kind: Kind, r: Record, actor: int, *, merged: bool = False) -> None:
        r.is_deleted = True
        r.merged = merged
        if kind == "leads":
            self.links.remove_lead(r)
        elif kind == "contacts":
            self.links.remove_contact(r)
        self.touch(kind, r, actor)
        if not merged:
            self.log(f"{SINGULAR[kind]}_deleted", kind, r.id, actor)
            self.notify(kind, r, "delete")

    def restore(self, kind: Kind, r: Record, actor: int) -> None:
        r.is_deleted = False
        if kind == "leads":
            self.links.add_lead(r)
        elif kind == "contacts":
            self.links.add_contact(r)
        self.touch(kind, r, actor)
        self.log(f"{SINGULAR[kind]}_restored", kind, r.id, actor)
        self.notify(kind, r, "restore")

    def merge_contacts(self, keep: Record, gone: Record, actor: int) -> None:
        """Move `gone`'s leads to `keep`, delete `gone` (not restorable), log `entity_merged` for `gone`."""
        leads = self.tables["leads"]
        for lead_id in self.links.leads_of("contacts", gone.id):
            lead = leads.get(lead_id)
            if lead is None:
                continue
            self.links.remove_lead(lead)
            ids = [keep.id if c == gone.id else c for c in lead.contact_ids]
            lead.contact_ids = tuple(dict.fromkeys(ids))
            self.links.add_lead(lead)  # link changes do not bump updated_at (UNVERIFIED either way)
        if keep.company_id is None and gone.company_id is not None:
            keep.company_id = gone.company_id
            self.links.add_contact(keep)
        keep.tags = tuple(dict.fromkeys(keep.tags + gone.tags))
        self.delete("contacts", gone, actor, merged=True)
        self.touch("contacts", keep, actor)
        self.log("entity_merged", "contacts", gone.id, actor)
        self.notify("contacts", gone, "delete")
        self.notify("contacts", keep, "update")

    # --- notes ---
    def new_note_id(self) -> int:
        self._next_note += 1
        return self._next_note

    # --- counters ---
    def state(self) -> dict[str, Any]:
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            by_endpoint.setdefault(endpoint, {})[str(status)] = n
        return {
            "account": {"id": self.account_id, "subdomain": self.subdomain, "name": self.name},
            "now": self.now(),
            "requests": by_endpoint,
            "api_requests": self.api_requests,
            "filters_ignored": self.filters_ignored,
            "rate_limited_429": self.limiter.rejected_429,
            "blocked_403": self.limiter.rejected_403,
            "blocks": self.limiter.blocks,
            "blocked_for_seconds": round(self.limiter.blocked_for(), 3),
            "faults_injected": dict(self.faults.injected),
            "token_refreshes": self.auth.refreshes,
            "code_exchanges": self.auth.exchanges,
            "webhooks": {
                "sent": self.webhooks.sent,
                "failed": self.webhooks.failed,
                "target": self.options.webhook_url,
            },
            "entities": {k: self.tables[k].live_count() for k in KINDS},
            "deleted": {k: int(self.tables[k].deleted.sum()) for k in KINDS},
            "events": len(self.events.events),
            "tasks": len(self.tasks.by_id),
            "notes": len(self.notes),
            "options": self.options.as_dict(),
        }
