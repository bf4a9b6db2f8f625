"""Ladder steps follow the deadlines: created when a deadline starts, moved when it is extended, cancelled
when it ends. Runs on `tickets.signals.event_recorded`, inside the workflow's transaction; never commits.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from tickets.db import new_row
from tickets.models import FINAL_STATUSES, Deadline, Ticket

from . import store
from .ladder import Rung, fire_at
from .models import CancelReason, EscalationStep

# Actions that never start, end or move a deadline: nothing to plan.
QUIET_ACTIONS = frozenset({"escalate", "note", "remind", "request_extension", "record_visit"})


def ladder() -> dict[str, tuple[Rung, ...]]:
    return current_app.extensions["banjie.escalation_ladder"]


def tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def wanted_steps(deadlines, calendar, zone) -> dict[tuple, tuple[Rung, datetime]]:
    """(kind, round, step) → (rung, when) for the ladder of every open deadline."""
    rungs = ladder()
    wanted = {}
    for deadline in deadlines:
        for rung in rungs.get(deadline.kind, ()):
            at = fire_at(calendar, deadline.due_at, rung.offset, zone)
            if rung.offset < 0 and at <= deadline.started_at:
                continue  # a warning "before" a deadline that only just started would be noise
            wanted[(deadline.kind, deadline.round, rung.step)] = (rung, at)
    return wanted


def _new_step(ticket_id: int, key: tuple, rung: Rung, at: datetime, now: datetime) -> EscalationStep:
    kind, round_, step = key
    return new_row(EscalationStep, ticket_id=ticket_id, kind=kind, round=round_, step=step, level=rung.level,
                   due_at=at, created_at=now)


def _unfired(step_id: int):
    # Conditional on fired_at: a sweeper that fired the step meanwhile wins, and its row is left alone.
    return sa.update(EscalationStep).where(EscalationStep.id == step_id, EscalationStep.fired_at.is_(None)) \
        .execution_options(synchronize_session=False)


def sync_steps(session, ticket: Ticket, now: datetime) -> None:
    """Make the ticket's pending steps match its open deadlines."""
    session.flush()
    deadlines = session.scalars(
        sa.select(Deadline).where(Deadline.ticket_id == ticket.id, Deadline.ended_at.is_(None))
    ).all()
    wanted = wanted_steps(deadlines, store.settings().calendar(), tz())
    existing = {(s.kind, s.round, s.step): s for s in session.scalars(
        sa.select(EscalationStep).where(EscalationStep.ticket_id == ticket.id))}
    for key, (rung, at) in wanted.items():
        step = existing.get(key)
        if step is None:
            session.add(_new_step(ticket.id, key, rung, at, now))
        elif step.fired_at is None and (step.due_at != at or step.cancelled_at is not None):
            session.execute(_unfired(step.id).values(due_at=at, cancelled_at=None, cancel_reason=None))
    open_rounds = {(d.kind, d.round) for d in deadlines}
    for key, step in existing.items():
        if key not in wanted and step.fired_at is None and step.cancelled_at is None:
            session.execute(_unfired(step.id).values(cancelled_at=now,
                                                     cancel_reason=_why_unwanted(ticket, key, open_rounds).value))


def _why_unwanted(ticket: Ticket, key: tuple, open_rounds: set) -> CancelReason:
    if ticket.status in {s.value for s in FINAL_STATUSES}:
        return CancelReason.case_closed
    if key[:2] not in open_rounds:
        return CancelReason.deadline_ended
    return CancelReason.not_planned


def plan_first_steps(session, ticket: Ticket, now: datetime) -> None:
    """Filing: the ticket is new, so its steps are too; read nothing, only add (the filing hot path)."""
    deadlines = [obj for obj in session.new if isinstance(obj, Deadline) and obj.ticket_id == ticket.id]
    for key, (rung, at) in wanted_steps(deadlines, store.settings().calendar(), tz()).items():
        session.add(_new_step(ticket.id, key, rung, at, now))


def on_event_recorded(event, *, session, ticket, **_kwargs) -> None:
    if event.action in QUIET_ACTIONS:
        return
    if event.action == "file":
        plan_first_steps(session, ticket, event.at)
    else:
        sync_steps(session, ticket, event.at)


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
