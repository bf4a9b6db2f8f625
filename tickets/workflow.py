"""The ticket state machine. Every status change in Banjie goes through `perform` (staff) or `rate` (citizen).

Each call checks the caller's role, the optional `version`, the current state and the payload, claims
the ticket row (a conditional version bump, so two concurrent actions cannot both win), applies the
change and appends an Event. It never commits: the caller does, once, and rolls back on error.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.attributes import set_committed_value

from . import clock, deadlines, validation
from .signals import event_recorded
from .errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from .models import (
    OPEN_STATUSES,
    Deadline,
    DeadlineKind,
    Department,
    Event,
    ExtensionRequest,
    ReturnVisit,
    Role,
    Status,
    Survey,
    Ticket,
    TicketCoDepartment,
    is_bad_rating,
)

TEXT_MAX = 4000
MAX_WORKING_DAYS = 60


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user, or (user_id None, role None) the citizen."""

    user_id: int | None
    role: Role | None
    department_id: int | None = None
    system: bool = False  # the sweeper and other automatic steps


    @classmethod
    def of(cls, user) -> "Actor":
        return cls(user.id, Role(user.role), user.department_id)


CITIZEN = Actor(None, None)
SYSTEM = Actor(None, None, system=True)


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    statuses: frozenset[Status]
    lead_department_only: bool = False  # a department handler must lead the ticket
    office_without_department: bool = False  # the office acts for a case it resolved itself
    changes_state: bool = True          # claims the row and bumps `version`


def _rule(roles, statuses, **kw) -> Rule:
    return Rule(frozenset(Role(r) for r in roles), frozenset(Status(s) for s in statuses), **kw)


RULES: dict[str, Rule] = {
    "accept": _rule({"office"}, {"submitted"}),
    "reject": _rule({"office"}, {"submitted"}),
    "transfer": _rule({"office"}, {"accepted", "returned"}),
    "return": _rule({"department"}, {"transferred"}, lead_department_only=True),
    "request_extension": _rule({"department"}, {"transferred"}, lead_department_only=True),
    "decide_extension": _rule({"office"}, {"transferred"}),
    "reply": _rule({"department"}, {"transferred", "rectifying"}, lead_department_only=True,
                   office_without_department=True),
    "approve": _rule({"office"}, {"replied"}),
    "send_back": _rule({"office"}, {"replied"}),
    "resolve": _rule({"office"}, {"accepted"}),
    "remind": _rule({"office", "supervisor"}, OPEN_STATUSES),
    "note": _rule({"office", "department", "supervisor"}, set(Status), changes_state=False),
    "explain": _rule({"office"}, {"rectifying"}),
    "record_visit": _rule({"office"}, set(Status), changes_state=False),
}
ACTIONS = tuple(RULES)


# --- who may do what ------------------------------------------------------------------------------

def role_allows(rule: Rule, ticket: Ticket, actor: Actor) -> bool:
    if actor.role == Role.admin:
        return True
    if rule.office_without_department and actor.role == Role.office and ticket.department_id is None:
        return True
    if actor.role not in rule.roles:
        return False
    if rule.lead_department_only and actor.role == Role.department:
        return ticket.department_id is not None and ticket.department_id == actor.department_id
    return True


def _state_problem(session, ticket: Ticket, action: str, now: datetime):
    """None when the ticket's state permits the action, else the message that explains why not."""
    if Status(ticket.status) not in RULES[action].statuses:
        return InvalidTransition.default_message
    if action == "request_extension":
        if ticket.extension_pending:
            return _l("An extension request is already waiting for a decision.")
        if ticket.overdue(now):
            return _l("The deadline has passed; extensions must be requested before it.")
    if action == "decide_extension" and not ticket.extension_pending:
        return _l("There is no extension request to decide.")
    if action == "record_visit" and _unvisited_bad_rating(session, ticket) is None:
        return _l("There is no bad rating waiting for a return visit.")
    if action == "return":
        window = _open_deadline(session, ticket, DeadlineKind.return_)
        if window is None or window.overdue(now):
            return _l("The period for returning this case has ended.")
    return None


def allowed_actions(session, ticket: Ticket, actor: Actor) -> list[str]:
    """The actions this actor may take on this ticket now (for the console and the API's ticket view)."""
    now = clock.now()
    return [
        name for name, rule in RULES.items()
        if role_allows(rule, ticket, actor) and _state_problem(session, ticket, name, now) is None
    ]


# --- the one entry point for staff actions ---------------------------------------------------------

def perform(session, ticket: Ticket, actor: Actor, action: str, payload: dict | None = None,
            *, expected_version: int | None = None) -> Event:
    rule = RULES.get(action)
    if rule is None:
        raise NotFound(_l("Unknown action."))
    if not role_allows(rule, ticket, actor):
        raise Forbidden()
    if expected_version is not None and expected_version != ticket.version:
        raise Conflict()
    now = clock.now()
    problem = _state_problem(session, ticket, action, now)
    if problem is not None:
        raise InvalidTransition(problem)
    data = _PARSERS[action](session, ticket, payload or {})
    if rule.changes_state:
        _claim(session, ticket, now)
    return _HANDLERS[action](session, ticket, actor, data, now)


def _claim(session, ticket: Ticket, now: datetime) -> None:
    """Bump the version only if nobody else did since we read the ticket; the loser gets 409 conflict.

    On PostgreSQL the UPDATE also takes the row lock, so a concurrent action waits for our commit and
    then finds the version moved.
    """
    result = session.execute(
        sa.update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.version == ticket.version)
        .values(version=Ticket.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict()
    set_committed_value(ticket, "version", ticket.version + 1)
    set_committed_value(ticket, "updated_at", now)


def _event(session, ticket: Ticket, actor: Actor, action: str, now: datetime, *, from_status=None,
           note=None, public=False, public_note=None, data=None) -> Event:
    event = Event(
        ticket_id=ticket.id, at=now, actor_id=actor.user_id,
        actor_role="system" if actor.system else actor.role.value if actor.role else "citizen", action=action,
        from_status=from_status, to_status=ticket.status, note=note, public=public,
        public_note=public_note, data=data,
    )
    session.add(event)
    event_recorded.send(event, session=session, ticket=ticket)
    return event


def _move(ticket: Ticket, status: Status) -> str:
    previous = ticket.status
    ticket.status = status.value
    return previous


def _open_deadline(session, ticket: Ticket, kind: DeadlineKind):
    return next((d for d in deadlines.open_deadlines(session, ticket) if d.kind == kind.value), None)


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
        if department_id and _active_department(session, department_id) is None:
            c.fail("department_id", _l("No such department."))
        if co_ids:
            if department_id in co_ids:
                c.fail("co_department_ids", _l("The lead department cannot also be a co-department."))
            elif any(_active_department(session, i) is None for i in co_ids):
                c.fail("co_department_ids", _l("No such department."))
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


_PARSERS = {
    "accept": _optional_note,
    "reject": _required("reason"),
    "transfer": _parse_transfer,
    "return": _required("reason"),
    "request_extension": _parse_extension_request,
    "decide_extension": _parse_extension_decision,
    "reply": _required("content"),
    "approve": _optional_note,
    "send_back": _required("reason"),
    "resolve": _required("content"),
    "remind": _optional_note,
    "note": _required("content"),
    "explain": _required("content"),
    "record_visit": _parse_visit,
}


# --- what each action does ------------------------------------------------------------------------

def _accept(session, ticket, actor, data, now):
    previous = _move(ticket, Status.accepted)
    return _event(session, ticket, actor, "accept", now, from_status=previous, note=data["note"], public=True)


def _reject(session, ticket, actor, data, now):
    previous = _move(ticket, Status.rejected)
    ticket.reject_reason = data["reason"]
    deadlines.end(session, ticket, [DeadlineKind.accept], now)
    deadlines.refresh_ticket_due(session, ticket)
    return _event(session, ticket, actor, "reject", now, from_status=previous, public=True, public_note=data["reason"])


def _transfer(session, ticket, actor, data, now):
    department = session.get(Department, data["department_id"])
    previous = _move(ticket, Status.transferred)
    ticket.department_id = department.id
    session.execute(sa.delete(TicketCoDepartment).where(TicketCoDepartment.ticket_id == ticket.id))
    for co_id in data["co_department_ids"]:
        session.add(TicketCoDepartment(ticket_id=ticket.id, department_id=co_id))
    deadlines.end(session, ticket, [DeadlineKind.accept], now)
    handle = deadlines.start(session, ticket, DeadlineKind.handle, now, working_days=data["working_days"],
                             department_id=department.id)
    deadlines.start(session, ticket, DeadlineKind.return_, now, department_id=department.id)
    deadlines.refresh_ticket_due(session, ticket)
    return _event(
        session, ticket, actor, "transfer", now, from_status=previous, note=data["instructions"], public=True,
        data={"department_id": department.id, "department_name": department.name,
              "co_department_ids": data["co_department_ids"], "working_days": handle.working_days,
              "due_at": handle.due_at.isoformat(), "provisional": handle.provisional},
    )


def _withdraw_pending_extension(session, ticket, now):
    if ticket.extension_pending:
        request = _pending_extension(session, ticket)
        if request is not None:
            request.decided_at, request.approved, request.decision_note = now, False, "withdrawn"
        ticket.extension_pending = False


def _return(session, ticket, actor, data, now):
    previous = _move(ticket, Status.returned)
    deadlines.end(session, ticket, [DeadlineKind.handle, DeadlineKind.return_], now, outcome="returned")
    _withdraw_pending_extension(session, ticket, now)
    deadlines.start(session, ticket, DeadlineKind.accept, now)
    deadlines.refresh_ticket_due(session, ticket)
    return _event(session, ticket, actor, "return", now, from_status=previous, note=data["reason"], public=True,
                  data={"department_id": ticket.department_id})


def _pending_extension(session, ticket):
    return session.scalar(
        sa.select(ExtensionRequest)
        .where(ExtensionRequest.ticket_id == ticket.id, ExtensionRequest.decided_at.is_(None))
        .order_by(ExtensionRequest.id.desc())
        .limit(1)
    )


def _request_extension(session, ticket, actor, data, now):
    handle = _open_deadline(session, ticket, DeadlineKind.handle)
    session.add(ExtensionRequest(ticket_id=ticket.id, deadline_id=handle.id, working_days=data["working_days"],
                                 reason=data["reason"], requested_by=actor.user_id, requested_at=now))
    ticket.extension_pending = True
    return _event(session, ticket, actor, "request_extension", now, from_status=ticket.status, note=data["reason"],
                  data={"working_days": data["working_days"]})


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
    return _event(session, ticket, actor, "decide_extension", now, from_status=ticket.status, note=data["note"],
                  public=data["approve"], data=details)


def _reply(session, ticket, actor, data, now):
    previous = _move(ticket, Status.replied)
    ticket.reply_content = data["content"]
    deadlines.end(session, ticket, [DeadlineKind.handle, DeadlineKind.rectify], now)
    deadlines.end(session, ticket, [DeadlineKind.return_], now, outcome="replied")
    _withdraw_pending_extension(session, ticket, now)
    deadlines.start(session, ticket, DeadlineKind.review, now)
    deadlines.refresh_ticket_due(session, ticket)
    # Public as a step, so the citizen sees the case is being reviewed; the text itself only after approval.
    return _event(session, ticket, actor, "reply", now, from_status=previous, note=data["content"], public=True)


def open_survey(session, ticket: Ticket, now: datetime) -> Survey:
    last_round = session.scalar(sa.select(sa.func.max(Survey.round)).where(Survey.ticket_id == ticket.id))
    days = current_app.config["SURVEY_OPEN_DAYS"]
    survey = Survey(ticket_id=ticket.id, round=(last_round or 0) + 1, phone=ticket.phone, opened_at=now,
                    closes_at=now + timedelta(days=days))
    session.add(survey)
    return survey


def _close(session, ticket, actor, action, now, previous, public_text, kinds, note=None, survey=True):
    ticket.public_reply = public_text
    ticket.closed_at = now
    deadlines.end(session, ticket, kinds, now)
    deadlines.refresh_ticket_due(session, ticket)
    if survey:
        open_survey(session, ticket, now)
    return _event(session, ticket, actor, action, now, from_status=previous, note=note, public=True,
                  public_note=public_text)


def _approve(session, ticket, actor, data, now):
    previous = _move(ticket, Status.closed)
    return _close(session, ticket, actor, "approve", now, previous, ticket.reply_content, [DeadlineKind.review],
                  note=data["note"])


def _resolve(session, ticket, actor, data, now):
    previous = _move(ticket, Status.closed)
    return _close(session, ticket, actor, "resolve", now, previous, data["content"], [DeadlineKind.accept])


def _explain(session, ticket, actor, data, now):
    previous = _move(ticket, Status.closed)
    # An explanation answers the 差评 without rework; asking again would only invite the same rating.
    return _close(session, ticket, actor, "explain", now, previous, data["content"], [DeadlineKind.rectify],
                  survey=False)


def _send_back(session, ticket, actor, data, now):
    last_reply = session.scalar(
        sa.select(Event.from_status)
        .where(Event.ticket_id == ticket.id, Event.action == "reply")
        .order_by(Event.id.desc())
        .limit(1)
    )
    target = Status.rectifying if last_reply == Status.rectifying.value else Status.transferred
    previous = _move(ticket, target)
    deadlines.end(session, ticket, [DeadlineKind.review], now)
    deadlines.reopen(session, ticket, DeadlineKind.rectify if target == Status.rectifying else DeadlineKind.handle)
    deadlines.refresh_ticket_due(session, ticket)
    return _event(session, ticket, actor, "send_back", now, from_status=previous, note=data["reason"], public=True)


def _remind(session, ticket, actor, data, now):
    ticket.supervision_level = max(1, ticket.supervision_level)
    return _event(session, ticket, actor, "remind", now, from_status=ticket.status, note=data["note"],
                  data={"supervision_level": ticket.supervision_level})


def escalate(session, ticket: Ticket, level: int, now: datetime, data: dict) -> Event:
    """A ladder step raised the case's supervision (1 催办, 2 督办, 3 挂牌督办): an internal event by the system.

    With `remind`, the only place that changes `supervision_level`; it never lowers it. No role check and no
    version bump: it is not a staff action, and a handler's open form must not turn stale because of it.
    """
    ticket.supervision_level = max(level, ticket.supervision_level)
    return _event(session, ticket, SYSTEM, "escalate", now, from_status=ticket.status,
                  data={**data, "level": level})


def _note(session, ticket, actor, data, now):
    return _event(session, ticket, actor, "note", now, from_status=ticket.status, note=data["content"])


def _unvisited_bad_rating(session, ticket):
    """The latest 差评 round of this ticket that has no return visit yet."""
    visited = sa.select(ReturnVisit.survey_id)
    return session.scalar(
        sa.select(Survey).where(Survey.ticket_id == ticket.id, Survey.bad_rating, Survey.id.not_in(visited))
        .order_by(Survey.round.desc()).limit(1)
    )


def _record_visit(session, ticket, actor, data, now):
    survey = _unvisited_bad_rating(session, ticket)
    tz = clock.local_tz()
    visited_at = datetime.combine(data["visited_on"], datetime.min.time(), tzinfo=tz) + timedelta(hours=12)
    session.add(ReturnVisit(ticket_id=ticket.id, survey_id=survey.id, visited_at=min(visited_at, now),
                            contacted=data["contacted"], outcome=data["outcome"], recorded_by=actor.user_id,
                            created_at=now))
    return _event(session, ticket, actor, "record_visit", now, from_status=ticket.status, note=data["outcome"],
                  data={"survey_round": survey.round, "contacted": data["contacted"],
                        "visited_on": data["visited_on"].isoformat()})


_HANDLERS = {
    "accept": _accept,
    "reject": _reject,
    "transfer": _transfer,
    "return": _return,
    "request_extension": _request_extension,
    "decide_extension": _decide_extension,
    "reply": _reply,
    "approve": _approve,
    "send_back": _send_back,
    "resolve": _resolve,
    "remind": _remind,
    "note": _note,
    "explain": _explain,
    "record_visit": _record_visit,
}
assert set(_HANDLERS) == set(RULES) == set(_PARSERS)


# --- the citizen's rating ---------------------------------------------------------------------------

def open_survey_for(session, ticket: Ticket, now: datetime) -> Survey | None:
    return session.scalar(
        sa.select(Survey)
        .where(Survey.ticket_id == ticket.id, Survey.rated_at.is_(None), Survey.closes_at > now)
        .order_by(Survey.round.desc())
        .limit(1)
    )


def rate(session, ticket: Ticket, score, comment=None, *, channel: str = "web") -> Event:
    """The citizen rates the open survey round; 4 or 5 (差评) reopens the ticket for rectification."""
    check = validation.Collector()
    check.field("score", validation.integer, score, required=True, minimum=1, maximum=5)
    check.field("comment", validation.text, comment, required=False, max_len=1000)
    values = check.raise_if_errors()
    now = clock.now()
    survey = open_survey_for(session, ticket, now) if ticket.status == Status.closed.value else None
    if survey is None:
        raise InvalidTransition(_l("There is no open satisfaction survey for this case."))
    survey.score, survey.comment, survey.rated_at, survey.channel = values["score"], values["comment"], now, channel
    _claim(session, ticket, now)
    previous = ticket.status
    if is_bad_rating(values["score"]):
        _move(ticket, Status.rectifying)
        ticket.closed_at = None
        deadlines.start(session, ticket, DeadlineKind.rectify, now, department_id=ticket.department_id)
        deadlines.refresh_ticket_due(session, ticket)
    return _event(session, ticket, CITIZEN, "rate", now, from_status=previous, note=values["comment"], public=True,
                  data={"score": values["score"], "round": survey.round, "channel": channel})
