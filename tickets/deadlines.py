"""Deadline rows of a ticket: start them, end them, and keep the ticket's current due date in step.

The working-day arithmetic lives in the escalation room; app.py hands its policy in, so this room
imports no other.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from .db import new_row
from .models import HOURLY_KINDS, Deadline, DeadlineKind, Ticket
from .slots import AppSlot

# What the ticket's `due_at` follows: the return window runs alongside the handling deadline and is
# only a limit on the department's `return` action; the first contact (先行联系) runs alongside it too, with its
# own field (`contact_due_at`), its own ladder and its own figure: it never makes a case overdue.
PRIMARY_KINDS = (DeadlineKind.accept, DeadlineKind.handle, DeadlineKind.review, DeadlineKind.rectify)

# How a deadline ended (`Deadline.outcome`): `met` or `late` unless the action that ended it says otherwise
# (`returned`, `replied`, `referred`, `not_contacted`, or LIFTED: an upheld appeal called the rectification off).
LIFTED = "lifted"


class Due(Protocol):
    at: datetime
    provisional: bool


class Policy(Protocol):
    office_hours: tuple  # the office's open periods of a working day: ((start, end), ...) in local time

    def working_days(self, kind: str, *, problem_type: str | None = None, department_id: int | None = None,
                     office_id: int | None = None) -> int: ...

    def working_hours(self, kind: str, *, problem_type: str | None = None, department_id: int | None = None,
                      office_id: int | None = None) -> int: ...

    def due(self, start: datetime, working_days: int) -> Due: ...

    def due_in_hours(self, start: datetime, working_hours: int) -> Due: ...

    def days_left(self, now: datetime, due_at: datetime) -> int: ...

    def days_overdue(self, due_at: datetime, now: datetime) -> int: ...


# Set by the escalation room's init_app (its calendar and policy overrides): this room imports no other.
POLICY: AppSlot[Policy] = AppSlot("banjie.deadline_policy", "working days and due times of deadlines")


def policy(app=None) -> Policy:
    return POLICY.get(app)


def open_deadlines(session, ticket: Ticket) -> list[Deadline]:
    return list(
        session.scalars(
            sa.select(Deadline).where(Deadline.ticket_id == ticket.id, Deadline.ended_at.is_(None)).order_by(Deadline.id)
        )
    )


def start(session, ticket: Ticket, kind: DeadlineKind, at: datetime, *, working_days: int | None = None,
          department_id: int | None = None) -> Deadline:
    last_round = session.scalar(
        sa.select(sa.func.max(Deadline.round)).where(Deadline.ticket_id == ticket.id, Deadline.kind == kind.value)
    )
    deadline = planned(ticket, kind, at, working_days=working_days, department_id=department_id)
    deadline.ticket_id, deadline.round = ticket.id, (last_round or 0) + 1
    session.add(deadline)
    return deadline


def planned(ticket: Ticket, kind: DeadlineKind, at: datetime, *, working_days: int | None = None,
            department_id: int | None = None) -> Deadline:
    """A first-round deadline of this kind starting at `at`, not yet attached to the ticket or the session."""
    rules = policy()
    scope = {"problem_type": ticket.problem_type, "department_id": department_id, "office_id": ticket.office_id}
    if kind in HOURLY_KINDS:
        hours = rules.working_hours(kind.value, **scope)
        due = rules.due_in_hours(at, hours)
        return new_row(Deadline, kind=kind.value, department_id=department_id, started_at=at, working_days=0,
                       working_minutes=hours * 60, due_at=due.at, original_due_at=due.at, provisional=due.provisional)
    days = working_days or rules.working_days(kind.value, **scope)
    due = rules.due(at, days)
    return new_row(Deadline, kind=kind.value, department_id=department_id, started_at=at, working_days=days,
                   due_at=due.at, original_due_at=due.at, provisional=due.provisional)


def end(session, ticket: Ticket, kinds, at: datetime, outcome: str | None = None) -> list[Deadline]:
    """End the open deadlines of these kinds; the outcome is `met` or `late` unless one is given."""
    ended = []
    for deadline in open_deadlines(session, ticket):
        if deadline.kind in {k.value for k in kinds}:
            deadline.ended_at = at
            deadline.outcome = outcome or ("met" if at <= deadline.due_at else "late")
            ended.append(deadline)
    return ended


def reopen(session, ticket: Ticket, kind: DeadlineKind) -> Deadline | None:
    """Resume the latest deadline of a kind (a reply sent back does not earn the department more time)."""
    deadline = session.scalar(
        sa.select(Deadline)
        .where(Deadline.ticket_id == ticket.id, Deadline.kind == kind.value)
        .order_by(Deadline.round.desc())
        .limit(1)
    )
    if deadline is not None:
        deadline.ended_at = None
        deadline.outcome = None
    return deadline


def extend(deadline: Deadline, working_days: int) -> Deadline:
    due = policy().due(deadline.due_at, working_days)
    deadline.due_at = due.at
    deadline.extended_days += working_days
    deadline.provisional = deadline.provisional or due.provisional
    return deadline


def refresh_ticket_due(session, ticket: Ticket) -> None:
    """The ticket's copies of its running deadlines: `due_at` (and its kind) for the queues and the overdue rule,
    `contact_due_at` while a first contact is awaited."""
    session.flush()
    running = open_deadlines(session, ticket)
    current = [d for d in running if d.kind in {k.value for k in PRIMARY_KINDS}]
    if current:
        latest = current[-1]
        ticket.due_at, ticket.due_kind, ticket.due_provisional = latest.due_at, latest.kind, latest.provisional
    else:
        ticket.due_at, ticket.due_kind, ticket.due_provisional = None, None, False
    contact = [d for d in running if d.kind == DeadlineKind.contact.value]
    ticket.contact_due_at = contact[-1].due_at if contact else None
