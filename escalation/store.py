"""The calendar and the policy overrides as the database holds them, cached per app.

Filing computes a deadline on every request, so the calendar is not read per computation: each app keeps
the last loaded `WorkCalendar` and overrides, and looks at two small heartbeat rows (`calendar`,
`policy`) at most every `ESCALATION_CACHE_SECONDS` to see whether an administrator changed them in
another process. An edit in this process invalidates at once.
"""
from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from tickets.db import db, upsert
from tickets.errors import ValidationFailed
from tickets.models import Department, Office, ProblemType
from tickets.slots import AppSlot
from tickets.workflow import MAX_WORKING_DAYS

from .calendar import WorkCalendar, from_days
from .models import CalendarDay, CalendarYear, DayKind, Heartbeat, PolicyOverride
from .policies import DEFAULT_WORKING_DAYS, DEFAULT_WORKING_HOURS, MAX_WORKING_HOURS

CHANGE_MARKERS = ("calendar", "policy")


def day_kind(day: date, workday: bool) -> DayKind:
    if workday:
        return DayKind.weekday if day.weekday() < 5 else DayKind.makeup
    return DayKind.holiday if day.weekday() < 5 else DayKind.weekend


def year_days(year: int, exceptions: dict[date, tuple[bool, str | None]], source: str) -> list[dict]:
    """Every day of `year` as calendar_day rows: the exceptions as given, the rest Monday–Friday."""
    rows, day = [], date(year, 1, 1)
    while day.year == year:
        workday, name = exceptions.get(day, (day.weekday() < 5, None))
        rows.append({"day": day, "workday": workday, "kind": day_kind(day, workday).value, "name": name,
                     "source": source})
        day += timedelta(days=1)
    return rows


def chinese_calendar_exceptions(first: int = 2004, last: int = 2026) -> dict[int, dict]:
    """Holidays and make-up working days per year, as the `chinesecalendar` package publishes them."""
    from chinese_calendar.constants import Holiday, holidays, workdays

    chinese = {h.value: h.chinese for h in Holiday}
    years: dict[int, dict] = {y: {} for y in range(first, last + 1)}
    for table, workday in ((holidays, False), (workdays, True)):
        for day, name in table.items():
            if first <= day.year <= last and (day.weekday() < 5) != workday:
                years[day.year][day] = (workday, chinese.get(name, name))
    return years


class CalendarFileError(ValueError):
    """A calendar file that cannot be read; its message is for the person who typed the lines (console or CLI)."""


TRUE_WORDS = {"1", "true", "yes", "y", "workday", "work", "班", "上班", "是"}
FALSE_WORDS = {"0", "false", "no", "n", "holiday", "off", "休", "休息", "否"}


def parse_calendar_csv(text: str) -> dict[int, dict[date, tuple[bool, str | None]]]:
    """`date,workday,name` lines (a header line is allowed, `#` starts a comment) → exceptions per year.

    List only the days that differ from Monday–Friday: holidays on weekdays (workday 0) and make-up
    working weekends (workday 1). Every year named in the file is replaced whole and published.
    """
    years: dict[int, dict] = {}
    # line by line, whatever ends them (a lone CR too, which the csv module refuses in the middle of a text)
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            row = next(csv.reader([line]), [])
        except csv.Error:
            raise CalendarFileError(_l("Line %(line)d: expected date,workday[,name].", line=number)) from None
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#") or cells[0].lower() == "date":
            continue
        if len(cells) < 2:
            raise CalendarFileError(_l("Line %(line)d: expected date,workday[,name].", line=number))
        try:
            day = date.fromisoformat(cells[0])
        except ValueError:
            raise CalendarFileError(_l("Line %(line)d: “%(value)s” is not a date (YYYY-MM-DD).", line=number,
                                       value=cells[0])) from None
        flag = cells[1].lower()
        if flag not in TRUE_WORDS | FALSE_WORDS:
            raise CalendarFileError(_l("Line %(line)d: workday must be 1 or 0, not “%(value)s”.", line=number,
                                       value=cells[1]))
        name = (cells[2] if len(cells) > 2 else "")[:50] or None
        exceptions = years.setdefault(day.year, {})
        if day in exceptions:
            raise CalendarFileError(_l("Line %(line)d: %(day)s is listed twice.", line=number, day=day.isoformat()))
        exceptions[day] = (flag in TRUE_WORDS, name)
    if not years:
        raise CalendarFileError(_l("The file lists no days."))
    return years


def mark_changed(session, name: str, now: datetime, data: dict | None = None) -> None:
    """Move a marker (one upsert, so two sweepers finishing together do not collide on the insert)."""
    session.execute(upsert(session.get_bind().dialect.name, Heartbeat, {"name": name, "at": now, "data": data},
                           ["name"], replace=True))


def replace_year(session, year: int, exceptions: dict, *, source: str, now: datetime, published: bool = True,
                 notice: str | None = None) -> CalendarYear:
    """Write a whole year of days and (un)publish it. The caller commits, then calls `invalidate()`."""
    session.execute(sa.delete(CalendarDay).where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)))
    session.execute(sa.insert(CalendarDay), year_days(year, exceptions, source))
    row = session.get(CalendarYear, year)
    if row is None:
        row = CalendarYear(year=year)
        session.add(row)
    row.published, row.source, row.updated_at = published, source, now
    row.notice = notice or row.notice
    mark_changed(session, "calendar", now, {"year": year})
    return row


def publish(session, text: str, *, source: str, now: datetime, notice: str | None = None,
            year: int | None = None) -> dict[int, dict[date, tuple[bool, str | None]]]:
    """Publish the years of a calendar file (`parse_calendar_csv`), each replaced whole; with `year`, the file
    must hold that year's days only. ValidationFailed (field `days`) names what is wrong with the file. The
    caller commits, then calls `invalidate()`."""
    try:
        years = parse_calendar_csv(text)
        if year is not None and set(years) != {year}:
            raise CalendarFileError(_l("Every line must be a day of %(year)d.", year=year))
    except CalendarFileError as problem:
        message = problem.args[0]
        raise ValidationFailed(message, {"days": message}) from None
    for number, exceptions in sorted(years.items()):
        replace_year(session, number, exceptions, source=source, now=now, notice=notice)
    return years


def year_exceptions(session, year: int) -> dict[date, tuple[bool, str | None]]:
    rows = session.execute(
        sa.select(CalendarDay.day, CalendarDay.workday, CalendarDay.name)
        .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
        .where(CalendarDay.kind.in_([DayKind.holiday.value, DayKind.makeup.value]))
        .order_by(CalendarDay.day)
    ).all()
    return {day: (workday, name) for day, workday, name in rows}


def load_calendar(connection) -> WorkCalendar:
    published = set(connection.scalars(sa.select(CalendarYear.year).where(CalendarYear.published.is_(True))))
    days = connection.execute(
        sa.select(CalendarDay.day, CalendarDay.workday)
        .where(CalendarDay.kind.in_([DayKind.holiday.value, DayKind.makeup.value]))
    ).all()
    return from_days(published, [(day, workday) for day, workday in days if day.year in published])


def override_scope(session, value: str) -> tuple[str | None, int | None, int | None]:
    """`problem_type:<code>`, `department:<id>` of an existing department or `office:<id>` of an existing office,
    as (problem_type, department_id, office_id); all None otherwise."""
    kind, _sep, key = value.partition(":")
    if kind == "problem_type" and key in ProblemType.__members__:
        return key, None, None
    number = int(key) if key.isascii() and key.isdigit() and len(key) < 10 else None
    if kind == "department" and number is not None and session.get(Department, number) is not None:
        return None, number, None
    if kind == "office" and number is not None and session.get(Office, number) is not None:
        return None, None, number
    return None, None, None


def set_override(session, kind: str, scope: str, working_days: str, *, by: int | None, now: datetime) -> PolicyOverride:
    """How many working days (working hours, for the first contact) a kind of deadline gets for a problem type, a
    department or an office (`scope`, as `override_scope` reads it); deadlines that start afterwards follow it.
    ValidationFailed for a bad value. The caller commits, then calls `invalidate()`."""
    problem_type, department_id, office_id = override_scope(session, scope)
    known = kind in DEFAULT_WORKING_DAYS or kind in DEFAULT_WORKING_HOURS
    if not known or (problem_type is None and department_id is None and office_id is None):
        raise ValidationFailed(_l("Choose a deadline and a problem type, department or office."),
                               {"scope": _l("Choose a deadline and a problem type, department or office.")})
    days = working_days
    if kind in DEFAULT_WORKING_HOURS:
        if not (days.isascii() and days.isdigit() and len(days) <= 3 and 1 <= int(days) <= MAX_WORKING_HOURS):
            message = _l("Working hours must be a whole number from 1 to %(max)d.", max=MAX_WORKING_HOURS)
            raise ValidationFailed(message, {"working_days": message})
    elif not (days.isascii() and days.isdigit() and len(days) <= 3 and 1 <= int(days) <= MAX_WORKING_DAYS):
        message = _l("Working days must be a whole number from 1 to %(max)d.", max=MAX_WORKING_DAYS)
        raise ValidationFailed(message, {"working_days": message})
    row = session.scalar(sa.select(PolicyOverride).where(
        PolicyOverride.kind == kind,
        PolicyOverride.problem_type == problem_type if problem_type else PolicyOverride.problem_type.is_(None),
        PolicyOverride.department_id == department_id if department_id else PolicyOverride.department_id.is_(None),
        PolicyOverride.office_id == office_id if office_id else PolicyOverride.office_id.is_(None)))
    if row is None:
        row = PolicyOverride(kind=kind, problem_type=problem_type, department_id=department_id, office_id=office_id,
                             working_days=0)
        session.add(row)
    row.working_days, row.updated_at, row.updated_by = int(days), now, by
    mark_changed(session, "policy", now)
    return row


def remove_override(session, row: PolicyOverride, now: datetime) -> None:
    """The default applies again. The caller commits, then calls `invalidate()`."""
    session.delete(row)
    mark_changed(session, "policy", now)


def load_overrides(connection) -> dict[str, dict[str, int]]:
    overrides: dict[str, dict[str, int]] = {}
    for kind, problem_type, department_id, office_id, days in connection.execute(
        sa.select(PolicyOverride.kind, PolicyOverride.problem_type, PolicyOverride.department_id,
                  PolicyOverride.office_id, PolicyOverride.working_days)
    ):
        scope = (f"department:{department_id}" if department_id is not None
                 else f"office:{office_id}" if office_id is not None else f"problem_type:{problem_type}")
        overrides.setdefault(kind, {})[scope] = days
    return overrides


class SettingsCache:
    """The calendar and overrides of one app, reloaded when a change marker moves (checked every `ttl` s)."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._stamp: object = None
        self._calendar = WorkCalendar()
        self._overrides: dict = {}

    def invalidate(self) -> None:
        self._checked, self._stamp = float("-inf"), None

    def _refresh(self) -> None:
        if time.monotonic() - self._checked < self.ttl:
            return
        with self._lock, db.engine.connect() as connection:
            stamp = tuple(connection.execute(
                sa.select(Heartbeat.name, Heartbeat.at).where(Heartbeat.name.in_(CHANGE_MARKERS)).order_by(Heartbeat.name)
            ).all())
            if stamp != self._stamp or self._stamp is None:
                self._calendar = load_calendar(connection)
                self._overrides = load_overrides(connection)
                self._stamp = stamp
            self._checked = time.monotonic()

    def calendar(self) -> WorkCalendar:
        self._refresh()
        return self._calendar

    def overrides(self) -> dict:
        self._refresh()
        return self._overrides


SETTINGS: AppSlot[SettingsCache] = AppSlot("banjie.escalation_settings", "calendar and policy overrides, cached")


def settings() -> SettingsCache:
    return SETTINGS.get()


def invalidate() -> None:
    settings().invalidate()


def provisional_years_ahead(today: date, published: Iterable[int]) -> list[int]:
    """Years the console should warn about: next year from November on, and this year, when unpublished."""
    years = [today.year] + ([today.year + 1] if today.month >= 11 else [])
    return [y for y in years if y not in set(published)]
