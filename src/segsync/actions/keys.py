"""Idempotency keys and the markers that let segsync find its own tasks in the CRM again.

A task's key is (source, rule, customer, episode start): one task per episode, whatever happens.
The key uses the source *name*, not the store's row id, so a re-created store still produces the
same marker and recognises the tasks it created before.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from segsync.contract import CustomerRef

_STAMP = "%Y%m%dT%H%M%SZ"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_STAMP)


def digest(data: Any, n: int = 12) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha1(blob, usedforsecurity=False).hexdigest()[:n]


def customer_str(customer: CustomerRef) -> str:
    return f"{customer.kind}:{customer.remote_id}"


def task_key(source: str, rule: str, customer: CustomerRef, episode: datetime) -> str:
    return f"task:{source}:{rule}:{customer_str(customer)}:{stamp(episode)}"


def complete_key(task_key_: str) -> str:
    return f"complete:{task_key_}"


def labels_key(source: str, customer: CustomerRef, as_of: datetime, before: Any, after: Any) -> str:
    return f"labels:{source}:{customer_str(customer)}:{stamp(as_of)}:{digest([before, after], 8)}"


def rule_marker(rule: str) -> str:
    """Common to every task of a rule: what ``find_tasks`` is asked for."""
    return f"[segsync:{rule}:"


def task_marker(rule: str, key: str) -> str:
    """Unique to one task; placed in its text by the connector."""
    return f"{rule_marker(rule)}{digest(key)}]"
