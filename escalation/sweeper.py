"""The sweeper: fire every ladder step that is due, exactly once, in batches.

A step is claimed, acted on (event, supervision level, SMS outbox rows) and marked fired in one
transaction per batch. On PostgreSQL the claim skips rows another sweeper holds (`FOR UPDATE SKIP
LOCKED`); on SQLite the claiming UPDATE takes the database's single write lock, and a second sweeper
finds the rows already fired. A sweeper that dies mid-batch fired nothing: its transaction rolls back
and the next sweep takes the same steps. It loops until nothing is due, so a backlog never starves.

A sweep may run late (downtime, an outage, a backlog), so what a step does is decided by the facts at sweep
time, not by the plan: texts state the days overdue as of now; a step whose moment passed without effect (the
warning before a deadline that is already over) is cancelled with its reason instead of sent; and all due
steps of a case are acted on together, with one `escalate` event saying where supervision now stands.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
import prometheus_client as prometheus
from flask import current_app

from notify import send_sms
from notify.operations import hold_until, sms_label
from tickets import clock, contacts, telemetry, workflow
from tickets import deadlines as deadline_rules
from tickets.db import in_batches
from tickets.labels import DEADLINE_LABELS
from tickets.models import FINAL_STATUSES, HOURLY_KINDS, Deadline, Department, Ticket

from . import store
from .calendar import OfficeHours, WorkCalendar, working_days_overdue, working_minutes_between
from .ladder import Rung
from .models import CancelReason, EscalationStep
from .operations import ladder

log = logging.getLogger(__name__)

SWEEP_SECONDS = prometheus.Histogram("banjie_escalation_sweep_duration_seconds",
                                     "Time one escalation sweep took (all its batches)",
                                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
STEPS_FIRED = prometheus.Counter("banjie_escalation_steps_fired", "Ladder steps fired by the sweeper, by step",
                                 ["step"])

PENDING = sa.and_(EscalationStep.fired_at.is_(None), EscalationStep.cancelled_at.is_(None))


@dataclass
class SweepResult:
    fired: Counter = field(default_factory=Counter)       # step name → count
    cancelled: int = 0
    cancelled_why: Counter = field(default_factory=Counter)  # (reason, step name) → count
    unreached: Counter = field(default_factory=Counter)      # audience → fired steps that had nobody to text
    sms: int = 0
    escalated: int = 0                                       # cases whose supervision this sweep raised
    batches: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        steps = ", ".join(f"{name} {n}" for name, n in sorted(self.fired.items())) or "nothing due"
        text = f"fired {sum(self.fired.values())} step(s) ({steps}); {self.cancelled} cancelled"
        if self.cancelled_why:
            why = defaultdict(list)
            for (reason, step), n in sorted(self.cancelled_why.items()):
                why[reason].append(f"{step} {n}")
            text += " (" + "; ".join(f"{reason}: {', '.join(names)}" for reason, names in why.items()) + ")"
        text += f"; {self.escalated} case(s) escalated; {self.sms} SMS written"
        if self.unreached:
            text += "; nobody to text for " + ", ".join(f"{who} {n}" for who, n in sorted(self.unreached.items()))
        return text + f"; {self.batches} batch(es) in {self.seconds * 1000:.0f} ms"


def claim(session, now: datetime, limit: int) -> list[int]:
    """Mark up to `limit` due steps fired in this transaction, with every other due step of their cases, and
    return their ids. A case's due steps go together so that one sweep acts on each case once (one history line
    however many levels it reaches); a batch is at most `limit` times the ladder's length.
    """
    due = sa.select(EscalationStep.id, EscalationStep.ticket_id).where(PENDING, EscalationStep.due_at <= now) \
        .order_by(EscalationStep.due_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Two sweepers at once split the work by case: each locks the tickets of its due steps (skipping those
        # the other holds), then takes every due step of its tickets. Locking steps instead let each take part
        # of one case's steps, and the case got two history lines from one sweep. Tickets before steps is also
        # the order a staff action takes (its claim, then the ladder), so the two never deadlock. Lock first,
        # then update the locked ids: inside `UPDATE ... IN (subquery)` PostgreSQL may rescan a SKIP LOCKED
        # subquery and claim more than `limit` rows.
        first = session.execute(
            due.join(Ticket, Ticket.id == EscalationStep.ticket_id)
            .with_for_update(skip_locked=True, key_share=True, of=Ticket)).all()
        if not first:
            return []
        chosen = list(session.scalars(sa.select(EscalationStep.id).where(
            PENDING, EscalationStep.due_at <= now, EscalationStep.ticket_id.in_({t for _s, t in first}))))
    else:
        # One statement: it takes SQLite's write lock before reading, so a second sweeper waits, then
        # finds these rows fired (a read followed by a write could fail with "database is locked").
        tickets = sa.select(due.subquery().c.ticket_id)
        chosen = sa.select(EscalationStep.id).where(PENDING, EscalationStep.due_at <= now,
                                                    EscalationStep.ticket_id.in_(tickets)).scalar_subquery()
    return list(session.scalars(
        sa.update(EscalationStep).where(EscalationStep.id.in_(chosen), PENDING)
        .values(fired_at=now).returning(EscalationStep.id).execution_options(synchronize_session=False)
    ))


class Recipients:
    """Phone numbers per audience for one batch, read once per batch rather than once per step."""

    def __init__(self, session, department_ids, office_ids=()):
        self.departments = {d.id: d for d in session.scalars(sa.select(Department).where(Department.id.in_(department_ids)))}
        self.handlers, self.office = contacts.staff_phones(session, department_ids, office_ids)
        self.parents = contacts.parent_supervisor_phones(session, office_ids) if office_ids else {}

    def parent_office(self, office_id: int) -> tuple[int, list[str]] | None:
        """(the parent office's id, its supervisors' numbers) for a case owned by `office_id`; None at the root."""
        return self.parents.get(office_id)

    def phones(self, audience: str, department_id: int | None, office_id: int | None = None) -> list[str]:
        if audience == "office":
            return self.office.get(office_id, [])
        if audience == "handler":
            return self.handlers.get(department_id, [])
        phone = contacts.department_phone(self.departments.get(department_id), audience)
        return [phone] if phone else []


@dataclass
class Batch:
    """What one batch of claimed steps needs, read in a handful of queries."""

    tickets: dict
    deadlines: dict
    recipients: Recipients
    calendar: WorkCalendar
    # The earliest a text written now can go out (the end of quiet hours, or now): a warning that would arrive
    # after its deadline has no purpose left.
    earliest_text: datetime
    office_hours: OfficeHours = ()

    @classmethod
    def load(cls, session, steps, now: datetime) -> "Batch":
        tickets = {t.id: t for t in session.scalars(sa.select(Ticket).where(Ticket.id.in_({s.ticket_id for s in steps})))}
        deadlines = {(d.ticket_id, d.kind, d.round): d for d in session.scalars(
            sa.select(Deadline).where(Deadline.ticket_id.in_(tickets)))}
        recipients = Recipients(session, {d.department_id or tickets[d.ticket_id].department_id
                                          for d in deadlines.values()} - {None},
                                {t.office_id for t in tickets.values()})
        return cls(tickets, deadlines, recipients, store.settings().calendar(), hold_until(now) or now,
                   deadline_rules.policy().office_hours)


def _act(session, step_ids: list[int], now: datetime, result: SweepResult) -> None:
    steps = session.scalars(sa.select(EscalationStep).where(EscalationStep.id.in_(step_ids))).all()
    batch = Batch.load(session, steps, now)
    by_case = defaultdict(list)
    for step in sorted(steps, key=lambda s: (s.due_at, s.id)):
        by_case[step.ticket_id].append(step)
    # One flush at the commit, not one per SMS lookup: a batch's rows then go in as a few multi-row INSERTs.
    with session.no_autoflush:
        for ticket_id, case_steps in by_case.items():
            _act_on_case(session, batch.tickets[ticket_id], case_steps, batch, now, result)


def _rung(step: EscalationStep) -> Rung | None:
    return next((r for r in ladder().get(step.kind, ()) if r.step == step.step), None)


def _why_not(step: EscalationStep, ticket: Ticket, deadline: Deadline | None, rung: Rung | None,
             batch: Batch) -> CancelReason | None:
    """Why a due step must not fire now, or None. Facts at sweep time decide, not the plan."""
    if ticket.status in {s.value for s in FINAL_STATUSES}:
        return CancelReason.case_closed  # ended without the workflow telling us: nothing to say
    if deadline is None or deadline.ended_at is not None:
        return CancelReason.deadline_ended
    if rung is None:
        return CancelReason.not_planned  # ESCALATION_LADDER no longer has it
    if rung.before_due and deadline.due_at <= batch.earliest_text:
        return CancelReason.moment_passed  # 「即将到期」 about a deadline that is over by the time it arrives
    return None


def _act_on_case(session, ticket: Ticket, steps: list[EscalationStep], batch: Batch, now: datetime,
                 result: SweepResult) -> None:
    """Fire or cancel every due step of one case; one `escalate` event says where supervision now stands."""
    fired, cancelled, upward = [], [], {}
    for step in steps:
        deadline = batch.deadlines.get((step.ticket_id, step.kind, step.round))
        rung = _rung(step)
        reason = _why_not(step, ticket, deadline, rung, batch)
        if reason is not None:
            step.fired_at, step.cancelled_at, step.cancel_reason = None, now, reason.value
            result.cancelled += 1
            result.cancelled_why[(reason.value, step.step)] += 1
            cancelled.append(step)
            continue
        told = _send(session, step, rung, ticket, deadline, batch, now)
        if told is not None:
            upward[step.id] = {contacts.PARENT_OFFICE: told}
        fired.append(step)
        result.fired[step.step] += 1
        result.sms += step.sms_count
        if not step.recipients:
            result.unreached[rung.audience] += 1
    raising = [s for s in fired if s.level]
    if not raising:
        return
    top = max(raising, key=lambda s: (s.level, s.due_at))
    previous = ticket.supervision_level
    notified = Counter()
    for step in fired:
        above = upward.get(step.id, {}).get(contacts.PARENT_OFFICE)
        if above is None:
            notified[step.audience] += step.sms_count
        else:  # a 挂牌督办 below the root: its own audience, and the parent office's supervisors
            notified[_rung(step).audience] += step.sms_count - above["sms"]
            notified[contacts.PARENT_OFFICE] += above["sms"]
    workflow.escalate(session, ticket, top.level, now, {
        "kind": top.kind, "round": top.round, "step": top.step,
        "previous_level": previous, "supervision_level": max(previous, top.level),
        "steps": [{"kind": s.kind, "round": s.round, "step": s.step, "level": s.level, "audience": s.audience,
                   "recipients": s.recipients, "sms": s.sms_count, **upward.get(s.id, {})} for s in fired],
        "cancelled": [{"kind": s.kind, "round": s.round, "step": s.step, "reason": s.cancel_reason}
                      for s in cancelled],
        "notified": dict(notified),
    })
    result.escalated += 1


def _send(session, step: EscalationStep, rung: Rung, ticket: Ticket, deadline: Deadline, batch: Batch,
          now: datetime) -> dict | None:
    """The step's texts, stating the facts as they are now (however late this sweep runs).

    A level-3 step (挂牌督办) of a case below the root also texts the supervisors of the owning office's parent: the
    step then records the audience `<its audience>+parent` and counts their numbers and texts with its own; what
    went up is returned ({"office_id", "recipients", "sms"}) for the case's history. None otherwise."""
    department_id = deadline.department_id or ticket.department_id
    department = batch.recipients.departments.get(department_id)
    # ladder.TEXT_VARIABLES (and HOURLY_TEXT_VARIABLES): what ESCALATION_LADDER's texts are checked against at start-up
    context = {"tracking_no": ticket.tracking_no, "department": department.name if department else "",
               "due": clock.local_text(deadline.due_at),
               # a number, as the editor's samples have it (notify/messages.py): an edited text may compare it
               "days_overdue": working_days_overdue(batch.calendar, deadline.due_at, now, clock.local_tz()),
               "deadline": sms_label(DEADLINE_LABELS, step.kind)}
    if step.kind in {k.value for k in HOURLY_KINDS}:
        # whole working hours past the deadline as this text is written (0 on time; more when the sweep runs late)
        context["hours_overdue"] = working_minutes_between(batch.calendar, deadline.due_at, now, clock.local_tz(),
                                                           batch.office_hours) // 60
    phones = batch.recipients.phones(rung.audience, department_id, ticket.office_id)
    step.audience, step.recipients = rung.audience, len(phones)
    for phone in phones:
        if send_sms(phone, rung.template, context, ticket_id=ticket.id, audience=rung.audience,
                    session=session, step_id=step.id) is not None:
            step.sms_count += 1
    parent = batch.recipients.parent_office(ticket.office_id) if rung.level >= 3 else None
    if parent is None:
        return None
    office_id, above = parent
    told = {"office_id": office_id, "recipients": len(above), "sms": 0}
    step.audience, step.recipients = f"{rung.audience}+parent", step.recipients + len(above)
    for phone in above:
        if send_sms(phone, rung.template, context, ticket_id=ticket.id, audience=contacts.PARENT_OFFICE,
                    session=session, step_id=step.id) is not None:
            step.sms_count += 1
            told["sms"] += 1
    return told


def due_count(session, now: datetime) -> int:
    """How many steps are due at `now` (what a sweep now would fire or call off)."""
    return session.scalar(sa.select(sa.func.count()).select_from(EscalationStep)
                          .where(PENDING, EscalationStep.due_at <= now))


def sweep(session, now: datetime, *, batch_size: int | None = None, progress=lambda done: None) -> SweepResult:
    """Fire everything due at `now`, one committed batch at a time (`progress(n)` after each, n its steps), then
    record the run."""
    batch_size = batch_size if batch_size is not None else current_app.config["ESCALATION_BATCH_SIZE"]
    if batch_size < 1:  # a batch of none would claim nothing, for ever, while the heartbeat says all is well
        raise ValueError(f"a sweep's batch size must be 1 or more, not {batch_size!r}")
    result, started = SweepResult(), time.perf_counter()
    result.batches = in_batches(session, lambda: claim(session, now, batch_size),
                                lambda step_ids: _act(session, step_ids, now, result),
                                after=lambda step_ids: progress(len(step_ids)))
    result.seconds = time.perf_counter() - started
    store.mark_changed(session, "sweeper", now, {"fired": sum(result.fired.values()), "cancelled": result.cancelled,
                                                "sms": result.sms, "batches": result.batches,
                                                "ms": round(result.seconds * 1000)})
    session.commit()
    telemetry.observe(SWEEP_SECONDS, result.seconds)
    for step, count in result.fired.items():
        telemetry.inc(STEPS_FIRED, count, step=step)
    if result.batches:
        log.info("escalation sweep: %s", result.summary())
    return result


def last_run(session):
    from .models import Heartbeat

    return session.get(Heartbeat, "sweeper")


def is_stale(row, now: datetime, interval: int) -> bool:
    return row is None or (now - row.at).total_seconds() > 3 * interval
