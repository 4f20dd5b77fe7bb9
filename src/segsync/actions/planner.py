"""plan = diff(desired state, ledger): the whole pure planning step.

Two stages so the I/O wrapper can fetch, between them, the ledger rows of exactly the keys the
firings produce (an episode may be older than the slice of the ledger loaded up front).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from segsync.actions.bridge import DisplayFn, display_function
from segsync.actions.calendar import BusinessCalendar
from segsync.actions.keys import complete_key, task_key
from segsync.actions.labels import plan_labels
from segsync.actions.model import Plan, PlanInput
from segsync.actions.tasks import plan_tasks
from segsync.actions.triggers import Firing, feature_frame, fire_transition, fire_where
from segsync.config.actions import ActionConfig
from segsync.config.models import Rules
from segsync.contract import CustomerRef


@dataclass(slots=True)
class Firings:
    by_rule: dict[str, list[Firing]] = field(default_factory=dict)
    started: dict[tuple[str, CustomerRef], datetime] = field(default_factory=dict)
    ended: set[tuple[str, CustomerRef]] = field(default_factory=set)

    def keys(self, source: str) -> set[str]:
        out = set()
        for rule, firings in self.by_rule.items():
            for f in firings:
                key = task_key(source, rule, f.customer, f.episode)
                out.update((key, complete_key(key)))
        return out


def actions_for(rules: Rules, source: str) -> list[ActionConfig]:
    return [a for a in rules.actions if a.enabled and (not a.sources or source in a.sources)]


def compute_firings(inp: PlanInput, rules: Rules, as_of: datetime) -> Firings:
    out = Firings()
    actions = actions_for(rules, inp.source)
    frame = feature_frame(inp.customers)
    for rule in actions:
        if rule.transition is not None:
            out.by_rule[rule.name] = fire_transition(rule, inp.customers, frame, inp.history, as_of)
            continue
        fired, started, ended = fire_where(rule, inp.customers, frame, inp.episodes)
        out.by_rule[rule.name] = fired
        out.started.update({(rule.name, ref): at for ref, at in started.items()})
        out.ended.update((rule.name, ref) for ref in ended)
    configured = {a.name for a in actions}
    out.ended.update(k for k in inp.episodes if k[0] not in configured)
    return out


def make_plan(
    inp: PlanInput,
    rules: Rules,
    as_of: datetime,
    *,
    firings: Firings | None = None,
    display: DisplayFn | None = None,
) -> Plan:
    """Everything a push would do at ``as_of``: label ops, task ops, completions, episode changes."""
    display = display or display_function()
    firings = firings or compute_firings(inp, rules, as_of)
    language = rules.writeback.language or rules.language
    calendar = BusinessCalendar.from_config(rules.working_hours, rules.timezone)
    plan = Plan(source=inp.source, as_of=as_of, episodes_started=firings.started, episodes_ended=firings.ended)
    plan.pending = sum(1 for r in inp.ledger if r.state == "pending")

    label_ops, notes = plan_labels(
        inp.source, inp.customers, inp.written, inp.ledger, inp.gone, rules.writeback, language, display, as_of
    )
    plan.ops.extend(label_ops)
    plan.notes.extend(notes)

    states = {s.ref: s for s in inp.customers}
    task_ops, notes = plan_tasks(
        inp.source, actions_for(rules, inp.source), firings.by_rule, states, inp.ledger, inp.active_users, inp.gone,
        rules.limits, calendar, display, language, inp.currency, list(rules.writeback.publish), as_of,
    )  # fmt: skip
    plan.ops.extend(task_ops)
    plan.notes.extend(notes)
    return plan
