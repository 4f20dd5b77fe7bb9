"""An in-memory CRM implementing the write half of the connector contract, with fault knobs.

Label changes behave like amoCRM's ``tags_to_add``/``tags_to_delete`` with a managed prefix (a
manager's own tags stay); tasks carry the marker in their text like both connectors do.
Every call counts as ceil(n / 50) requests, as the real connectors batch 50 ops per request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from segsync.contract import CustomerRef, LabelChange, RemoteTask, TaskRequest, WriteResult
from segsync.errors import AmbiguousWrite


class Crash(Exception):
    """The process dies right after the CRM applied a call (before segsync could record it)."""


@dataclass
class FakeTask:
    id: str
    customer: CustomerRef
    title: str
    text: str
    due: datetime
    type: str
    responsible_id: str | None
    completed: bool = False


@dataclass
class FakeCrm:
    prefix: str = "seg:"
    tags: dict[CustomerRef, set[str]] = field(default_factory=dict)
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)
    prepared: list[list[str]] = field(default_factory=list)
    crash_after: str | None = None  # "create_tasks" | "set_labels" | "complete_tasks": apply, then crash
    ambiguous_after: str | None = None  # apply, then raise AmbiguousWrite (timeout after sending)
    reject: dict[str, WriteResult] = field(default_factory=dict)  # customer remote_id → result to return
    _next_id: int = 1000

    async def __aenter__(self) -> FakeCrm:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @property
    def writes(self) -> int:
        return sum(v for k, v in self.requests.items() if k in ("set_labels", "create_tasks", "complete_tasks"))

    def _count(self, method: str, n: int) -> None:
        self.requests[method] += max(1, math.ceil(n / 50))

    def _after(self, method: str) -> None:
        if self.crash_after == method:
            self.crash_after = None
            raise Crash(method)
        if self.ambiguous_after == method:
            self.ambiguous_after = None
            raise AmbiguousWrite("read timeout after the request was sent", method=method)

    async def prepare_writeback(self, labels: Sequence[str]) -> None:
        self.prepared.append(list(labels))

    async def set_labels(self, changes: Sequence[LabelChange]) -> list[WriteResult]:
        self._count("set_labels", len(changes))
        out = []
        for ch in changes:
            rejected = self.reject.get(ch.customer.remote_id)
            if rejected is not None:
                out.append(WriteResult(ch.key, False, error=rejected.error, retriable=rejected.retriable))
                continue
            tags = self.tags.setdefault(ch.customer, set())
            tags -= {self.prefix + v for v in ch.before.values()}
            tags |= {self.prefix + v for v in ch.after.values()}
            out.append(WriteResult(ch.key, True))
        self._after("set_labels")
        return out

    async def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[WriteResult]:
        self._count("create_tasks", len(tasks))
        out = []
        for req in tasks:
            rejected = self.reject.get(req.customer.remote_id)
            if rejected is not None:
                out.append(WriteResult(req.key, False, error=rejected.error, retriable=rejected.retriable))
                continue
            assert req.due.tzinfo is not None
            self._next_id += 1
            tid = str(self._next_id)
            text = f"{req.title}\n{req.description}\n{req.marker}"
            self.tasks[tid] = FakeTask(tid, req.customer, req.title, text, req.due, req.type, req.responsible_id)
            out.append(WriteResult(req.key, True, remote_id=tid))
        self._after("create_tasks")
        return out

    async def find_tasks(self, customers: Sequence[CustomerRef], marker: str) -> list[RemoteTask]:
        self._count("find_tasks", len(customers))
        wanted = set(customers)
        return [
            RemoteTask(t.id, t.customer, t.text, t.completed, t.responsible_id, t.due)
            for t in self.tasks.values()
            if t.customer in wanted and marker in t.text
        ]

    async def complete_tasks(self, keys_and_ids: Sequence[tuple[str, str]]) -> list[WriteResult]:
        self._count("complete_tasks", len(keys_and_ids))
        out = []
        for key, tid in keys_and_ids:
            self.tasks[tid].completed = True
            out.append(WriteResult(key, True, remote_id=tid))
        self._after("complete_tasks")
        return out

    def tasks_of(self, remote_id: str) -> list[FakeTask]:
        return [t for t in self.tasks.values() if t.customer.remote_id == remote_id]
