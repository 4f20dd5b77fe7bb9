"""The events log (`GET /api/v4/events`, A-EVENTS / K-EVENTS).

Event ids are ULID-like strings; entity types are singular (``lead``, ``contact``, ``company``,
``task``). For ``*_deleted``, ``*_restored`` and ``entity_merged`` both value arrays are empty — only
``entity_id`` says what happened, and a merge does not name the surviving entity (as documented).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from segsync.sandbox.amocrm.render import BASE

PLURAL = {"lead": "leads", "contact": "contacts", "company": "companies", "task": "tasks", "customer": "customers"}
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


@dataclass(slots=True)
class Event:
    id: str
    type: str
    entity_type: str
    entity_id: int
    created_by: int
    created_at: int
    value_after: list[Any]
    value_before: list[Any]


class EventLog:
    def __init__(self, seed: int = 0):
        self.events: list[Event] = []
        self.by_id: dict[str, Event] = {}
        self._rng = random.Random(seed)

    def _ulid(self, at: int) -> str:
        n = (at * 1000) << 80 | self._rng.getrandbits(80)
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[n & 31])
            n >>= 5
        return "".join(reversed(chars))

    def add(
        self,
        type_: str,
        entity_type: str,
        entity_id: int,
        *,
        by: int,
        at: int,
        after: list[Any] | None = None,
        before: list[Any] | None = None,
    ) -> Event:
        ev = Event(self._ulid(at), type_, entity_type, entity_id, by, at, after or [], before or [])
        self.events.append(ev)
        self.by_id[ev.id] = ev
        return ev

    def select(
        self,
        *,
        ids: set[str] | None,
        types: set[str] | None,
        entities: set[str] | None,
        entity_ids: set[int] | None,
        created_by: set[int] | None,
        lo: int | None,
        hi: int | None,
        newest_first: bool,
    ) -> list[Event]:
        out = [
            e
            for e in self.events
            if (ids is None or e.id in ids)
            and (types is None or e.type in types)
            and (entities is None or e.entity_type in entities)
            and (entity_ids is None or e.entity_id in entity_ids)
            and (created_by is None or e.created_by in created_by)
            and (lo is None or e.created_at >= lo)
            and (hi is None or e.created_at <= hi)
        ]
        if newest_first:
            out.reverse()
        return out


def event_dict(e: Event, account_id: int) -> dict[str, Any]:
    plural = PLURAL.get(e.entity_type, e.entity_type)
    return {
        "id": e.id,
        "type": e.type,
        "entity_id": e.entity_id,
        "entity_type": e.entity_type,
        "created_by": e.created_by,
        "created_at": e.created_at,
        "value_after": e.value_after,
        "value_before": e.value_before,
        "account_id": account_id,
        "_links": {"self": {"href": f"{BASE}/api/v4/events/{e.id}"}},
        "_embedded": {
            "entity": {"id": e.entity_id, "_links": {"self": {"href": f"{BASE}/api/v4/{plural}/{e.entity_id}"}}}
        },
    }
