"""Working-day and working-hour arithmetic over an explicit calendar. Pure: no I/O, no clock.

A calendar knows, for the years it has published data for, which weekdays are holidays and which
weekend days are make-up working days (调休). A year it has no data for is *provisional*: it counts
Monday to Friday only and says so, rather than inventing holidays.

Working hours are the office hours (`OFFICE_HOURS`, e.g. 09:00–12:00 and 13:30–17:30) of the calendar's working
days: the first-contact deadline (先行联系) counts them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from math import ceil
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


# --- working hours ------------------------------------------------------------------------------------------

OfficeHours = tuple[tuple[time, time], ...]  # the periods of a working day, local time, in order, not overlapping
DEFAULT_OFFICE_HOURS = "09:00-12:00,13:30-17:30"
_PERIOD = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
# Calendar days a deadline in working time may take beyond its working days: runs of days off (a week at the
# Spring Festival) and weekends; more would mean a calendar without working days.
_SLACK_DAYS = 30


def parse_office_hours(spec: str | None) -> OfficeHours:
    """'09:00-12:00,13:30-17:30' → ((09:00, 12:00), (13:30, 17:30)); ValueError saying what is wrong otherwise.

    Each period is HH:MM-HH:MM within one day (start before end); periods are in order and do not overlap (one may
    start where the one before ends). At least one period: an office without hours could never be contacted.
    """
    example = f"write them like {DEFAULT_OFFICE_HOURS}"
    if not (spec or "").strip():
        raise ValueError(f"office hours must not be empty ({example})")
    periods: list[tuple[time, time]] = []
    for part in (spec or "").split(","):
        match = _PERIOD.match(part.strip().replace(" ", ""))
        if not match:
            raise ValueError(f"office hours: {part.strip()!r} is not a period HH:MM-HH:MM ({example})")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"office hours: {part.strip()!r} is not a time of day ({example})")
        start, end = time(h1, m1), time(h2, m2)
        if start >= end:
            raise ValueError(f"office hours: {part.strip()!r} must end after it starts, on the same day")
        if periods and start < periods[-1][1]:
            raise ValueError(f"office hours: {part.strip()!r} overlaps or comes before the period ahead of it")
        periods.append((start, end))
    return tuple(periods)


def _open_periods(calendar: WorkCalendar, day: date, tz: ZoneInfo, office_hours: OfficeHours):
    """The office's open periods of `day` as aware datetimes; none on a day off."""
    if not calendar.is_working_day(day):
        return []
    return [(datetime.combine(day, start, tzinfo=tz), datetime.combine(day, end, tzinfo=tz))
            for start, end in office_hours]


def add_working_minutes(calendar: WorkCalendar, start: datetime, minutes: int, tz: ZoneInfo,
                        office_hours: OfficeHours) -> Due:
    """The deadline of `minutes` working minutes for an event at `start`: the instant at which that much office
    time (of working days) has run since `start`.

    An event outside office hours counts from the next opening; a deadline that uses up a period exactly ends at
    its close (17:30, not the next morning's opening). Times are wall-clock times of `tz`.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if minutes < 1:
        raise ValueError("a deadline in working time is at least one minute")
    local = start.astimezone(tz)
    left = timedelta(minutes=minutes)
    day, provisional, counted = local.date(), False, []
    daily = sum((datetime.combine(day, end) - datetime.combine(day, begin) for begin, end in office_hours),
                timedelta())
    for _ in range((_SLACK_DAYS + 2 * ceil(left / daily)) if daily else 0):
        provisional = provisional or calendar.is_provisional(day)
        for opening, closing in _open_periods(calendar, day, tz, office_hours):
            begin = max(opening, local)
            if begin >= closing:
                continue
            if not counted or counted[-1] != day:
                counted.append(day)
            if left <= closing - begin:
                return Due(begin + left, provisional, tuple(counted))
            left -= closing - begin
        day += timedelta(days=1)
    raise ValueError("no office time in the calendar to count these working hours in")


def add_working_hours(calendar: WorkCalendar, start: datetime, limit_hours: float, tz: ZoneInfo,
                      office_hours: OfficeHours) -> Due:
    """`add_working_minutes` for a limit in working hours (8 → 480 minutes)."""
    return add_working_minutes(calendar, start, ceil(limit_hours * 60), tz, office_hours)


def working_minutes_between(calendar: WorkCalendar, start: datetime, end: datetime, tz: ZoneInfo,
                            office_hours: OfficeHours) -> int:
    """Whole minutes of office time of working days from `start` to `end` (0 when `end` is not later).

    The inverse of `add_working_minutes`: for n ≥ 1, working_minutes_between(s, add_working_minutes(s, n)) == n.
    """
    first, last = start.astimezone(tz), end.astimezone(tz)
    if last <= first:
        return 0
    total, day = timedelta(), first.date()
    while day <= last.date():
        for opening, closing in _open_periods(calendar, day, tz, office_hours):
            begin, finish = max(opening, first), min(closing, last)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return int(total.total_seconds() // 60)


def at_share(calendar: WorkCalendar, start: datetime, due_at: datetime, share: float, tz: ZoneInfo,
             office_hours: OfficeHours) -> datetime:
    """The instant at which `share` (0 < share ≤ 1) of the office time from `start` to `due_at` has run: when a
    ladder step "at 75 % of the time" fires. The whole share is `due_at` itself."""
    total = working_minutes_between(calendar, start, due_at, tz, office_hours)
    part = ceil(total * share)
    if share >= 1 or part >= total:
        return due_at
    if part < 1:
        return start
    return add_working_minutes(calendar, start, part, tz, office_hours).at


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
