"""Deletions and restores from ``GET /api/v4/events``, with their own ``created_at`` cursor.

Events are immutable, so offset paging over a fixed ``created_at`` window cannot lose one. Within the
window the last event per entity wins (deleted then restored = alive). ``entity_merged`` does not
say which side survived, and a delete and a restore in the same second cannot be ordered, so such
entities are checked by id: gone (204) means deleted, present means alive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from connectors.amocrm.paging import embedded, has_next
from connectors.amocrm.transport import Reply
from segsync.contract import CustomerKind, Entity, Page

EVENTS_LIMIT = 100  # the RU documentation's maximum for events
#: amoCRM event entity_type → (normalized entity, customer kind, API path of the entity)
EVENT_ENTITIES: dict[str, tuple[Entity, CustomerKind | None, str]] = {
    "lead": ("deals", None, "/api/v4/leads"),
    "contact": ("contacts", "contact", "/api/v4/contacts"),
    "company": ("companies", "company", "/api/v4/companies"),
}
EVENT_TYPES = (
    "lead_deleted",
    "lead_restored",
    "contact_deleted",
    "contact_restored",
    "company_deleted",
    "company_restored",
    "entity_merged",
)

Get = Callable[[str, dict[str, Any]], Awaitable[Reply]]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def final_states(events: list[dict[str, Any]]) -> tuple[dict[tuple[str, str], str], list[tuple[str, str]]]:
    """Per (entity_type, id): the last of deleted/restored in time order; and the ones to check by id —
    merged ones, and deletes and restores within one second (event ids do not order them reliably)."""
    ordered = sorted(events, key=lambda e: (_int(e.get("created_at")) or 0, str(e.get("id"))))
    state: dict[tuple[str, str], str] = {}
    last_at: dict[tuple[str, str], tuple[int, set[str]]] = {}
    check: list[tuple[str, str]] = []
    for event in ordered:
        etype = str(event.get("type") or "")
        entity_type = str(event.get("entity_type") or "")
        entity_id = _int(event.get("entity_id"))
        if entity_type not in EVENT_ENTITIES or entity_id is None:
            continue
        ref = (entity_type, str(entity_id))
        at = _int(event.get("created_at")) or 0
        if etype.endswith("_deleted"):
            outcome = "deleted"
        elif etype.endswith("_restored"):
            outcome = "restored"
        elif etype == "entity_merged":
            outcome = "check"
        else:
            continue
        previous_at, outcomes = last_at.get(ref, (None, set()))
        outcomes = outcomes | {outcome} if previous_at == at else {outcome}
        last_at[ref] = (at, outcomes)
        state[ref] = outcome
    for ref, (_at, outcomes) in last_at.items():
        if len(outcomes) > 1 or "check" in outcomes:
            state.pop(ref, None)
            check.append(ref)
    return state, check


async def deletion_pages(get: Get, cursor: dict[str, Any] | None, *, now: int, overlap: int) -> AsyncIterator[Page]:
    previous = _int((cursor or {}).get("created_at"))
    lo = max(0, (previous if previous is not None else now) - overlap)
    params: dict[str, Any] = {
        "filter[type][]": list(EVENT_TYPES),
        "filter[created_at][from]": lo,
        "filter[created_at][to]": now,
        "limit": EVENTS_LIMIT,
    }
    events: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = await get("/api/v4/events", {**params, "page": page})
        items = embedded(reply, "events")
        events.extend(items)
        if not items or not has_next(reply):
            break
        page += 1
    state, check = final_states(events)
    for entity_type, entity_id in check:
        reply = await get(f"{EVENT_ENTITIES[entity_type][2]}/{entity_id}", {})
        state[(entity_type, entity_id)] = "deleted" if reply.status == 204 else "restored"
    stamps = [s for s in (_int(e.get("created_at")) for e in events) if s is not None]
    newest = max([*stamps, *([previous] if previous is not None else [])], default=None)
    pages: list[Page] = []
    for entity_type, (entity, kind, _path) in EVENT_ENTITIES.items():
        deleted = sorted(i for (t, i), s in state.items() if t == entity_type and s == "deleted")
        restored = sorted(i for (t, i), s in state.items() if t == entity_type and s == "restored")
        if deleted or restored:
            pages.append(Page(entity, deleted=deleted, restored=restored, entity_kind=kind))
    if not pages:
        pages.append(Page("deals"))
    # One cursor, on the last page: a crash before it re-reads the window (applying twice is harmless).
    pages[-1].cursor = {"created_at": newest if newest is not None else lo}
    for page_ in pages:
        yield page_
