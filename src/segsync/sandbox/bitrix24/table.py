"""Columnar storage of one CRM entity (contacts, companies, deals, activities) and its writes.

Why columnar: a 1M-deal portal must fit in memory and serve ≥ 20,000 rows/s. Values live in numpy
arrays (ids, numbers, epoch seconds) or object arrays (text); a page renders only the 50 rows and
the selected fields it returns (``render.py``). Writes mutate the arrays in place, so filters and
renders see them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segsync.sandbox.bitrix24.clock import NULL, Clock

Kind = str  # "id" | "int" | "str" | "date" | "day" | "money" | "yn" | "const"


@dataclass(frozen=True)
class Field:
    """One API field: its classic (UPPER_CASE) and item (camelCase) name, type and storage."""

    name: str
    camel: str
    kind: Kind
    column: str | None = None  # key in EntityTable.cols; None for constants
    const: Any = None
    filterable: bool = True


class EntityTable:
    """Rows of one entity type; row index ``i`` ↔ ``ids[i]`` (ids ascending, never reused)."""

    def __init__(
        self,
        entity: str,
        fields: list[Field],
        cols: dict[str, np.ndarray],
        *,
        multi: dict[str, np.ndarray] | None = None,
        clock: Clock,
    ):
        self.entity = entity  # "contact" | "company" | "deal"
        self.fields = {f.name: f for f in fields}
        self.by_camel = {f.camel: f for f in fields}
        self.cols = cols
        self.n = int(cols["ID"].size)
        self.deleted = np.zeros(self.n, bool)
        self.multi = multi or {}
        self.uf: dict[str, dict[int, Any]] = {}  # FIELD_NAME → {row: value}
        self.clock = clock
        self.next_multi_id = 1 + sum(sum(len(v or ()) for v in arr) for arr in self.multi.values())

    # -- lookup ----------------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        return self.cols["ID"][: self.n]

    def __len__(self) -> int:
        return int(self.n - self.deleted[: self.n].sum())

    def row_of(self, entity_id: int) -> int | None:
        ids = self.ids
        i = int(np.searchsorted(ids, entity_id))
        if i < ids.size and ids[i] == entity_id and not self.deleted[i]:
            return i
        return None

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.deleted[: self.n])

    def append(self, entity_id: int) -> int:
        """A new row with all values null; returns its index (ids must keep growing)."""
        if self.n == self.cols["ID"].size:
            grow = max(16, self.n // 2)
            for key, arr in self.cols.items():
                fill = np.full(
                    grow, NULL if arr.dtype == np.int64 else (np.nan if arr.dtype == float else None), arr.dtype
                )
                if arr.dtype == bool:
                    fill = np.zeros(grow, bool)
                self.cols[key] = np.concatenate((arr, fill))
            for key, arr in self.multi.items():
                self.multi[key] = np.concatenate((arr, np.full(grow, None, dtype=object)))
            self.deleted = np.concatenate((self.deleted, np.zeros(grow, bool)))
        row = self.n
        self.cols["ID"][row] = entity_id
        self.n += 1
        return row

    # -- values ----------------------------------------------------------------------------------
    def comparable(self, field: Field, rows: np.ndarray) -> np.ndarray:
        """Values for filtering/sorting: numbers (float, nan = null) or objects (str/None)."""
        if field.kind == "const":
            return np.full(rows.size, field.const, dtype=object)
        arr = self.cols[field.column][rows]
        if field.kind in ("id", "int", "date", "day"):
            out = arr.astype(float)
            out[arr == NULL] = np.nan
            return out
        if field.kind == "money":
            return self.cols[field.column + "#num"][rows]
        if field.kind == "yn":
            return np.where(arr.astype(bool), "Y", "N").astype(object)
        return arr

    # -- writes ----------------------------------------------------------------------------------
    def set_value(self, row: int, field: Field, value: Any, parse_date: Callable[[Any], float | None]) -> bool:
        """Store an API value; returns False when it cannot be stored (silently ignored, as the API does)."""
        col = self.cols.get(field.column or "")
        if col is None:
            return False
        k = field.kind
        if k in ("id", "int"):
            if value in (None, "", False):
                col[row] = NULL
                return True
            try:
                col[row] = int(float(value))
            except (TypeError, ValueError):
                return False
        elif k in ("date", "day"):
            ts = parse_date(value)
            if ts is None and value not in (None, ""):
                return False
            col[row] = NULL if ts is None else int(ts)
        elif k == "money":
            try:
                num = float(str(value).replace(" ", "").replace(",", "."))
            except ValueError:
                return False
            col[row] = f"{num:.2f}"
            self.cols[field.column + "#num"][row] = num
        elif k == "yn":
            col[row] = value in ("Y", "y", True, 1, "1")
        else:
            col[row] = None if value is None else str(value)
        return True

    def set_multi(self, row: int, name: str, items: Any) -> None:
        """PHONE/EMAIL update semantics: items with ID update/delete that value, items without ID are added."""
        current = list(self.multi[name][row] or [])
        if isinstance(items, dict):
            items = list(items.values())
        for it in items or []:
            if not isinstance(it, dict):
                continue
            value = it.get("VALUE")
            ident = str(it.get("ID")) if it.get("ID") not in (None, "") else None
            if ident is not None:
                for j, cur in enumerate(current):
                    if cur["ID"] == ident:
                        if value in (None, ""):
                            current.pop(j)
                        else:
                            current[j] = {
                                **cur,
                                "VALUE": str(value),
                                "VALUE_TYPE": it.get("VALUE_TYPE", cur["VALUE_TYPE"]),
                            }
                        break
            elif value not in (None, ""):
                current.append(
                    {
                        "ID": str(self.next_multi_id),
                        "VALUE_TYPE": str(it.get("VALUE_TYPE") or "WORK"),
                        "VALUE": str(value),
                        "TYPE_ID": name,
                    }
                )
                self.next_multi_id += 1
        self.multi[name][row] = current


def uf_camel(name: str) -> str:
    """UF_CRM_SEGMENT → ufCrmSegment (the item API's default naming)."""
    parts = name.lower().split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
