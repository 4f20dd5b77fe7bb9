"""Business days in the configured time zone: when a queued task may go out and when it is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from segsync.config.actions import WorkingHours

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    tz: ZoneInfo
    weekdays: frozenset[int]  # 0 = Monday
    holidays: frozenset[date]
    workdays: frozenset[date]  # business days despite the weekday
    start: time
    end: time

    @classmethod
    def from_config(cls, hours: WorkingHours, timezone: str) -> BusinessCalendar:
        return cls(
            tz=ZoneInfo(timezone),
            weekdays=frozenset(_WEEKDAYS.index(d) for d in hours.days),
            holidays=frozenset(date.fromisoformat(d) for d in hours.holidays),
            workdays=frozenset(date.fromisoformat(d) for d in hours.workdays),
            start=time.fromisoformat(hours.start),
            end=time.fromisoformat(hours.end),
        )

    def is_business_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() in self.weekdays and day not in self.holidays

    def next_business_day(self, day: date, *, inclusive: bool = True) -> date:
        """``day`` itself when it is a business day and ``inclusive``, else the next one."""
        if not inclusive:
            day += timedelta(days=1)
        for _ in range(3660):  # ten years of holidays cannot all be holidays
            if self.is_business_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError("no business day within ten years: check working_hours.days and holidays")

    def add_business_days(self, day: date, n: int) -> date:
        for _ in range(n):
            day = self.next_business_day(day, inclusive=False)
        return day

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def opening(self, day: date) -> datetime:
        return datetime.combine(day, self.start, tzinfo=self.tz)

    def closing(self, day: date) -> datetime:
        return datetime.combine(day, self.end, tzinfo=self.tz)

    def due(self, slot: date, business_days: int) -> datetime:
        """The end of working hours ``business_days`` business days after the day the task is created."""
        return self.closing(self.add_business_days(slot, business_days))
