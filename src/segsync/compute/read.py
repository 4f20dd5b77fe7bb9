"""Read persisted segments back: counts per segment, one customer's state, history and latest fits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection, Text, cast, select, type_coerce

from segsync.store import tables as t


def _text(column: Any, dialect: str) -> Any:
    return type_coerce(column, Text) if dialect == "sqlite" else cast(column, Text)


def segment_counts(conn: Connection, source_id: int) -> tuple[int, dict[str, dict[str, int]]]:
    """(customers, label → value → customers) from the current ``segment_state``."""
    st = t.segment_state
    rows = conn.execute(select(_text(st.c.labels, conn.dialect.name)).where(st.c.source_id == source_id)).scalars()
    labels = pl.Series("labels", list(rows), dtype=pl.String)
    if labels.is_empty():
        return 0, {}
    pairs = (
        labels.str.extract_all(r'"[^"]+":\s*"[^"]*"')  # PostgreSQL's jsonb text puts a space after ':'
        .explode()
        .drop_nulls()
        .str.extract_groups(r'"(?<label>[^"]+)":\s*"(?<value>[^"]*)"')
        .struct.unnest()
    )
    grouped = pairs.group_by("label", "value").len().sort("label", "value")
    out: dict[str, dict[str, int]] = {}
    for label, value, count in grouped.iter_rows():
        out.setdefault(label, {})[value] = int(count)
    return labels.len(), out


@dataclass
class CustomerState:
    source: str
    source_id: int
    kind: str
    remote_id: str
    labels: dict[str, str]
    features: dict[str, Any]
    run_id: int | None
    as_of: datetime
    history: list[dict[str, Any]] = field(default_factory=list)


def find_customers(
    conn: Connection, source_ids: dict[str, int], ref: str, source: str | None
) -> list[tuple[str, int, str, str]]:
    """Candidates for ``kind:remote_id`` or a bare remote id: (source, source id, kind, remote id)."""
    kind, sep, remote = ref.partition(":")
    if not sep:
        kind, remote = "", ref
    st = t.segment_state
    ids = {name: sid for name, sid in source_ids.items() if source is None or name == source}
    if not ids:
        return []
    stmt = select(st.c.source_id, st.c.customer_kind, st.c.customer_id).where(
        st.c.source_id.in_(list(ids.values())), st.c.customer_id == remote
    )
    if kind:
        stmt = stmt.where(st.c.customer_kind == kind)
    by_id = {sid: name for name, sid in ids.items()}
    return sorted((by_id[sid], sid, k, r) for sid, k, r in conn.execute(stmt))


def customer_state(conn: Connection, source: str, source_id: int, kind: str, remote_id: str) -> CustomerState | None:
    st, sh = t.segment_state, t.segment_history
    dialect = conn.dialect.name
    row = conn.execute(
        select(_text(st.c.labels, dialect), _text(st.c.features, dialect), st.c.run_id, st.c.as_of).where(
            st.c.source_id == source_id, st.c.customer_kind == kind, st.c.customer_id == remote_id
        )
    ).first()
    if row is None:
        return None
    history = [
        {"as_of": r.as_of, "run_id": r.run_id, "label": r.label, "from": r.from_value, "to": r.to_value}
        for r in conn.execute(
            select(sh.c.as_of, sh.c.run_id, sh.c.label, sh.c.from_value, sh.c.to_value)
            .where(sh.c.source_id == source_id, sh.c.customer_kind == kind, sh.c.customer_id == remote_id)
            .order_by(sh.c.as_of, sh.c.id)
        )
    ]
    return CustomerState(
        source=source,
        source_id=source_id,
        kind=kind,
        remote_id=remote_id,
        labels=json.loads(row[0]),
        features=json.loads(row[1]),
        run_id=row[2],
        as_of=row[3],
        history=history,
    )


def latest_fits(conn: Connection, source_id: int) -> list[dict[str, Any]]:
    """The model fits of the source's latest compute run that recorded any."""
    mf = t.model_fits
    last = conn.execute(
        select(mf.c.run_id).where(mf.c.source_id == source_id).order_by(mf.c.id.desc()).limit(1)
    ).scalar()
    if last is None:
        return []
    return [
        {
            "model": r.model,
            "status": r.status,
            "params": r.params,
            "log_likelihood": r.log_likelihood,
            "detail": r.detail,
            "as_of": r.as_of,
        }
        for r in conn.execute(select(mf).where(mf.c.source_id == source_id, mf.c.run_id == last).order_by(mf.c.id))
    ]
