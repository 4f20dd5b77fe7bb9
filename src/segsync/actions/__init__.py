"""Write-back and actions: turn segments into what managers see in their CRM, exactly once.

Entry points (the CLI and the daemon call these; nothing else is needed)::

    plan_source(engine: Engine, source_id: int, rules: Rules, *, as_of: datetime | None = None) -> Plan
        Read-only preview: what a push would do now, with counts and a reason per op. No CRM calls.

    async push_source(engine: Engine, source_id: int, rules: Rules, connector: Connector, *,
                      as_of: datetime | None = None, dry_run: bool = False) -> PushResult
        Reconcile ``pending`` ops left by a crash (looking tasks up by marker), persist the plan to the
        ledger, then apply every due op through ``connector`` (already entered with ``async with``).
        ``dry_run`` = the plan only (same code path), no writes anywhere. Records a ``push`` run.
        Open the connector with ``open_connector(..., label_prefix=rules.writeback.tags.prefix)`` so a
        tag-based CRM knows which tags are segsync's.

    explain_writeback(engine: Engine, source_id: int, customer: CustomerRef | str) -> dict
        What segsync wrote to one customer and why (labels as the CRM holds them, every ledger op).

``as_of`` is the moment the plan is made for (default: now, UTC); it drives cooldowns, the daily cap
per manager and which queued ops are due, so tests and replays can step across days.

Layout: pure planning (:mod:`.labels`, :mod:`.triggers`, :mod:`.tasks`, :mod:`.planner`, with
:mod:`.calendar`, :mod:`.render`, :mod:`.keys`) is separated from I/O (:mod:`.load`, :mod:`.ledger`,
:mod:`.push`, :mod:`.explain`). :mod:`.bridge` is the one place that touches the analytics package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segsync.actions.explain import explain_writeback
    from segsync.actions.model import Plan
    from segsync.actions.push import PushResult, plan_source, push_source

__all__ = ["Plan", "PushResult", "explain_writeback", "plan_source", "push_source"]

_LAZY = {
    "Plan": "segsync.actions.model",
    "PushResult": "segsync.actions.push",
    "plan_source": "segsync.actions.push",
    "push_source": "segsync.actions.push",
    "explain_writeback": "segsync.actions.explain",
}


def __getattr__(name: str) -> Any:
    """Lazy exports: the rules-file models import :mod:`.render` without pulling in the store."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
