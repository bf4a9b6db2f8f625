"""先行联系 (first contact): the department that takes a case must contact the citizen within a limit counted in
working hours of the office (FIRST_CONTACT_HOURS, or the deadline policies' figure for the problem type, department
or office). Its deadline (kind `contact`) runs beside the handling deadline and never makes the case overdue.

- It starts when a department newly takes the case: a transfer, or an arbitration to a department that has not
  contacted the citizen about it before (a department that already did is not asked twice).
- The department's `record_contact` ends it, `met` when the contact was made by the due time, else `late`: the
  deadline ends at the moment of the contact as the department states it (never in the future, never before the
  case reached it).
- A reply or a return before any contact ends it `not_contacted` (a reply is not a contact): the report counts it
  missed when its time had run out by then, and not at all when the department gave the case up in time. A reply
  sent back resumes it, as it resumes the handling deadline: the department still owes the contact, by the same time.

The action's definition is in `actions.py` with the others; these are the rules it and the other actions share.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import clock, deadlines, validation
from ..errors import ValidationFailed
from ..models import Channel, ContactMethod, Deadline, DeadlineKind, Ticket
from .engine import open_deadline

# Outcomes of a contact deadline: met and late (deadlines.end), and this one when no contact was recorded.
NOT_CONTACTED = "not_contacted"
RECORDED = ("met", "late")
# A device's clock may run a little ahead of the server's: a contact time up to this far ahead is taken as now.
CLOCK_SKEW = timedelta(minutes=2)
OUTCOME_MAX = 4000

METHOD_LABELS = {
    ContactMethod.phone.value: _l("By phone"),
    ContactMethod.visit.value: _l("In person"),
    ContactMethod.sms.value: _l("By text message"),
    ContactMethod.other.value: _l("Another way"),
}


def start(session, ticket: Ticket, department_id: int, now: datetime) -> Deadline | None:
    """The contact deadline of a department that takes the case, unless it contacted the citizen about it before, or
    the case is the office's own 主动治理 task (no citizen to contact: tickets/workflow/governance.py)."""
    if ticket.channel == Channel.proactive.value:
        return None
    contacted = session.scalar(sa.select(Deadline.id).where(
        Deadline.ticket_id == ticket.id, Deadline.kind == DeadlineKind.contact.value,
        Deadline.department_id == department_id, Deadline.outcome.in_(RECORDED)).limit(1))
    if contacted is not None:
        return None
    return deadlines.start(session, ticket, DeadlineKind.contact, now, department_id=department_id)


def end_uncontacted(session, ticket: Ticket, now: datetime) -> None:
    """The department gave the case up (a reply, a return) without recording a contact."""
    deadlines.end(session, ticket, [DeadlineKind.contact], now, outcome=NOT_CONTACTED)


def resume(session, ticket: Ticket) -> Deadline | None:
    """A reply sent back: the department's contact deadline runs again if the reply had ended it uncontacted."""
    latest = session.scalar(
        sa.select(Deadline).where(Deadline.ticket_id == ticket.id, Deadline.kind == DeadlineKind.contact.value)
        .order_by(Deadline.round.desc()).limit(1))
    if latest is None or latest.outcome != NOT_CONTACTED or latest.department_id != ticket.department_id:
        return None
    latest.ended_at, latest.outcome = None, None
    return latest


def awaited(session, ticket: Ticket, now: datetime):
    """The precondition of `record_contact`: a contact deadline is running."""
    if open_deadline(session, ticket, DeadlineKind.contact) is None:
        return _l("No first contact is awaited on this case: it is recorded already, or the case reached the "
                  "department without one.")
    return None


def parse(session, ticket: Ticket, payload) -> dict:
    """`contacted_at` (ISO 8601; local time without an offset), `method` (phone, visit, sms, other), `outcome`."""
    if not isinstance(payload, dict):
        raise ValidationFailed(_l("The body must be a JSON object."))
    check = validation.Collector()
    contacted_at = check.field("contacted_at", validation.moment, payload.get("contacted_at"), required=True,
                               tz=clock.local_tz())
    method = check.field("method", validation.text, payload.get("method"), required=True, max_len=16,
                         single_line=True)
    check.field("outcome", validation.text, payload.get("outcome"), required=True, max_len=OUTCOME_MAX)
    if method is not None and method not in METHOD_LABELS:
        check.fail("method", _l("Choose one of: %(choices)s.", choices=", ".join(METHOD_LABELS)))
    deadline = open_deadline(session, ticket, DeadlineKind.contact)
    if contacted_at is not None and deadline is not None:
        now = clock.now()
        if contacted_at > now + CLOCK_SKEW:
            check.fail("contacted_at", _l("The contact cannot be in the future."))
        elif contacted_at < deadline.started_at.replace(second=0, microsecond=0):
            check.fail("contacted_at", _l("The contact cannot be before the case reached the department (%(at)s).",
                                          at=clock.local_text(deadline.started_at)))
        else:  # the console's field has whole minutes: the minute of the transfer counts from the transfer
            check.values["contacted_at"] = min(max(contacted_at, deadline.started_at), now)
    return check.raise_if_errors()


def public_note(event) -> str:
    return _("The department handling your case has contacted you.")


def method_label(code: str | None) -> str:
    return str(METHOD_LABELS.get(code, code or ""))
