"""Working-day arithmetic over an explicit calendar. Pure: no I/O, no clock.

A calendar knows, for the years it has published data for, which weekdays are holidays and which
weekend days are make-up working days (调休). A year it has no data for is *provisional*: it counts
Monday to Friday only and says so, rather than inventing holidays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class WorkCalendar:
    known_years: frozenset[int] = frozenset()
    holidays: frozenset[date] = frozenset()          # weekdays that are days off
    makeup_workdays: frozenset[date] = frozenset()   # weekend days that are working days

    def is_provisional(self, day: date) -> bool:
        return day.year not in self.known_years

    def is_working_day(self, day: date) -> bool:
        if day in self.makeup_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5


@dataclass(frozen=True)
class Due:
    at: datetime               # the end of the last working day, in the local zone
    provisional: bool = False  # some day counted lies in a year without published data
    days: tuple[date, ...] = field(default=(), repr=False)


def next_working_day(calendar: WorkCalendar, day: date) -> date:
    """The first working day strictly after `day`."""
    day += timedelta(days=1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def previous_working_day(calendar: WorkCalendar, day: date) -> date:
    """The last working day strictly before `day`."""
    day -= timedelta(days=1)
    while not calendar.is_working_day(day):
        day -= timedelta(days=1)
    return day


def offset_working_day(calendar: WorkCalendar, day: date, n: int) -> date:
    """The working day `n` working days after (n > 0) or before (n < 0) `day`; `day` itself when n is 0."""
    step = next_working_day if n > 0 else previous_working_day
    for _ in range(abs(n)):
        day = step(calendar, day)
    return day


def add_working_days(calendar: WorkCalendar, start: datetime, n: int, tz: ZoneInfo) -> Due:
    """The deadline of `n` working days for an event at `start`.

    Counting starts the day after the event; an event on a non-working day counts as if it happened
    on the next working day. The deadline is the end of the n-th working day, local time.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if n < 1:
        raise ValueError("a deadline is at least one working day")
    day = start.astimezone(tz).date()
    provisional = calendar.is_provisional(day)
    if not calendar.is_working_day(day):
        day = next_working_day(calendar, day)
    counted = []
    for _ in range(n):
        # every day stepped over decides the count, so each one can make the result provisional
        probe = day + timedelta(days=1)
        day = next_working_day(calendar, day)
        while probe <= day:
            provisional = provisional or calendar.is_provisional(probe)
            probe += timedelta(days=1)
        counted.append(day)
    return Due(datetime.combine(day, END_OF_DAY, tzinfo=tz), provisional, tuple(counted))


def working_days_between(calendar: WorkCalendar, start: datetime, end: datetime, tz: ZoneInfo) -> int:
    """Whole working days after `start`'s local date up to and including `end`'s local date.

    Zero when both fall on the same day or `end` is earlier; it is the count `add_working_days`
    would need to reach `end`'s day, which is what "days overdue" and "handling time" mean.
    """
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    if not calendar.is_working_day(first):
        first = next_working_day(calendar, first)
    count = 0
    day = first + timedelta(days=1)
    while day <= last:
        if calendar.is_working_day(day):
            count += 1
        day += timedelta(days=1)
    return count


def working_days_overdue(calendar: WorkCalendar, due_at: datetime, now: datetime, tz: ZoneInfo) -> int:
    """How many whole working days past `due_at` have ended by `now`: what 「已超期N个工作日」 means.

    A deadline ends at the end of a working day, and the ladder's steps fire at ends of days too, so counting
    only the days that are over gives the same number at a step's moment and a few seconds after it (the
    supervisor's step says 0, the leader's 2, whichever side of midnight the sweep lands), while a sweep that
    runs days late states the days that really went by.
    """
    local = now.astimezone(tz)
    last_ended = local.date() if local.time() >= END_OF_DAY else local.date() - timedelta(days=1)
    return working_days_between(calendar, due_at, datetime.combine(last_ended, time(12), tzinfo=tz), tz)


def from_days(published_years, days) -> WorkCalendar:
    """A calendar from the rows of published years: `days` yields (date, workday) pairs."""
    holidays, makeup = set(), set()
    for day, workday in days:
        if workday and day.weekday() >= 5:
            makeup.add(day)
        elif not workday and day.weekday() < 5:
            holidays.add(day)
    return WorkCalendar(known_years=frozenset(published_years), holidays=frozenset(holidays),
                        makeup_workdays=frozenset(makeup))


def from_chinese_calendar() -> WorkCalendar:
    """The State Council calendar as published in the `chinesecalendar` package (2004 onwards)."""
    from chinese_calendar import constants

    holidays = frozenset(d for d in constants.holidays if d.weekday() < 5)
    makeup = frozenset(d for d in constants.workdays if d.weekday() >= 5)
    years = frozenset(d.year for d in constants.holidays)
    return WorkCalendar(known_years=years, holidays=holidays, makeup_workdays=makeup)
