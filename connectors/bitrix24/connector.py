"""The Bitrix24 connector: wires auth, transport, paging, mapping and writes to the segsync contract.

Entities and methods:

* users — ``user.get`` (offset paging; all users, ``ACTIVE`` tells dismissed ones)
* stages — ``crm.category.list`` (entityTypeId 2) + ``crm.status.list`` per pipeline (``DEAL_STAGE[_id]``)
* currencies — ``crm.currency.list`` (rates rebased on the source's base currency)
* companies / contacts — ``crm.company.list`` / ``crm.contact.list`` (explicit ``select`` incl. PHONE and
  EMAIL multi-fields, which ``crm.item.list`` returns only with ``select: ["*"]``)
* deals — ``crm.item.list`` with entityTypeId 2: it is the one list method that returns ``contactIds``
  (all contacts of a deal) in the same page, whereas ``crm.deal.contact.items.get`` costs one command
  per deal, i.e. 50× more requests for the same rows
* touches — ``crm.activity.list``; deal-owned activities count for the deal's customer

Big lists use the batch-chained ``>ID`` export (see :mod:`connectors.bitrix24.paging`); incremental
pulls add ``>=`` on the modified time taken from the portal's clock (:mod:`connectors.bitrix24.cursor`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import httpx

from connectors.bitrix24.auth import Auth, OAuthAuth, WebhookAuth
from connectors.bitrix24.cursor import CursorState, Run, filter_value, since_from
from connectors.bitrix24.limits import portal_limiter, shared_budget
from connectors.bitrix24.mapping import (
    ACTIVITY_SELECT,
    COMPANY_SELECT,
    CONTACT_SELECT,
    DEAL_SELECT,
    OWNER_DEAL,
    MappingContext,
    Unmappable,
    deal_owner,
    map_activity,
    map_company,
    map_contact,
    map_currencies,
    map_deal,
    map_stage,
    map_user,
    parse_datetime,
)
from connectors.bitrix24.options import Bitrix24Source
from connectors.bitrix24.paging import ListQuery, Segment, export, fetch_all, fetch_rest, max_id, plan_segments
from connectors.bitrix24.transport import Transport
from connectors.bitrix24.webhook import parse_event
from connectors.bitrix24.wire import BATCH_LIMIT, PAGE_SIZE, BatchReply, unwrap_list
from connectors.bitrix24.writes import Writer
from segsync.contract import (
    ChangeHint,
    ConnectorContext,
    CustomerKind,
    CustomerRef,
    Deal,
    Entity,
    LabelChange,
    Page,
    Rejected,
    RemoteTask,
    Stage,
    TaskRequest,
    WriteResult,
)
from segsync.logs import get_logger

log = get_logger("segsync.bitrix24")
DICTIONARY_TTL = 300.0  # seconds one dictionary answer serves the users/stages/currencies pulls
USER_PARAMS = {"sort": "ID", "order": "ASC"}


@dataclass(frozen=True)
class ListEntity:
    query: ListQuery
    modified: str  # the field the incremental filter uses


class Bitrix24Connector:
    """One Bitrix24 portal (one ``sources:`` entry). Use as ``async with``."""

    def __init__(self, source: Bitrix24Source, ctx: ConnectorContext, *, client: httpx.AsyncClient | None = None):
        self.source = source
        self.ctx = ctx
        self._client = client
        self._transport: Transport | None = None
        self._writer: Writer | None = None
        self._semantics: dict[tuple[str, str], Any] | None = None
        self._rates: dict[str, Decimal] | None = None
        self._base: str | None = source.base_currency
        self._deal_owner: dict[str, tuple[CustomerKind, str] | None] = {}
        self._dict_reply: tuple[float, BatchReply] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def _auth(self) -> Auth:
        if self.source.webhook_url is not None:
            return WebhookAuth(self.source.webhook_url.get_secret_value())
        assert self.source.oauth is not None
        return OAuthAuth(self.source.oauth, self.ctx.tokens, source=self.source.name)

    async def __aenter__(self) -> Bitrix24Connector:
        auth = self._auth()
        limits = self.source.effective_limits()
        self._transport = Transport(
            auth,
            limiter=portal_limiter(auth.portal, limits.per_second, limits.burst),
            budget=shared_budget(auth.budget_key, limits.operating_seconds),
            ctx=self.ctx,
            source=self.source.name,
            client=self._client,
        )
        self._writer = Writer(self._transport, mode=self.source.tasks, portal_tz=self._portal_tz)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None and self._client is None:
            await self._transport.aclose()  # kept for its counters; a closed client refuses new calls

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise RuntimeError("use the connector as `async with connector:`")
        return self._transport

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("use the connector as `async with connector:`")
        return self._writer

    @property
    def requests(self) -> int:
        """HTTP requests sent to the portal so far (figures)."""
        return self._transport.requests if self._transport else 0

    def _portal_tz(self) -> tzinfo:
        last = self._transport.last_time if self._transport else None
        return (last.portal_tz if last else None) or UTC

    def entities(self) -> Sequence[Entity]:
        base: list[Entity] = ["users", "stages", "currencies", "companies", "contacts", "deals"]
        return [*base, "touches"] if self.source.touches else base

    def _mapping(self) -> MappingContext:
        return MappingContext(
            phone_region=self.source.phone_region.upper(),
            fields=self.source.fields,
            portal_tz=self._portal_tz(),
            base_currency=self._base,
            rates=self._rates or {},
            semantics=self._semantics or {},
        )

    def _list_entity(self, entity: Entity) -> ListEntity:
        custom = tuple(dict.fromkeys(self.source.fields.values()))
        if entity == "contacts":
            return ListEntity(ListQuery("crm.contact.list", (*CONTACT_SELECT, *custom)), "DATE_MODIFY")
        if entity == "companies":
            return ListEntity(ListQuery("crm.company.list", (*COMPANY_SELECT, *custom)), "DATE_MODIFY")
        if entity == "deals":
            query = ListQuery("crm.item.list", DEAL_SELECT, "id", "items", {"entityTypeId": 2})
            return ListEntity(query, "updatedTime")
        if entity == "touches":
            return ListEntity(ListQuery("crm.activity.list", ACTIVITY_SELECT), "LAST_UPDATED")
        raise ValueError(f"{entity} is not a list entity")

    # -- pull -------------------------------------------------------------------------------------

    async def pull(self, entity: Entity, cursor: dict[str, Any] | None, *, full: bool = False) -> AsyncIterator[Page]:
        if entity == "users":
            yield await self._pull_users()
        elif entity == "stages":
            yield await self._pull_stages()
        elif entity == "currencies":
            yield await self._pull_currencies()
        else:
            async for page in self._pull_list(entity, cursor, full):
                yield page

    async def _dictionary_reply(self) -> BatchReply:
        """Users, pipelines, currencies and the main pipeline's stages: one request for all of them.
        Shared by the three dictionary pulls of one run (kept for a few minutes)."""
        if self._dict_reply is not None and time.monotonic() - self._dict_reply[0] < DICTIONARY_TTL:
            return self._dict_reply[1]
        commands = {
            "users": ("user.get", {**USER_PARAMS, "start": 0}),
            "pipelines": ("crm.category.list", {"entityTypeId": 2, "start": 0}),
            "currencies": ("crm.currency.list", {}),
            "stages0": ("crm.status.list", self._stage_params("0")),
        }
        reply = await self.transport.batch(commands)
        for key, (method, _) in commands.items():
            if key in reply.errors:
                raise self.transport.command_failure(method, reply.errors[key])
        self._dict_reply = (time.monotonic(), reply)
        return reply

    async def _pull_users(self) -> Page:
        reply = await self._dictionary_reply()
        rows = list(unwrap_list(reply.results.get("users"), None) or [])
        if reply.nexts.get("users"):
            total = int(reply.totals.get("users") or 0)
            rows += await fetch_rest(self.transport, "user.get", USER_PARAMS, total=total)
        page = Page("users")
        for row in rows:
            mapped = map_user(row)
            (page.rejected if isinstance(mapped, Rejected) else page.records).append(mapped)
        return page

    async def _pull_stages(self) -> Page:
        reply = await self._dictionary_reply()
        categories = list(unwrap_list(reply.results.get("pipelines"), "categories") or [])
        if reply.nexts.get("pipelines"):
            total = int(reply.totals.get("pipelines") or 0)
            categories += await fetch_rest(self.transport, "crm.category.list", {"entityTypeId": 2}, total=total,
                                           wrapper="categories")  # fmt: skip
        pipelines = {str(c.get("id")): c.get("name") for c in categories if isinstance(c, Mapping)} or {"0": None}
        statuses: dict[str, list[Any]] = {}
        if "0" in pipelines and not reply.nexts.get("stages0"):
            statuses["0"] = list(unwrap_list(reply.results.get("stages0"), None) or [])
        rest = [pid for pid in pipelines if pid not in statuses]
        for start in range(0, len(rest), BATCH_LIMIT):
            chunk = rest[start : start + BATCH_LIMIT]
            commands = {f"s{pid}": ("crm.status.list", self._stage_params(pid)) for pid in chunk}
            batch = await self.transport.batch(commands)
            for pid in chunk:
                key = f"s{pid}"
                if key in batch.errors:
                    raise self.transport.command_failure("crm.status.list", batch.errors[key])
                statuses[pid] = list(unwrap_list(batch.results.get(key), None) or [])
                if batch.nexts.get(key):
                    statuses[pid], _ = await fetch_all(self.transport, "crm.status.list", self._stage_params(pid))
        page = Page("stages")
        for pid, rows in statuses.items():
            for row in rows:
                mapped = map_stage(row, pid, pipelines[pid])
                (page.rejected if isinstance(mapped, Rejected) else page.records).append(mapped)
        self._semantics = {(s.pipeline_id, s.stage_id): s.semantic for s in page.records if isinstance(s, Stage)}
        return page

    @staticmethod
    def _stage_params(pipeline_id: str) -> dict[str, Any]:
        entity_id = "DEAL_STAGE" if pipeline_id == "0" else f"DEAL_STAGE_{pipeline_id}"
        return {"filter": {"ENTITY_ID": entity_id}, "order": {"SORT": "ASC"}}

    async def _pull_currencies(self) -> Page:
        reply = await self._dictionary_reply()
        rows = list(unwrap_list(reply.results.get("currencies"), None) or [])
        currencies, rejected = map_currencies(rows, self.source.base_currency)
        self._rates = {c.code: c.rate for c in currencies}
        self._base = next((c.code for c in currencies if c.is_base), self.source.base_currency)
        return Page("currencies", list(currencies), rejected)

    async def _dictionaries(self) -> None:
        """Deals need stage semantics (fallback) and rates; load them when this session has not."""
        if self._rates is None:
            await self._pull_currencies()
        if self._semantics is None:
            await self._pull_stages()

    async def _pull_list(self, entity: Entity, cursor: dict[str, Any] | None, full: bool) -> AsyncIterator[Page]:
        spec = self._list_entity(entity)
        if entity == "deals":
            await self._dictionaries()
        state = CursorState.parse(cursor, self.source.date_filter)
        hint: int | None = None
        if full or state.run is None:
            if full or state.watermark is None:
                top, timing = await max_id(self.transport, spec.query)
                started = _iso(timing.date_start) or _iso(datetime.now(UTC))
                state.run = Run("full", started, None, plan_segments(top, self.source.parallel_chains))
                hint = top
            else:
                since = since_from(state.watermark, self.source.overlap)
                state.run = Run("incr", None, since.isoformat(timespec="seconds"), [Segment(0, None, 0)])
        run = state.run
        query = spec.query
        if run.mode == "incr" and run.since is not None:
            since = datetime.fromisoformat(run.since)
            query = query.with_filter({f">={spec.modified}": filter_value(since, state.date_filter)})
        log.info(
            "bitrix24_pull",
            entity=entity,
            mode=run.mode,
            resumed=any(s.after > s.lo for s in run.segments),
            segments=len(run.segments),
        )
        ignored = False
        chains = self.source.parallel_chains if run.mode == "full" else 1
        emitted = False
        async for index, step in export(self.transport, query, run.segments, concurrency=chains):
            if run.started is None:
                run.started = _iso(step.time.date_start) or _iso(datetime.now(UTC))
            segment = run.segments[index]
            segment.after, segment.done = max(segment.after, step.last_id), step.done
            page = await self._map_rows(entity, step.rows)
            if run.mode == "incr" and run.since is not None and not ignored:
                ignored = _filter_ignored(step.rows, spec.modified, datetime.fromisoformat(run.since))
                if ignored:
                    log.warning("bitrix24_modified_filter_ignored", entity=entity, format=state.date_filter)
            out = state.finished() if run.done() else state
            if ignored and run.done() and state.date_filter == "iso":
                out.date_filter = "local"  # next runs use the other documented form
            page.cursor = out.dump()
            page.total_hint = hint
            emitted = True
            yield page
        if not emitted:
            yield Page(entity, cursor=state.finished().dump(), total_hint=hint)

    async def _map_rows(self, entity: Entity, rows: list[dict[str, Any]]) -> Page:
        page = Page(entity)
        ctx = self._mapping()
        owners: dict[str, tuple[CustomerKind, str]] = {}
        if entity == "touches":
            await self._resolve_deal_owners(rows)
            owners = {k: v for k, v in self._deal_owner.items() if v is not None}
        prefer = "contact" if self.source.customer == "contact" else "company"
        for row in rows:
            if entity == "contacts":
                mapped: Any = map_contact(row, ctx)
            elif entity == "companies":
                mapped = map_company(row, ctx)
            elif entity == "deals":
                mapped = map_deal(row, ctx)
                if isinstance(mapped, Deal):
                    self._deal_owner[mapped.remote_id] = deal_owner(row, prefer)
            else:
                mapped = map_activity(row, ctx, owners)
            if mapped is None:
                continue
            (page.rejected if isinstance(mapped, Rejected) else page.records).append(mapped)
        return page

    async def _resolve_deal_owners(self, rows: list[dict[str, Any]]) -> None:
        """Look up deals this session has not pulled: 50 ids per command, 2,500 per request."""
        wanted = sorted(
            {
                str(r.get("OWNER_ID"))
                for r in rows
                if str(r.get("OWNER_TYPE_ID")) == str(OWNER_DEAL) and str(r.get("OWNER_ID")) not in self._deal_owner
            }
        )
        if not wanted:
            return
        prefer = "contact" if self.source.customer == "contact" else "company"
        chunks = [wanted[i : i + PAGE_SIZE] for i in range(0, len(wanted), PAGE_SIZE)]
        for start in range(0, len(chunks), BATCH_LIMIT):
            commands = {
                f"d{i}": (
                    "crm.item.list",
                    {
                        "entityTypeId": 2,
                        "filter": {"@id": chunk},
                        "start": -1,
                        "select": ["id", "companyId", "contactId", "contactIds"],
                    },
                )
                for i, chunk in enumerate(chunks[start : start + BATCH_LIMIT], start)
            }
            reply = await self.transport.batch(commands)
            for key in commands:
                if key in reply.errors:
                    raise self.transport.command_failure("crm.item.list", reply.errors[key])
                for item in unwrap_list(reply.results.get(key), "items") or []:
                    if isinstance(item, Mapping) and item.get("id") is not None:
                        self._deal_owner[str(item["id"])] = deal_owner(item, prefer)
        for deal_id in wanted:
            self._deal_owner.setdefault(deal_id, None)  # deleted deal: not asked again this session

    async def list_ids(self, entity: Entity) -> AsyncIterator[list[str]]:
        query = self._list_entity(entity).query.ids_only()
        top, _ = await max_id(self.transport, query)
        segments = plan_segments(top, self.source.parallel_chains, open_end=True)
        async for _, step in export(self.transport, query, segments, concurrency=self.source.parallel_chains):
            ids = [str(r.get(query.id_field)) for r in step.rows if isinstance(r, Mapping) and r.get(query.id_field)]
            if ids:
                yield ids

    async def deletions(self, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        """Webhooks cannot read a change feed (offline events need an application); deletions come from
        outgoing-webhook events (:meth:`parse_webhook`) and the ID sweep."""
        return
        yield  # pragma: no cover

    # -- writes -----------------------------------------------------------------------------------

    async def prepare_writeback(self, labels: Sequence[str]) -> None:
        await self.writer.ensure_fields(labels)

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        return await self.writer.set_labels(changes)

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        return await self.writer.create_tasks(tasks)

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        return await self.writer.find_tasks(customers, marker)

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]:
        return await self.writer.complete_tasks(keys_and_ids)

    def parse_webhook(self, path_secret: str | None, form: Mapping[str, Any]) -> list[ChangeHint]:
        token = self.source.application_token.get_secret_value() if self.source.application_token else None
        return parse_event(form, token)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def _filter_ignored(rows: list[dict[str, Any]], field: str, since: datetime, slack: float = 1.0) -> bool:
    """True when the portal returned rows modified before the filter bound: it ignored the filter."""
    for row in rows:
        try:
            modified = parse_datetime(row.get(field), since.tzinfo or UTC)
        except Unmappable:
            continue
        if modified is not None and (since - modified).total_seconds() > slack:
            return True
    return False
