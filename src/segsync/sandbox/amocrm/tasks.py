"""Tasks: storage, list filters (A-TASKS) and the per-entity `closest_task_at` they imply."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

TASK_ENTITY_TYPES = ("leads", "contacts", "companies", "customers")
TASK_FIELDS = (
    "id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "responsible_user_id",
    "group_id",
    "entity_id",
    "entity_type",
    "duration",
    "is_completed",
    "task_type_id",
    "text",
    "result",
    "complete_till",
)


class TaskStore:
    def __init__(self, tasks: list[dict[str, Any]], first_new_id: int):
        self.by_id: dict[int, dict[str, Any]] = {}
        self.open_by_entity: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.by_entity: dict[tuple[str, int], set[int]] = defaultdict(set)
        self._next = first_new_id
        for t in tasks:
            self._index(t)
            self._next = max(self._next, t["id"] + 1)

    def _index(self, t: dict[str, Any]) -> None:
        self.by_id[t["id"]] = t
        key = (t["entity_type"], t["entity_id"]) if t.get("entity_type") else None
        if key is None:
            return
        self.by_entity[key].add(t["id"])
        if t["is_completed"]:
            self.open_by_entity.get(key, set()).discard(t["id"])
        else:
            self.open_by_entity[key].add(t["id"])

    def new_id(self) -> int:
        self._next += 1
        return self._next - 1

    def add(self, t: dict[str, Any]) -> None:
        self._index(t)

    def reindex(self, t: dict[str, Any], old_key: tuple[str, int] | None) -> None:
        if old_key is not None:
            self.open_by_entity.get(old_key, set()).discard(t["id"])
            self.by_entity.get(old_key, set()).discard(t["id"])
        self._index(t)

    def closest_task_at(self, kind: str, entity_id: int) -> int | None:
        ids = self.open_by_entity.get((kind, entity_id))
        if not ids:
            return None
        return min(self.by_id[i]["complete_till"] for i in ids)

    def select(
        self,
        *,
        ids: set[int] | None,
        responsible: set[int] | None,
        completed: bool | None,
        types: set[int] | None,
        entity_type: str | None,
        entity_ids: set[int] | None,
        lo: int | None,
        hi: int | None,
        order: str,
        desc: bool,
    ) -> list[dict[str, Any]]:
        if entity_type is not None and entity_ids is not None and len(entity_ids) <= 50:
            pool = [self.by_id[i] for e in entity_ids for i in self._ids_for(entity_type, e)]
        else:
            pool = list(self.by_id.values())
        out = [
            t
            for t in pool
            if (ids is None or t["id"] in ids)
            and (responsible is None or t["responsible_user_id"] in responsible)
            and (completed is None or t["is_completed"] == completed)
            and (types is None or t["task_type_id"] in types)
            and (entity_type is None or t["entity_type"] == entity_type)
            and (entity_ids is None or t["entity_id"] in entity_ids)
            and (lo is None or t["updated_at"] >= lo)
            and (hi is None or t["updated_at"] <= hi)
        ]
        out.sort(key=lambda t: (t[order], t["id"]), reverse=desc)
        return out

    def _ids_for(self, entity_type: str, entity_id: int) -> list[int]:
        return sorted(self.by_entity.get((entity_type, entity_id), ()))
