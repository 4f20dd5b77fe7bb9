"""What the report reads from the store, as plain frames: the boundary between I/O (:mod:`.data`) and the
pure model (:mod:`.model`). Tests build these by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from segsync.report import keys as k

UTC_DT = pl.Datetime("us", "UTC")


#: ``customers``: one row per analysed customer from ``segment_state``; label columns hold the label value
#: (null when absent), feature columns the feature. Extra label columns ``custom:<name>`` may follow.
def state_schema(custom: tuple[str, ...] = ()) -> dict[str, pl.DataType]:
    return {
        "customer": pl.String(),
        "kind": pl.String(),
        "remote_id": pl.String(),
        **{key: pl.String() for key in (*k.LABELS, *custom)},
        **{key: pl.Float64() for key in k.NUMERIC_FEATURES},
        **{key: pl.String() for key in k.TEXT_FEATURES},
    }


STATE_SCHEMA = state_schema()
#: ``history``: label transitions counted in SQL — in the last compute run and in the 7 days up to it.
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "label": pl.String(),
    "from_value": pl.String(),
    "to_value": pl.String(),
    "last_run": pl.Int64(),
    "week": pl.Int64(),
}
PURCHASES_SCHEMA: dict[str, pl.DataType] = {"customer": pl.String(), "at": UTC_DT, "amount": pl.Float64()}
CONTACTS_SCHEMA: dict[str, pl.DataType] = {
    "customer": pl.String(),
    "kind": pl.String(),
    "name": pl.String(),
    "company_id": pl.String(),
    "responsible_id": pl.String(),
    "phones": pl.List(pl.String()),
    "emails": pl.List(pl.String()),
}
TASKS_SCHEMA: dict[str, pl.DataType] = {
    "responsible_id": pl.String(),
    "state": pl.String(),
    "created_at": UTC_DT,
    "updated_at": UTC_DT,
}
RUNS_SCHEMA: dict[str, pl.DataType] = {
    "step": pl.String(),
    "status": pl.String(),
    "started_at": UTC_DT,
    "finished_at": UTC_DT,
    "error": pl.String(),
}
CURSORS_SCHEMA: dict[str, pl.DataType] = {"stream": pl.String(), "updated_at": UTC_DT}
#: ``quarantine``: unresolved records per entity and reason.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.String(),
    "reason": pl.String(),
    "count": pl.Int64(),
    "last_at": UTC_DT,
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


@dataclass
class FitInfo:
    model: str
    status: str  # fitted | not_fitted
    detail: str | None
    as_of: datetime


@dataclass
class SourceData:
    """One source's raw material for the report."""

    name: str
    kind: str
    currency: str | None
    state: str = "active"
    stop_reason: str | None = None
    state_as_of: datetime | None = None
    customers: pl.DataFrame = field(default_factory=lambda: empty(STATE_SCHEMA))
    custom_labels: tuple[str, ...] = ()  # label keys custom:<name>, columns of ``customers``
    history: pl.DataFrame = field(default_factory=lambda: empty(HISTORY_SCHEMA))
    history_as_of: datetime | None = None  # as_of of the last compute run that recorded transitions
    history_first_run: bool = False  # that run was the first: every label "appeared", nothing moved
    fits: list[FitInfo] = field(default_factory=list)
    purchases: pl.DataFrame = field(default_factory=lambda: empty(PURCHASES_SCHEMA))
    contacts: pl.DataFrame = field(default_factory=lambda: empty(CONTACTS_SCHEMA))
    users: dict[str, str] = field(default_factory=dict)
    tasks: pl.DataFrame = field(default_factory=lambda: empty(TASKS_SCHEMA))
    runs: pl.DataFrame = field(default_factory=lambda: empty(RUNS_SCHEMA))
    cursors: pl.DataFrame = field(default_factory=lambda: empty(CURSORS_SCHEMA))
    quarantine: pl.DataFrame = field(default_factory=lambda: empty(QUARANTINE_SCHEMA))
    in_store: bool = True  # False: configured but never synced


@dataclass(frozen=True)
class Settings:
    """The knobs of the report, taken from the rules file."""

    timezone: str = "Europe/Moscow"
    language: str = "ru"
    cohort_months: int = 24
    lost_after_months: int = 9  # no purchase for this many months → counted as lost in the management view
    churn_rows: int = 50
    duplicate_groups: int = 20
    at_risk_below: float = 0.5
    abc_window_days: int = 365
