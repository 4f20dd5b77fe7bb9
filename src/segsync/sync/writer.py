"""Write one page atomically: rows, quarantine, deletions and the cursor in one transaction.

That single transaction is the whole crash-safety story of a pull: after a kill -9 the store
holds exactly the pages whose cursor it holds, and the next run resumes from there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, update

from segsync.app import now_utc
from segsync.contract import Currency, Page
from segsync.store import PreparedUpsert, mark_deleted, prepare_upsert, run_upsert, upsert
from segsync.store import tables as t
from segsync.sync.rows import ENTITY_TABLES, TARGETS, storable


def save_cursor(conn: Connection, source_id: int, stream: str, state: dict[str, Any], now: datetime) -> None:
    upsert(
        conn,
        t.cursors,
        [{"source_id": source_id, "stream": stream, "state": state, "updated_at": now}],
        ["source_id", "stream"],
        only_if_changed=False,
    )


def _quarantine(conn: Connection, source_id: int, page: Page, run_id: int | None, now: datetime) -> None:
    if not page.rejected:
        return
    ids = [r.remote_id for r in page.rejected if r.remote_id is not None]
    if ids:  # one open entry per record: the latest reason wins
        conn.execute(
            t.quarantine.delete().where(
                and_(
                    t.quarantine.c.source_id == source_id,
                    t.quarantine.c.entity == page.entity,
                    t.quarantine.c.remote_id.in_(ids),
                    t.quarantine.c.resolved_at.is_(None),
                )
            )
        )
    rows = [
        storable({
            "source_id": source_id,
            "entity": r.entity,
            "remote_id": r.remote_id,
            "reason": r.reason[:2000],
            "raw": r.raw if isinstance(r.raw, dict | list) else {"value": repr(r.raw)[:2000]},
            "run_id": run_id,
            "created_at": now,
        })
        for r in page.rejected
    ]  # fmt: skip
    conn.execute(t.quarantine.insert(), rows)


def _resolve_quarantine(conn: Connection, source_id: int, entity: str, ids: list[str], now: datetime) -> None:
    for start in range(0, len(ids), 500):
        conn.execute(
            update(t.quarantine)
            .where(
                t.quarantine.c.source_id == source_id,
                t.quarantine.c.entity == entity,
                t.quarantine.c.remote_id.in_(ids[start : start + 500]),
                t.quarantine.c.resolved_at.is_(None),
            )
            .values(resolved_at=now)
        )


class PageWriter:
    """Writes pages of one source; remembers which entities have open quarantine entries to resolve."""

    def __init__(self, engine: Engine, source_id: int, run_id: int | None = None, cursor_stream: str | None = None):
        self.engine = engine
        self.source_id = source_id
        self.run_id = run_id
        self.cursor_stream = cursor_stream
        self._open_quarantine: set[str] | None = None

    def _quarantined_entities(self, conn: Connection) -> set[str]:
        if self._open_quarantine is None:
            rows = conn.execute(
                t.quarantine.select()
                .with_only_columns(t.quarantine.c.entity)
                .where(t.quarantine.c.source_id == self.source_id, t.quarantine.c.resolved_at.is_(None))
                .distinct()
            )
            self._open_quarantine = {r[0] for r in rows}
        return self._open_quarantine

    def _learn_base_currency(self, conn: Connection, currencies: list[Currency], now: datetime) -> None:
        """Revenue figures everywhere (compute, report) are in the CRM's base currency, learned from its data."""
        base = next((c.code for c in currencies if c.is_base), None)
        if base is None:
            return
        conn.execute(
            update(t.sources)
            .where(t.sources.c.id == self.source_id, t.sources.c.base_currency.is_distinct_from(base))
            .values(base_currency=base, updated_at=now)
        )

    def prepare(self, page: Page) -> PreparedPage:
        """The CPU half of :meth:`write`: rows converted for the store, no database access. A pull runs it
        on its event loop for page N+1 while :meth:`apply` writes page N in a worker thread."""
        now = now_utc()
        by_type: dict[type, list[Any]] = defaultdict(list)
        for record in page.records:
            by_type[type(record)].append(record)
        dialect = self.engine.dialect
        upserts = []
        for rtype, records in by_type.items():
            target = TARGETS[rtype]
            rows = [target.to_row(r, self.source_id, now) for r in records]
            upserts.append(prepare_upsert(dialect, target.table, rows, target.keys))
        return PreparedPage(page, now, upserts, by_type.get(Currency, []))

    def apply(self, prepared: PreparedPage) -> dict[str, int]:
        """Write a prepared page in one transaction; return counts: upserted (rows received), changed (rows
        that differed from the store), quarantined, deleted, restored."""
        page, now = prepared.page, prepared.now
        counts = {"upserted": len(page.records), "changed": 0, "quarantined": len(page.rejected), "deleted": 0,
                  "restored": 0}  # fmt: skip
        with self.engine.begin() as conn:
            for prepared_upsert in prepared.upserts:
                counts["changed"] += run_upsert(conn, prepared_upsert)
            self._learn_base_currency(conn, prepared.currencies, now)
            _quarantine(conn, self.source_id, page, self.run_id, now)
            if page.rejected:
                self._quarantined_entities(conn).add(page.entity)
            if page.records and page.entity in self._quarantined_entities(conn):
                ids = [getattr(r, "remote_id", None) for r in page.records]
                _resolve_quarantine(conn, self.source_id, page.entity, [i for i in ids if i], now)
            if page.deleted or page.restored:
                table, match = ENTITY_TABLES[page.entity]
                counts["deleted"] += mark_deleted(conn, table, self.source_id, match, page.deleted, now)
                counts["restored"] += restore(conn, table, self.source_id, match, page.restored)
            if page.cursor is not None:
                save_cursor(conn, self.source_id, self.cursor_stream or page.entity, page.cursor, now)
        return counts

    def write(self, page: Page) -> dict[str, int]:
        """Apply ``page`` (see :meth:`apply` for the counts)."""
        return self.apply(self.prepare(page))


@dataclass(frozen=True)
class PreparedPage:
    page: Page
    now: datetime
    upserts: list[PreparedUpsert | None]
    currencies: list[Currency]


def restore(conn: Connection, table: Any, source_id: int, match: dict[str, Any], ids: list[str]) -> int:
    total = 0
    for start in range(0, len(ids), 500):
        cond = and_(
            table.c.source_id == source_id,
            table.c.remote_id.in_(ids[start : start + 500]),
            table.c.deleted_at.is_not(None),
            *[table.c[k] == v for k, v in match.items()],
        )
        total += conn.execute(table.update().where(cond).values(deleted_at=None)).rowcount or 0
    return total
