"""Which customers an action fires for right now, and since when (the episode start) — pure.

- ``where`` (and ``cadence``) rules fire while their condition holds; the episode starts at the first
  computation that saw it hold and ends when it stops holding (stored in ``action_episodes``), so one
  continuous stretch of "churned" gives one task, not one a day.
- ``transition`` rules fire ``delay`` after the customer entered a segment (``segment_history``),
  while they are still in it; the episode is the transition itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from segsync.actions.bridge import compile_where, condition_frame
from segsync.actions.model import CustomerState, HistoryRow
from segsync.config.actions import ActionConfig
from segsync.contract import CustomerRef


@dataclass(frozen=True, slots=True)
class Firing:
    customer: CustomerRef
    episode: datetime  # part of the idempotency key
    earliest: datetime  # not before this (transition + delay)
    reason: str


def feature_frame(states: list[CustomerState]) -> pl.DataFrame:
    """One row per customer: feature columns, then label columns (labels win on a name clash)."""
    return condition_frame([(s.features, s.labels) for s in states])


def _condition(rule: ActionConfig, frame: pl.DataFrame, n: int) -> list[bool]:
    mask = [True] * n
    if n == 0:
        return mask
    if rule.where is not None:
        mask = compile_where(rule.where)(frame).to_list()
    if rule.cadence is not None:
        days = rule.cadence.no_touch / timedelta(days=1)
        silent = (
            frame["days_since_touch"].to_list() if "days_since_touch" in frame.columns else [None] * n
        )  # no touch known at all counts as silent
        mask = [m and (s is None or float(s) >= days) for m, s in zip(mask, silent, strict=True)]
    return mask


def _cadence_note(rule: ActionConfig, state: CustomerState) -> str:
    if rule.cadence is None:
        return ""
    silent = state.features.get("days_since_touch")
    return f"; no touch for {'ever' if silent is None else f'{float(silent):.0f} days'}"


def fire_where(
    rule: ActionConfig,
    states: list[CustomerState],
    frame: pl.DataFrame,
    episodes: Mapping[tuple[str, CustomerRef], datetime],
) -> tuple[list[Firing], dict[CustomerRef, datetime], set[CustomerRef]]:
    """Firings of a where/cadence rule, episodes that start now, and episodes that ended."""
    mask = _condition(rule, frame, len(states))
    firings: list[Firing] = []
    started: dict[CustomerRef, datetime] = {}
    ended: set[CustomerRef] = set()
    what = " and ".join(
        p for p in (f"where {rule.where!r}" if rule.where else "", "cadence no_touch" if rule.cadence else "") if p
    )
    for state, hit in zip(states, mask, strict=True):
        known = episodes.get((rule.name, state.ref))
        if not hit:
            if known is not None:
                ended.add(state.ref)
            continue
        episode = known
        if episode is None:
            episode = started[state.ref] = state.as_of
        reason = f"{what} holds since {episode.date().isoformat()}{_cadence_note(rule, state)}"
        firings.append(Firing(state.ref, episode, episode, reason))
    live = {s.ref for s in states}
    ended |= {ref for (name, ref) in episodes if name == rule.name and ref not in live}
    return firings, started, ended


def fire_transition(
    rule: ActionConfig,
    states: list[CustomerState],
    frame: pl.DataFrame,
    history: list[HistoryRow],
    as_of: datetime,
) -> list[Firing]:
    """Customers who entered ``transition.to`` (from ``transition.from``) ``delay`` ago and are still there."""
    tr = rule.transition
    assert tr is not None
    allowed = _condition(rule, frame, len(states)) if rule.where is not None else [True] * len(states)
    current = {s.ref: (s, ok) for s, ok in zip(states, allowed, strict=True)}
    latest: dict[CustomerRef, HistoryRow] = {}
    for row in history:
        if row.label != tr.segment or row.to_value not in tr.to:
            continue
        seen = latest.get(row.customer)
        if seen is None or row.as_of > seen.as_of:
            latest[row.customer] = row
    firings: list[Firing] = []
    for ref, row in latest.items():
        state, ok = current.get(ref, (None, False))
        if state is None or not ok:
            continue
        if tr.from_ and row.from_value not in tr.from_:
            continue
        if str(state.labels.get(tr.segment)) != row.to_value:
            continue  # already left the segment again
        fire_at = row.as_of + tr.delay
        if fire_at > as_of or as_of - fire_at > tr.within:
            continue
        reason = (
            f"{tr.segment} changed {row.from_value or '—'} → {row.to_value} on {row.as_of.date().isoformat()}"
            + (f", {tr.delay.days} days ago or more" if tr.delay else "")
            + (f"; where {rule.where!r} holds" if rule.where else "")
        )
        firings.append(Firing(ref, row.as_of, fire_at, reason))
    return firings
