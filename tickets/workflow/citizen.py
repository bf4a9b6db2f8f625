"""The citizen's own steps on a case besides the rating: 补充材料 (`supplement`, adding information), 撤回
(`withdraw`) and the request to delete their personal information (`request_deletion`), which they may take back
until it is carried out (`withdraw_deletion_request`).

撤回: a citizen takes back a case the office has not accepted yet. The case ends `withdrawn` (a final status of its
own, apart from 不予受理), its acceptance deadline ends as `withdrawn` and the ladder's steps for it are called off
(the event `moves_deadlines`)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from .. import attachments, clock, deadlines, validation
from ..access import CITIZEN
from ..errors import InvalidTransition, ValidationFailed
from ..models import OPEN_STATUSES, AttachmentSource, DeadlineKind, Event, Status, Ticket
from .actions import CANCEL_ANONYMISE_REQUEST, REQUEST_ANONYMISE, SUPPLEMENT, WITHDRAW
from .engine import claim, move, record

WITHDRAWN = "withdrawn"  # the outcome of the acceptance deadline of a withdrawn case
REASON_MAX = 1000
SUPPLEMENT_MAX = 2000


def may_supplement(ticket: Ticket) -> bool:
    """Whether the citizen may add information: while the case is open."""
    return Status(ticket.status) in OPEN_STATUSES


def supplement(session, ticket: Ticket, content, files=()) -> Event:
    """补充材料: the citizen adds information, files (`attachments.Incoming`, up to five at a time and
    CITIZEN_FILES_PER_CASE in all) or both to an open case (text up to SUPPLEMENT_MAX characters; one of the two
    required). A public event (the timeline shows it) that the handlers of the lead department, or the office's staff
    while no department has the case, are texted about (notify/hooks.py). It changes no state and claims no row: a
    handler's open form stays valid. 409 once the case is closed, rejected or withdrawn."""
    check = validation.Collector()
    check.field("content", validation.text, content, required=not files, max_len=SUPPLEMENT_MAX)
    try:
        room = min(attachments.MAX_FILES, attachments.citizen_room(session, ticket.id))
        checked = attachments.checked_or_refused(list(files), room=room) if files else []
    except ValidationFailed as error:
        checked = []
        for name, message in error.fields.items():
            check.fail(name, message)
    values = check.raise_if_errors()
    if not may_supplement(ticket):
        raise InvalidTransition(_l("Information can be added only while the case is open."))
    text = values["content"]
    event = record(session, ticket, CITIZEN, SUPPLEMENT, clock.now(), from_status=ticket.status, note=text,
                   public=True, public_note=text, data={"attachments": len(checked)} if checked else None)
    if checked:
        session.flush()  # the event's id, which the files name
        attachments.keep(session, checked, ticket_id=ticket.id, event_id=event.id, source=AttachmentSource.citizen,
                         visible=True)
    return event


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


def may_request_deletion(ticket: Ticket) -> bool:
    """Whether the citizen may ask for their personal information to be deleted: until it is, once per request."""
    from ..privacy.retention import asking_refusal
    return asking_refusal(ticket.anonymised_at, ticket.anonymise_requested_at) is None


def request_deletion(session, ticket: Ticket, reason=None) -> Event:
    """删除个人信息的申请 (PIPL Art. 47, and Art. 50's 便捷的申请受理机制): the citizen asks, with the query code, for their
    name and number in this case to be deleted (`reason` optional, shown to the office with numbers masked). The
    same record as the office's `request_anonymise` action: `anonymise_requested_at` and a public event by the
    citizen. The scheduler's `retention` job then anonymises the case as the archive rules allow
    (tickets/privacy/retention.py `carry_out_requests`): at its next tick when the case has ended for good, else as
    soon as it has (closed, its survey over, no appeal possible). Like 补充材料 it is no step of the case: no row
    claim, no version bump, a handler's open form stays valid. 409 once anonymised or already requested."""
    from ..personal import mask_text
    from ..privacy.retention import record_request

    check = validation.Collector()
    check.field("reason", validation.text, reason, required=False, max_len=REASON_MAX)
    values = check.raise_if_errors()
    now = clock.now()
    record_request(session, ticket, now)
    note = mask_text(values["reason"]) if values["reason"] else None
    return record(session, ticket, CITIZEN, REQUEST_ANONYMISE, now, from_status=ticket.status, note=note, public=True)


def withdraw_deletion_request(session, ticket: Ticket) -> Event:
    """The citizen takes back their deletion request (theirs or one the office recorded) before it is carried out: the
    same as the office's `cancel_anonymise_request` (`retention.take_back_request`), a public event by the citizen.
    409 once the case is anonymised or when no request waits."""
    from ..privacy.retention import take_back_request

    take_back_request(session, ticket)
    return record(session, ticket, CITIZEN, CANCEL_ANONYMISE_REQUEST, clock.now(), from_status=ticket.status,
                  public=True)
