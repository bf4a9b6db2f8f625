"""撤回: a citizen takes back a case the office has not accepted yet. The case ends `withdrawn` (a final status of its
own, apart from 不予受理), its acceptance deadline ends as `withdrawn` and the ladder's steps for it are called off
(the event `moves_deadlines`)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from .. import clock, deadlines, validation
from ..errors import InvalidTransition
from ..models import DeadlineKind, Event, Status, Ticket
from .actions import WITHDRAW
from .engine import CITIZEN, claim, move, record

WITHDRAWN = "withdrawn"  # the outcome of the acceptance deadline of a withdrawn case
REASON_MAX = 1000


def may_withdraw(ticket: Ticket) -> bool:
    """Whether the citizen may still withdraw the case: only while nobody has accepted it."""
    return ticket.status == Status.submitted.value


def withdraw(session, ticket: Ticket, reason=None) -> Event:
    """The citizen withdraws the case (`reason` optional, shown to the office); 409 once it was accepted, rejected or
    withdrawn, and 409 when the office acted on it at the same moment (the row claim)."""
    check = validation.Collector()
    check.field("reason", validation.text, reason, required=False, max_len=REASON_MAX)
    values = check.raise_if_errors()
    if not may_withdraw(ticket):
        raise InvalidTransition(_l("Only a case the office has not accepted yet can be withdrawn."))
    now = clock.now()
    claim(session, ticket, now)
    previous = move(ticket, Status.withdrawn)
    deadlines.end(session, ticket, [DeadlineKind.accept], now, outcome=WITHDRAWN)
    deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, CITIZEN, WITHDRAW, now, from_status=previous, note=values["reason"], public=True,
                  public_note=values["reason"])
