"""Every staff action, each defined once: its rules, its input, its console form, its flags and its handler.

Read `registry.py` for what the fields mean. Kinds of events that are not staff actions (filing, rating, the
ladder's escalation) are declared at the end.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_babel import lazy_gettext as _l

from .. import attachments, clock, deadlines, knowledge, offices, validation
from ..access import SYSTEM
from ..errors import Forbidden, InvalidTransition, ValidationFailed
from ..models import (
    OPEN_STATUSES,
    Role,
    Appeal,
    AttachmentSource,
    Deadline,
    DeadlineKind,
    Department,
    Event,
    ExtensionRequest,
    Office,
    Status,
    Survey,
    Ticket,
    TicketCoDepartment,
    User,
)
from . import contact
from .appeals import appealable_rating, pending_appeal
from .engine import move, open_deadline, record
from .registry import KINDS, Input, action, event_kind, text
from .survey import (NO_OPEN_SURVEY, PHONE_CHANNEL, RATE_DEFAULT, apply_rating, open_survey, open_survey_for,
                     rating_fields, take_open_round, unvisited_bad_rating)

TEXT_MAX = 4000
MAX_WORKING_DAYS = 60
ALL_STATUSES = tuple(Status)


# --- payloads -------------------------------------------------------------------------------------

def _fields(payload: dict, build) -> dict:
    if not isinstance(payload, dict):
        raise ValidationFailed(_l("The body must be a JSON object."))
    check = validation.Collector()
    build(check, payload)
    return check.raise_if_errors()


def _optional_note(session, ticket, payload):
    return _fields(payload, lambda c, p: c.field("note", validation.text, p.get("note"), required=False, max_len=TEXT_MAX))


def _required(name):
    def parse(session, ticket, payload):
        return _fields(payload, lambda c, p: c.field(name, validation.text, p.get(name), required=True, max_len=TEXT_MAX))
    return parse


def _parse_answer(session, ticket, payload):
    """An answer to the citizen (`content`) with up to five files (`attachments`: multipart parts), and the 知识库
    entry it started from, if any (`knowledge_entry_id`)."""
    def build(c, p):
        c.field("content", validation.text, p.get("content"), required=True, max_len=TEXT_MAX)
        _check_files(c, p)
        _check_knowledge(c, p)
    return _fields(payload, build)


def _parse_explanation(session, ticket, payload):
    """An explanation to the citizen (`content`), and the 知识库 entry it started from, if any."""
    def build(c, p):
        c.field("content", validation.text, p.get("content"), required=True, max_len=TEXT_MAX)
        _check_knowledge(c, p)
    return _fields(payload, build)


def _check_knowledge(c, p) -> None:
    """The optional `knowledge_entry_id`: an id here; whether this actor may use that entry on this case now is
    `knowledge.used`, which the handler asks first, as only it knows the actor."""
    c.field(knowledge.FIELD, validation.identifier, p.get(knowledge.FIELD), required=False)


def _check_files(c, p) -> None:
    """The payload's `attachments` (multipart parts) checked into the collected values, or the field's error."""
    try:
        c.values[attachments.FIELD] = attachments.checked_or_refused(p.get(attachments.FIELD) or [])
    except ValidationFailed as error:
        for name, message in error.fields.items():
            c.fail(name, message)


FILES = Input(attachments.FIELD, _l("Files (optional)"), "files", required=False,
              hint=_l("Up to 5 files: JPEG, PNG or HEIC pictures, or PDF documents, 10 MB each."))
KNOWLEDGE = Input(knowledge.FIELD, _l("Knowledge base entry used"), "knowledge", required=False)


def _keep_answer_files(session, ticket, actor, event, data, source: AttachmentSource) -> None:
    """Keep the action's files, named by its event; the citizen sees an answer's at once, a reply's once approved,
    evidence never."""
    if data[attachments.FIELD]:
        session.flush()  # the event's id, which the files name
        attachments.keep(session, data[attachments.FIELD], ticket_id=ticket.id, event_id=event.id, source=source,
                         visible=source == AttachmentSource.answer, uploaded_by=actor.user_id)


def _active_department(session, department_id):
    department = session.get(Department, department_id)
    return department if department is not None and department.active else None


def _parse_transfer(session, ticket, payload):
    def build(c, p):
        department_id = c.field("department_id", validation.identifier, p.get("department_id"), required=True)
        c.field("working_days", validation.integer, p.get("working_days"), required=False, minimum=1,
                maximum=MAX_WORKING_DAYS)
        co_ids = c.field("co_department_ids", validation.integer_list, p.get("co_department_ids"), max_items=10)
        c.field("instructions", validation.text, p.get("instructions"), required=False, max_len=TEXT_MAX)
        _check_department(session, ticket, c, "department_id", department_id)
        if co_ids:
            if department_id in co_ids:
                c.fail("co_department_ids", _l("The lead department cannot also be a co-department."))
            else:
                for co_id in co_ids:
                    if _check_department(session, ticket, c, "co_department_ids", co_id) is None:
                        break
    return _fields(payload, build)


def _check_department(session, ticket, c, name, department_id):
    """The department if a case of this office may go to it (its office's or one above, `offices.may_transfer_to`);
    else a field error on `name`."""
    if not department_id:
        return None
    department = _active_department(session, department_id)
    if department is None:
        c.fail(name, _l("No such department."))
        return None
    if not offices.may_transfer_to(session, ticket, department):
        c.fail(name, _l("This department does not serve this window: choose one of its own or of a window above it."))
        return None
    return department


def _parse_arbitration(session, ticket, payload):
    def build(c, p):
        department_id = c.field("department_id", validation.identifier, p.get("department_id"), required=True)
        c.field("working_days", validation.integer, p.get("working_days"), required=False, minimum=1,
                maximum=MAX_WORKING_DAYS)
        c.field("note", validation.text, p.get("note"), required=False, max_len=TEXT_MAX)
        _check_department(session, ticket, c, "department_id", department_id)
    return _fields(payload, build)


def _parse_assignment(session, ticket, payload):
    def build(c, p):
        code = c.field("office_code", validation.text, p.get("office_code"), required=True, max_len=32,
                       single_line=True)
        c.field("instructions", validation.text, p.get("instructions"), required=False, max_len=TEXT_MAX)
        if code is not None:
            owner = session.get(Office, ticket.office_id)
            office = session.scalar(offices.below(owner).where(Office.code == code))
            if office is None:
                c.fail("office_code", _l("Choose an active window below the one that has the case."))
            c.values["office"] = office
    return _fields(payload, build)


def _parse_extension_request(session, ticket, payload):
    def build(c, p):
        c.field("working_days", validation.integer, p.get("working_days"), required=True, minimum=1,
                maximum=MAX_WORKING_DAYS)
        c.field("reason", validation.text, p.get("reason"), required=True, max_len=TEXT_MAX)
    return _fields(payload, build)


def _parse_extension_decision(session, ticket, payload):
    def build(c, p):
        c.field("approve", validation.boolean, p.get("approve"), required=True)
        c.field("note", validation.text, p.get("note"), required=False, max_len=TEXT_MAX)
    return _fields(payload, build)


def _parse_visit(session, ticket, payload):
    def build(c, p):
        visited_on = c.field("visited_on", validation.calendar_date, p.get("visited_on"), required=True)
        c.field("contacted", validation.boolean, p.get("contacted"), required=True)
        c.field("outcome", validation.text, p.get("outcome"), required=True, max_len=TEXT_MAX)
        today = clock.today()
        if visited_on is not None and visited_on > today:
            c.fail("visited_on", _l("The return visit cannot be in the future."))
    return _fields(payload, build)


# --- what the citizen reads of an event --------------------------------------------------------------

def _local(iso: str | None) -> str:
    return clock.local_text(datetime.fromisoformat(iso)) if iso else ""


def _transfer_note(event: Event) -> str:
    data = event.data or {}
    return _("Transferred to %(department)s; reply due by %(due)s.", department=data.get("department_name", ""),
             due=_local(data.get("due_at")))


def _window_note(event: Event) -> str:
    return _("Now handled by %(office)s.", office=(event.data or {}).get("to_office_name", ""))


def _extension_note(event: Event) -> str:
    return _("The handling deadline was extended to %(due)s.", due=_local((event.data or {}).get("due_at")))


def _score_label(score) -> str:
    from ..labels import SCORE_LABELS, label
    return label(SCORE_LABELS, score)


def _rating_note(event: Event) -> str:
    text_ = _("Rating: %(label)s", label=_score_label((event.data or {}).get("score")))
    if event.to_status == Status.rectifying.value:
        text_ += " " + _("The case has been reopened for rectification.")
    return text_


NOTE = (text("note", _l("Note (internal)"), False),)


# --- the actions ------------------------------------------------------------------------------------

@action("accept", roles={"office"}, statuses={"submitted"}, parse=_optional_note, inputs=NOTE,
        label=_l("Accepted"), button=_l("Accept"), public=True, moves_deadlines=True)
def _accept(session, ticket, actor, data, now):
    previous = move(ticket, Status.accepted)
    if ticket.owner_id is None and actor.role == Role.office:
        ticket.owner_id = actor.user_id  # whoever accepts a case works it (我的案件) until someone takes it over
    return record(session, ticket, actor, "accept", now, from_status=previous, note=data["note"], public=True)


@action("reject", roles={"office"}, statuses={"submitted"}, parse=_required("reason"),
        inputs=(text("reason", _l("Reason, shown to the citizen"), hint=_l(
            "Say why the case is outside the window's scope and where the citizen can turn instead.")),),
        label=_l("Not accepted"), button=_l("Do not accept"), danger=True, public=True, moves_deadlines=True,
        confirm=_l("Refuse this case? The citizen is told the reason and the case ends."))
def _reject(session, ticket, actor, data, now):
    previous = move(ticket, Status.rejected)
    ticket.reject_reason = data["reason"]
    deadlines.end(session, ticket, [DeadlineKind.accept], now)
    deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, actor, "reject", now, from_status=previous, public=True, public_note=data["reason"])


def _not_disputed(session, ticket, now):
    if ticket.disputed:
        return _l("This is a disputed case (争议件): it waits for the supervisor's arbitration.")
    return None


def _dispatch(session, ticket, department, now, *, working_days, return_window: bool) -> dict:
    """Give the case to a department (transfer, arbitrate): end the office's accept deadline, start the handling
    deadline (and the window in which the department may return a misrouted case); the event's data."""
    previous = move(ticket, Status.transferred)
    if ticket.department_id != department.id:
        ticket.handler_id = None  # the handler was the other department's
    ticket.department_id = department.id
    deadlines.end(session, ticket, [DeadlineKind.accept], now)
    handle = deadlines.start(session, ticket, DeadlineKind.handle, now, working_days=working_days,
                             department_id=department.id)
    if return_window:
        deadlines.start(session, ticket, DeadlineKind.return_, now, department_id=department.id)
    contact.start(session, ticket, department.id, now)
    deadlines.refresh_ticket_due(session, ticket)
    return {"from_status": previous,
            "data": {"department_id": department.id, "department_name": department.name,
                     "working_days": handle.working_days, "due_at": handle.due_at.isoformat(),
                     "provisional": handle.provisional}}


TRANSFER_INPUTS = (
    Input("department_id", _l("Lead department"), "department"),
    Input("working_days", _l("Working days to reply"), "days", False, _l("Leave empty for the default of the policy.")),
    Input("co_department_ids", _l("Co-departments"), "departments", False),
    text("instructions", _l("Instructions to the department (internal)"), False),
)


@action("transfer", roles={"office"}, statuses={"accepted", "returned"}, parse=_parse_transfer,
        precondition=_not_disputed, inputs=TRANSFER_INPUTS,
        label=_l("Transferred to a department"), button=_l("Transfer"), public=True, public_note=_transfer_note,
        moves_deadlines=True)
def _transfer(session, ticket, actor, data, now):
    department = session.get(Department, data["department_id"])
    session.execute(sa.delete(TicketCoDepartment).where(TicketCoDepartment.ticket_id == ticket.id))
    for co_id in data["co_department_ids"]:
        session.add(TicketCoDepartment(ticket_id=ticket.id, department_id=co_id))
    done = _dispatch(session, ticket, department, now, working_days=data["working_days"], return_window=True)
    return record(session, ticket, actor, "transfer", now, from_status=done["from_status"], note=data["instructions"],
                  public=True, data={**done["data"], "co_department_ids": data["co_department_ids"]})


# 受理并转办: what a clerk does to most new cases, in one submit: the case is accepted and transferred in one
# transaction, with both events (the history, the reports and the citizen's texts are those of the two steps).
@action("accept_and_transfer", roles={"office"}, statuses={"submitted"}, parse=_parse_transfer,
        inputs=TRANSFER_INPUTS,
        label=_l("Accepted and transferred"), button=_l("Accept and transfer"), public=True, moves_deadlines=True)
def _accept_and_transfer(session, ticket, actor, data, now):
    _accept(session, ticket, actor, {"note": None}, now)
    return _transfer(session, ticket, actor, data, now)


@action("record_contact", roles={"department"}, statuses={"transferred"}, lead_department_only=True,
        precondition=contact.awaited, parse=contact.parse,
        inputs=(Input("contacted_at", _l("When the citizen was contacted"), "datetime"),
                Input("method", _l("How"), "choice", options=tuple(contact.METHOD_LABELS.items())),
                text("outcome", _l("What was said or agreed (internal)"))),
        label=_l("First contact recorded"), button=_l("Record the first contact"), public=True,
        public_note=contact.public_note, moves_deadlines=True)
def _record_contact(session, ticket, actor, data, now):
    """先行联系: the contact deadline ends at the moment of the contact, met or late (see `contact`)."""
    deadline = open_deadline(session, ticket, DeadlineKind.contact)
    deadlines.end(session, ticket, [DeadlineKind.contact], data["contacted_at"])
    deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, actor, "record_contact", now, from_status=ticket.status, note=data["outcome"],
                  public=True, data={"contacted_at": data["contacted_at"].isoformat(), "method": data["method"],
                                     "due_at": deadline.due_at.isoformat(), "on_time": deadline.outcome == "met",
                                     "round": deadline.round, "department_id": deadline.department_id})


def _return_window_open(session, ticket, now):
    if ticket.arbitrated_department_id is not None and ticket.arbitrated_department_id == ticket.department_id:
        return _l("The supervisor decided this case is for this department; it cannot be returned again.")
    window = open_deadline(session, ticket, DeadlineKind.return_)
    if window is None or window.overdue(now):
        return _l("The period for returning this case has ended.")
    return None


def _returned_before(session, ticket, department_id) -> bool:
    """Whether this department returned this case before (a second return makes it a 争议件)."""
    earlier = session.scalars(sa.select(Event.data).where(Event.ticket_id == ticket.id, Event.action == "return"))
    return any((data or {}).get("department_id") == department_id for data in earlier)


def _withdraw_pending_extension(session, ticket, now):
    if ticket.extension_pending:
        request = _pending_extension(session, ticket)
        if request is not None:
            request.decided_at, request.approved, request.decision_note = now, False, "withdrawn"
        ticket.extension_pending = False


@action("return", roles={"department"}, statuses={"transferred"}, lead_department_only=True,
        precondition=_return_window_open, parse=_required("reason"),
        inputs=(text("reason", _l("Why this case is not for your department")),),
        label=_l("Returned by the department"), button=_l("Return to the office"), danger=True,
        confirm=_l("Return this case to the office?"), public=True,
        public_note=lambda event: _("The case is being re-dispatched to the right department."), moves_deadlines=True)
def _return(session, ticket, actor, data, now):
    department_id = ticket.department_id
    disputed = _returned_before(session, ticket, department_id)
    if disputed:
        ticket.disputed = True
    previous = move(ticket, Status.returned)
    ticket.handler_id = None
    deadlines.end(session, ticket, [DeadlineKind.handle, DeadlineKind.return_], now, outcome="returned")
    contact.end_uncontacted(session, ticket, now)
    _withdraw_pending_extension(session, ticket, now)
    deadlines.start(session, ticket, DeadlineKind.accept, now)
    deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, actor, "return", now, from_status=previous, note=data["reason"], public=True,
                  data={"department_id": department_id, "disputed": disputed})


# --- between levels: a window hands a case up or down the tree; the supervisor settles a 争议件 -----------------

def _may_move_window(session, ticket, now):
    return _not_disputed(session, ticket, now)


def _has_parent(session, ticket, now):
    office = session.get(Office, ticket.office_id)
    if office is None or offices.parent(session, office) is None:
        return _l("This window has no active window above it.")
    return _may_move_window(session, ticket, now)


def _hand_over(session, ticket, actor, name, office, now, note):
    """The case now belongs to another window: the accept deadline of the old one ends ("referred") and the new
    one gets its own (the policy reads the new `office_id`); a department link stays as data until it re-dispatches."""
    source = session.get(Office, ticket.office_id)
    previous = move(ticket, Status.accepted)
    deadlines.end(session, ticket, [DeadlineKind.accept], now, outcome="referred")
    ticket.office_id = office.id
    ticket.owner_id = None  # the clerk was the other window's
    deadlines.start(session, ticket, DeadlineKind.accept, now)
    deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, actor, name, now, from_status=previous, note=note, public=True,
                  data={"from_office_id": source.id, "from_office_code": source.code, "from_office_name": source.name,
                        "to_office_id": office.id, "to_office_code": office.code, "to_office_name": office.name})


@action("refer_up", roles={"office"}, statuses={"submitted", "accepted", "returned"}, precondition=_has_parent,
        parse=_required("reason"), inputs=(text("reason", _l("Why this window cannot settle the case (internal)")),),
        label=_l("Referred to the window above"), button=_l("Refer to the window above"),
        confirm=_l("Hand this case to the window above? This window can no longer act on it."),
        public=True, public_note=_window_note, moves_deadlines=True)
def _refer_up(session, ticket, actor, data, now):
    above = offices.parent(session, session.get(Office, ticket.office_id))
    return _hand_over(session, ticket, actor, "refer_up", above, now, data["reason"])


@action("assign_down", roles={"office"}, statuses={"accepted", "returned"}, precondition=_may_move_window,
        parse=_parse_assignment,
        inputs=(Input("office_code", _l("Window below"), "office"),
                text("instructions", _l("Instructions to the window (internal)"), False)),
        label=_l("Assigned to a window below"), button=_l("Assign to a window below"),
        public=True, public_note=_window_note, moves_deadlines=True)
def _assign_down(session, ticket, actor, data, now):
    return _hand_over(session, ticket, actor, "assign_down", data["office"], now, data["instructions"])


def _is_disputed(session, ticket, now):
    return None if ticket.disputed else _l("Only a disputed case (争议件) is arbitrated.")


@action("arbitrate", roles={"supervisor"}, statuses={"returned"}, precondition=_is_disputed,
        parse=_parse_arbitration,
        inputs=(Input("department_id", _l("Department decided on"), "department"),
                Input("working_days", _l("Working days to reply"), "days", False,
                      _l("Leave empty for the default of the policy.")),
                text("note", _l("Note (internal)"), False)),
        label=_l("Dispute arbitrated"), button=_l("Arbitrate the dispute"),
        confirm=_l("The department decided on cannot return this case again. Continue?"),
        public=True, public_note=_transfer_note, moves_deadlines=True)
def _arbitrate(session, ticket, actor, data, now):
    department = session.get(Department, data["department_id"])
    done = _dispatch(session, ticket, department, now, working_days=data["working_days"], return_window=False)
    ticket.disputed = False
    ticket.arbitrated_department_id = department.id
    return record(session, ticket, actor, "arbitrate", now, from_status=done["from_status"], note=data["note"],
                  public=True, data={**done["data"], "arbitrated": True})


def _pending_extension(session, ticket):
    return session.scalar(
        sa.select(ExtensionRequest)
        .where(ExtensionRequest.ticket_id == ticket.id, ExtensionRequest.decided_at.is_(None))
        .order_by(ExtensionRequest.id.desc())
        .limit(1)
    )


def _may_request_extension(session, ticket, now):
    if ticket.extension_pending:
        return _l("An extension request is already waiting for a decision.")
    if ticket.overdue(now):
        return _l("The deadline has passed; extensions must be requested before it.")
    return None


@action("request_extension", roles={"department"}, statuses={"transferred"}, lead_department_only=True,
        precondition=_may_request_extension, parse=_parse_extension_request,
        inputs=(Input("working_days", _l("Extra working days"), "days"), text("reason", _l("Reason"))),
        label=_l("Extension requested"), button=_l("Request an extension"))
def _request_extension(session, ticket, actor, data, now):
    handle = open_deadline(session, ticket, DeadlineKind.handle)
    session.add(ExtensionRequest(ticket_id=ticket.id, deadline_id=handle.id, working_days=data["working_days"],
                                 reason=data["reason"], requested_by=actor.user_id, requested_at=now))
    ticket.extension_pending = True
    return record(session, ticket, actor, "request_extension", now, from_status=ticket.status, note=data["reason"],
                  data={"working_days": data["working_days"]})


def _extension_waiting(session, ticket, now):
    return None if ticket.extension_pending else _l("There is no extension request to decide.")


@action("decide_extension", roles={"office"}, statuses={"transferred"}, precondition=_extension_waiting,
        parse=_parse_extension_decision,
        inputs=(Input("approve", _l("Decision"), "yesno"), text("note", _l("Note (internal)"), False)),
        label=_l("Extension decided"), button=_l("Decide the extension"), public=True,
        public_note=_extension_note, moves_deadlines=True)
def _decide_extension(session, ticket, actor, data, now):
    request = _pending_extension(session, ticket)
    request.decided_by, request.decided_at = actor.user_id, now
    request.approved, request.decision_note = data["approve"], data["note"]
    ticket.extension_pending = False
    details = {"approved": data["approve"], "working_days": request.working_days}
    if data["approve"]:
        handle = session.get(Deadline, request.deadline_id)
        deadlines.extend(handle, request.working_days)
        deadlines.refresh_ticket_due(session, ticket)
        details["due_at"] = handle.due_at.isoformat()
    return record(session, ticket, actor, "decide_extension", now, from_status=ticket.status, note=data["note"],
                  public=data["approve"], data=details)


@action("reply", roles={"department"}, statuses={"transferred", "rectifying"}, lead_department_only=True,
        office_without_department=True, parse=_parse_answer,
        inputs=(KNOWLEDGE, text("content", _l("Reply to the citizen"), hint=_l(
            "The office reviews the reply before the citizen sees it.")), FILES),
        label=_l("Department replied"), button=_l("Send the reply for review"), public=True,
        public_note=lambda event: _("The department has replied; the office is reviewing the reply."),
        moves_deadlines=True)
def _reply(session, ticket, actor, data, now):
    used = knowledge.used(session, ticket, actor, data[knowledge.FIELD])  # before anything changes
    previous = move(ticket, Status.replied)
    ticket.reply_content = data["content"]
    deadlines.end(session, ticket, [DeadlineKind.handle, DeadlineKind.rectify], now)
    deadlines.end(session, ticket, [DeadlineKind.return_], now, outcome="replied")
    contact.end_uncontacted(session, ticket, now)  # a reply is not a contact
    _withdraw_pending_extension(session, ticket, now)
    deadlines.start(session, ticket, DeadlineKind.review, now)
    deadlines.refresh_ticket_due(session, ticket)
    # Public as a step, so the citizen sees the case is being reviewed; the text and files only after approval.
    event = record(session, ticket, actor, "reply", now, from_status=previous, note=data["content"], public=True,
                   data=used or None)
    _keep_answer_files(session, ticket, actor, event, data, AttachmentSource.reply)
    return event


def _close(session, ticket, actor, action_name, now, previous, public_text, kinds, note=None, data=None):
    ticket.public_reply = public_text
    ticket.closed_at = now
    deadlines.end(session, ticket, kinds, now)
    deadlines.refresh_ticket_due(session, ticket)
    if KINDS[action_name].starts_survey:
        open_survey(session, ticket, now)
    return record(session, ticket, actor, action_name, now, from_status=previous, note=note, public=True,
                  public_note=public_text, data=data)


@action("approve", roles={"office"}, statuses={"replied"}, parse=_optional_note, inputs=NOTE,
        label=_l("Reply approved and closed"), button=_l("Approve and close"), public=True,
        confirm=_l("Approve the reply and close the case? The citizen sees the reply."),
        closes_case=True, starts_survey=True, answers_bad_rating=True, moves_deadlines=True)
def _approve(session, ticket, actor, data, now):
    previous = move(ticket, Status.closed)
    attachments.publish_reply(session, ticket)
    return _close(session, ticket, actor, "approve", now, previous, ticket.reply_content, [DeadlineKind.review],
                  note=data["note"])


@action("send_back", roles={"office"}, statuses={"replied"}, parse=_required("reason"),
        inputs=(text("reason", _l("What the department must do again")),),
        label=_l("Reply sent back"), button=_l("Send the reply back"), danger=True, public=True,
        public_note=lambda event: _("The reply did not pass review; the department is handling the case further."),
        moves_deadlines=True)
def _send_back(session, ticket, actor, data, now):
    last_reply = session.scalar(
        sa.select(Event.from_status)
        .where(Event.ticket_id == ticket.id, Event.action == "reply")
        .order_by(Event.id.desc())
        .limit(1)
    )
    target = Status.rectifying if last_reply == Status.rectifying.value else Status.transferred
    previous = move(ticket, target)
    deadlines.end(session, ticket, [DeadlineKind.review], now)
    deadlines.reopen(session, ticket, DeadlineKind.rectify if target == Status.rectifying else DeadlineKind.handle)
    if target == Status.transferred:
        contact.resume(session, ticket)
    deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, actor, "send_back", now, from_status=previous, note=data["reason"], public=True)


@action("resolve", roles={"office"}, statuses={"accepted"}, parse=_parse_answer,
        inputs=(KNOWLEDGE, text("content", _l("Answer to the citizen")), FILES),
        label=_l("Resolved by the office"), button=_l("Resolve and close"), public=True,
        confirm=_l("Close the case with this answer? The citizen sees it."),
        closes_case=True, starts_survey=True, moves_deadlines=True)
def _resolve(session, ticket, actor, data, now):
    used = knowledge.used(session, ticket, actor, data[knowledge.FIELD])
    previous = move(ticket, Status.closed)
    # The window answered the case itself: no department leads it. A department that returned it earlier kept only
    # the link (`_hand_over`); it does not rectify a 差评 of this answer, nor appeal it, nor see the case again.
    ticket.department_id = ticket.handler_id = None
    event = _close(session, ticket, actor, "resolve", now, previous, data["content"], [DeadlineKind.accept],
                   data=used or None)
    _keep_answer_files(session, ticket, actor, event, data, AttachmentSource.answer)
    return event


@action("remind", roles={"office", "supervisor"}, statuses=OPEN_STATUSES, parse=_optional_note, inputs=NOTE,
        reaches_below=True,
        label=_l("Reminder sent"), button=_l("Remind the department"), raises_supervision=True)
def _remind(session, ticket, actor, data, now):
    ticket.supervision_level = max(1, ticket.supervision_level)
    return record(session, ticket, actor, "remind", now, from_status=ticket.status, note=data["note"],
                  data={"supervision_level": ticket.supervision_level})


# --- 我来办: who works the case; a supervisor reassigns --------------------------------------------------------

ASSIGNING_ROLES = frozenset({Role.supervisor, Role.admin})  # may give a case to someone else, or take it over
OWNER_ROLES = (Role.office.value, Role.supervisor.value)     # who may own a case on the window's side


def _side(role) -> str:
    """The side of the case a member of staff works: the department's handler, or the window's owner."""
    return "handler" if Role(role) == Role.department else "owner"


def _worker_column(side: str) -> str:
    return "handler_id" if side == "handler" else "owner_id"


WITH_DEPARTMENT = frozenset({Status.transferred.value, Status.replied.value, Status.rectifying.value})


def _eligible(session, ticket, user: User | None) -> str | None:
    """The side `user` may work this case on, or None: the owner is staff of the owning window, the handler a handler
    of the department that has the case now."""
    if user is None or not user.active:
        return None
    if user.role == Role.department.value:
        with_them = ticket.status in WITH_DEPARTMENT and user.department_id == ticket.department_id
        return "handler" if with_them else None
    if user.role in OWNER_ROLES and user.office_id == ticket.office_id:
        return "owner"
    return None


def assignable_users(session, ticket) -> list[tuple[int, str]]:
    """(id, name) of everyone who may work this case: the window's staff and the lead department's handlers."""
    where = sa.and_(User.role.in_(OWNER_ROLES), User.office_id == ticket.office_id)
    if ticket.department_id is not None and ticket.status in WITH_DEPARTMENT:
        where = sa.or_(where, sa.and_(User.role == Role.department.value, User.department_id == ticket.department_id))
    rows = session.execute(sa.select(User.id, User.display_name, User.username).where(User.active.is_(True), where)
                           .order_by(User.role, User.id))
    return [(i, display or username) for i, display, username in rows]


def _parse_assignment_to(session, ticket, payload):
    def build(c, p):
        user_id = c.field("user_id", validation.identifier, p.get("user_id"), required=False)
        c.field("note", validation.text, p.get("note"), required=False, max_len=TEXT_MAX)
        if user_id is not None and _eligible(session, ticket, session.get(User, user_id)) is None:
            c.fail("user_id", _l("Choose a member of the window's staff or a handler of the department that has the "
                                 "case."))
    return _fields(payload, build)


def _may_take(session, ticket, actor):
    """我来办 is for a case nobody on one's side works yet; taking it from a colleague is a supervisor's decision."""
    if actor.role in ASSIGNING_ROLES:
        return None
    side = _side(actor.role)
    if side == "handler" and ticket.status not in WITH_DEPARTMENT:
        return _l("This case is not with your department now.")
    current = getattr(ticket, _worker_column(side))
    if current == actor.user_id:
        return _l("You already work this case.")
    if current is not None:
        return _l("A colleague already works this case; a supervisor can reassign it.")
    return None


@action("assign", roles={"office", "department", "supervisor"}, statuses=OPEN_STATUSES, lead_department_only=True,
        actor_precondition=_may_take, parse=_parse_assignment_to,
        inputs=(Input("user_id", _l("Who works the case"), "user", False, _l("Leave empty to take it yourself.")),
                text("note", _l("Note (internal)"), False)),
        label=_l("Assigned"), button=_l("I'll take it (我来办)"))
def _assign(session, ticket, actor, data, now):
    user = session.get(User, data["user_id"] or actor.user_id)
    if user is None or (user.id != actor.user_id and actor.role not in ASSIGNING_ROLES):
        raise Forbidden(_l("Only a supervisor gives a case to someone else."))
    side = _eligible(session, ticket, user)
    if side is None:
        raise ValidationFailed(fields={"user_id": _l("You cannot work this case: it is not with your window or your "
                                                     "department.")})
    column = _worker_column(side)
    previous_id = getattr(ticket, column)
    setattr(ticket, column, user.id)
    return record(session, ticket, actor, "assign", now, from_status=ticket.status, note=data["note"],
                  data={"side": side, "user_id": user.id, "user_name": user.display_name or user.username,
                        "previous_user_id": previous_id})


# --- 批示: a leader (or the supervisor) instructs on a case under 督办 or 挂牌督办 ----------------------------------

INSTRUCTION_LEVEL = 2  # 督办 and above


def _under_supervision(session, ticket, now):
    if ticket.supervision_level < INSTRUCTION_LEVEL:
        return _l("Instructions (批示) are written on cases under supervision (督办) or listed (挂牌督办).")
    return None


@action("instruct", roles={"leader", "supervisor"}, statuses=OPEN_STATUSES, changes_state=False, reaches_below=True,
        precondition=_under_supervision, parse=_required("content"),
        inputs=(text("content", _l("Instruction (批示)"), hint=_l(
            "Shown at the top of the case and texted to the department's handlers.")),),
        label=_l("Leader's instruction (批示)"), button=_l("Write an instruction (批示)"), listed_with_escalations=True)
def _instruct(session, ticket, actor, data, now):
    return record(session, ticket, actor, "instruct", now, from_status=ticket.status, note=data["content"],
                  data={"level": ticket.supervision_level, "department_id": ticket.department_id})


@action("note", roles={"office", "department", "supervisor"}, statuses=ALL_STATUSES, changes_state=False,
        reaches_below=True,
        parse=_required("content"), inputs=(text("content", _l("Internal note")),),
        label=_l("Internal note"), button=_l("Add an internal note"))
def _note(session, ticket, actor, data, now):
    return record(session, ticket, actor, "note", now, from_status=ticket.status, note=data["content"])


@action("explain", roles={"office"}, statuses={"rectifying"}, parse=_parse_explanation,
        inputs=(KNOWLEDGE, text("content", _l("Explanation to the citizen"))),
        label=_l("Explained and closed"), button=_l("Explain and close"), public=True,
        confirm=_l("Close the case with this explanation? The citizen sees it."),
        # An explanation answers the 差评 without rework: no new survey, asking again would only invite the same rating.
        closes_case=True, answers_bad_rating=True, starts_survey=False, moves_deadlines=True)
def _explain(session, ticket, actor, data, now):
    used = knowledge.used(session, ticket, actor, data[knowledge.FIELD])
    previous = move(ticket, Status.closed)
    return _close(session, ticket, actor, "explain", now, previous, data["content"], [DeadlineKind.rectify],
                  data=used or None)


def _bad_rating_unvisited(session, ticket, now):
    if unvisited_bad_rating(session, ticket) is None:
        return _l("There is no bad rating waiting for a return visit.")
    return None


@action("record_visit", roles={"office"}, statuses=ALL_STATUSES, changes_state=False,
        precondition=_bad_rating_unvisited, parse=_parse_visit,
        inputs=(
            Input("visited_on", _l("Date of the return visit"), "date"),
            Input("contacted", _l("Reached the citizen?"), "yesno",
                  options=(("yes", _l("Reached")), ("no", _l("Not reached")))),
            text("outcome", _l("What came of it")),
        ),
        label=_l("Return visit recorded"), button=_l("Record the return visit"))
def _record_visit(session, ticket, actor, data, now):
    from ..models import ReturnVisit

    # It claims no row, so two clerks may both pass the precondition: the ticket's row lock makes the second wait
    # for the first's commit and then find the round visited (one visit per round), as a lost race: 409.
    session.execute(sa.select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    survey = unvisited_bad_rating(session, ticket)
    if survey is None:
        raise InvalidTransition(_bad_rating_unvisited(session, ticket, now))
    tz = clock.local_tz()
    visited_at = datetime.combine(data["visited_on"], datetime.min.time(), tzinfo=tz) + timedelta(hours=12)
    session.add(ReturnVisit(ticket_id=ticket.id, survey_id=survey.id, visited_at=min(visited_at, now),
                            contacted=data["contacted"], outcome=data["outcome"], recorded_by=actor.user_id,
                            created_at=now))
    return record(session, ticket, actor, "record_visit", now, from_status=ticket.status, note=data["outcome"],
                  data={"survey_round": survey.round, "contacted": data["contacted"],
                        "visited_on": data["visited_on"].isoformat()})


# --- a rating taken by phone: the office calls the citizen (a landline gets no survey text) and records the answer ----

def _survey_open(session, ticket, now):
    return None if open_survey_for(session, ticket, now) is not None else NO_OPEN_SURVEY


def _parse_rating(session, ticket, payload):
    return _fields(payload, lambda c, p: rating_fields(c, p.get("score"), p.get("comment")))


def _score_options():
    from ..labels import SCORE_LABELS
    return tuple((str(score), name) for score, name in SCORE_LABELS.items())


@action("record_rating", roles={"office"}, statuses={"closed", "merged"}, precondition=_survey_open, parse=_parse_rating,
        inputs=(Input("score", _l("The citizen's rating"), "choice", options=_score_options(), hint=_l(
                    "What the citizen answered on the phone. 4 or 5 reopens the case for rectification, as a bad "
                    "rating by SMS or on the web does.")),
                text("comment", _l("What the citizen said (optional)"), False)),
        label=_l("Rating recorded by phone"), button=_l("Record the rating given by phone"),
        confirm=_l("Record this rating for the citizen? Each survey round is rated once."),
        public=True, public_note=_rating_note, moves_deadlines=True, rates_survey=True)
def _record_rating(session, ticket, actor, data, now):
    """The citizen's answer to the survey taken on the phone (channel `phone`): the same rule as their own rating
    (`survey.apply_rating`), for a citizen with a landline, whom no survey text reaches, or one who rang in."""
    survey = take_open_round(session, ticket, now)
    return apply_rating(session, ticket, survey, actor, "record_rating", data, PHONE_CHANNEL, now)


# --- 典型案例: the office marks a closed case typical, with its summary, for the monthly 通报 ---------------------

TYPICAL_SUMMARY_MAX = 500


def _parse_typical(session, ticket, payload):
    def build(c, p):
        typical = c.field("typical", validation.boolean, p.get("typical"), required=False)
        typical = True if typical is None else typical
        c.values["typical"] = typical
        summary = c.field("summary", validation.text, p.get("summary"), required=typical,
                          max_len=TYPICAL_SUMMARY_MAX)
        if not typical:
            if summary:
                c.fail("summary", _l("A withdrawn mark has no summary."))
            elif ticket.typical_summary is None:
                c.fail("typical", _l("This case is not marked typical."))
    return _fields(payload, build)


@action("mark_typical", roles={"office"}, statuses={"closed"}, changes_state=False, parse=_parse_typical,
        inputs=(Input("typical", _l("Typical case"), "yesno", False, options=(
                    ("yes", _l("Mark as typical")), ("no", _l("Withdraw the mark")))),
                text("summary", _l("Summary for the monthly report"), False, hint=_l(
                    "What happened and what was done, in a few sentences (at most 500 characters); the report of "
                    "the month the case was closed in lists it under 典型案例 until the report is published."))),
        label=_l("Marked as a typical case"), button=_l("Mark as typical"))
def _mark_typical(session, ticket, actor, data, now):
    ticket.typical_summary = data["summary"] if data["typical"] else None
    ticket.typical_at = now if data["typical"] else None
    return record(session, ticket, actor, "mark_typical", now, from_status=ticket.status, note=data["summary"],
                  data={"typical": data["typical"]})


# --- 申诉复核: the department appeals a 差评 it did not deserve; the owning office's supervisor decides ------------

def _parse_appeal(session, ticket, payload):
    def build(c, p):
        c.field("reason", validation.text, p.get("reason"), required=True, max_len=TEXT_MAX)
        c.field("evidence", validation.text, p.get("evidence"), required=False, max_len=TEXT_MAX)
        _check_files(c, p)
    return _fields(payload, build)


def _may_appeal(session, ticket, now):
    return appealable_rating(session, ticket, now)[1]


@action("appeal", roles={"department"}, statuses={"rectifying", "closed"}, lead_department_only=True,
        precondition=_may_appeal, parse=_parse_appeal,
        inputs=(text("reason", _l("Why the bad rating is not deserved")),
                text("evidence", _l("Evidence"), False, hint=_l(
                    "Where the supervisor finds the proof: file numbers, call records, documents on record.")),
                FILES),
        label=_l("Bad rating appealed"), button=_l("Appeal the bad rating"),
        confirm=_l("Appeal this bad rating? Each bad rating can be appealed once."))
def _appeal(session, ticket, actor, data, now):
    survey, _problem = appealable_rating(session, ticket, now)
    session.add(Appeal(ticket_id=ticket.id, survey_id=survey.id, department_id=ticket.department_id,
                       reason=data["reason"], evidence=data["evidence"], filed_at=now, filed_by=actor.user_id))
    event = record(session, ticket, actor, "appeal", now, from_status=ticket.status, note=data["reason"],
                   data={"survey_round": survey.round, "score": survey.score, "department_id": ticket.department_id,
                         "evidence": data["evidence"]})
    _keep_answer_files(session, ticket, actor, event, data, AttachmentSource.evidence)
    return event


def _parse_appeal_decision(session, ticket, payload):
    def build(c, p):
        uphold = c.field("uphold", validation.boolean, p.get("uphold"), required=True)
        c.field("reason", validation.text, p.get("reason"), required=True, max_len=TEXT_MAX)
        lift = c.field("lift_rectification", validation.boolean, p.get("lift_rectification"), required=False)
        if lift and uphold is False:
            c.fail("lift_rectification", _l("Only an upheld appeal lifts the rectification."))
        c.values["lift_rectification"] = bool(lift)
    return _fields(payload, build)


def _appeal_waiting(session, ticket, now):
    return None if pending_appeal(session, ticket) is not None else _l("There is no appeal waiting for a decision.")


@action("decide_appeal", roles={"supervisor"}, statuses={"rectifying", "replied", "closed"},
        precondition=_appeal_waiting, parse=_parse_appeal_decision,
        inputs=(Input("uphold", _l("Outcome of the review"), "yesno",
                      options=(("yes", _l("Uphold the appeal")), ("no", _l("Reject the appeal")))),
                text("reason", _l("Reason for the decision")),
                Input("lift_rectification", _l("Rectification"), "yesno", False, _l(
                    "If the appeal shows the case was handled right, lift the rectification: the case is closed "
                    "again with its earlier answer."), options=(("yes", _l("Lift it")), ("no", _l("Keep it"))))),
        label=_l("Appeal decided"), button=_l("Decide the appeal"), moves_deadlines=True, lifts_rectification=True)
def _decide_appeal(session, ticket, actor, data, now):
    appeal = pending_appeal(session, ticket)
    previous = ticket.status
    lift = data["uphold"] and data["lift_rectification"] and ticket.status == Status.rectifying.value
    if lift:
        # The 差评's rework is called off: the case is closed again with the answer the citizen already has (no new
        # survey round), and the rectification deadline ends as lifted (late only if it had already run out).
        move(ticket, Status.closed)
        ticket.closed_at = now
        deadlines.end(session, ticket, [DeadlineKind.rectify], now, outcome=deadlines.LIFTED)
        deadlines.refresh_ticket_due(session, ticket)
    appeal.decided_at, appeal.decided_by = now, actor.user_id
    appeal.upheld, appeal.decision_reason, appeal.lifted_rectification = data["uphold"], data["reason"], lift
    survey_round = session.scalar(sa.select(Survey.round).where(Survey.id == appeal.survey_id))
    return record(session, ticket, actor, "decide_appeal", now, from_status=previous, note=data["reason"],
                  data={"upheld": data["uphold"], "lifted_rectification": lift, "survey_round": survey_round,
                        "department_id": appeal.department_id})


# --- a citizen's request to delete their personal information: the case is anonymised (PIPL Art. 47) -------------
# Archive rules keep the case, so the answer to a deletion request is the retention's anonymisation of that case at
# once (tickets/privacy/retention.py): only of a case that has ended, as every later step would need the citizen.

def _may_anonymise(session, ticket, now):
    from ..privacy.retention import refusal
    return refusal(session, ticket, now)


@action("anonymise", roles={"office"}, statuses=ALL_STATUSES, precondition=_may_anonymise,
        parse=_required("reason"),
        inputs=(text("reason", _l("Reason"), hint=_l(
            "For example: the citizen asked for their personal information to be deleted.")),),
        label=_l("Personal information anonymised on request"), button=_l("Anonymise personal information"),
        danger=True, public=True,
        confirm=_l("Replace the citizen's name and number with irreversible tokens, mask the numbers in the case's "
                   "texts and delete its files? The case and its history stay; this cannot be undone."))
def _anonymise(session, ticket, actor, data, now):
    from ..personal import mask_text
    from ..privacy.retention import anonymise_on_request

    counts = anonymise_on_request(session, ticket, actor, data["reason"], now)
    return record(session, ticket, actor, "anonymise", now, from_status=ticket.status, note=mask_text(data["reason"]),
                  public=True, data=counts.as_dict())


# A deletion request for a case that has not ended for good (still open, its survey open, an appeal possible, merged
# into a case still open) is recorded instead of refused: the scheduler's `retention` job anonymises the case as soon
# as it has (`retention.carry_out_requests`), so nobody at the office has to remember to come back to it.

def _may_request_anonymise(session, ticket, now):
    from ..privacy.retention import request_refusal
    return request_refusal(session, ticket, now)


REQUEST_ANONYMISE = "request_anonymise"  # also the citizen's own request from the case page (citizen.request_deletion)


@action(REQUEST_ANONYMISE, roles={"office"}, statuses=ALL_STATUSES, precondition=_may_request_anonymise,
        changes_state=False,  # no step of the case: a handler's open form stays current, `updated_at` stays its last
        parse=_required("reason"),
        inputs=(text("reason", _l("Reason"), hint=_l(
            "For example: the citizen asked for their personal information to be deleted.")),),
        label=_l("Deletion request recorded"), button=_l("Record a deletion request"), public=True,
        public_note=lambda event: _("Your request to delete your personal information is recorded: it is carried "
                                    "out as soon as this case has ended for good."),
        confirm=_l("Anonymise this case's personal information as soon as the case has ended for good (closed, its "
                   "survey over, no appeal possible)? Nobody has to come back to it; this cannot be undone."))
def _request_anonymise(session, ticket, actor, data, now):
    from ..personal import mask_text
    from ..privacy.retention import record_request

    record_request(session, ticket, now)
    return record(session, ticket, actor, REQUEST_ANONYMISE, now, from_status=ticket.status,
                  note=mask_text(data["reason"]), public=True)


# The request taken back before it is carried out (the citizen asked the office, or changed their mind): the name and
# number then stay until the retention period ends. The citizen may do the same from the case page.

def _may_cancel_anonymise_request(session, ticket, now):
    from ..privacy.retention import taking_back_refusal
    return taking_back_refusal(ticket.anonymised_at, ticket.anonymise_requested_at)


CANCEL_ANONYMISE_REQUEST = "cancel_anonymise_request"  # also the citizen's (citizen.withdraw_deletion_request)


@action(CANCEL_ANONYMISE_REQUEST, roles={"office"}, statuses=ALL_STATUSES, precondition=_may_cancel_anonymise_request,
        changes_state=False, parse=_required("reason"),
        inputs=(text("reason", _l("Reason"), hint=_l("For example: the citizen called to withdraw the request.")),),
        label=_l("Deletion request withdrawn"), button=_l("Withdraw the deletion request"), public=True,
        public_note=lambda event: _("The request to delete your personal information is withdrawn: your name and "
                                    "number are kept until this case's retention period ends."),
        confirm=_l("Withdraw the deletion request? The case is then not anonymised when it ends, only when its "
                   "retention period does."))
def _cancel_anonymise_request(session, ticket, actor, data, now):
    from ..personal import mask_text
    from ..privacy.retention import take_back_request

    take_back_request(session, ticket)
    return record(session, ticket, actor, CANCEL_ANONYMISE_REQUEST, now, from_status=ticket.status,
                  note=mask_text(data["reason"]), public=True)


# --- kinds of events that are not staff actions ------------------------------------------------------

FILE = event_kind("file", _l("Submitted"), public=True, moves_deadlines=True)
RATE = event_kind("rate", _l("Rated"), public=True, public_note=_rating_note, moves_deadlines=True, rates_survey=True)
# A survey left unanswered when it closed, recorded as 基本满意 by the closing sweep (never a 差评: nothing moves).
DEFAULT_RATING = event_kind(RATE_DEFAULT, _l("Default rating"), public=True, public_note=lambda event: _(
    "No rating was given within the survey period; recorded by default as: %(label)s",
    label=_score_label((event.data or {}).get("score"))))
ESCALATE = event_kind("escalate", _l("Escalated (deadline ladder)"), raises_supervision=True)
# 补充材料: the citizen added information to an open case (`citizen.supplement`); the handler is texted.
def _supplement_note(event: Event) -> str | None:
    """What the citizen reads of their 补充材料: the text, and how many files came with it."""
    files = (event.data or {}).get("attachments", 0)
    added = ngettext("%(num)d file added.", "%(num)d files added.", files) if files else ""
    return " ".join(part for part in (event.public_note, added) if part) or None


SUPPLEMENT = event_kind("supplement", _l("Information added by the citizen"), public=True,
                        public_note=_supplement_note).name
# 撤回: the citizen took the case back before it was accepted (`citizen.withdraw`).
WITHDRAW = event_kind("withdraw", _l("Withdrawn by the citizen"), public=True, moves_deadlines=True).name
# 找回查询码: the citizen asked for a new query code, texted to the filing number (`tickets.intake.recover_query_code`).
RECOVER_CODE = event_kind("recover_code", _l("New query code sent to the filing number")).name


def escalate(session, ticket: Ticket, level: int, now: datetime, data: dict) -> Event:
    """A ladder step raised the case's supervision (1 催办, 2 督办, 3 挂牌督办): an internal event by the system.

    With `remind`, the only place that changes `supervision_level`; it never lowers it. No role check and no
    version bump: it is not a staff action, and a handler's open form must not turn stale because of it.
    """
    ticket.supervision_level = max(level, ticket.supervision_level)
    return record(session, ticket, SYSTEM, ESCALATE.name, now, from_status=ticket.status,
                  data={**data, "level": level})
