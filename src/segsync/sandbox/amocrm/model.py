"""In-memory entity tables: slotted records plus numpy columns for fast filtering and ordering.

A table keeps one :class:`Record` per entity (mutable, the source of truth) and mirrors the
columns that lists filter and sort on into numpy arrays, so that a filtered, ordered id list over
200,000 leads costs a few milliseconds and is cached until the next write (``version``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

Kind = Literal["leads", "contacts", "companies"]
KINDS: tuple[Kind, ...] = ("leads", "contacts", "companies")
SINGULAR: dict[str, str] = {"leads": "lead", "contacts": "contact", "companies": "company"}
NULL_TS = -1  # stands for null in the numpy timestamp columns

#: Columns mirrored into numpy (all int64); nulls are NULL_TS.
INDEXED = (
    "id",
    "created_at",
    "updated_at",
    "closed_at",
    "responsible_user_id",
    "created_by",
    "updated_by",
    "pipeline_id",
    "status_id",
    "price",
)


class Record:
    """One lead, contact or company; fields are the amo v4 names (cf = custom_fields_values)."""

    __slots__ = (
        "cf",
        "closed_at",
        "company_id",
        "contact_ids",
        "created_at",
        "created_by",
        "first_name",
        "group_id",
        "id",
        "is_deleted",
        "last_name",
        "loss_reason_id",
        "merged",
        "name",
        "pipeline_id",
        "price",
        "responsible_user_id",
        "status_id",
        "tags",
        "updated_at",
        "updated_by",
    )

    def __init__(self, **values: Any):
        self.closed_at = None
        self.company_id = None
        self.contact_ids: tuple[int, ...] = ()
        self.cf: bytes | None = None  # custom_fields_values as JSON text (compact; rendered as is)
        self.first_name = None
        self.group_id = 0
        self.is_deleted = False
        self.last_name = None
        self.loss_reason_id = None
        self.merged = False  # deleted by a merge: not restorable, not in only_deleted
        self.pipeline_id = None
        self.price = None
        self.status_id = None
        self.tags: tuple[int, ...] = ()
        for key, value in values.items():
            setattr(self, key, value)


def cf_list(r: Record) -> list[dict[str, Any]] | None:
    return None if r.cf is None else json.loads(r.cf)


def cf_bytes(fields: list[dict[str, Any]] | None) -> bytes | None:
    """amo sends null, not [], when no custom field is filled."""
    if not fields:
        return None
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


class EntityTable:
    """All records of one kind, with numpy mirrors and a query cache."""

    def __init__(self, kind: Kind, records: Iterable[Record]):
        self.kind = kind
        self.rows: list[Record] = list(records)
        self.pos: dict[int, int] = {r.id: i for i, r in enumerate(self.rows)}
        self.version = 0
        self.cols: dict[str, np.ndarray] = {}
        n = len(self.rows)
        for name in INDEXED:
            arr = np.empty(n, dtype=np.int64)
            for i, r in enumerate(self.rows):
                v = getattr(r, name)
                arr[i] = NULL_TS if v is None else v
            self.cols[name] = arr
        self.deleted = np.zeros(n, dtype=bool)
        self.restorable = np.zeros(n, dtype=bool)
        self.query_cache: OrderedDict[Any, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, entity_id: int, *, include_deleted: bool = False) -> Record | None:
        i = self.pos.get(entity_id)
        if i is None:
            return None
        rec = self.rows[i]
        if rec.is_deleted and not include_deleted:
            return None
        return rec

    def live_count(self) -> int:
        return int(len(self.rows) - self.deleted.sum())

    def touch(self, rec: Record) -> None:
        """Re-mirror one record after a change and drop caches that may show it."""
        i = self.pos[rec.id]
        for name in INDEXED:
            v = getattr(rec, name)
            self.cols[name][i] = NULL_TS if v is None else v
        self.deleted[i] = rec.is_deleted
        self.restorable[i] = rec.is_deleted and not rec.merged
        self.version += 1
        self.query_cache.clear()

    def cached_query(self, key: Any, compute: Any) -> np.ndarray:
        hit = self.query_cache.get(key)
        if hit is None:
            hit = compute()
            self.query_cache[key] = hit
            while len(self.query_cache) > 32:
                self.query_cache.popitem(last=False)
        else:
            self.query_cache.move_to_end(key)
        return hit
