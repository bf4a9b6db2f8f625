"""The report's lists: problem types and recurring service items, the cases overdue at the month's end, the escalations.

Each reads the history as it stood in the month, like the figures (`metrics`), of the cases the report's
office's subtree owned at the month's end (`metrics.Scope`, `metrics.owner_at`), and returns at most `LIST_LIMIT` rows with the total.
"""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tickets.labels import PROBLEM_TYPE_LABELS, label
from tickets.models import Deadline, Department, Event, Ticket

from .metrics import (
    DEPARTMENT_DEADLINES, INSTRUCTION_ACTIONS, SUPERVISION_ACTIONS, Month, Scope, WorkingDays, accepted_in, between,
    department_at, step_level,
)

LIST_LIMIT = 100
TOP_LIMIT = 10


def supervision_level_at(ticket_id, at):
    """The highest supervision level a case had reached by an instant."""
    return (
        sa.select(sa.func.max(step_level()))
        .where(Event.ticket_id == ticket_id, Event.action.in_(SUPERVISION_ACTIONS), Event.at < at)
        .scalar_subquery()
    )


def recurring(session, month: Month, tz: ZoneInfo, scope: Scope) -> tuple[list[dict], list[dict]]:
    """The cohort's problem types, and the service items it names most often (一类事: fix them at the root): the cases
    受理数 counts (`metrics.accepted_in`), so the problem types add up to it.

    One pass over the cohort's tickets grouped by (problem type, service item); the two tallies are
    summed from those groups (a few thousand at most).
    """
    start, end = month.bounds(tz)
    cohort = sa.select(Event.ticket_id).where(accepted_in(Event, start, end))  # the figures' cohort (受理数)
    groups = session.execute(
        sa.select(Ticket.problem_type, Ticket.service_item, sa.func.count()).where(Ticket.id.in_(cohort), scope.owned(at=end))
        .group_by(Ticket.problem_type, Ticket.service_item)
    ).all()
    by_type: dict = {}
    by_item: dict = {}
    for problem_type, item, count in groups:
        by_type[problem_type] = by_type.get(problem_type, 0) + count
        if item is not None:
            by_item[item] = by_item.get(item, 0) + count
    types = sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))
    items = sorted(((name, n) for name, n in by_item.items() if n >= 2), key=lambda kv: (-kv[1], kv[0]))[:TOP_LIMIT]
    return ([{"code": code, "label": str(label(PROBLEM_TYPE_LABELS, code)), "count": n} for code, n in types],
            [{"name": name, "count": n} for name, n in items])


def overdue_list(session, month: Month, tz: ZoneInfo, working_days: WorkingDays, scope: Scope) -> dict:
    """Cases with a department deadline past due and still open at the month's end, most overdue first."""
    start, end = month.bounds(tz)
    where = (Deadline.kind.in_(DEPARTMENT_DEADLINES), Deadline.overdue(end), scope.owned(at=end))
    total = session.scalar(sa.select(sa.func.count(sa.distinct(Deadline.ticket_id)))
                           .join(Ticket, Ticket.id == Deadline.ticket_id).where(*where))
    rows = session.execute(
        sa.select(Ticket.tracking_no, Department.name, Deadline.kind, Deadline.due_at,
                  supervision_level_at(Ticket.id, end))
        .select_from(Deadline).join(Ticket, Ticket.id == Deadline.ticket_id)
        .join(Department, Department.id == Deadline.department_id, isouter=True)
        .where(*where).order_by(Deadline.due_at, Ticket.tracking_no).limit(LIST_LIMIT)
    ).all()
    last_day = (end - timedelta(seconds=1)).astimezone(tz).date()
    items = [{"tracking_no": no, "department": name, "kind": kind, "due_at": due.isoformat(),
              "days_overdue": working_days.between(due.astimezone(tz).date(), last_day),
              "supervision_level": level or 0} for no, name, kind, due, level in rows]
    return {"total": total, "items": items}


INSTRUCTION_CLIP = 80  # characters of a 批示 the list shows


def escalation_list(session, month: Month, tz: ZoneInfo, scope: Scope) -> dict:
    """The month's escalation steps and reminders, and the leaders' instructions (批示) on cases under supervision,
    in order."""
    start, end = month.bounds(tz)
    level = step_level()
    where = (Event.action.in_(SUPERVISION_ACTIONS + INSTRUCTION_ACTIONS), between(Event.at, start, end),
             scope.owned(at=end))
    total = session.scalar(sa.select(sa.func.count()).select_from(Event).join(Ticket, Ticket.id == Event.ticket_id)
                           .where(*where))
    rows = session.execute(
        sa.select(Event.at, Ticket.tracking_no, Department.name, Event.action, level, Event.note)
        .select_from(Event).join(Ticket, Ticket.id == Event.ticket_id)
        .join(Department, Department.id == department_at(Event.ticket_id, Event.at), isouter=True)
        .where(*where).order_by(Event.at, Event.id).limit(LIST_LIMIT)
    ).all()
    items = [{"at": at.isoformat(), "tracking_no": no, "department": name, "action": action, "level": lvl,
              "instruction": _clip(note) if action in INSTRUCTION_ACTIONS else None}
             for at, no, name, action, lvl, note in rows]
    return {"total": total, "items": items}


def _clip(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= INSTRUCTION_CLIP else flat[:INSTRUCTION_CLIP - 1] + "…"
