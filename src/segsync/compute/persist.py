"""Write an engine result to the store: ``segment_state``, ``segment_history`` and ``model_fits``.

``segment_state`` is replaced as a whole per source inside the caller's transaction (a run is the truth as
of its ``as_of``); ``segment_history`` gets one row per label whose value changed against the previous state
(including first appearance, from NULL, and disappearance, to NULL). Labels and features are serialized to
JSON by polars in one vectorized pass and written with the dialect's bulk path (:mod:`.bulk`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Connection, Text, cast, delete, insert, select, type_coerce

from segsync.compute.bulk import insert_frame
from segsync.segments.btyd import Fit
from segsync.segments.engine import LABEL_KEYS, EngineResult
from segsync.store import tables as t


def previous_labels(conn: Connection, source_id: int) -> pl.DataFrame:
    """``customer`` key and ``labels`` JSON text of the current state."""
    st = t.segment_state
    text = type_coerce(st.c.labels, Text) if conn.dialect.name == "sqlite" else cast(st.c.labels, Text)
    rows = conn.execute(select(st.c.customer_kind, st.c.customer_id, text).where(st.c.source_id == source_id)).all()
    frame = pl.DataFrame(rows, schema={"kind": pl.String, "remote_id": pl.String, "labels": pl.String}, orient="row")
    return frame.select((pl.col("kind") + ":" + pl.col("remote_id")).alias("customer"), "labels")


def _decode(labels: pl.Series, keys: list[str]) -> pl.DataFrame:
    dtype = pl.Struct({key: pl.String for key in keys})
    return (
        labels.str.json_decode(dtype).struct.unnest()
        if labels.len()
        else pl.DataFrame(schema=dict.fromkeys(keys, pl.String))
    )


def _keys_in(labels: pl.Series) -> set[str]:
    if labels.is_empty():
        return set()
    found = labels.str.extract_all(r'"[^"]+":').explode().drop_nulls().str.extract(r'"([^"]+)":', 1).unique()
    return set(found.to_list())


def transitions(previous: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """Rows ``customer, label, from_value, to_value`` for every label that changed.

    ``previous`` and ``current``: ``customer`` and ``labels`` (JSON text). A customer missing on one side
    has every label NULL there.
    """
    keys = sorted(set(LABEL_KEYS) | _keys_in(previous["labels"]) | _keys_in(current["labels"]))
    old = pl.concat([previous.select("customer"), _decode(previous["labels"], keys)], how="horizontal")
    new = pl.concat([current.select("customer"), _decode(current["labels"], keys)], how="horizontal")
    both = old.join(new, on="customer", how="full", suffix="_new", coalesce=True)
    parts = []
    for key in keys:
        before, after = pl.col(key), pl.col(f"{key}_new")
        parts.append(
            both.filter(before.ne_missing(after)).select(
                "customer", pl.lit(key).alias("label"), before.alias("from_value"), after.alias("to_value")
            )
        )
    out = pl.concat(parts) if parts else pl.DataFrame(schema={"customer": pl.String})
    return out.sort("customer", "label")


def write_state(conn: Connection, source_id: int, run_id: int, result: EngineResult, now: datetime) -> dict[str, int]:
    """Replace the source's segment state with ``result`` and append the label transitions."""
    frame = result.frame.select("customer", "kind", "remote_id")
    current = frame.with_columns(result.labels_json(), result.features_json())
    changes = transitions(previous_labels(conn, source_id), current.select("customer", "labels"))

    conn.execute(delete(t.segment_state).where(t.segment_state.c.source_id == source_id))
    as_of = pl.lit(result.as_of.astimezone(UTC), dtype=pl.Datetime("us", "UTC"))
    state = current.select(
        pl.lit(source_id, dtype=pl.Int32).alias("source_id"),
        pl.col("kind").alias("customer_kind"),
        pl.col("remote_id").alias("customer_id"),
        "labels",
        "features",
        pl.lit(run_id, dtype=pl.Int64).alias("run_id"),
        as_of.alias("as_of"),
        pl.lit(now.astimezone(UTC), dtype=pl.Datetime("us", "UTC")).alias("updated_at"),
    )
    insert_frame(conn, "segment_state", state, json_columns={"labels", "features"})
    if changes.height:
        split = changes["customer"].str.split_exact(":", 1)
        history = changes.select(
            pl.lit(source_id, dtype=pl.Int32).alias("source_id"),
            split.struct.field("field_0").alias("customer_kind"),
            split.struct.field("field_1").alias("customer_id"),
            "label",
            "from_value",
            "to_value",
            pl.lit(run_id, dtype=pl.Int64).alias("run_id"),
            as_of.alias("as_of"),
        )
        insert_frame(conn, "segment_history", history)
    return {"state_rows": current.height, "transitions": changes.height}


def write_fits(conn: Connection, source_id: int, run_id: int, fits: list[Fit], as_of: datetime, now: datetime) -> None:
    for fit in fits:
        conn.execute(
            insert(t.model_fits).values(
                source_id=source_id,
                run_id=run_id,
                model=fit.model,
                status=fit.status,
                params={**fit.params, "customers": fit.customers, "repeaters": fit.repeaters, "time_unit": "day"}
                if fit.fitted
                else {"customers": fit.customers, "repeaters": fit.repeaters},
                log_likelihood=fit.log_likelihood,
                detail=fit.detail,
                as_of=as_of,
                created_at=now,
            )
        )
