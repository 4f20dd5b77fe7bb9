"""Plain data passed between the loader, the pure planner and the ledger writer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from segsync.contract import CustomerRef

OpKind = Literal["labels", "task", "complete"]
#: Ledger states: planned → pending → done, or failed (retry later) → parked (gave up), or skipped.
OPEN_STATES = ("planned", "pending", "failed")
SENT_STATES = ("pending", "done", "failed", "parked")


@dataclass(frozen=True, slots=True)
class CustomerState:
    """One customer's segment_state row joined with the customer record."""

    ref: CustomerRef
    labels: dict[str, Any]
    features: dict[str, Any]
    as_of: datetime
    name: str | None = None
    responsible_id: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    customer: CustomerRef
    label: str
    from_value: str | None
    to_value: str | None
    as_of: datetime


@dataclass(slots=True)
class LedgerRow:
    key: str
    op: OpKind
    customer: CustomerRef
    rule: str | None
    state: str
    payload: dict[str, Any]
    created_at: datetime
    id: int | None = None
    reason: str | None = None
    remote_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    not_before: datetime | None = None


@dataclass(slots=True)
class PlanInput:
    """Everything the planner reads, loaded in one go (see :mod:`.load`)."""

    source: str
    customers: list[CustomerState]
    written: dict[CustomerRef, dict[str, str]] = field(default_factory=dict)
    ledger: list[LedgerRow] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    episodes: dict[tuple[str, CustomerRef], datetime] = field(default_factory=dict)
    active_users: dict[str, bool] = field(default_factory=dict)
    gone: set[CustomerRef] = field(default_factory=set)  # deleted in the CRM: never written to
    currency: str | None = None


@dataclass(slots=True)
class Op:
    """One change the plan makes to the ledger.

    ``change`` says what happens to the ledger row: ``new`` (insert), ``update`` (an unsent row gets a
    new payload or slot), ``cancel`` (an unsent row is no longer wanted → skipped), ``due`` (an
    existing row, unchanged, waits to be sent — now or at ``not_before``).
    """

    key: str
    op: OpKind
    customer: CustomerRef
    rule: str | None
    change: Literal["new", "update", "cancel", "due"]
    reason: str
    payload: dict[str, Any] = field(default_factory=dict)
    not_before: datetime | None = None
    row_id: int | None = None
    attempts: int = 0

    @property
    def state(self) -> str:
        return "skipped" if self.change == "cancel" else "planned"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "op": self.op,
            "customer": f"{self.customer.kind}:{self.customer.remote_id}",
            "rule": self.rule,
            "change": self.change,
            "reason": self.reason,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "payload": self.payload,
        }


@dataclass(slots=True)
class Plan:
    source: str
    as_of: datetime
    ops: list[Op] = field(default_factory=list)
    episodes_started: dict[tuple[str, CustomerRef], datetime] = field(default_factory=dict)
    episodes_ended: set[tuple[str, CustomerRef]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    pending: int = 0  # ops left pending by an interrupted push: reconciled before anything is resent

    def due_now(self) -> list[Op]:
        """Ops a push sends now (planned, and not queued for later)."""
        return [o for o in self.ops if o.state == "planned" and (o.not_before is None or o.not_before <= self.as_of)]

    def counts(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for o in self.ops:
            if o.state == "skipped":
                c[f"{o.op}_skipped"] += 1
                continue
            queued = o.not_before is not None and o.not_before > self.as_of
            if o.op == "labels":
                before, after = o.payload.get("before", {}), o.payload.get("after", {})
                c["labels_set"] += sum(1 for k, v in after.items() if before.get(k) != v)
                c["labels_cleared"] += sum(1 for k in before if k not in after)
                c["customers_relabelled_queued" if queued else "customers_relabelled"] += 1
            elif o.op == "task":
                c["tasks_queued" if queued else "tasks_create"] += 1
            else:
                c["tasks_complete_queued" if queued else "tasks_complete"] += 1
            if o.attempts:
                c["retries"] += 1
        if self.pending:
            c["pending_to_reconcile"] = self.pending
        return dict(sorted(c.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "as_of": self.as_of.isoformat(),
            "counts": self.counts(),
            "notes": self.notes,
            "ops": [o.to_json() for o in self.ops],
        }
