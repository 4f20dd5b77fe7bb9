"""The portal's clock: epoch seconds ↔ ISO 8601 with the portal's fixed UTC offset.

Bitrix24 renders every date as ``2024-08-30T14:29:00+03:00`` in the portal server's zone. A list
page carries several dates per row, so besides the one-value methods there are column methods
that render a whole page column with one numpy call: ``datetime.fromtimestamp(...).isoformat()``
per value was the largest single cost of serving rows. Both give identical text (the zone has a
fixed offset, no DST), which ``tests/sandbox/test_bitrix24_render.py`` checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np

NULL = np.iinfo(np.int64).min  # null in int64 columns (ids, epoch seconds)
_DAY = 86_400


class Clock:
    """Renders epoch seconds as ISO 8601 with the portal's UTC offset and parses filter dates."""

    def __init__(self, offset_hours: float):
        self.tz = timezone(timedelta(hours=offset_hours))
        offset = self.tz.utcoffset(None)
        self.offset_s = int(offset.total_seconds())
        self._vector = offset.microseconds == 0  # a sub-second offset (odd knob value) renders value by value
        self.suffix = datetime.fromtimestamp(0, self.tz).isoformat()[19:]  # "+03:00"
        self._last: tuple[int, str] = (NULL, "")  # the `time` block asks for the same second over and over

    # -- one value ---------------------------------------------------------------------------------
    def iso(self, ts: int) -> str:
        last_ts, last_text = self._last
        if ts == last_ts:
            return last_text
        text = datetime.fromtimestamp(ts, self.tz).isoformat()
        self._last = (ts, text)
        return text

    def day(self, ts: int) -> str:
        """A `date` value (BEGINDATE, CLOSEDATE): the day ``ts`` falls on in the portal's zone, rendered as
        Bitrix24 does — midnight UTC of that day shown with the portal's offset. The docs' crm.deal.get
        sample has ``"BEGINDATE": "2024-08-30T02:00:00+02:00"`` next to ``DATE_CREATE ...T14:29:00+02:00``,
        and a real crm.item.list answer has a date field ``"2024-04-19T03:00:00+03:00"`` (shared/api/
        bitrix24.md §4.4, §9). For a zone west of UTC the same rule shows the previous evening (extrapolated)."""
        d = datetime.fromtimestamp(ts, self.tz).date()
        return datetime(d.year, d.month, d.day, tzinfo=UTC).astimezone(self.tz).isoformat()

    # -- a page column -----------------------------------------------------------------------------
    def iso_column(self, ts: np.ndarray) -> list[str | None]:
        """``iso`` of each value of an int64 column (``NULL`` → None)."""
        if not self._vector:
            return [None if v == NULL else self.iso(v) for v in ts.tolist()]
        null = ts == NULL
        local = np.where(null, 0, ts) + self.offset_s
        texts = np.datetime_as_string(local.astype("datetime64[s]")).tolist()
        suffix = self.suffix
        out: list[str | None] = [t + suffix for t in texts]
        if null.any():
            for i in np.flatnonzero(null).tolist():
                out[i] = None
        return out

    def day_column(self, ts: np.ndarray) -> list[str | None]:
        """``day`` of each value of an int64 column (``NULL`` → None)."""
        if not self._vector:
            return [None if v == NULL else self.day(v) for v in ts.tolist()]
        null = ts == NULL
        days = (np.where(null, 0, ts) + self.offset_s) // _DAY
        return self.iso_column(np.where(null, NULL, days * _DAY))

    # -- filters -----------------------------------------------------------------------------------
    def parse(self, value: Any, *, accept_iso_offset: bool = True) -> float | None:
        """A filter value → epoch seconds. Accepts ISO with offset, 'YYYY-MM-DD[ HH:MM:SS]' (portal time)
        and 'DD.MM.YYYY[ HH:MM:SS]'. Returns None when it cannot be read."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, str) or not value.strip():
            return None
        text = value.strip()
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                if not accept_iso_offset:
                    break
                return datetime.strptime(text, fmt).timestamp()
            except ValueError:
                pass
        for fmt in (
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%d",
            "%d.%m.%Y %H:%M:%S",
            "%d.%m.%Y",
        ):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=self.tz).timestamp()
            except ValueError:
                pass
        return None
