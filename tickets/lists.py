"""What every staff list of cases shares (the console's queues, the API's list, the bulk answers): what a search term
matches, whose cases are "mine", and how a row states its time left. One definition each, read by `admin.queues` and
`tickets.api`.
"""
from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa

from . import deadlines, phones
from .privacy import crypto
from .models import OPEN_STATUS_VALUES, Ticket

TRACKING_NO = re.compile(r"^BJ\d{8}-\d{4,}$", re.IGNORECASE)
SNIPPET = 60  # characters of the description a list shows


def search_condition(term: str):
    """What a search term matches: a tracking number or a phone number (mobile or landline, any spelling) exactly,
    anything else as text in the number, the description, the service item and the number another system gave the
    case (`external_ref`), or as the citizen's exact full name (spaces ignored: names are encrypted at rest and found
    by their blind index, never by a part). None: no term."""
    term = (term or "").strip()
    if not term:
        return None
    if TRACKING_NO.match(term):
        return Ticket.tracking_no == term.upper()
    phone = phones.normalise_phone(term)
    if phone:
        return Ticket.phone_index == crypto.phone_index(phone)
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.or_(Ticket.name_index == crypto.name_index(term),
                  *(column.ilike(pattern, escape="\\") for column in
                    (Ticket.tracking_no, Ticket.description, Ticket.service_item, Ticket.external_ref)))


def worked_by(user_id: int | None):
    """我的案件: the open cases this member of staff works, as the window's owner or the department's handler."""
    if user_id is None:
        return sa.false()
    return sa.and_(sa.or_(Ticket.owner_id == user_id, Ticket.handler_id == user_id),
                   Ticket.status.in_(OPEN_STATUS_VALUES))


def snippet(text: str | None, length: int = SNIPPET) -> str:
    """The start of a description on one line, cut at `length` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= length else flat[:length - 1].rstrip() + "…"


def time_left(ticket: Ticket, now: datetime) -> dict:
    """The running deadline in working days: `working_days_left` (0: due today) while it runs, `working_days_overdue`
    (whole working days past it that have ended) once the case is overdue; both None for a case without one."""
    if ticket.due_at is None or ticket.status not in OPEN_STATUS_VALUES:
        return {"working_days_left": None, "working_days_overdue": None}
    policy = deadlines.policy()
    if ticket.overdue(now):
        return {"working_days_left": None, "working_days_overdue": policy.days_overdue(ticket.due_at, now)}
    return {"working_days_left": policy.days_left(now, ticket.due_at), "working_days_overdue": None}
