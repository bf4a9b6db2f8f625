"""Ladder steps follow the deadlines: created when a deadline starts, moved when it is extended, cancelled
when it ends. Reactions to the workflow's events that may move deadlines (`register`), inside the workflow's
transaction; never commits. Each step records the event that planned it, or last moved or cancelled it.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tickets import clock, deadlines as deadline_rules
from tickets.db import new_row
from tickets.models import FINAL_STATUSES, Deadline, Ticket
from tickets.slots import AppSlot
from tickets.workflow import names

from . import store
from .ladder import Rung, step_time
from .models import CancelReason, EscalationStep

LADDER: AppSlot[dict] = AppSlot("banjie.escalation_ladder", "deadline kind -> its rungs (ESCALATION_LADDER)")


def ladder() -> dict[str, tuple[Rung, ...]]:
    return LADDER.get()


def wanted_steps(deadlines, calendar, zone) -> dict[tuple, tuple[Rung, datetime]]:
    """(kind, round, step) → (rung, when) for the ladder of every open deadline."""
    rungs = ladder()
    office_hours = deadline_rules.policy().office_hours
    wanted = {}
    for deadline in deadlines:
        for rung in rungs.get(deadline.kind, ()):
            at = step_time(calendar, rung, deadline.started_at, deadline.due_at, zone, office_hours)
            if rung.before_due and at <= deadline.started_at:
                continue  # a warning "before" a deadline that only just started would be noise
            wanted[(deadline.kind, deadline.round, rung.step)] = (rung, at)
    return wanted


def _new_step(ticket_id: int, key: tuple, rung: Rung, at: datetime, now: datetime,
              event_id: int | None) -> EscalationStep:
    kind, round_, step = key
    return new_row(EscalationStep, ticket_id=ticket_id, kind=kind, round=round_, step=step, level=rung.level,
                   due_at=at, created_at=now, event_id=event_id)


def _unfired(step_id: int):
    # Conditional on fired_at: a sweeper that fired the step meanwhile wins, and its row is left alone.
    return sa.update(EscalationStep).where(EscalationStep.id == step_id, EscalationStep.fired_at.is_(None)) \
        .execution_options(synchronize_session=False)


def sync_steps(session, ticket: Ticket, now: datetime, cause=None) -> None:
    """Make the ticket's pending steps match its open deadlines; `cause`: the event that moved them."""
    session.flush()  # the deadlines as the action left them, and the cause's id
    event_id = cause.id if cause is not None else None
    deadlines = session.scalars(
        sa.select(Deadline).where(Deadline.ticket_id == ticket.id, Deadline.ended_at.is_(None))
    ).all()
    wanted = wanted_steps(deadlines, store.settings().calendar(), clock.local_tz())
    existing = {(s.kind, s.round, s.step): s for s in session.scalars(
        sa.select(EscalationStep).where(EscalationStep.ticket_id == ticket.id))}
    for key, (rung, at) in wanted.items():
        step = existing.get(key)
        if step is None:
            session.add(_new_step(ticket.id, key, rung, at, now, event_id))
        elif step.fired_at is None and (step.due_at != at or step.cancelled_at is not None):
            session.execute(_unfired(step.id).values(due_at=at, cancelled_at=None, cancel_reason=None,
                                                     event_id=event_id))
    open_rounds = {(d.kind, d.round) for d in deadlines}
    for key, step in existing.items():
        if key not in wanted and step.fired_at is None and step.cancelled_at is None:
            session.execute(_unfired(step.id).values(cancelled_at=now, event_id=event_id,
                                                     cancel_reason=_why_unwanted(ticket, key, open_rounds).value))


def _why_unwanted(ticket: Ticket, key: tuple, open_rounds: set) -> CancelReason:
    if ticket.status in {s.value for s in FINAL_STATUSES}:
        return CancelReason.case_closed
    if key[:2] not in open_rounds:
        return CancelReason.deadline_ended
    return CancelReason.not_planned


def plan_first_steps(session, ticket: Ticket, now: datetime, event_id: int | None = None) -> None:
    """Filing: the ticket is new, so its steps are too; read nothing, only add (the filing hot path)."""
    deadlines = [obj for obj in session.new if isinstance(obj, Deadline) and obj.ticket_id == ticket.id]
    for key, (rung, at) in wanted_steps(deadlines, store.settings().calendar(), clock.local_tz()).items():
        session.add(_new_step(ticket.id, key, rung, at, now, event_id))


def filed(event, *, session, ticket, **_) -> None:
    plan_first_steps(session, ticket, event.at, event.id)  # a filing's event id is taken beforehand


def deadlines_moved(event, *, session, ticket, **_) -> None:
    sync_steps(session, ticket, event.at, event)


def register(reactions) -> None:
    """Plan a new case's ladder, and re-plan it after every event that may start, end or move a deadline."""
    reactions.on("file", filed)
    reactions.on(*(name for name in names(moves_deadlines=True) if name != "file"), deadlines_moved)


def plan_all(session, now: datetime, chunk: int = 500) -> int:
    """Bring every ticket with an open deadline in line with the ladder; commits per chunk; returns the count.

    For cases opened before the ladder existed (an upgrade to migration 0004) or after ESCALATION_LADDER
    changed. Idempotent: fired steps stay fired, nothing is created twice.
    """
    done, last_id = 0, 0
    while True:
        ids = session.scalars(
            sa.select(Deadline.ticket_id).where(Deadline.ended_at.is_(None), Deadline.ticket_id > last_id)
            .group_by(Deadline.ticket_id).order_by(Deadline.ticket_id).limit(chunk)).all()
        if not ids:
            return done
        for ticket in session.scalars(sa.select(Ticket).where(Ticket.id.in_(ids))):
            sync_steps(session, ticket, now)
        session.commit()
        done, last_id = done + len(ids), ids[-1]
