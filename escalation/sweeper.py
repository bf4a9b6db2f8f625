"""The sweeper: fire every ladder step that is due, exactly once, in batches.

A step is claimed, acted on (event, supervision level, SMS outbox rows) and marked fired in one
transaction per batch. On PostgreSQL the claim skips rows another sweeper holds (`FOR UPDATE SKIP
LOCKED`); on SQLite the claiming UPDATE takes the database's single write lock, and a second sweeper
finds the rows already fired. A sweeper that dies mid-batch fired nothing: its transaction rolls back
and the next sweep takes the same steps. It loops until nothing is due, so a backlog never starves.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from notify import send_sms
from tickets import workflow
from tickets.labels import DEADLINE_LABELS, label
from tickets.presenters import local_text
from tickets.models import FINAL_STATUSES, Deadline, Department, Role, Ticket, User

from . import store
from .calendar import working_days_between
from .models import EscalationStep
from .operations import ladder, tz

log = logging.getLogger(__name__)

PENDING = sa.and_(EscalationStep.fired_at.is_(None), EscalationStep.cancelled_at.is_(None))


@dataclass
class SweepResult:
    fired: Counter = field(default_factory=Counter)  # step name → count
    cancelled: int = 0
    sms: int = 0
    batches: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        steps = ", ".join(f"{name} {n}" for name, n in sorted(self.fired.items())) or "nothing due"
        return (f"fired {sum(self.fired.values())} step(s) ({steps}); {self.cancelled} cancelled; "
                f"{self.sms} SMS written; {self.batches} batch(es) in {self.seconds * 1000:.0f} ms")


def claim(session, now: datetime, limit: int) -> list[int]:
    """Mark up to `limit` due steps fired in this transaction and return their ids."""
    due = sa.select(EscalationStep.id).where(PENDING, EscalationStep.due_at <= now) \
        .order_by(EscalationStep.due_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Lock first, then update the locked ids: inside `UPDATE ... IN (subquery)` PostgreSQL may rescan a
        # SKIP LOCKED subquery and claim more than `limit` rows.
        due = list(session.scalars(due.with_for_update(skip_locked=True)))
        if not due:
            return []
    else:
        # One statement: it takes SQLite's write lock before reading, so a second sweeper waits, then
        # finds these rows fired (a read followed by a write could fail with "database is locked").
        due = due.scalar_subquery()
    return list(session.scalars(
        sa.update(EscalationStep).where(EscalationStep.id.in_(due), PENDING)
        .values(fired_at=now).returning(EscalationStep.id).execution_options(synchronize_session=False)
    ))


class Recipients:
    """Phone numbers per audience for one batch, read once per batch rather than once per step."""

    def __init__(self, session, department_ids):
        self.departments = {d.id: d for d in session.scalars(sa.select(Department).where(Department.id.in_(department_ids)))}
        self.handlers = defaultdict(list)
        self.office = []
        for department_id, role, phone in session.execute(
            sa.select(User.department_id, User.role, User.phone).where(
                User.active.is_(True), User.phone.is_not(None),
                sa.or_(sa.and_(User.role == Role.department.value, User.department_id.in_(department_ids)),
                       User.role == Role.office.value))
            .order_by(User.id)
        ):
            (self.office if role == Role.office.value else self.handlers[department_id]).append(phone)

    def phones(self, audience: str, department_id: int | None) -> list[str]:
        department = self.departments.get(department_id)
        if audience == "office":
            return self.office
        if audience == "handler":
            return self.handlers.get(department_id, [])
        phone = getattr(department, f"{audience}_phone", None) if department else None
        return [phone] if phone else []


@dataclass
class Batch:
    """What one batch of claimed steps needs, read in a handful of queries."""

    tickets: dict
    deadlines: dict
    recipients: Recipients

    @classmethod
    def load(cls, session, steps) -> "Batch":
        tickets = {t.id: t for t in session.scalars(sa.select(Ticket).where(Ticket.id.in_({s.ticket_id for s in steps})))}
        deadlines = {(d.ticket_id, d.kind, d.round): d for d in session.scalars(
            sa.select(Deadline).where(Deadline.ticket_id.in_(tickets)))}
        recipients = Recipients(session, {d.department_id or tickets[d.ticket_id].department_id
                                          for d in deadlines.values()} - {None})
        return cls(tickets, deadlines, recipients)


def _act(session, step_ids: list[int], now: datetime, result: SweepResult) -> None:
    steps = session.scalars(sa.select(EscalationStep).where(EscalationStep.id.in_(step_ids))).all()
    batch = Batch.load(session, steps)
    # One flush at the commit, not one per SMS lookup: a batch's rows then go in as a few multi-row INSERTs.
    with session.no_autoflush:
        for step in sorted(steps, key=lambda s: (s.due_at, s.id)):
            _fire(session, step, batch, now, result)


def _fire(session, step: EscalationStep, batch: Batch, now: datetime, result: SweepResult) -> None:
    ticket = batch.tickets[step.ticket_id]
    deadline = batch.deadlines.get((step.ticket_id, step.kind, step.round))
    if ticket.status in {s.value for s in FINAL_STATUSES} or deadline is None or deadline.ended_at is not None:
        step.fired_at, step.cancelled_at = None, now  # ended without the workflow telling us: nothing to say
        result.cancelled += 1
        return
    department_id = deadline.department_id or ticket.department_id
    department = batch.recipients.departments.get(department_id)
    # days overdue as the step means them (the leader at 2), not however late this sweep happens to run
    overdue = working_days_between(store.settings().calendar(), deadline.due_at, step.due_at, tz())
    context = {"tracking_no": ticket.tracking_no, "department": department.name if department else "",
               "due": local_text(deadline.due_at), "days_overdue": str(overdue),
               "deadline": label(DEADLINE_LABELS, step.kind)}
    if step.level:
        workflow.escalate(session, ticket, step.level, now, {"kind": step.kind, "round": step.round, "step": step.step})
    rung = next((r for r in ladder().get(step.kind, ()) if r.step == step.step), None)
    if rung is not None:
        for phone in batch.recipients.phones(rung.audience, department_id):
            if send_sms(phone, rung.template, context, ticket_id=ticket.id, audience=rung.audience,
                        session=session) is not None:
                step.sms_count += 1
    result.sms += step.sms_count
    result.fired[step.step] += 1


def sweep(session, now: datetime, *, batch_size: int | None = None) -> SweepResult:
    """Fire everything due at `now`, one committed batch at a time, then record the run."""
    batch_size = batch_size or current_app.config["ESCALATION_BATCH_SIZE"]
    pause = float(os.environ.get("BANJIE_TEST_SWEEP_PAUSE") or 0)  # test-only: widen the window for kill -9
    result, started = SweepResult(), time.perf_counter()
    while True:
        try:
            step_ids = claim(session, now, batch_size)
            if not step_ids:
                session.rollback()
                break
            _act(session, step_ids, now, result)
            if pause:
                time.sleep(pause)
            session.commit()
        except Exception:
            session.rollback()
            raise
        result.batches += 1
    result.seconds = time.perf_counter() - started
    store.mark_changed(session, "sweeper", now, {"fired": sum(result.fired.values()), "sms": result.sms,
                                                "batches": result.batches, "ms": round(result.seconds * 1000)})
    session.commit()
    if result.batches:
        log.info("escalation sweep: %s", result.summary())
    return result


def last_run(session):
    from .models import Heartbeat

    return session.get(Heartbeat, "sweeper")


def is_stale(row, now: datetime, interval: int) -> bool:
    return row is None or (now - row.at).total_seconds() > 3 * interval
