"""The escalation ladder: which steps each kind of deadline has, when each fires, and who is told. Pure.

Configure with `ESCALATION_LADDER` (in the environment as JSON), a dict from deadline kind to a list of steps, each a dict
`{"step": name, "level": 0-3, "offset": working days, "audience": handler|supervisor|leader|office,
"template": SMS key}`; a kind given there replaces its default list, a kind mapped to [] has no ladder.

`offset` counts working days from the deadline's due day: 0 fires at the deadline itself (the moment
the case is overdue); a positive offset fires at the end of that many working days after it; a negative
offset fires at the start of that working day before it (the SMS waits for the end of quiet hours).
`level` is the supervision level the step raises the case to (1 催办, 2 督办, 3 挂牌督办); 0 only reminds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from .calendar import END_OF_DAY, WorkCalendar, offset_working_day

AUDIENCES = ("handler", "supervisor", "leader", "office")


@dataclass(frozen=True)
class Rung:
    step: str
    level: int
    offset: int
    audience: str
    template: str


_DEPARTMENT_LADDER = (
    Rung("warning", 1, -1, "handler", "escalation_warning"),
    Rung("supervisor", 2, 0, "supervisor", "escalation_supervisor"),
    Rung("leader", 3, 2, "leader", "escalation_leader"),
)
_OFFICE_LADDER = (Rung("office_reminder", 0, 0, "office", "office_reminder"),)

DEFAULT_LADDER: dict[str, tuple[Rung, ...]] = {
    "handle": _DEPARTMENT_LADDER,
    "rectify": _DEPARTMENT_LADDER,  # a 差评 reopened the case: the department's work, under the same ladder
    "accept": _OFFICE_LADDER,
    "review": _OFFICE_LADDER,
}


def ladder_from_config(configured: dict | str | None) -> dict[str, tuple[Rung, ...]]:
    """The defaults with the configured kinds replaced; `configured` may be the JSON text of the setting."""
    if isinstance(configured, str):
        configured = json.loads(configured) if configured.strip() else None
    ladder = dict(DEFAULT_LADDER)
    for kind, steps in (configured or {}).items():
        rungs = tuple(Rung(**step) for step in steps)
        for rung in rungs:
            if rung.audience not in AUDIENCES or not 0 <= rung.level <= 3:
                raise ValueError(f"ESCALATION_LADDER[{kind!r}]: bad step {rung}")
        if len({r.step for r in rungs}) != len(rungs):
            raise ValueError(f"ESCALATION_LADDER[{kind!r}]: step names must be unique")
        ladder[kind] = rungs
    return ladder


def fire_at(calendar: WorkCalendar, due_at: datetime, offset: int, tz: ZoneInfo) -> datetime:
    """When a step `offset` working days from a deadline due at `due_at` fires."""
    if offset == 0:
        return due_at
    day = offset_working_day(calendar, due_at.astimezone(tz).date(), offset)
    return datetime.combine(day, END_OF_DAY if offset > 0 else time(0, 0), tzinfo=tz)

