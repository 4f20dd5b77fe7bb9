"""Read what the report needs from the store (SQLAlchemy Core) into :class:`~segsync.report.inputs.SourceData`.

Large things are aggregated by the database (transitions, quarantine reasons) or read as JSON text and picked
apart by polars (labels and features), so a big store costs one pass per table and no Python object per value.

Purchases and the customers' contact points come from the analytics loader (:mod:`segsync.compute.load`), so
the report counts a purchase — its customer, its amount converted to the base currency — exactly as
``segsync compute`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine, Text, case, cast, func, literal, select, type_coerce
from sqlalchemy.sql import ColumnElement

from segsync.compute.load import store_customers, won_deals
from segsync.config.models import Rules
from segsync.config.sources import SourceBase
from segsync.report import keys as k
from segsync.report.inputs import (
    CONTACTS_SCHEMA,
    CURSORS_SCHEMA,
    HISTORY_SCHEMA,
    PURCHASES_SCHEMA,
    QUARANTINE_SCHEMA,
    RUNS_SCHEMA,
    TASKS_SCHEMA,
    FitInfo,
    Settings,
    SourceData,
)
from segsync.segments.features import purchases
from segsync.store import tables as t

_RUNS_BACK = timedelta(days=30)
_WEEK = timedelta(days=7)
_NO_LIMIT = datetime.max.replace(tzinfo=UTC)


def settings_from_rules(rules: Rules, language: str | None = None) -> Settings:
    seg = rules.segments
    lifecycle = seg.lifecycle
    lost_days = lifecycle.lost_factor * lifecycle.default_cycle.total_seconds() / 86400.0
    window = seg.abc.window
    return Settings(
        timezone=rules.timezone,
        language=language or rules.language,
        cohort_months=seg.cohorts.months,
        lost_after_months=max(1, round(lost_days / 30.44)),
        at_risk_below=seg.churn.at_risk_below,
        abc_window_days=int(window.total_seconds() // 86400) if isinstance(window, timedelta) else 0,
    )


def load_sources(engine: Engine, rules: Rules, names: Sequence[str] | None = None) -> list[SourceData]:
    """Every configured source (or the named ones), in rules-file order."""
    wanted = [s for s in rules.sources if names is None or s.name in names]
    custom = tuple(f"{k.CUSTOM_PREFIX}{rule.name}" for rule in rules.segments.custom)
    out = []
    with engine.connect() as conn:
        rows = {
            r.name: r for r in conn.execute(select(t.sources).where(t.sources.c.name.in_([s.name for s in wanted])))
        }
        for source in wanted:
            row = rows.get(source.name)
            if row is None:
                out.append(
                    SourceData(name=source.name, kind=source.kind, currency=source.base_currency, in_store=False)
                )
                continue
            out.append(_load_source(conn, row, source, custom, rules.timezone))
    return out


def _load_source(conn: Connection, row: Any, source: SourceBase, custom: tuple[str, ...], tz: str) -> SourceData:
    sid = row.id
    data = SourceData(
        name=source.name,
        kind=row.kind,
        currency=source.base_currency or row.base_currency,
        state=row.state,
        stop_reason=row.stop_reason,
        custom_labels=custom,
    )
    data.customers, data.state_as_of = _state(conn, sid, custom)
    data.history, data.history_as_of, data.history_first_run = _history(conn, sid)
    data.fits = _fits(conn, sid)
    data.purchases = _purchases(conn, sid, source, tz)
    data.contacts = store_customers(conn, sid).cast(CONTACTS_SCHEMA)  # type: ignore[arg-type]
    data.users = {
        u.remote_id: u.name
        for u in conn.execute(select(t.users.c.remote_id, t.users.c.name).where(t.users.c.source_id == sid))
        if u.name
    }
    data.tasks = _tasks(conn, sid)
    data.runs, data.cursors, data.quarantine = _health(conn, sid)
    return data


def _json_text(column: Any, dialect: str) -> ColumnElement:
    return type_coerce(column, Text) if dialect == "sqlite" else cast(column, Text)


def _frame(rows: Sequence[Any], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def _json_path(key: str) -> str:
    return f"$['{key}']" if not key.isidentifier() else f"$.{key}"


def _state(conn: Connection, sid: int, custom: tuple[str, ...]) -> tuple[pl.DataFrame, datetime | None]:
    st = t.segment_state
    dialect = conn.dialect.name
    rows = conn.execute(
        select(
            st.c.customer_kind,
            st.c.customer_id,
            _json_text(st.c.labels, dialect),
            _json_text(st.c.features, dialect),
            st.c.as_of,
        ).where(st.c.source_id == sid)
    ).all()
    raw = pl.DataFrame(
        [tuple(r) for r in rows],
        schema={
            "kind": pl.String(),
            "remote_id": pl.String(),
            "labels": pl.String(),
            "features": pl.String(),
            "as_of": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    as_of = raw["as_of"].max() if raw.height else None
    labels = _pick_keys(raw["labels"], (*k.LABELS, *custom))
    features = _pick_keys(raw["features"], (*k.NUMERIC_FEATURES, *k.TEXT_FEATURES))
    frame = pl.concat(
        [
            raw.select((pl.col("kind") + ":" + pl.col("remote_id")).alias("customer"), "kind", "remote_id"),
            labels,
            features.with_columns(pl.col(key).cast(pl.Float64, strict=False) for key in k.NUMERIC_FEATURES),
        ],
        how="horizontal",
    )
    return frame, as_of  # type: ignore[return-value]


def _pick_keys(documents: pl.Series, keys: Sequence[str]) -> pl.DataFrame:
    """The scalar values of ``keys`` in JSON objects, as text (null when absent); other keys are skipped.

    One decoding pass per document; a document whose value for one of ``keys`` is not a scalar falls back to
    a JSON-path lookup per key (slower, but nothing is lost)."""
    if documents.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(keys, pl.String()))
    try:
        return documents.str.json_decode(pl.Struct(dict.fromkeys(keys, pl.String()))).struct.unnest()
    except pl.exceptions.ComputeError:
        return pl.DataFrame([documents.str.json_path_match(_json_path(key)).alias(key) for key in keys])


def _history(conn: Connection, sid: int) -> tuple[pl.DataFrame, datetime | None, bool]:
    """Transitions of the last compute run and of the week up to it, counted by the database."""
    h = t.segment_history
    last = conn.execute(
        select(h.c.run_id, h.c.as_of).where(h.c.source_id == sid).order_by(h.c.as_of.desc(), h.c.id.desc()).limit(1)
    ).first()
    if last is None:
        return pl.DataFrame(schema=HISTORY_SCHEMA), None, False
    last_run, last_as_of = last
    in_last = h.c.run_id == last_run if last_run is not None else h.c.as_of == last_as_of
    rows = conn.execute(
        select(
            h.c.label,
            h.c.from_value,
            h.c.to_value,
            func.sum(case((in_last, 1), else_=0)),
            func.count(),
        )
        .where(h.c.source_id == sid, h.c.as_of > last_as_of - _WEEK, h.c.label.in_(k.TRANSITION_LABELS))
        .group_by(h.c.label, h.c.from_value, h.c.to_value)
    ).all()
    earlier = conn.execute(select(literal(1)).where(h.c.source_id == sid, h.c.as_of < last_as_of).limit(1)).first()
    return _frame(rows, HISTORY_SCHEMA), last_as_of, earlier is None


def _fits(conn: Connection, sid: int) -> list[FitInfo]:
    mf = t.model_fits
    latest: dict[str, FitInfo] = {}
    for r in conn.execute(
        select(mf.c.model, mf.c.status, mf.c.detail, mf.c.as_of)
        .where(mf.c.source_id == sid)
        .order_by(mf.c.created_at.desc(), mf.c.id.desc())
        .limit(20)
    ):
        latest.setdefault(r.model, FitInfo(model=r.model, status=r.status, detail=r.detail, as_of=r.as_of))
    return list(latest.values())


def _purchases(conn: Connection, sid: int, source: SourceBase, tz: str) -> pl.DataFrame:
    """Won deals as the analytics engine counts them: who bought (the source's ``customer:`` rule), when, and
    how much in the base currency (an amount it cannot convert counts as 0). All of them: the model cuts them
    at the report's as-of itself."""
    bought = purchases(won_deals(conn, sid, source), _NO_LIMIT, tz, source.purchases.pipelines)
    return bought.select("customer", "at", "amount").cast(PURCHASES_SCHEMA)  # type: ignore[arg-type]


def _tasks(conn: Connection, sid: int) -> pl.DataFrame:
    lg = t.ledger
    rows = conn.execute(
        select(_json_text(lg.c.payload, conn.dialect.name), lg.c.state, lg.c.created_at, lg.c.updated_at).where(
            lg.c.source_id == sid, lg.c.op == k.TASK_OP
        )
    ).all()
    raw = pl.DataFrame(
        [tuple(r) for r in rows],
        schema={"payload": pl.String(), **{key: TASKS_SCHEMA[key] for key in ("state", "created_at", "updated_at")}},
        orient="row",
    )
    assignee = pl.col("payload").str.json_path_match(_json_path(k.TASK_ASSIGNEE)).alias("responsible_id")
    return raw.select(assignee, "state", "created_at", "updated_at")


def _health(conn: Connection, sid: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    r, cu, q = t.runs, t.cursors, t.quarantine
    newest = _aware(conn.execute(select(func.max(r.c.started_at)).where(r.c.source_id == sid)).scalar())
    runs: list[Any] = []
    if newest is not None:
        runs = conn.execute(
            select(r.c.step, r.c.status, r.c.started_at, r.c.finished_at, r.c.error)
            .where(r.c.source_id == sid, r.c.started_at >= newest - _RUNS_BACK)
            .order_by(r.c.started_at.desc())
            .limit(2000)
        ).all()
    cursors = conn.execute(select(cu.c.stream, cu.c.updated_at).where(cu.c.source_id == sid)).all()
    quarantine = conn.execute(
        select(q.c.entity, q.c.reason, func.count(), func.max(q.c.created_at))
        .where(q.c.source_id == sid, q.c.resolved_at.is_(None))
        .group_by(q.c.entity, q.c.reason)
        .order_by(func.count().desc())
        .limit(200)
    ).all()
    quarantine_rows = [(e, reason, n, _aware(last)) for e, reason, n, last in quarantine]
    return _frame(runs, RUNS_SCHEMA), _frame(cursors, CURSORS_SCHEMA), _frame(quarantine_rows, QUARANTINE_SCHEMA)


def _aware(value: Any) -> datetime | None:
    """``max()`` over a UTC column comes back untyped on SQLite (text); make it an aware datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
