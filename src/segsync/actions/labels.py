"""Desired labels per customer vs what segsync last wrote: the label half of the plan (pure).

Only segsync's own labels are compared (``labels_written`` holds exactly what segsync wrote), so a
customer leaving a segment loses segsync's label and nothing else; a manager's own tags are never
part of the diff (Grouparoo/drt: diff against what *we* sent, not against the live CRM value).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from segsync.actions.bridge import DisplayFn, label_title
from segsync.actions.keys import labels_key
from segsync.actions.model import OPEN_STATES, CustomerState, LedgerRow, Op
from segsync.actions.render import render
from segsync.config.actions import WritebackConfig
from segsync.contract import CustomerRef


def desired_labels(state: CustomerState, config: WritebackConfig, language: str, display: DisplayFn) -> dict[str, str]:
    """label → display value for every published label the customer has (absent/false labels are left out)."""
    out: dict[str, str] = {}
    for label in config.publish:
        code = state.labels.get(label)
        shown = display(label, code, language)
        if shown is None:
            continue
        template = config.templates.get(label)
        if template is not None:
            ctx = {"label": label, "code": code, "title": shown, "language": language}
            shown = render(template, ctx, language)
        if shown:
            out[label] = shown
    return out


def _describe(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    parts = []
    for label in sorted(set(before) | set(after)):
        old, new = before.get(label), after.get(label)
        if old == new:
            continue
        if old is None:
            parts.append(f"{label}: set {new!r}")
        elif new is None:
            parts.append(f"{label}: clear {old!r} (customer left the segment)")
        else:
            parts.append(f"{label}: {old!r} → {new!r}")
    return "; ".join(parts)


def plan_labels(
    source: str,
    states: list[CustomerState],
    written: Mapping[CustomerRef, Mapping[str, str]],
    ledger: list[LedgerRow],
    gone: set[CustomerRef],
    config: WritebackConfig,
    language: str,
    display: DisplayFn,
    as_of: datetime,
) -> tuple[list[Op], list[str]]:
    """Label ops: one per customer whose desired labels differ from what segsync wrote."""
    notes: list[str] = []
    open_ops: dict[CustomerRef, LedgerRow] = {}
    parked: dict[CustomerRef, LedgerRow] = {}
    for row in ledger:
        if row.op != "labels":
            continue
        if row.state in OPEN_STATES:
            open_ops[row.customer] = row
        elif row.state == "parked":
            parked[row.customer] = row
    ops: list[Op] = []
    if not config.enabled or not config.publish:
        for row in open_ops.values():
            ops.append(_cancel(row, "write-back is disabled in the rules file"))
        return ops, notes
    if not states:
        # A transient empty segment table must not clear every label (drt #686): plan nothing.
        notes.append("no segments computed for this source yet: labels left as they are")
        return ops, notes
    desired = {s.ref: desired_labels(s, config, language, display) for s in states}
    for ref in sorted(set(desired) | set(written) | set(open_ops), key=lambda r: (r.kind, r.remote_id)):
        row = open_ops.get(ref)
        if ref in gone:
            if row is not None and row.state != "pending":
                ops.append(_cancel(row, "customer was deleted in the CRM"))
            continue
        if row is not None and (row.state == "pending" or row.payload.get("uncertain")):
            # It may already be applied: send it again as it was (harmless) before diffing anew.
            ops.append(_existing(row, "due", "resend of an interrupted write (it may have been applied)"))
            continue
        want = desired.get(ref, {})
        have = dict(written.get(ref, {}))
        payload = {"before": have, "after": want}
        if want == have:
            if row is not None:
                ops.append(_cancel(row, "the CRM already shows the desired labels"))
            continue
        reason = _describe(have, want)
        if row is not None:
            if row.payload.get("before") == have and row.payload.get("after") == want:
                ops.append(_existing(row, "due", row.reason or reason))
            else:
                ops.append(_existing(row, "update", reason, payload))
            continue
        stuck = parked.get(ref)
        if stuck is not None and stuck.payload.get("after") == want:
            continue  # the same change already failed for good; it stays parked until someone acts
        key = labels_key(source, ref, as_of, have, want)
        ops.append(Op(key=key, op="labels", customer=ref, rule=None, change="new", reason=reason, payload=payload))
    return ops, notes


def _existing(row: LedgerRow, change: str, reason: str, payload: dict[str, Any] | None = None) -> Op:
    return Op(
        key=row.key,
        op=row.op,
        customer=row.customer,
        rule=row.rule,
        change=change,  # type: ignore[arg-type]
        reason=reason,
        payload=payload if payload is not None else row.payload,
        not_before=row.not_before if row.state == "failed" else None,
        row_id=row.id,
        attempts=row.attempts,
    )


def _cancel(row: LedgerRow, reason: str) -> Op:
    op = _existing(row, "cancel", reason)
    op.not_before = None
    return op


__all__ = ["desired_labels", "label_title", "plan_labels"]
