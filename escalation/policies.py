"""Deadline policies: how many working days (or, for the first contact, working hours) each kind of deadline gets,
and the calendar and office hours that count them."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from .calendar import DEFAULT_OFFICE_HOURS, Due, OfficeHours, WorkCalendar, add_working_days, add_working_hours, \
    parse_office_hours, working_days_between, working_days_overdue

DEFAULT_WORKING_DAYS: Mapping[str, int] = {
    "accept": 1,
    "handle": 5,
    "return": 2,
    "review": 1,
    "rectify": 15,
}
# Deadlines counted in working hours (tickets.models.HOURLY_KINDS); FIRST_CONTACT_HOURS replaces the contact's.
DEFAULT_WORKING_HOURS: Mapping[str, int] = {
    "contact": 8,
}
MAX_WORKING_HOURS = 120  # the most working hours a policy may give (about seventeen working days of office hours)


@dataclass
class DeadlinePolicy:
    """Implements the `tickets.deadlines.Policy` protocol.

    `overrides` maps a kind to {"problem_type:<code>": n, "department:<id>": n, "office:<id>": n} (working days, or
    working hours for the kinds of `hour_defaults`); a department's own figure wins over the owning office's, which
    wins over the problem type's, which wins over the default.
    """

    calendar_source: Callable[[], WorkCalendar]
    tz: ZoneInfo
    defaults: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKING_DAYS))
    overrides: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # When given, read on each call instead of `overrides` (the console's table, cached per app).
    overrides_source: Callable[[], Mapping[str, Mapping[str, int]]] | None = None
    hour_defaults: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKING_HOURS))
    office_hours: OfficeHours = field(default_factory=lambda: parse_office_hours(DEFAULT_OFFICE_HOURS))

    def _figure(self, kind: str, defaults: Mapping[str, int], problem_type: str | None, department_id: int | None,
                office_id: int | None) -> int:
        overrides = self.overrides_source() if self.overrides_source is not None else self.overrides
        specific = overrides.get(kind, {})
        if department_id is not None and f"department:{department_id}" in specific:
            return specific[f"department:{department_id}"]
        if office_id is not None and f"office:{office_id}" in specific:
            return specific[f"office:{office_id}"]
        if problem_type is not None and f"problem_type:{problem_type}" in specific:
            return specific[f"problem_type:{problem_type}"]
        return defaults[kind]

    def working_days(self, kind: str, *, problem_type: str | None = None, department_id: int | None = None,
                     office_id: int | None = None) -> int:
        return self._figure(kind, self.defaults, problem_type, department_id, office_id)

    def working_hours(self, kind: str, *, problem_type: str | None = None, department_id: int | None = None,
                      office_id: int | None = None) -> int:
        """The limit of a deadline counted in working hours (the first contact)."""
        return self._figure(kind, self.hour_defaults, problem_type, department_id, office_id)

    def due(self, start: datetime, working_days: int) -> Due:
        return add_working_days(self.calendar_source(), start, working_days, self.tz)

    def days_left(self, now: datetime, due_at: datetime) -> int:
        """Working days left before `due_at`: 0 when it falls today (or the case is already overdue)."""
        return working_days_between(self.calendar_source(), now, due_at, self.tz)

    def days_overdue(self, due_at: datetime, now: datetime) -> int:
        """Whole working days past `due_at` that have ended by `now` (「已超期N个工作日」)."""
        return working_days_overdue(self.calendar_source(), due_at, now, self.tz)

    def due_in_hours(self, start: datetime, working_hours: int) -> Due:
        return add_working_hours(self.calendar_source(), start, working_hours, self.tz, self.office_hours)
