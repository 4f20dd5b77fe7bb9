"""The contract between the core and a CRM connector.

A connector speaks one CRM's API and hands the core *normalized* records in pages; the core owns
state (cursors, quarantine, ledger), transactions and scheduling. Everything here is CRM-neutral:
if a field only makes sense for one CRM it goes into ``attrs`` or ``raw``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

Entity = Literal["users", "stages", "currencies", "contacts", "companies", "deals", "touches"]
CustomerKind = Literal["contact", "company"]
DealStatus = Literal["open", "won", "lost"]
StageSemantic = Literal["open", "won", "lost"]
TouchKind = Literal["call", "meeting", "email", "task", "note", "message", "other"]

#: Pull order: dictionaries first so that deals can be mapped against stages and currencies.
ENTITY_ORDER: tuple[Entity, ...] = ("users", "stages", "currencies", "companies", "contacts", "deals", "touches")


@dataclass(slots=True)
class User:
    remote_id: str
    name: str | None = None
    active: bool = True
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Stage:
    pipeline_id: str
    stage_id: str
    semantic: StageSemantic
    name: str | None = None
    pipeline_name: str | None = None
    sort: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Currency:
    code: str
    rate: Decimal  # value of one unit in the base currency
    is_base: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Customer:
    kind: CustomerKind
    remote_id: str
    name: str | None = None
    responsible_id: str | None = None
    company_id: str | None = None  # a contact's company, when the CRM links one
    created_at: datetime | None = None
    updated_at: datetime | None = None
    phones: list[str] = field(default_factory=list)  # E.164 where possible
    emails: list[str] = field(default_factory=list)  # lower-cased
    attrs: dict[str, Any] = field(default_factory=dict)  # type, channel, city, industry, utm_*, mapped custom fields
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Deal:
    remote_id: str
    status: DealStatus
    pipeline_id: str | None = None
    stage_id: str | None = None
    title: str | None = None
    company_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)  # primary contact first
    amount: Decimal | None = None
    currency: str | None = None
    amount_base: Decimal | None = None  # in the source's base currency
    responsible_id: str | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None  # the win/loss date
    updated_at: datetime | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Touch:
    """A contact moment (call, meeting, e-mail, ...) with a customer; feeds "days since last touch"."""

    remote_id: str
    customer_kind: CustomerKind
    customer_id: str
    kind: TouchKind
    at: datetime
    completed: bool = True
    raw: dict[str, Any] = field(default_factory=dict)


Record = User | Stage | Currency | Customer | Deal | Touch


@dataclass(slots=True)
class Rejected:
    """A record the connector could not map; the core quarantines it and the run goes on."""

    entity: Entity
    remote_id: str | None
    reason: str
    raw: Any = None


@dataclass(slots=True)
class Page:
    """One unit of progress. The core writes ``records`` and ``cursor`` in one transaction."""

    entity: Entity
    records: list[Any] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    cursor: dict[str, Any] | None = None  # state after this page; None = unchanged
    deleted: list[str] = field(default_factory=list)  # remote ids the CRM reports deleted
    restored: list[str] = field(default_factory=list)
    total_hint: int | None = None  # expected total rows, for progress bars only
    entity_kind: CustomerKind | None = None  # for deleted/restored customer ids


@dataclass(frozen=True, slots=True)
class CustomerRef:
    kind: CustomerKind
    remote_id: str


@dataclass(frozen=True, slots=True)
class LabelChange:
    """Set a customer's segsync-owned labels from ``before`` to ``after`` (label key → display value).

    amoCRM turns this into ``tags_to_add``/``tags_to_delete`` with the managed prefix, Bitrix24 into
    its own user fields. Labels absent from ``after`` are cleared.
    """

    key: str  # idempotency key of the op
    customer: CustomerRef
    before: Mapping[str, str]
    after: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TaskRequest:
    key: str  # idempotency key: (source, rule, customer, episode start)
    customer: CustomerRef
    title: str
    description: str
    due: datetime  # aware
    type: Literal["call", "meeting", "todo"]
    responsible_id: str | None
    marker: str  # placed in the task text; found again by ``find_tasks`` after a crash


@dataclass(frozen=True, slots=True)
class RemoteTask:
    remote_id: str
    customer: CustomerRef
    text: str
    completed: bool
    responsible_id: str | None = None
    due: datetime | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    key: str
    ok: bool
    remote_id: str | None = None
    error: str | None = None
    retriable: bool = False  # a failure that may succeed later
    ambiguous: bool = False  # may have been applied: reconcile before retrying


@dataclass(frozen=True, slots=True)
class ChangeHint:
    """What a CRM webhook said changed; the daemon turns hints into a debounced incremental pull."""

    entity: Entity
    remote_id: str | None
    deleted: bool = False
    kind: CustomerKind | None = None


class TokenStore(Protocol):
    """Durable OAuth tokens for one source, refreshed by one process at a time."""

    async def load(self) -> dict[str, Any] | None: ...

    async def refresh(
        self, seen: dict[str, Any] | None, refresher: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """Under a cross-process lock: if the stored tokens are still ``seen``, call ``refresher`` with them
        and persist its result *before* returning it; if another process refreshed meanwhile, return theirs."""
        ...

    async def save(self, tokens: dict[str, Any]) -> None: ...


@dataclass
class ConnectorContext:
    """What the core hands a connector: token storage, metrics hooks and knobs."""

    tokens: TokenStore
    on_request: Callable[[str, int | str], None] = lambda method, status: None  # (method, status or error code)
    on_throttle: Callable[[str], None] = lambda reason: None
    user_agent: str = "segsync"
    timeout: float = 60.0
    label_prefix: str = "seg:"  # writeback.tags.prefix: only labels with this prefix are segsync's


@runtime_checkable
class Connector(Protocol):
    """One configured CRM account. Use as ``async with``; every call goes through its rate limiter."""

    async def __aenter__(self) -> Connector: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def entities(self) -> Sequence[Entity]:
        """Entities this connector pulls, in :data:`ENTITY_ORDER`."""
        ...

    def pull(self, entity: Entity, cursor: dict[str, Any] | None, *, full: bool = False) -> AsyncIterator[Page]:
        """Pages of changes since ``cursor`` (everything when ``cursor`` is None or ``full``)."""
        ...

    def list_ids(self, entity: Entity) -> AsyncIterator[list[str]]:
        """Every live remote id of ``entity``, cheaply (id-only), for the deletion sweep."""
        ...

    def deletions(self, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
        """Deleted/restored ids from the CRM's event feed since ``cursor``; empty if the CRM has none."""
        ...

    async def prepare_writeback(self, labels: Sequence[str]) -> None:
        """Make sure the CRM can hold segsync's labels (e.g. create user fields once)."""
        ...

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]: ...

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]: ...

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        """segsync's tasks (text contains ``marker``) bound to these customers, open or not."""
        ...

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]: ...

    def parse_webhook(self, path_secret: str | None, form: Mapping[str, Any]) -> list[ChangeHint]:
        """Verify a webhook call (raise :class:`~segsync.errors.FatalCrmError` subclass on forgery) and parse it."""
        ...
