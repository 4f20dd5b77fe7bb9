"""The per-entity cursor of a Bitrix24 pull (pure).

``watermark`` is the portal's own clock (``time.date_start``) when the last *completed* pull began;
the next incremental pull reads ``>=modified`` from ``watermark - overlap``. While a pull runs, every
page carries ``run`` — mode, start time, filter bound and per-segment progress — so a crash resumes
where the store stopped, not from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from connectors.bitrix24.paging import Segment

DateFilter = Literal["iso", "local"]
VERSION = 1


@dataclass
class Run:
    mode: Literal["full", "incr"]
    started: str | None  # portal clock at the start of this run (ISO with offset)
    since: str | None  # incremental lower bound, overlap already subtracted
    segments: list[Segment] = field(default_factory=list)

    def done(self) -> bool:
        return all(s.done for s in self.segments)


@dataclass
class CursorState:
    watermark: str | None = None
    date_filter: DateFilter = "iso"
    run: Run | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any] | None, default_filter: DateFilter) -> CursorState:
        if not raw or raw.get("v") != VERSION:
            return cls(date_filter=default_filter)
        run = None
        if isinstance(raw.get("run"), dict):
            r = raw["run"]
            run = Run(r["mode"], r.get("started"), r.get("since"), [Segment.from_list(s) for s in r["segments"]])
        date_filter = raw.get("date_filter") if raw.get("date_filter") in ("iso", "local") else default_filter
        return cls(raw.get("watermark"), date_filter, run)  # type: ignore[arg-type]

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "watermark": self.watermark, "date_filter": self.date_filter}
        if self.run is not None:
            out["run"] = {
                "mode": self.run.mode,
                "started": self.run.started,
                "since": self.run.since,
                "segments": [s.as_list() for s in self.run.segments],
            }
        return out

    def finished(self) -> CursorState:
        """The state after the running pull completed: its start becomes the next watermark."""
        started = self.run.started if self.run is not None else None
        return CursorState(started or self.watermark, self.date_filter, None)


def since_from(watermark: str, overlap: timedelta) -> datetime:
    """The incremental lower bound, in the portal's offset (the watermark carries it)."""
    return datetime.fromisoformat(watermark) - overlap


def filter_value(moment: datetime, fmt: DateFilter) -> str:
    """A ``>=DATE_MODIFY`` value. ``iso`` is the documented ATOM form with the portal's offset;
    ``local`` is ``YYYY-MM-DD HH:MM:SS`` wall-clock time of the portal (§10 item 1 of the API notes:
    one report says only this form filters ``crm.item.list``). Same instant either way, because the
    wall clock is the portal's own."""
    if fmt == "local":
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.isoformat(timespec="seconds")
