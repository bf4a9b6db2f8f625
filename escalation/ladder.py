"""The escalation ladder: which steps each kind of deadline has, when each fires, and who is told. Pure.

Configure with `ESCALATION_LADDER` (in the environment as JSON), a dict from deadline kind to a list of steps, each a dict
`{"step": name, "level": 0-3, "offset": working days, "audience": handler|supervisor|leader|office,
"template": SMS key}`, or with `"share"` instead of `"offset"`; a kind given there replaces its default list, a kind
mapped to [] has no ladder. The template must be a text (notify/messages.py) that uses only what the sweeper gives a
step's text (`TEXT_VARIABLES`): another stops start-up with a message.

`offset` counts working days from the deadline's due day: 0 fires at the deadline itself (the moment
the case is overdue); a positive offset fires at the end of that many working days after it; a negative
offset fires at the start of that working day before it (the SMS waits for the end of quiet hours).
`share` (more than 0, at most 1) fires when that share of the deadline's office time has run (0.75: at 75 % of the
time; 1: at the deadline): the first contact's ladder, whose deadline is counted in working hours, is made of these.
`level` is the supervision level the step raises the case to (1 催办, 2 督办, 3 挂牌督办); 0 only reminds.

The first contact's default steps raise no level: supervision levels (and the report's 督办数) are about solving the
problem, and a missed first contact has its own figure (先行联系及时率). Give them levels in ESCALATION_LADDER to
count them as 催办/督办 as well.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from .calendar import END_OF_DAY, OfficeHours, WorkCalendar, at_share, offset_working_day

AUDIENCES = ("handler", "supervisor", "leader", "office")
# What the sweeper gives a step's text (escalation/sweeper.py, `_send`); a deadline counted in working hours
# (tickets.models.HOURLY_KINDS) adds `hours_overdue`. A step's template may use these and no others.
TEXT_VARIABLES = frozenset({"tracking_no", "department", "due", "days_overdue", "deadline"})
HOURLY_TEXT_VARIABLES = TEXT_VARIABLES | {"hours_overdue"}


@dataclass(frozen=True)
class Rung:
    step: str
    level: int
    offset: int = 0
    audience: str = ""   # one of AUDIENCES: required, as the template is
    template: str = ""
    share: float | None = None  # of the deadline's office time; when given, `offset` is not used

    @property
    def before_due(self) -> bool:
        """A step ahead of the deadline (a warning): it has no purpose once the deadline is over."""
        return self.offset < 0 if self.share is None else self.share < 1


_DEPARTMENT_LADDER = (
    Rung("warning", 1, -1, "handler", "escalation_warning"),
    Rung("supervisor", 2, 0, "supervisor", "escalation_supervisor"),
    Rung("leader", 3, 2, "leader", "escalation_leader"),
)
_OFFICE_LADDER = (Rung("office_reminder", 0, 0, "office", "office_reminder"),)
# 先行联系: a warning to the handlers at 75 % of the time, the department's supervisor told at the deadline.
_CONTACT_LADDER = (
    Rung("contact_warning", 0, audience="handler", template="contact_warning", share=0.75),
    Rung("contact_supervisor", 0, audience="supervisor", template="contact_supervisor", share=1.0),
)

DEFAULT_LADDER: dict[str, tuple[Rung, ...]] = {
    "handle": _DEPARTMENT_LADDER,
    "rectify": _DEPARTMENT_LADDER,  # a 差评 reopened the case: the department's work, under the same ladder
    "accept": _OFFICE_LADDER,
    "review": _OFFICE_LADDER,
    "contact": _CONTACT_LADDER,
}


def ladder_from_config(configured: dict | str | None) -> dict[str, tuple[Rung, ...]]:
    """The defaults with the configured kinds replaced; `configured` may be the JSON text of the setting."""
    if isinstance(configured, str):
        configured = json.loads(configured) if configured.strip() else None
    ladder = dict(DEFAULT_LADDER)
    if not isinstance(configured or {}, dict):
        raise ValueError("ESCALATION_LADDER: a JSON object from deadline kind to a list of steps")
    for kind, steps in (configured or {}).items():
        if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
            raise ValueError(f"ESCALATION_LADDER[{kind!r}]: a list of steps, each a JSON object")
        try:
            rungs = tuple(Rung(**step) for step in steps)
        except TypeError as error:  # a key a step does not have, or one it needs missing
            raise ValueError(f"ESCALATION_LADDER[{kind!r}]: bad step: {error}") from None
        for given, rung in zip(steps, rungs):
            timed = ("offset" in given) != ("share" in given)  # one of them says when it fires
            numbers = all(isinstance(value, int) and not isinstance(value, bool) for value in (rung.level, rung.offset))
            if not timed or not numbers or not isinstance(rung.step, str) or rung.audience not in AUDIENCES or (
                    not isinstance(rung.template, str) or not rung.template or not 0 <= rung.level <= 3) or (
                    rung.share is not None and not (isinstance(rung.share, (int, float)) and 0 < rung.share <= 1)):
                raise ValueError(f"ESCALATION_LADDER[{kind!r}]: bad step {rung}")
        for rung in rungs:
            if (problem := _text_problem(kind, rung.template)) is not None:
                raise ValueError(f"ESCALATION_LADDER[{kind!r}]: step {rung.step!r}: {problem}")
        if len({r.step for r in rungs}) != len(rungs):
            raise ValueError(f"ESCALATION_LADDER[{kind!r}]: step names must be unique")
        ladder[kind] = rungs
    return ladder


def _text_problem(kind: str, template: str) -> str | None:
    """Why the sweeper cannot write the text `template` for a step of the deadline `kind`, or None."""
    from notify.messages import KINDS as TEXTS
    from tickets.models import HOURLY_KINDS

    text = TEXTS.get(template)
    if text is None:
        return f"{template!r} is not a text message (one of {', '.join(TEXTS)})"
    given = HOURLY_TEXT_VARIABLES if kind in {k.value for k in HOURLY_KINDS} else TEXT_VARIABLES
    missing = sorted(set(text.sample) - given)
    if missing:
        return f"the text {template!r} needs {', '.join(missing)}, which a ladder step does not give"
    return None


def fire_at(calendar: WorkCalendar, due_at: datetime, offset: int, tz: ZoneInfo) -> datetime:
    """When a step `offset` working days from a deadline due at `due_at` fires."""
    if offset == 0:
        return due_at
    day = offset_working_day(calendar, due_at.astimezone(tz).date(), offset)
    return datetime.combine(day, END_OF_DAY if offset > 0 else time(0, 0), tzinfo=tz)


def step_time(calendar: WorkCalendar, rung: Rung, started_at: datetime, due_at: datetime, tz: ZoneInfo,
              office_hours: OfficeHours) -> datetime:
    """When `rung` of a deadline running from `started_at` to `due_at` fires: its share of the office time between
    them, or its offset in working days from the due day."""
    if rung.share is not None:
        return at_share(calendar, started_at, due_at, rung.share, tz, office_hours)
    return fire_at(calendar, due_at, rung.offset, tz)
