"""The report as typed data, built from :class:`~segsync.report.inputs.SourceData` — pure and language-neutral.

Label values stay codes here (``A``, ``champions``); :mod:`.render` turns them into words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from segsync.report import calc
from segsync.report import keys as k
from segsync.report.inputs import Settings, SourceData
from segsync.segments import quality as dq
from segsync.segments.cohorts import cohort_table, month_label

WEEK = timedelta(days=7)
_TRANSITION_ROWS = 40
_QUARANTINE_REASONS = 5


@dataclass
class Cell:
    customers: int = 0
    revenue: float = 0.0


@dataclass
class Matrix:
    """ABC rows × XYZ columns; ``cells[(abc, xyz)]``. Customers without revenue (ABC ``N``) are counted apart."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    no_revenue: int = 0

    def cell(self, row: str, column: str) -> Cell:
        return self.cells.get((row, column), Cell())

    @property
    def total(self) -> Cell:
        return Cell(sum(c.customers for c in self.cells.values()), sum(c.revenue for c in self.cells.values()))


@dataclass
class SegmentStat:
    label: str
    value: str
    customers: int
    revenue: float


@dataclass
class Transition:
    label: str
    from_value: str | None  # None: the label appeared
    to_value: str | None  # None: the label was removed
    last_run: int
    week: int


@dataclass
class NetChange:
    label: str
    value: str
    net: int  # customers in − out over the week


@dataclass
class CohortRow:
    cohort: str  # YYYY-MM
    size: int
    retention: list[float | None]  # per month since the first purchase; None = not reached yet


@dataclass
class ChurnRow:
    customer: str
    name: str | None
    manager: str | None
    abc: str | None
    rfm: str | None
    revenue: float
    p_alive: float | None
    value_at_risk: float
    days_silent: float | None
    days_since_touch: float | None


@dataclass
class ManagerTasks:
    manager: str | None  # None: no assignee
    manager_id: str | None
    created: int
    created_week: int
    open: int
    failed: int


@dataclass
class DuplicateGroup:
    match: str  # phone | email | name_company (see segsync.segments.quality)
    customers: list[tuple[str, str | None]]  # (key, name)


@dataclass
class Quality:
    checked: int  # customers in the store
    duplicate_groups: int
    duplicate_customers: int
    by_match: dict[str, int]  # match → groups
    groups: list[DuplicateGroup]
    analysed: int
    unreachable: int
    unreachable_by_manager: list[tuple[str | None, int]]


@dataclass
class StepHealth:
    step: str
    status: str | None
    finished_at: datetime | None
    error: str | None


@dataclass
class Health:
    source: str
    kind: str
    state: str
    stop_reason: str | None
    in_store: bool
    steps: list[StepHealth]
    runs_ok_week: int
    runs_failed_week: int
    newest_cursor: datetime | None  # when a pull last moved a cursor: the freshest data received
    quarantined: int
    quarantine_reasons: list[tuple[str, str, int]]  # entity, reason, count

    def step(self, name: str) -> StepHealth | None:
        return next((s for s in self.steps if s.step == name), None)

    @property
    def ok(self) -> bool:
        failed = any(s.status in ("failed", "interrupted") for s in self.steps)
        return self.in_store and self.state == "active" and not failed


@dataclass
class MonthRow:
    month: str  # YYYY-MM
    partial: bool  # the current, unfinished month
    gained: int
    returned: int
    lost: int
    active: int
    revenue_new: float
    revenue_existing: float


@dataclass
class Kpis:
    customers: int
    buyers_365d: int
    revenue_365d: float
    revenue_a_share: float | None
    value_at_risk: float
    tasks_week: int


@dataclass
class SourceReport:
    name: str
    kind: str
    currency: str | None
    as_of: datetime | None
    kpis: Kpis
    matrix: Matrix
    rfm: list[SegmentStat]
    rule_segments: list[SegmentStat]
    transitions: list[Transition]
    net_changes: list[NetChange]
    transitions_as_of: datetime | None
    first_run: bool
    cohorts: list[CohortRow]
    cohort_periods: int
    churn: list[ChurnRow]
    churn_model: str | None  # "fitted", "not_fitted" or None when no fit was recorded
    tasks: list[ManagerTasks]
    quality: Quality
    monthly: list[MonthRow]
    lost_after_months: int
    has_state: bool


@dataclass
class Report:
    generated_at: datetime
    settings: Settings
    sources: list[SourceReport] = field(default_factory=list)
    health: list[Health] = field(default_factory=list)


def build_report(sources: list[SourceData], settings: Settings, generated_at: datetime) -> Report:
    report = Report(generated_at=generated_at, settings=settings)
    for data in sources:
        report.health.append(health(data, generated_at))
        if data.in_store:
            report.sources.append(source_report(data, settings, generated_at))
    return report


def _value(frame: pl.DataFrame, column: str) -> pl.Expr:
    return pl.col(column).fill_null(0.0) if column in frame.columns else pl.lit(0.0)


def source_report(data: SourceData, settings: Settings, now: datetime) -> SourceReport:
    as_of = data.state_as_of or now
    state = data.customers
    tasks = manager_tasks(data, as_of)
    churn, model_status = churn_list(data, settings)
    revenue = state[k.REVENUE_365D].fill_null(0.0) if state.height else pl.Series([], dtype=pl.Float64)
    total = float(revenue.sum() or 0.0)
    a_revenue = float(state.filter(pl.col(k.ABC) == "A")[k.REVENUE_365D].fill_null(0.0).sum() or 0.0)
    transitions, net = transition_lists(data)
    cohorts, periods = cohort_rows(data, settings, as_of)
    return SourceReport(
        name=data.name,
        kind=data.kind,
        currency=data.currency,
        as_of=data.state_as_of,
        kpis=Kpis(
            customers=state.height,
            buyers_365d=int((revenue > 0).sum()),
            revenue_365d=total,
            revenue_a_share=a_revenue / total if total > 0 else None,
            value_at_risk=risk_total(state, settings),
            tasks_week=sum(t.created_week for t in tasks),
        ),
        matrix=abc_xyz_matrix(state),
        rfm=segment_stats(state, k.RFM, k.RFM_ORDER),
        rule_segments=rule_segments(state, data.custom_labels),
        transitions=transitions,
        net_changes=net,
        transitions_as_of=data.history_as_of,
        first_run=data.history_first_run,
        cohorts=cohorts,
        cohort_periods=periods,
        churn=churn,
        churn_model=model_status,
        tasks=tasks,
        quality=quality(data, settings),
        monthly=monthly(data, settings, as_of),
        lost_after_months=settings.lost_after_months,
        has_state=state.height > 0,
    )


def abc_xyz_matrix(state: pl.DataFrame) -> Matrix:
    """Customers and revenue per ABC×XYZ cell; revenue is the ABC window's (what decides the class)."""
    if state.is_empty():
        return Matrix(rows=list(k.ABC_ROWS), columns=["X", "Y", "Z"], cells={})
    revenue = pl.coalesce(pl.col(k.REVENUE_WINDOW), pl.col(k.REVENUE_365D), pl.lit(0.0))
    ranked = state.filter(pl.col(k.ABC).is_in(k.ABC_ROWS))
    grouped = (
        ranked.with_columns(pl.col(k.XYZ).fill_null("").alias("_xyz"))
        .group_by(k.ABC, "_xyz")
        .agg(pl.len().alias("n"), revenue.sum().alias("revenue"))
    )
    cells = {(r[k.ABC], r["_xyz"]): Cell(int(r["n"]), float(r["revenue"])) for r in grouped.iter_rows(named=True)}
    present = {xyz for _, xyz in cells}
    columns = [c for c in k.XYZ_COLUMNS if c in present or c in ("X", "Y", "Z")]
    columns += sorted(present - set(columns))
    no_revenue = int((state[k.ABC] == k.ABC_NO_REVENUE).sum())
    return Matrix(rows=list(k.ABC_ROWS), columns=columns, cells=cells, no_revenue=no_revenue)


def segment_stats(state: pl.DataFrame, label: str, order: tuple[str, ...]) -> list[SegmentStat]:
    """Customers and 12-month revenue per value of ``label``, in the label's natural order (unknown last)."""
    if state.is_empty() or label not in state.columns:
        return []
    grouped = (
        state.drop_nulls(label)
        .group_by(label)
        .agg(pl.len().alias("n"), _value(state, k.REVENUE_365D).sum().alias("revenue"))
    )
    rank = {value: i for i, value in enumerate(order)}
    stats = [SegmentStat(label, r[label], int(r["n"]), float(r["revenue"])) for r in grouped.iter_rows(named=True)]
    return sorted(stats, key=lambda s: (rank.get(s.value, len(rank)), s.value))


def rule_segments(state: pl.DataFrame, custom: tuple[str, ...]) -> list[SegmentStat]:
    """VIP and the admin's own segments: how many customers, how much revenue."""
    out = []
    for label in (k.VIP, k.CHURN_FLAG, *custom):
        if label not in state.columns:
            continue
        hits = state.filter(pl.col(label) == k.YES)
        revenue = float(hits[k.REVENUE_365D].fill_null(0.0).sum() or 0.0) if hits.height else 0.0
        out.append(SegmentStat(label, k.YES, hits.height, revenue))
    return out


def transition_lists(data: SourceData) -> tuple[list[Transition], list[NetChange]]:
    history = data.history
    if history.is_empty():
        return [], []
    label_rank = {label: i for i, label in enumerate(k.TRANSITION_LABELS)}
    rows = [
        Transition(r["label"], r["from_value"], r["to_value"], int(r["last_run"]), int(r["week"]))
        for r in history.iter_rows(named=True)
    ]
    moves = list(rows)  # a None side: the customer got the label for the first time, or lost it
    moves.sort(key=lambda r: (label_rank.get(r.label, 99), -r.week, -r.last_run, r.from_value or "", r.to_value or ""))
    net: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.label not in (k.LIFECYCLE, k.RFM) or data.history_first_run:
            continue
        if r.to_value is not None:
            net[(r.label, r.to_value)] = net.get((r.label, r.to_value), 0) + r.week
        if r.from_value is not None:
            net[(r.label, r.from_value)] = net.get((r.label, r.from_value), 0) - r.week
    changes = [NetChange(label, value, n) for (label, value), n in net.items() if n]
    orders = {label: {v: i for i, v in enumerate(k.ORDERS[label])} for label in (k.LIFECYCLE, k.RFM)}
    changes.sort(key=lambda c: (label_rank[c.label], orders[c.label].get(c.value, 99), c.value))
    return moves[:_TRANSITION_ROWS], changes


def cohort_rows(data: SourceData, settings: Settings, as_of: datetime) -> tuple[list[CohortRow], int]:
    """Retention by monthly cohort; at most 13 columns (months 0–12 after the first purchase)."""
    current = calc.month_of(as_of, settings.timezone)
    bought = calc.purchase_months(data.purchases, as_of, settings.timezone)
    table = cohort_table(bought, current, settings.cohort_months)
    periods = min(13, settings.cohort_months)
    out = []
    for (cohort,), part in table.group_by(["cohort"], maintain_order=True):
        retention: list[float | None] = [None] * periods
        for period, share in part.select("period", "retention").iter_rows():
            if period < periods:
                retention[period] = float(share)
        out.append(CohortRow(str(cohort), int(part["size"][0]), retention))
    return out, periods


def risk_score(state: pl.DataFrame) -> pl.Expr:
    """Value at risk: 12-month revenue × (1 − P(alive)); without a model, the revenue of customers the
    silence rule flags (churn flag or high risk)."""
    value = _value(state, k.REVENUE_365D)
    flagged = (pl.col(k.CHURN_FLAG) == k.YES) | (pl.col(k.CHURN_RISK) == "high")
    return (
        pl.when(pl.col(k.P_ALIVE).is_not_null())
        .then(value * (1.0 - pl.col(k.P_ALIVE).clip(0.0, 1.0)))
        .when(flagged.fill_null(False))
        .then(value)
        .otherwise(0.0)
    )


def risk_total(state: pl.DataFrame, settings: Settings) -> float:
    if state.is_empty():
        return 0.0
    return float(state.select(risk_score(state).sum()).item() or 0.0)


def churn_list(data: SourceData, settings: Settings) -> tuple[list[ChurnRow], str | None]:
    fits = [f for f in data.fits if f.model in ("bgnbd", "mbgnbd")]
    status = fits[0].status if fits else None
    state = data.customers
    if state.is_empty():
        return [], status
    top = (
        state.with_columns(risk_score(state).alias("_risk"))
        .filter(pl.col("_risk") > 0)
        .sort(["_risk", "customer"], descending=[True, False])
        .head(settings.churn_rows)
    )
    rows = [
        ChurnRow(
            customer=r["customer"],
            name=r[k.NAME],
            manager=_manager(data, r[k.RESPONSIBLE]),
            abc=r[k.ABC],
            rfm=r[k.RFM],
            revenue=float(r[k.REVENUE_365D] or 0.0),
            p_alive=r[k.P_ALIVE],
            value_at_risk=float(r["_risk"]),
            days_silent=r[k.RECENCY_DAYS],
            days_since_touch=r[k.DAYS_SINCE_TOUCH],
        )
        for r in top.iter_rows(named=True)
    ]
    return rows, status


def _manager(data: SourceData, remote_id: str | None) -> str | None:
    if remote_id is None:
        return None
    return data.users.get(remote_id) or f"#{remote_id}"


def manager_tasks(data: SourceData, as_of: datetime) -> list[ManagerTasks]:
    tasks = data.tasks
    if tasks.is_empty():
        return []
    state = pl.col("state")
    grouped = tasks.group_by("responsible_id").agg(
        (state == k.TASK_CREATED).sum().alias("created"),
        ((state == k.TASK_CREATED) & (pl.col("updated_at") > as_of - WEEK)).sum().alias("week"),
        state.is_in(k.TASK_OPEN_STATES).sum().alias("open"),
        state.is_in(k.TASK_FAILED_STATES).sum().alias("failed"),
    )
    out = [
        ManagerTasks(
            manager=_manager(data, r["responsible_id"]),
            manager_id=r["responsible_id"],
            created=int(r["created"]),
            created_week=int(r["week"]),
            open=int(r["open"]),
            failed=int(r["failed"]),
        )
        for r in grouped.iter_rows(named=True)
    ]
    return sorted(out, key=lambda m: (-m.created, -m.open, m.manager or "\uffff"))


def quality(data: SourceData, settings: Settings) -> Quality:
    contacts = data.contacts
    groups = dq.duplicate_groups(contacts)
    names = dict(contacts.select("customer", "name").iter_rows())
    by_match = dict(groups.group_by("match").agg(pl.col("group").n_unique()).iter_rows()) if groups.height else {}
    top: list[DuplicateGroup] = []
    if groups.height:
        sized = (
            groups.group_by("group", "match")
            .agg(pl.col("customer"))
            .sort([pl.col("customer").list.len(), "group"], descending=[True, False])
        )
        for r in sized.head(settings.duplicate_groups).iter_rows(named=True):
            top.append(DuplicateGroup(r["match"], [(c, names.get(c)) for c in r["customer"]]))
    analysed = data.customers.select("customer") if data.customers.height else contacts.select("customer")
    missing = dq.unreachable(analysed, contacts)
    owners = (
        missing.join(data.customers.select("customer", k.RESPONSIBLE), on="customer", how="left")
        .group_by(k.RESPONSIBLE)
        .len()
        .sort(["len", k.RESPONSIBLE], descending=[True, False], nulls_last=True)
        .head(10)
        if missing.height and k.RESPONSIBLE in data.customers.columns
        else pl.DataFrame()
    )
    return Quality(
        checked=contacts.height,
        duplicate_groups=int(groups["group"].n_unique()) if groups.height else 0,
        duplicate_customers=int(groups["customer"].n_unique()) if groups.height else 0,
        by_match={str(m): int(n) for m, n in by_match.items()},
        groups=top,
        analysed=analysed.height,
        unreachable=missing.height,
        unreachable_by_manager=[(_manager(data, rid), int(n)) for rid, n in owners.iter_rows()],
    )


def monthly(data: SourceData, settings: Settings, as_of: datetime) -> list[MonthRow]:
    current = calc.month_of(as_of, settings.timezone)
    months = min(settings.cohort_months, 24)
    bought = calc.purchase_months(data.purchases, as_of, settings.timezone)
    view = calc.management_view(bought, current, months, settings.lost_after_months)
    view = view.with_columns(month_label(pl.col("month")).alias("label"))
    return [
        MonthRow(
            month=r["label"],
            partial=int(r["month"]) == current,
            gained=int(r["gained"]),
            returned=int(r["returned"]),
            lost=int(r["lost"]),
            active=int(r["active"]),
            revenue_new=float(r["revenue_new"]),
            revenue_existing=float(r["revenue_existing"]),
        )
        for r in view.iter_rows(named=True)
    ]


def health(data: SourceData, now: datetime) -> Health:
    runs = data.runs
    steps = []
    for step in k.HEALTH_STEPS:
        mine = runs.filter(pl.col("step") == step).sort("started_at", descending=True)
        if mine.is_empty():
            continue
        last = mine.row(0, named=True)
        steps.append(StepHealth(step, last["status"], last["finished_at"] or last["started_at"], last["error"]))
    week = runs.filter(pl.col("started_at") > now - WEEK)
    cursors = data.cursors["updated_at"]
    q = data.quarantine
    return Health(
        source=data.name,
        kind=data.kind,
        state=data.state,
        stop_reason=data.stop_reason,
        in_store=data.in_store,
        steps=steps,
        runs_ok_week=int((week["status"] == "ok").sum()),
        runs_failed_week=int(week["status"].is_in(["failed", "interrupted"]).sum()),
        newest_cursor=cursors.max() if cursors.len() else None,  # type: ignore[arg-type]
        quarantined=int(q["count"].sum()) if q.height else 0,
        quarantine_reasons=[
            (r["entity"], r["reason"], int(r["count"]))
            for r in q.sort("count", descending=True).head(_QUARANTINE_REASONS).iter_rows(named=True)
        ],
    )
