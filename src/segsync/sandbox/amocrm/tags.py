"""Tag dictionaries: one per entity type, because "a tag will have a different ID for different entities" (K-TAGS)."""

from __future__ import annotations

from typing import Any


class TagDict:
    def __init__(self, kind: str, first_id: int):
        self.kind = kind
        self.by_name: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self._next = first_id

    def ensure(self, name: str) -> int:
        """The id of a tag by name, creating it (passing an unknown name creates the tag — widely relied on)."""
        tag_id = self.by_name.get(name)
        if tag_id is None:
            tag_id = self._next
            self._next += 2
            self.by_name[name] = tag_id
            self.names[tag_id] = name
        return tag_id

    def render(self, ids: tuple[int, ...], *, with_color: bool) -> list[dict[str, Any]]:
        if with_color:  # colour exists only for lead tags
            return [{"id": i, "name": self.names[i], "color": None} for i in ids]
        return [{"id": i, "name": self.names[i]} for i in ids]

    def resolve(self, item: Any, *, create: bool) -> int | None:
        """A tag reference ``{"id": …}`` or ``{"name": …}`` → id (None when unknown and not creating)."""
        if not isinstance(item, dict):
            return None
        if item.get("id") is not None:
            try:
                tag_id = int(item["id"])
            except (TypeError, ValueError):
                return None
            return tag_id if tag_id in self.names else None
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            return None
        return self.ensure(name) if create else self.by_name.get(name)
