"""The amoCRM / Kommo connector: the contract glued onto auth, transport, paging, mapping and writes.

amocrm.ru and kommo.com run the same API v4 on separate installations; everything here is relative
to the account's own ``base_url``, so one class serves both.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from connectors.amocrm import events, webhook
from connectors.amocrm.auth import LongLivedAuth, OAuthAuth
from connectors.amocrm.mapping import (
    ENTITY_KIND,
    MappingOptions,
    lead_contacts,
    map_customer,
    map_deal,
    map_pipelines,
    map_touch,
    map_user,
    task_customer,
)
from connectors.amocrm.options import AmoCRMSource
from connectors.amocrm.paging import FAR_FUTURE, Batch, UpdatedAtScan, desc_scan, embedded, pages
from connectors.amocrm.transport import Reply, Transport
from connectors.amocrm.writes import Writer
from segsync.contract import (
    ChangeHint,
    ConnectorContext,
    Currency,
    CustomerKind,
    CustomerRef,
    Entity,
    LabelChange,
    Page,
    Rejected,
    RemoteTask,
    TaskRequest,
    WriteResult,
)
from segsync.errors import FatalCrmError, RecordRejected
from segsync.http import make_client
from segsync.logs import get_logger

log = get_logger("connectors.amocrm")

#: normalized entity → (API path, _embedded key, ``with``)
LISTS: dict[str, tuple[str, str, str | None]] = {
    "contacts": ("/api/v4/contacts", "contacts", None),
    "companies": ("/api/v4/companies", "companies", None),
    "deals": ("/api/v4/leads", "leads", "contacts,source_id"),
}
LOOKUP_BATCH = 50


class AmoCRMConnector:
    """One amoCRM / Kommo account. ``async with`` reads the account once (id, currency, filter support)."""

    def __init__(self, source: AmoCRMSource, ctx: ConnectorContext, *, clock: Any = time.time):
        self.source = source
        self.ctx = ctx
        self.clock = clock
        self.client = make_client(base_url=source.base_url, timeout=ctx.timeout, user_agent=ctx.user_agent)
        if source.long_lived_token is not None:
            self.auth: LongLivedAuth | OAuthAuth = LongLivedAuth(
                source.long_lived_token.get_secret_value(), source=source.name, clock=clock
            )
        else:
            assert source.oauth is not None
            self.auth = OAuthAuth(
                ctx.tokens, source.oauth, source.base_url, self.client, source=source.name,
                refresh_before=source.refresh_before,
                rate=source.rate_limit, clock=clock,
                on_reauth=lambda: ctx.on_request("POST /oauth2/access_token", "reauthorization_required"),
            )  # fmt: skip
        self.transport = Transport(
            source.base_url, self.auth, ctx, rate=source.rate_limit, source=source.name, client=self.client
        )
        self.writer = Writer(self.transport, prefix=getattr(ctx, "label_prefix", "seg:"), task_types=source.task_types)
        self.account: dict[str, Any] = {}
        self.filter_enabled = True

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> AmoCRMConnector:
        try:
            await self.load_account()
        except BaseException:
            await self.client.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def load_account(self) -> dict[str, Any]:
        reply = await self.transport.get("/api/v4/account", {"with": "is_api_filter_enabled"})
        account = reply.body if isinstance(reply.body, dict) else {}
        expected = self.source.account_id
        if expected is not None and account.get("id") is not None and str(account["id"]) != str(expected):
            raise FatalCrmError(
                f"the token belongs to account {account['id']}, not {expected}: wrong token or base_url",
                source=self.source.name,
            )
        self.account = account
        # Missing flag → assume on (current Kommo docs no longer call filtering "alpha").
        self.filter_enabled = account.get("is_api_filter_enabled") is not False
        if not self.filter_enabled:
            log.warning("amocrm_api_filter_disabled", source=self.source.name, fallback="ordered scan")
        return account

    async def keep_alive(self) -> dict[str, Any]:
        """For the daemon to run daily: refreshes an OAuth pair at least weekly (an idle source keeps its
        3-month refresh token) and warns ahead of a long-lived token's expiry."""
        return await self.auth.keep_alive()

    @property
    def requests(self) -> int:
        return self.transport.requests

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self.transport.get(path, params)

    def _options(self) -> MappingOptions:
        return MappingOptions(
            phone_region=self.source.phone_region, currency=self.account.get("currency"), fields=self.source.fields
        )

    # --- pull -----------------------------------------------------------------------------------

    def entities(self) -> Sequence[Entity]:
        base: list[Entity] = ["users", "stages", "currencies", "companies", "contacts", "deals"]
        return [*base, "touches"] if self.source.touches else base

    async def pull(self, entity: Entity, cursor: dict[str, Any] | None, *, full: bool = False) -> AsyncIterator[Page]:
        if entity == "users":
            async for items in pages(self._get, "/api/v4/users", "users", {}):
                yield self._mapped("users", items, lambda raw: map_user(raw))
        elif entity == "stages":
            reply = await self._get("/api/v4/leads/pipelines", {})
            pipelines = embedded(reply, "pipelines")
            try:
                yield Page("stages", map_pipelines(pipelines))
            except RecordRejected as exc:
                yield Page("stages", rejected=[Rejected("stages", None, exc.reason, pipelines)])
        elif entity == "currencies":
            code = self.account.get("currency")
            if code:
                yield Page("currencies", [Currency(code=str(code), rate=1, is_base=True, raw={"currency": code})])
        elif entity in LISTS:
            async for page in self._pull_list(entity, cursor, full):
                yield page
        elif entity == "touches":
            async for page in self._pull_touches(cursor, full):
                yield page

    def _mapped(self, entity: Entity, items: list[dict[str, Any]], fn: Any, kind: CustomerKind | None = None) -> Page:
        page = Page(entity, entity_kind=kind)
        for raw in items:
            try:
                page.records.append(fn(raw))
            except RecordRejected as exc:
                rid = raw.get("id")
                page.rejected.append(Rejected(entity, str(rid) if rid is not None else None, exc.reason, raw))
        return page

    def _scan(self, path: str, key: str, params: dict[str, Any], lo: int | None, *, parallel: bool) -> Any:
        now = int(self.clock())
        if self.filter_enabled:
            concurrency = self.source.concurrency if parallel else 1
            return UpdatedAtScan(self._get, path, key, params, lo or 0, now, concurrency=concurrency)
        return desc_scan(self._get, path, key, params, lo)

    async def _pull_list(self, entity: Entity, cursor: dict[str, Any] | None, full: bool) -> AsyncIterator[Page]:
        path, key, with_ = LISTS[entity]
        previous = None if full or not cursor else cursor.get("updated_at")
        previous = int(previous) if isinstance(previous, int | float) else None
        overlap = int(self.source.overlap.total_seconds())
        lo = None if previous is None else max(0, previous - overlap)
        params = {"with": with_} if with_ else {}
        kind = ENTITY_KIND.get(entity)
        opts = self._options()
        fn = (lambda raw: map_customer(raw, kind, opts)) if kind else (lambda raw: map_deal(raw, opts))
        batch: Batch
        async for batch in self._scan(path, key, params, lo, parallel=previous is None):
            page = self._mapped(entity, batch.items, fn, kind)
            upto = batch.safe_upto if (batch.final or self.filter_enabled) else None
            if upto is not None or (batch.final and previous is not None):
                value = max(v for v in (upto, previous) if v is not None)
                page.cursor = {"updated_at": value}
            if page.records or page.rejected or page.cursor is not None:
                yield page

    async def _pull_touches(self, cursor: dict[str, Any] | None, full: bool) -> AsyncIterator[Page]:
        """Tasks as touches — one list for every entity type, 250 a page, filtered by ``updated_at``.

        Tasks cannot be ordered by ``updated_at``; ordered by id with an open upper bound, an update moves
        no task and drops none from the window, so offsets stay valid. The cursor moves at the end.
        """
        previous = None if full or not cursor else cursor.get("updated_at")
        previous = int(previous) if isinstance(previous, int | float) else None
        overlap = int(self.source.overlap.total_seconds())
        params = {
            "filter[updated_at][from]": 0 if previous is None else max(0, previous - overlap),
            "filter[updated_at][to]": FAR_FUTURE,
            "order[id]": "asc",
        }
        newest = previous
        types = self.source.task_types.model_dump()
        async for items in pages(self._get, "/api/v4/tasks", "tasks", params):
            owners = await self._lead_owners(items)
            page = Page("touches")
            for raw in items:
                stamp = raw.get("updated_at")
                if isinstance(stamp, int) and (newest is None or stamp > newest):
                    newest = stamp
                try:
                    bound = task_customer(raw)
                    if bound is None:
                        continue
                    entity_type, entity_id = bound
                    owner = (
                        (ENTITY_KIND[entity_type], entity_id) if entity_type in ENTITY_KIND else owners.get(entity_id)
                    )
                    if owner is None:
                        continue  # a lead without contact/company, or deleted since
                    page.records.append(map_touch(raw, owner[0], owner[1], types))
                except RecordRejected as exc:
                    page.rejected.append(Rejected("touches", f"task:{raw.get('id')}", exc.reason, raw))
            yield page
        if newest is not None:
            yield Page("touches", cursor={"updated_at": newest})

    async def _lead_owners(self, tasks: list[dict[str, Any]]) -> dict[str, tuple[CustomerKind, str]]:
        """Customer of each lead a task is bound to, per the source's ``customer`` policy."""
        lead_ids = sorted({str(t.get("entity_id")) for t in tasks if t.get("entity_type") == "leads"})
        owners: dict[str, tuple[CustomerKind, str]] = {}
        for start in range(0, len(lead_ids), LOOKUP_BATCH):
            chunk = lead_ids[start : start + LOOKUP_BATCH]
            params = {"filter[id][]": chunk, "with": "contacts"}
            async for leads in pages(self._get, "/api/v4/leads", "leads", params):
                for lead in leads:
                    owner = self._lead_customer(lead)
                    if owner is not None:
                        owners[str(lead.get("id"))] = owner
        return owners

    def _lead_customer(self, lead: Mapping[str, Any]) -> tuple[CustomerKind, str] | None:
        emb = lead.get("_embedded") if isinstance(lead.get("_embedded"), Mapping) else {}
        companies = emb.get("companies") or []
        company = str(companies[0]["id"]) if companies and isinstance(companies[0], Mapping) else None
        contacts = lead_contacts(lead)
        contact = contacts[0] if contacts else None
        if self.source.customer == "contact":
            order = [("contact", contact), ("company", company)]
        else:
            order = [("company", company), ("contact", contact)]
        for kind, rid in order:
            if rid:
                return kind, rid  # type: ignore[return-value]
        return None

    async def list_ids(self, entity: Entity) -> AsyncIterator[list[str]]:
        """Every live id, for the deletion sweep. Keyset over ``updated_at``, then the window updated during
        the sweep once more: a record edited mid-sweep moves forward, never out of the listing."""
        if entity not in LISTS:
            return
        path, key, _with = LISTS[entity]
        started = int(self.clock())
        if not self.filter_enabled:
            async for items in pages(self._get, path, key, {"order[id]": "asc"}):
                yield [str(i["id"]) for i in items if i.get("id") is not None]
            return
        scans = [
            UpdatedAtScan(self._get, path, key, {}, 0, started, concurrency=self.source.concurrency),
            UpdatedAtScan(self._get, path, key, {}, max(0, started - int(self.source.overlap.total_seconds())),
                          FAR_FUTURE),
        ]  # fmt: skip
        for scan in scans:
            async for batch in scan:
                if batch.items:
                    yield [str(i["id"]) for i in batch.items if i.get("id") is not None]

    async def deletions(self, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        overlap = int(self.source.overlap.total_seconds())
        async for page in events.deletion_pages(self._get, cursor, now=int(self.clock()), overlap=overlap):
            yield page

    # --- write-back -----------------------------------------------------------------------------

    async def prepare_writeback(self, labels: Sequence[str]) -> None:
        await self.writer.prepare(labels)

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        return await self.writer.set_labels(changes)

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        return await self.writer.create_tasks(tasks)

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        return await self.writer.find_tasks(customers, marker)

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]:
        return await self.writer.complete_tasks(keys_and_ids, note="segsync")

    def parse_webhook(self, path_secret: str | None, form: Mapping[str, Any]) -> list[ChangeHint]:
        secret = self.source.webhook_secret.get_secret_value() if self.source.webhook_secret else None
        account_id = self.source.account_id or self.account.get("id")
        return webhook.parse(
            path_secret, form, expected_secret=secret, subdomain=self.source.subdomain,
            account_id=int(account_id) if account_id is not None else None,
        )  # fmt: skip


__all__ = ["AmoCRMConnector", "Reply"]
