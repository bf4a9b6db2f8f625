"""Deadline policies: how many working days each kind of deadline gets, and the calendar that counts them."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from .calendar import Due, WorkCalendar, add_working_days

DEFAULT_WORKING_DAYS: Mapping[str, int] = {
    "accept": 1,
    "handle": 5,
    "return": 2,
    "review": 1,
    "rectify": 15,
}


@dataclass
class DeadlinePolicy:
    """Implements the `tickets.deadlines.Policy` protocol.

    `overrides` maps a kind to {"problem_type:<code>": days, "department:<id>": days, "office:<id>": days}; a
    department's own figure wins over the owning office's, which wins over the problem type's, which wins over
    the default.
    """

    calendar_source: Callable[[], WorkCalendar]
    tz: ZoneInfo
    defaults: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKING_DAYS))
    overrides: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # When given, read on each call instead of `overrides` (the console's table, cached per app).
    overrides_source: Callable[[], Mapping[str, Mapping[str, int]]] | None = None

    def working_days(self, kind: str, *, problem_type: str | None = None, department_id: int | None = None,
                     office_id: int | None = None) -> int:
        overrides = self.overrides_source() if self.overrides_source is not None else self.overrides
        specific = overrides.get(kind, {})
        if department_id is not None and f"department:{department_id}" in specific:
            return specific[f"department:{department_id}"]
        if office_id is not None and f"office:{office_id}" in specific:
            return specific[f"office:{office_id}"]
        if problem_type is not None and f"problem_type:{problem_type}" in specific:
            return specific[f"problem_type:{problem_type}"]
        return self.defaults[kind]

    def due(self, start: datetime, working_days: int) -> Due:
        return add_working_days(self.calendar_source(), start, working_days, self.tz)
