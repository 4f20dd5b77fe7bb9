"""Reading whole lists: batch-chained ``>ID`` windows, and plain offset paging for small dictionaries.

The documented fast export ("How to Retrieve Large Volumes of Data") orders by ID, filters ``>ID``
with the last ID seen and passes ``start=-1`` so the server skips counting. Fifty such pages fit in
one ``batch`` when each command takes its lower bound from the previous one through
``$result[c{k-1}][49][ID]`` — about 2,500 rows per HTTP request. The chain is sequential by nature,
so a full export splits the ID range into disjoint segments and runs several chains at once; the
shared rate limiter keeps their sum at the portal's limit.

What a command returns once an earlier page in the same batch was short is undocumented, so rows
are consumed only up to the first short page, and a page that does not continue the ID sequence
ends the batch early (the next batch restarts from the last ID actually received).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.bitrix24.transport import Command, Transport
from connectors.bitrix24.wire import BATCH_LIMIT, PAGE_SIZE, CommandError, Timing, unwrap_list
from segsync.errors import FatalCrmError, RetriableCrmError, Transient
from segsync.logs import get_logger

log = get_logger("segsync.bitrix24")
ROWS_PER_BATCH = PAGE_SIZE * BATCH_LIMIT


@dataclass(frozen=True)
class ListQuery:
    """One list method read in ID order with a fixed filter and an explicit ``select``."""

    method: str
    select: tuple[str, ...]
    id_field: str = "ID"
    wrapper: str | None = None  # crm.item.list answers {"items": [...]}
    params: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"entityTypeId": 2}
    filter: Mapping[str, Any] = field(default_factory=dict)

    def with_filter(self, extra: Mapping[str, Any]) -> ListQuery:
        return ListQuery(self.method, self.select, self.id_field, self.wrapper, self.params, {**self.filter, **extra})

    def ids_only(self) -> ListQuery:
        return ListQuery(self.method, (self.id_field,), self.id_field, self.wrapper, self.params, self.filter)

    def page_params(self, lower: Any, upper: int | None) -> dict[str, Any]:
        filt = {**self.filter, f">{self.id_field}": lower}
        if upper is not None:
            filt[f"<={self.id_field}"] = upper
        return {
            **self.params,
            "order": {self.id_field: "ASC"},
            "filter": filt,
            "select": list(self.select),
            "start": -1,
        }

    def reference(self, key: str) -> str:
        """The batch expression for the ID of the last row of command ``key``."""
        inner = f"[{self.wrapper}]" if self.wrapper else ""
        return f"$result[{key}]{inner}[{PAGE_SIZE - 1}][{self.id_field}]"


@dataclass
class Segment:
    """An ID range ``(lo, hi]`` (``hi`` None = open-ended) and how far it has been read."""

    lo: int
    hi: int | None
    after: int
    done: bool = False

    def as_list(self) -> list[Any]:
        return [self.lo, self.hi, self.after, self.done]

    @classmethod
    def from_list(cls, raw: Sequence[Any]) -> Segment:
        lo, hi, after, done = raw
        return cls(int(lo), None if hi is None else int(hi), int(after), bool(done))


@dataclass
class Step:
    """What one chained batch delivered."""

    rows: list[dict[str, Any]]
    last_id: int
    done: bool
    error: CommandError | None = None
    time: Timing = field(default_factory=Timing)


def plan_segments(max_id: int | None, chains: int, *, open_end: bool = False) -> list[Segment]:
    """Split ``(0, max_id]`` into up to ``chains`` ranges of whole batches.

    A pull bounds the last range at ``max_id``: rows created after the probe are newer than the
    run's watermark, so the next incremental pull reads them, and a bounded range never needs a
    final empty batch to learn that it ended. The ID sweep (``open_end``) leaves it open instead, so
    that a row created meanwhile is never taken for a deleted one.
    """
    last_hi = None if open_end else (max_id or 0)
    if not max_id or max_id <= 0:
        return [Segment(0, last_hi, 0, done=last_hi == 0)]
    if chains <= 1:
        return [Segment(0, last_hi, 0)]
    count = max(1, min(chains, math.ceil(max_id / ROWS_PER_BATCH)))
    span = ROWS_PER_BATCH * math.ceil(max_id / ROWS_PER_BATCH / count)
    segments = []
    lo = 0
    while lo < max_id:
        hi = lo + span
        segments.append(Segment(lo, hi if hi < max_id else last_hi, lo))
        lo = hi
    return segments


def commands_needed(after: int, hi: int | None) -> int:
    """No more pages than the ID range can hold (a dense last stretch needs fewer than 50)."""
    if hi is None:
        return BATCH_LIMIT
    return max(0, min(BATCH_LIMIT, math.ceil((hi - after) / PAGE_SIZE)))


def build_chain(query: ListQuery, after: int, hi: int | None, count: int) -> dict[str, Command]:
    commands: dict[str, Command] = {}
    for k in range(count):
        lower: Any = after if k == 0 else query.reference(f"c{k - 1}")
        commands[f"c{k}"] = (query.method, query.page_params(lower, hi))
    return commands


def _row_id(row: Any, id_field: str) -> int | None:
    if not isinstance(row, Mapping):
        return None
    try:
        return int(row.get(id_field))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def consume(
    query: ListQuery,
    results: Mapping[str, Any],
    errors: Mapping[str, CommandError],
    after: int,
    hi: int | None,
    count: int,
    time: Timing | None = None,
) -> Step:
    """Rows of a chained batch up to the first short page, error, or break in the ID sequence."""
    rows: list[dict[str, Any]] = []
    last = after
    for k in range(count):
        key = f"c{k}"
        if key in errors:
            return Step(rows, last, False, errors[key], time or Timing())
        if key not in results:
            if k == 0:
                raise RetriableCrmError(f"{query.method}: batch answered without the first page")
            break
        page = unwrap_list(results[key], query.wrapper)
        if page is None:
            raise FatalCrmError(f"{query.method}: a list page is not a list (answer shape changed?)")
        ids = [_row_id(r, query.id_field) for r in page]
        known = [i for i in ids if i is not None]
        if known and (known[0] <= last or known != sorted(known) or len(set(known)) != len(known)):
            if k == 0:
                raise FatalCrmError(f"{query.method}: the portal did not apply the >{query.id_field} filter")
            break  # a reference after a short page resolved to something else: stop here
        rows.extend(page)
        if known:
            last = known[-1]
        if len(page) < PAGE_SIZE or (hi is not None and last >= hi):
            return Step(rows, last, True, None, time or Timing())
    return Step(rows, last, commands_needed(last, hi) == 0, None, time or Timing())


async def fetch_step(transport: Transport, query: ListQuery, after: int, hi: int | None) -> Step:
    """One chained batch from ``after``. The transport already retried the HTTP request; here only a
    failed *first command* is retried (with backoff; a blocked method waits at the budget gate) or raised."""
    count = commands_needed(after, hi)
    if count == 0:
        return Step([], after, True)
    for attempt in range(transport.attempts):
        reply = await transport.batch(build_chain(query, after, hi, count), halt=True)
        step = consume(query, reply.results, reply.errors, after, hi, count, reply.time)
        if step.error is None:
            return step
        if step.rows:
            log.warning("bitrix24_chain_cut", method=query.method, code=step.error.code, rows=len(step.rows))
            return step
        failure = transport.command_failure(query.method, step.error)
        if not isinstance(failure, Transient) or attempt == transport.attempts - 1:
            raise failure
        await asyncio.sleep(min(transport.max_wait, 0.5 * 2**attempt) + random.uniform(0, 0.25))
    raise AssertionError("unreachable")  # pragma: no cover


async def max_id(transport: Transport, query: ListQuery) -> tuple[int | None, Timing]:
    """The highest ID matching the query: one cheap indexed call (``ORDER BY ID DESC``, no count)."""
    params = {
        **query.params,
        "order": {query.id_field: "DESC"},
        "filter": dict(query.filter),
        "select": [query.id_field],
        "start": -1,
    }
    reply = await transport.call(query.method, params)
    rows = unwrap_list(reply.result, query.wrapper) or []
    return (_row_id(rows[0], query.id_field) if rows else None), reply.time


@dataclass
class _Failed:
    error: BaseException


async def export(
    transport: Transport, query: ListQuery, segments: list[Segment], *, concurrency: int = 1
) -> AsyncIterator[tuple[int, Step]]:
    """Read every unfinished segment, ``concurrency`` chains at a time; yield ``(segment index, step)``.

    Steps of one segment arrive in order; steps of different segments interleave. The caller applies
    ``step.last_id``/``step.done`` to its segment after it has stored the rows (resumable progress).
    """
    pending = [i for i, s in enumerate(segments) if not s.done]
    if not pending:
        return
    queue: asyncio.Queue[tuple[int, Step] | _Failed | None] = asyncio.Queue(maxsize=max(2, concurrency))

    async def worker() -> None:
        try:
            while pending:
                index = pending.pop(0)
                after, hi = segments[index].after, segments[index].hi
                while True:
                    step = await fetch_step(transport, query, after, hi)
                    await queue.put((index, step))
                    if step.done:
                        break
                    after = step.last_id
        except Exception as exc:  # handed to the consumer, which re-raises it and cancels the others
            await queue.put(_Failed(exc))
            return
        await queue.put(None)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(pending))))]
    running = len(workers)
    try:
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, _Failed):
                raise item.error
            else:
                yield item
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def fetch_all(
    transport: Transport, method: str, params: Mapping[str, Any] | None = None, *, wrapper: str | None = None
) -> tuple[list[Any], Timing]:
    """A small list by offsets: one call tells ``total``, one batch fetches the remaining pages."""
    first = await transport.call(method, {**(params or {}), "start": 0})
    rows = list(unwrap_list(first.result, wrapper) or [])
    if first.next is not None:
        rows += await fetch_rest(transport, method, params, total=first.total or 0, wrapper=wrapper)
    return rows, first.time


async def fetch_rest(
    transport: Transport, method: str, params: Mapping[str, Any] | None, *, total: int, wrapper: str | None = None
) -> list[Any]:
    """Pages 2.. of an offset-paged list whose first page (and ``total``) is already known."""
    rows: list[Any] = []
    offsets = list(range(PAGE_SIZE, total, PAGE_SIZE))
    for chunk_start in range(0, len(offsets), BATCH_LIMIT):
        chunk = offsets[chunk_start : chunk_start + BATCH_LIMIT]
        commands = {f"p{offset}": (method, {**(params or {}), "start": offset}) for offset in chunk}
        reply = await transport.batch(commands)
        for key in commands:
            if key in reply.errors:
                raise transport.command_failure(method, reply.errors[key])
            rows.extend(unwrap_list(reply.results.get(key), wrapper) or [])
    return rows
