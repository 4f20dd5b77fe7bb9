"""List-method semantics: filter prefixes, order, select and 50-row paging (``start``/``next``/``total``).

Documented behaviour emulated here (docs: list-methods-pecularities.md, crm-deal-list.md,
crm-item-list.md, performance/huge-data.md):
- page size 50; ``start`` is an offset rounded down to a page (PHP ``intval(start / 50)``), ``next`` is
  present only when more rows exist, ``total`` counts all matches;
- ``start = -1`` skips counting: ``total`` is 0 and there is no ``next``;
- filter prefixes ``>= > <= < = ! != @ !@ % =% %=`` (``!%`` too); string comparisons are
  case-insensitive like MySQL's default collation; PHONE/EMAIL match exactly;
- ``select``: ``*`` = standard fields, ``UF_*`` = user fields, multi-fields only by name, the default is
  ``*`` + ``UF_*``; ID is always returned.
Classic methods ignore unknown filter fields; ``crm.item.list`` rejects them with INVALID_ARG_VALUE.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segsync.sandbox.bitrix24.errors import ApiError
from segsync.sandbox.bitrix24.params import as_list
from segsync.sandbox.bitrix24.table import EntityTable, Field, uf_camel

PAGE = 50
_PREFIX = re.compile(r"^(>=|<=|!=%|!%=|!=|!@|!%|=%|%=|>|<|@|%|=|!)?(.*)$", re.S)
_NUMERIC = ("id", "int", "date", "day", "money")


@dataclass
class Cond:
    op: str
    target: Any  # Field | ("uf", name) | ("multi", name)
    value: Any


@dataclass
class ListResult:
    rows: np.ndarray
    total: int | None  # None when not counted (start = -1)
    next: int | None
    offset: int
    counted: bool
    scanned: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Query:
    """Compile a list request against one table; ``item`` selects crm.item.* naming and strictness."""

    def __init__(
        self,
        table: EntityTable,
        *,
        filter: Any,
        order: Any,
        item: bool = False,
        parse_date: Callable[[Any], float | None],
        uf_names: list[str] | None = None,
        multiple_uf: set[str] | None = None,
        default_order: tuple[str, bool] = ("ID", True),
    ):
        self.t = table
        self.item = item
        self.parse_date = parse_date
        self.uf_names = uf_names or []
        self.multiple_uf = multiple_uf or set()
        if filter not in (None, "") and not isinstance(filter, dict):
            if isinstance(filter, list) and not filter:
                filter = {}
            else:
                raise ApiError(400, "", "Parameter 'filter' must be array.")
        if order not in (None, "") and not isinstance(order, dict):
            if isinstance(order, list) and not order:
                order = {}
            else:
                raise ApiError(400, "", "Parameter 'order' must be array.")
        self.conds = [c for c in (self._cond(k, v) for k, v in (filter or {}).items()) if c is not None]
        self.order = self._order(order or {}) or [(table.fields["ID"], default_order[1])]

    # -- compile -----------------------------------------------------------------------------------
    def _resolve(self, name: str) -> Any:
        t = self.t
        if self.item:
            if name in t.by_camel:
                return t.by_camel[name]
            for uf in self.uf_names:
                if uf_camel(uf) == name or uf == name:
                    return ("uf", uf)
            return None
        if name in t.fields:
            return t.fields[name]
        if name in t.multi:
            return ("multi", name)
        if name.startswith("UF_"):
            return ("uf", name)
        return None

    def _cond(self, key: Any, value: Any) -> Cond | None:
        key = str(key)
        if key.upper() == "LOGIC" or isinstance(value, dict):
            return None  # nested/OR groups are not emulated (see docs/sandbox.md)
        m = _PREFIX.match(key)
        op, name = (m.group(1) or "="), m.group(2)
        target = self._resolve(name)
        if target is None:
            if self.item:
                raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter")
            return None  # classic list methods silently ignore unknown fields
        return Cond(op, target, value)

    def _order(self, order: dict[str, Any]) -> list[tuple[Field, bool]]:
        out = []
        for name, direction in order.items():
            target = self._resolve(str(name))
            if isinstance(target, Field):
                out.append((target, str(direction).upper() != "DESC"))
        return out

    # -- evaluate ----------------------------------------------------------------------------------
    def _mask(self, rows: np.ndarray, cond: Cond) -> np.ndarray:
        target, op, value = cond.target, cond.op, cond.value
        neg = op in ("!", "!=", "!@", "!%", "!=%", "!%=")
        base = op.lstrip("!") or "="
        if base == "":
            base = "="
        if isinstance(target, tuple):
            kind, name = target
            if kind == "multi":
                wanted = {str(v).strip().lower() for v in as_list(value)}
                arr = self.t.multi[name][rows]
                hit = np.fromiter(
                    (bool(items) and any(x["VALUE"].lower() in wanted for x in items) for items in arr), bool, rows.size
                )
            else:
                store = self.t.uf.get(name, {})
                wanted = {str(v) for v in as_list(value)}
                vals = [store.get(r) for r in rows.tolist()]
                hit = np.fromiter(
                    (
                        (str(v) in wanted) if not isinstance(v, list) else bool(wanted & {str(x) for x in v})
                        for v in vals
                    ),
                    bool,
                    rows.size,
                )
            return ~hit if neg else hit
        f: Field = target
        col = self.t.comparable(f, rows)
        if f.kind in _NUMERIC:
            conv = self.parse_date if f.kind in ("date", "day") else _num
            values = [conv(v) for v in as_list(value)] if isinstance(value, list | dict) else [conv(value)]
            if f.kind in ("date", "day") and any(v is None for v in values) and value not in ("", None):
                return np.ones(rows.size, bool)  # an unreadable date does not filter (harsh, as issue #215)
            values = [0.0 if v is None else v for v in values]
            with np.errstate(invalid="ignore"):
                if base in (">", ">=", "<", "<="):
                    v = values[0]
                    hit = {">": col > v, ">=": col >= v, "<": col < v, "<=": col <= v}[base]
                else:
                    hit = np.isin(col, np.array(values, float))
            return ~hit if neg else hit
        # strings, Y/N, constants: case-insensitive
        strs = np.array(
            ["" if v is None else ("Y" if v is True else "N" if v is False else str(v)) for v in col], object
        )
        low = np.char.lower(strs.astype(str))
        wanted = [str(v).lower() for v in (as_list(value) if isinstance(value, list | dict) else [value])]
        if base in ("%", "=%", "%="):
            pat = wanted[0]
            if base == "%":
                hit = np.char.find(low, pat) >= 0
            else:
                rx = re.compile("^" + re.escape(pat).replace("%", ".*").replace("_", ".") + "$", re.S)
                hit = np.fromiter((bool(rx.match(s)) for s in low), bool, rows.size)
        elif base in (">", ">=", "<", "<="):
            v = wanted[0]
            hit = {">": low > v, ">=": low >= v, "<": low < v, "<=": low <= v}[base]
        else:
            hit = np.isin(low, np.array(wanted, dtype=str))
        return ~hit if neg else hit

    def _all_match(self, rows: np.ndarray) -> np.ndarray:
        keep = np.ones(rows.size, bool)
        for cond in self.conds:
            if not keep.any():
                break
            idx = np.flatnonzero(keep)
            keep[idx] = self._mask(rows[idx], cond)
        return rows[keep]

    def _id_window(self) -> tuple[int, int]:
        """Row range allowed by ID conditions (ids are sorted): cheap narrowing before any scan."""
        ids = self.t.ids
        lo, hi = 0, ids.size
        for c in self.conds:
            if not (isinstance(c.target, Field) and c.target.name == "ID") or isinstance(c.value, list | dict):
                continue
            v = _num(c.value)
            v = 0.0 if v is None else v
            if c.op == ">":
                lo = max(lo, _bound(ids, v, "right"))
            elif c.op == ">=":
                lo = max(lo, _bound(ids, v, "left"))
            elif c.op == "<":
                hi = min(hi, _bound(ids, v, "left"))
            elif c.op == "<=":
                hi = min(hi, _bound(ids, v, "right"))
            elif c.op == "=":
                lo = max(lo, _bound(ids, v, "left"))
                hi = min(hi, _bound(ids, v, "right"))
        return lo, max(lo, hi)

    def run(self, start: Any) -> ListResult:
        s = _num(start)
        count = s is None or s >= 0
        offset = (int(s) // PAGE) * PAGE if (s is not None and s > 0) else 0
        lo, hi = self._id_window()
        by_id = len(self.order) == 1 and self.order[0][0].name == "ID"
        if not count and by_id:
            return self._scan(lo, hi, ascending=self.order[0][1])
        rows = np.arange(lo, hi)
        rows = rows[~self.t.deleted[lo:hi]]
        matched = self._all_match(rows)
        if not by_id:
            keys = [self._sort_key(f, matched, asc) for f, asc in reversed(self.order)]
            matched = matched[np.lexsort(keys)]
        elif not self.order[0][1]:
            matched = matched[::-1]
        total = int(matched.size)
        if not count:
            return ListResult(matched[:PAGE], None, None, 0, False, scanned=rows.size)
        page = matched[offset : offset + PAGE]
        nxt = offset + PAGE if total > offset + PAGE else None
        return ListResult(page, total, nxt, offset, True, scanned=rows.size)

    def _sort_key(self, f: Field, rows: np.ndarray, asc: bool) -> np.ndarray:
        col = self.t.comparable(f, rows)
        if col.dtype == object:
            ranks = np.unique(np.array(["" if v is None else str(v) for v in col], dtype=str), return_inverse=True)[1]
            col = ranks.astype(float)
        col = np.where(np.isnan(col), -np.inf, col)
        return col if asc else -col

    def _scan(self, lo: int, hi: int, *, ascending: bool) -> ListResult:
        """``start=-1`` with ID order: evaluate forward in growing chunks until a page is full."""
        found: list[np.ndarray] = []
        n = 0
        chunk = 256
        pos = lo if ascending else hi
        scanned = 0
        while n < PAGE and (pos < hi if ascending else pos > lo):
            a, b = (pos, min(hi, pos + chunk)) if ascending else (max(lo, pos - chunk), pos)
            rows = np.arange(a, b)
            rows = rows[~self.t.deleted[a:b]]
            scanned += b - a
            if not ascending:
                rows = rows[::-1]
            hit = self._all_match(rows)
            found.append(hit[: PAGE - n])
            n += min(hit.size, PAGE - n)
            pos = b if ascending else a
            chunk *= 4
        rows = np.concatenate(found) if found else np.zeros(0, np.int64)
        return ListResult(rows, None, None, 0, False, scanned=scanned)


def _bound(ids: np.ndarray, v: float, side: str) -> int:
    """``searchsorted(ids, v, side)`` for integer ids. A float needle would make numpy convert the whole
    id column to float on every call (≈ 1 ms per page on a 1M-deal portal), so it is rounded to the
    integer with the same position first: ``id <= v ⇔ id <= floor(v)``, ``id < v ⇔ id < ceil(v)``."""
    if math.isfinite(v) and abs(v) < 2**62:
        return int(np.searchsorted(ids, np.int64(math.floor(v) if side == "right" else math.ceil(v)), side))
    return int(np.searchsorted(ids, v, side))


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def resolve_select(
    table: EntityTable, select: Any, *, item: bool, uf_names: list[str], multiple_uf: set[str]
) -> list[str]:
    """Names to render (classic UPPER names; item API names are mapped back to classic ones)."""
    wanted = [str(s) for s in as_list(select)]
    std = list(table.fields)
    if not wanted:
        wanted = ["*", "UF_*"] if not item else ["*"]
    out: list[str] = ["ID"]
    for name in wanted:
        if name == "*":
            out.extend(std)
            if item:
                out.extend(uf_names)
                out.extend(table.multi)
        elif name == "UF_*" and not item:
            out.extend(u for u in uf_names if u not in multiple_uf)
        elif item:
            if name in table.by_camel:
                out.append(table.by_camel[name].name)
            else:
                for u in uf_names:
                    if uf_camel(u) == name or u == name:
                        out.append(u)
        elif name in table.fields or name in table.multi or name in uf_names:
            out.append(name)
    return list(dict.fromkeys(out))
