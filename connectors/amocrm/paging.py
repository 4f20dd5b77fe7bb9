"""Walking amoCRM lists without losing or looping: keyset scans over ``updated_at``.

amoCRM pages are offsets (``page``/``limit``). An offset walk loses a record whenever an earlier one
leaves the result set mid-walk (updated past the ``to`` bound, deleted): everything behind it moves
one slot forward, across a page boundary. So the scan restarts every page from the last
``updated_at`` it saw (``filter[updated_at][from]=m``, page 1, ids already seen at ``m`` dropped):
earlier records leaving cannot shift anything. Bounds are taken as inclusive (the documented
``from``/``to`` range). A second holding ≥ ``limit`` records (bulk edits) cannot be crossed by
keyset; the same query is then continued page by page until the scan leaves that second (offset
paging inside one second only: a record edited in that instant could still shift). ``to`` is fixed
at scan start so a busy account cannot keep the scan chasing its own tail.

Full pulls split the time range into slices scanned concurrently (each still a keyset scan, all
through the one account limiter); idle workers split the widest remaining slice. The safe cursor
("everything up to here is stored") is the lowest position of any unfinished slice.

End of a list: 204, an empty ``_embedded`` collection, or no ``_links.next``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.amocrm.transport import Reply
from segsync.logs import get_logger

log = get_logger("connectors.amocrm.paging")
LIMIT = 250
MIN_SPLIT_SECONDS = 600
FAR_FUTURE = 4102444800  # 2100-01-01: an upper bound that never excludes anything

Get = Callable[[str, dict[str, Any]], Awaitable[Reply]]


def embedded(reply: Reply, key: str) -> list[dict[str, Any]]:
    if reply.status == 204 or not isinstance(reply.body, Mapping):
        return []
    emb = reply.body.get("_embedded")
    items = emb.get(key) if isinstance(emb, Mapping) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def has_next(reply: Reply) -> bool:
    links = reply.body.get("_links") if isinstance(reply.body, Mapping) else None
    nxt = links.get("next") if isinstance(links, Mapping) else None
    return bool(nxt and (not isinstance(nxt, Mapping) or nxt.get("href")))


def stamp(item: Mapping[str, Any]) -> int | None:
    value = item.get("updated_at")
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class Batch:
    """Records in arrival order, and the cursor that is safe once they (and all before) are stored."""

    items: list[dict[str, Any]]
    safe_upto: int | None = None  # every record with updated_at <= this is stored with this batch
    final: bool = False


async def pages(get: Get, path: str, key: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    """Plain offset pages (small dictionaries: users, tags, tasks of a few entities)."""
    page = 1
    while True:
        reply = await get(path, {**params, "limit": LIMIT, "page": page})
        items = embedded(reply, key)
        if not items:
            return
        yield items
        if not has_next(reply):
            return
        page += 1


@dataclass
class _Slice:
    lo: int
    hi: int
    done: bool = False
    seen: set[str] = field(default_factory=set)  # ids already emitted at second ``lo``
    density: float | None = None  # records per second seen on the last full page (None: not measured yet)

    def remaining(self, newest: int | None) -> float:
        """Estimated records left: measured density × the part of the slice that can still hold data."""
        if self.density is None or self.done:
            return 0.0
        end = self.hi if newest is None else min(self.hi, newest)
        return self.density * max(0, end - self.lo)


class UpdatedAtScan:
    """Keyset scan of one entity list over ``[lo, hi]`` (Unix seconds), optionally in parallel slices."""

    def __init__(
        self, get: Get, path: str, key: str, params: dict[str, Any], lo: int, hi: int, *, concurrency: int = 1
    ):
        self.get = get
        self.path = path
        self.key = key
        self.params = params
        self.concurrency = max(1, concurrency)
        self.slices = [_Slice(lo, hi)]
        self.max_seen: int | None = None
        self._queue: asyncio.Queue[Batch | BaseException | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        self._started = asyncio.Event()
        self.newest: int | None = None  # newest updated_at in the range (probed once for parallel scans)

    def _params(self, lo: int, hi: int, page: int, order: str = "updated_at") -> dict[str, Any]:
        return {
            **self.params,
            "filter[updated_at][from]": lo,
            "filter[updated_at][to]": hi,
            f"order[{order}]": "asc",
            "limit": LIMIT,
            "page": page,
        }

    def _safe_upto(self) -> int | None:
        active = [s.lo - 1 for s in self.slices if not s.done]
        bound = min(active) if active else max(s.hi for s in self.slices)
        if self.max_seen is None:
            return None
        return min(bound, self.max_seen)

    async def _emit(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            ts = stamp(item)
            if ts is not None and (self.max_seen is None or ts > self.max_seen):
                self.max_seen = ts
        if items:  # the cursor is computed before the scan advances past these records
            await self._queue.put(Batch(items, self._safe_upto()))

    async def _scan(self, sl: _Slice) -> None:
        page = 1  # > 1 only inside a second holding more records than a page (or if the order is ignored)
        ordered = True
        while sl.lo <= sl.hi:
            reply = await self.get(self.path, self._params(sl.lo, sl.hi, page))
            self._started.set()
            items = embedded(reply, self.key)
            fresh = [i for i in items if str(i.get("id")) not in sl.seen]
            stamps = [s for s in (stamp(i) for i in items) if s is not None]
            if ordered and not all(a <= b for a, b in itertools.pairwise(stamps)):
                ordered = False
                log.warning("amocrm_order_ignored", path=self.path)
            await self._emit(fresh)
            if not items or not has_next(reply):
                break
            top = max(stamps) if stamps else sl.lo
            if ordered and top > sl.lo:
                if page == 1:
                    sl.density = len(items) / (top - max(sl.lo, stamps[0]) + 1)
                sl.seen = {str(i.get("id")) for i in items if stamp(i) == top}
                sl.lo = top
                page = 1
            else:  # every record on the page shares second ``lo``: the next page of the same query
                sl.seen.update(str(i.get("id")) for i in items)
                page += 1
        sl.done = True

    def _split(self) -> _Slice | None:
        """Halve the slice with the most estimated work, when both halves still hold a few pages."""
        active = [s for s in self.slices if not s.done]
        if not active:
            return None
        widest = max(active, key=lambda s: s.remaining(self.newest))
        if widest.remaining(self.newest) < 4 * LIMIT or widest.hi - widest.lo < MIN_SPLIT_SECONDS:
            return None
        end = widest.hi if self.newest is None else min(widest.hi, self.newest)
        mid = widest.lo + (end - widest.lo) // 2
        piece = _Slice(mid + 1, widest.hi, density=widest.density)
        widest.hi = mid
        self.slices.append(piece)
        return piece

    async def _worker(self, first: _Slice | None) -> None:
        current = first
        while True:
            if current is None:
                current = self._split()
                if current is None:
                    if all(s.done for s in self.slices):
                        return
                    await asyncio.sleep(0.05)  # wait for a running slice to become splittable or finish
                    continue
            await self._scan(current)
            await self._queue.put(Batch([], self._safe_upto()))  # progress marker: a slice finished
            current = None

    async def _probe_newest(self) -> None:
        """One ``limit=1`` newest-first read: where the data ends, so splits do not cut empty time."""
        first = self.slices[0]
        reply = await self.get(self.path, {**self._params(first.lo, first.hi, 1), "order[updated_at]": "desc",
                                           "limit": 1})  # fmt: skip
        items = embedded(reply, self.key)
        self.newest = stamp(items[0]) if items else None

    async def __aiter__(self) -> AsyncIterator[Batch]:
        async def run() -> None:
            try:
                # The first page runs alone: it finds where the data starts, so splits cut real data.
                lead = asyncio.create_task(self._worker(self.slices[0]))
                workers = [lead]
                if self.concurrency > 1:
                    await self._probe_newest()
                    started = asyncio.create_task(self._started.wait())
                    await asyncio.wait({lead, started}, return_when=asyncio.FIRST_COMPLETED)
                    started.cancel()
                    if not lead.done() or lead.exception() is None:
                        workers += [asyncio.create_task(self._worker(None)) for _ in range(self.concurrency - 1)]
                await asyncio.gather(*workers)
                await self._queue.put(None)
            except BaseException as exc:  # surface fetch errors to the consumer
                await self._queue.put(exc)

        runner = asyncio.create_task(run())
        try:
            while True:
                got = await self._queue.get()
                if got is None:
                    break
                if isinstance(got, BaseException):
                    raise got
                yield got
            yield Batch([], self.max_seen, final=True)
        finally:
            if not runner.done():
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)


async def desc_scan(get: Get, path: str, key: str, params: dict[str, Any], lo: int | None) -> AsyncIterator[Batch]:
    """Fallback for accounts without API filtering: newest first, filtered here, stopped at ``lo``.

    Offset paging newest-first: an update moves a record to the front, which only repeats one record
    at a page boundary (ids are de-duplicated). If the server turns out to ignore the order, the
    early stop is off and the whole list is read.
    """
    seen: set[str] = set()
    max_seen: int | None = None
    previous: int | None = None
    ordered = True
    page = 1
    while True:
        reply = await get(path, {**params, "order[updated_at]": "desc", "limit": LIMIT, "page": page})
        items = embedded(reply, key)
        if not items:
            break
        fresh = []
        for item in items:
            ts = stamp(item)
            if ts is not None:
                if previous is not None and ts > previous and ordered:
                    ordered = False
                    log.warning("amocrm_order_ignored", path=path)
                previous = ts
                max_seen = ts if max_seen is None else max(max_seen, ts)
            if (lo is None or ts is None or ts >= lo) and str(item.get("id")) not in seen:
                seen.add(str(item.get("id")))
                fresh.append(item)
        if fresh:
            yield Batch(fresh)
        if not has_next(reply):
            break
        if ordered and lo is not None and previous is not None and previous < lo:
            break
        page += 1
    yield Batch([], max_seen, final=True)
