"""Task ops from firings: assignee, cooldown, texts, priority and the daily cap per manager — pure.

Every run re-slots the tasks not sent yet: the most valuable customers of the highest-priority
actions go first, each manager gets at most ``daily_cap_per_manager`` new tasks per business day, and
the rest wait in the ledger with ``not_before`` set to a later business day. Tasks already sent keep
their day and count against that day's cap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from segsync.actions.bridge import DisplayFn, feature
from segsync.actions.calendar import BusinessCalendar
from segsync.actions.keys import complete_key, task_key, task_marker
from segsync.actions.model import OPEN_STATES, SENT_STATES, CustomerState, LedgerRow, Op
from segsync.actions.next_step import suggest
from segsync.actions.render import render
from segsync.actions.triggers import Firing
from segsync.config.actions import ActionConfig, ActionLimits
from segsync.contract import CustomerRef

_PRIORITY = {"high": 0, "normal": 1, "low": 2}
TITLE_MAX = 250


@dataclass(slots=True)
class _Candidate:
    rule: ActionConfig
    firing: Firing
    key: str
    row: LedgerRow | None
    assignee: str
    earliest: datetime
    value: float
    note: str


def customer_value(state: CustomerState) -> float:
    """What the daily cap sorts by: predicted value when the model gave one, else recent revenue."""
    for name in ("clv", "revenue_365d", "revenue_total"):
        raw = feature(state.features, name)
        try:
            if raw is not None:
                return float(raw)
        except (TypeError, ValueError):
            continue
    return 0.0


def pick_assignee(rule: ActionConfig, state: CustomerState, active: Mapping[str, bool]) -> tuple[str | None, str]:
    """(user id, note). Users missing from the users table count as inactive once users are known."""

    def usable(uid: str | None) -> bool:
        return uid is not None and active.get(uid, not active)

    task = rule.task
    first = state.responsible_id if task.assignee == "responsible" else task.assignee
    if first is None and task.assignee == "responsible":
        first = feature(state.features, "responsible_id")
        first = None if first is None else str(first)
    if usable(first):
        return first, ""
    if usable(task.fallback_user):
        why = "no responsible manager" if first is None else f"user {first} is inactive"
        return task.fallback_user, f"; assigned to fallback user {task.fallback_user} ({why})"
    return None, "no responsible manager" if first is None else f"user {first} is inactive and no active fallback_user"


def task_context(
    state: CustomerState,
    rule: ActionConfig,
    display: DisplayFn,
    language: str,
    currency: str | None,
    due: datetime,
    published: list[str],
    timezone: str | None = None,
) -> dict[str, Any]:
    f = state.features
    shown = {k: v for k, v in ((k, display(k, code, language)) for k, code in state.labels.items()) if v}
    if rule.transition is not None:
        segment = shown.get(rule.transition.segment) or str(state.labels.get(rule.transition.segment) or "")
    else:
        segment = ", ".join(shown[k] for k in published if k in shown) or ", ".join(shown.values())
    ctx: dict[str, Any] = {
        "customer": {"name": state.name or "", "id": state.ref.remote_id, "kind": state.ref.kind},
        "segment": segment,
        "labels": shown,
        "codes": dict(state.labels),
        "features": dict(f),
        "last_purchase": {"date": feature(f, "last_purchase_at"), "amount": feature(f, "last_purchase_amount")},
        "revenue_total": feature(f, "revenue_total"),
        "revenue_365d": feature(f, "revenue_365d"),
        "n_purchases": feature(f, "n_purchases"),
        "days_silent": feature(f, "days_silent"),
        "usual_cycle": feature(f, "usual_cycle"),
        "p_alive": feature(f, "p_alive"),
        "clv": feature(f, "clv"),
        "rule": rule.name,
        "due": due,
        "currency": currency or "RUB",
        "language": language,
    }
    ctx["next_step"] = (
        render(rule.task.next_step, ctx, language, timezone) if rule.task.next_step else suggest(state.labels, language)
    )
    return ctx


def _slot_of(row: LedgerRow, calendar: BusinessCalendar) -> date:
    slot = row.payload.get("slot")
    return date.fromisoformat(slot) if slot else calendar.local_date(row.created_at)


def _sent_at(row: LedgerRow) -> datetime:
    raw = row.payload.get("sent_at")
    return datetime.fromisoformat(raw) if raw else row.created_at


def _as_datetime(value: Any) -> datetime | None:
    """Feature timestamps as aware datetimes (naive ones are UTC, as the store keeps them)."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def _existing(row: LedgerRow, change: str, reason: str, payload: dict[str, Any] | None = None) -> Op:
    return Op(
        key=row.key,
        op=row.op,
        customer=row.customer,
        rule=row.rule,
        change=change,  # type: ignore[arg-type]
        reason=reason,
        payload=payload if payload is not None else row.payload,
        not_before=row.not_before if change == "due" else None,
        row_id=row.id,
        attempts=row.attempts,
    )


def plan_tasks(
    source: str,
    actions: list[ActionConfig],
    firings: Mapping[str, list[Firing]],
    states: Mapping[CustomerRef, CustomerState],
    ledger: list[LedgerRow],
    active_users: Mapping[str, bool],
    gone: set[CustomerRef],
    limits: ActionLimits,
    calendar: BusinessCalendar,
    display: DisplayFn,
    language: str,
    currency: str | None,
    published: list[str],
    as_of: datetime,
) -> tuple[list[Op], list[str]]:
    """Task and completion ops; ``firings`` maps action name → customers it fires for now."""
    notes: list[str] = []
    tasks = [r for r in ledger if r.op == "task"]
    by_key = {r.key: r for r in ledger}
    history: dict[tuple[str, CustomerRef], list[LedgerRow]] = defaultdict(list)
    for row in tasks:
        if row.state in SENT_STATES and row.rule is not None:
            history[(row.rule, row.customer)].append(row)

    ops: list[Op] = []
    candidates: list[_Candidate] = []
    wanted: set[str] = set()
    unassigned = 0
    for rule in actions:
        for firing in firings.get(rule.name, ()):
            if firing.customer in gone:
                continue
            key = task_key(source, rule.name, firing.customer, firing.episode)
            wanted.add(key)
            row = by_key.get(key)
            if row is not None and row.state != "planned":
                continue  # sent, skipped or parked: this episode is handled
            state = states[firing.customer]
            assignee, note = pick_assignee(rule, state, active_users)
            if assignee is None:
                unassigned += 1
                if row is not None:
                    ops.append(_existing(row, "cancel", f"not created: {note}"))
                continue
            earliest = firing.earliest
            previous = [r for r in history.get((rule.name, firing.customer), ()) if r.key != key]
            if previous:
                last = max(_sent_at(r) for r in previous)
                if last + rule.cooldown > earliest:
                    earliest = last + rule.cooldown
                    note += f"; cooldown: previous task {last.date().isoformat()}"
            candidates.append(_Candidate(rule, firing, key, row, assignee, earliest, customer_value(state), note))
    if unassigned:
        notes.append(f"{unassigned} task(s) not planned: no active assignee (set task.fallback_user)")

    for row in tasks:
        if row.key in wanted:
            continue
        if row.state == "planned" or row.state == "failed":
            ops.append(_existing(row, "cancel", "not created: the trigger no longer holds"))
    for row in tasks:
        if row.state == "failed" and row.key in wanted:
            ops.append(_existing(row, "due", row.reason or "retry"))

    ops.extend(_slot(candidates, tasks, states, limits, calendar, display, language, currency, published, as_of))
    ops.extend(_completions(actions, tasks, by_key, states, as_of))
    return ops, notes


def _slot(
    candidates: list[_Candidate],
    tasks: list[LedgerRow],
    states: Mapping[CustomerRef, CustomerState],
    limits: ActionLimits,
    calendar: BusinessCalendar,
    display: DisplayFn,
    language: str,
    currency: str | None,
    published: list[str],
    as_of: datetime,
) -> list[Op]:
    used: dict[tuple[str, date], int] = defaultdict(int)
    for row in tasks:
        if row.state in SENT_STATES and row.payload.get("responsible_id"):
            used[(row.payload["responsible_id"], _slot_of(row, calendar))] += 1
    today = calendar.local_date(as_of)
    first_day = calendar.next_business_day(today)
    cap = limits.daily_cap_per_manager
    candidates.sort(key=lambda c: (_PRIORITY[c.rule.task.priority], -c.value, c.key))
    ops: list[Op] = []
    for c in candidates:
        base = max(first_day, calendar.next_business_day(calendar.local_date(c.earliest)))
        day = base
        while used[(c.assignee, day)] >= cap:
            day = calendar.next_business_day(day, inclusive=False)
        used[(c.assignee, day)] += 1
        not_before = calendar.opening(day) if day > today else None
        if c.earliest > as_of:
            not_before = max(not_before or c.earliest, c.earliest)
        why = []
        if c.earliest > as_of:
            why.append("cooldown")
        elif base > today:
            why.append("next business day")
        if day > base:
            why.append(f"daily cap of {cap} tasks for user {c.assignee}")
        queued = "" if not_before is None else f"; queued for {day.isoformat()} ({', '.join(why)})"
        due = calendar.due(day, c.rule.task.due)
        state = states[c.firing.customer]
        zone = calendar.tz.key
        ctx = task_context(state, c.rule, display, language, currency, due, published, zone)
        title = render(c.rule.task.title, ctx, language, zone)[:TITLE_MAX]
        description = render(c.rule.task.description, ctx, language, zone) if c.rule.task.description else ""
        payload = {
            "title": title,
            "description": description,
            "type": c.rule.task.type,
            "responsible_id": c.assignee,
            "due": due.isoformat(),
            "marker": task_marker(c.rule.name, c.key),
            "slot": day.isoformat(),
            "episode": c.firing.episode.isoformat(),
            "priority": c.rule.task.priority,
            "value": round(c.value, 2),
        }
        reason = f"action {c.rule.name}: {c.firing.reason}{c.note}{queued}"
        if c.row is None:
            ops.append(Op(c.key, "task", c.firing.customer, c.rule.name, "new", reason, payload, not_before=not_before))
        elif c.row.payload != payload or c.row.not_before != not_before:
            op = _existing(c.row, "update", reason, payload)
            op.not_before = not_before
            ops.append(op)
        else:
            ops.append(_existing(c.row, "due", c.row.reason or reason))
    return ops


def _completions(
    actions: list[ActionConfig],
    tasks: list[LedgerRow],
    by_key: Mapping[str, LedgerRow],
    states: Mapping[CustomerRef, CustomerState],
    as_of: datetime,
) -> list[Op]:
    """Close segsync's task when the customer bought after it was created (``complete_on_purchase``)."""
    closing = {a.name for a in actions if a.complete_on_purchase}
    ops: list[Op] = []
    for row in tasks:
        if row.rule not in closing or row.state != "done" or not row.remote_id:
            continue
        key = complete_key(row.key)
        existing = by_key.get(key)
        if existing is not None:
            if existing.state in OPEN_STATES and existing.state != "pending":
                ops.append(_existing(existing, "due", existing.reason or "retry"))
            continue
        state = states.get(row.customer)
        bought = _as_datetime(feature(state.features, "last_purchase_at")) if state else None
        if bought is None or bought <= _sent_at(row) or bought > as_of:
            continue
        reason = (
            f"action {row.rule}: customer bought again on {bought.date().isoformat()}; closing task {row.remote_id}"
        )
        payload = {"task_key": row.key, "task_id": row.remote_id, "marker": row.payload.get("marker")}
        ops.append(Op(key, "complete", row.customer, row.rule, "new", reason, payload))
    return ops
