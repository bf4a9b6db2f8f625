"""What each audience sees of a ticket, as JSON-ready dicts. The citizen never sees staff names or internal notes."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import url_for

from . import attachments, deadlines, duplicates, lists, offices, phones
from .access import co_department_ids, sees_full_phone
from .clock import iso
from .labels import APPEAL_OUTCOME_LABELS, DEADLINE_LABELS, PROBLEM_TYPE_LABELS, SCORE_LABELS, STATUS_LABELS, label
from .personal import shown
from .models import Appeal, Deadline, DeadlineKind, Department, Event, Office, Status, Survey, Ticket, User
from .workflow import (ACTIONS, SUPPLEMENT, Actor, allowed_actions, label_of, may_request_deletion, may_supplement,
                       may_withdraw, public_note)


def public_offices(session) -> list[dict]:
    """The active windows as citizens choose among them, parents before their children (`GET /api/v1/offices`
    and the public form's area picker)."""
    rows = offices.tree(session, active_only=True)
    codes = {o.id: o.code for o in rows}
    return [{"code": o.code, "name": o.name, "level": o.level, "parent_code": codes.get(o.parent_id)} for o in rows]


def public_timeline(session, ticket: Ticket) -> list[dict]:
    events = session.scalars(
        sa.select(Event).where(Event.ticket_id == ticket.id, Event.public.is_(True)).order_by(Event.at, Event.id)
    )
    return [
        {"at": iso(e.at), "status": e.to_status, "label": label_of(e.action), "note": public_note(e)}
        for e in events
    ]


def latest_rating(session, ticket: Ticket) -> dict | None:
    survey = session.scalar(
        sa.select(Survey).where(Survey.ticket_id == ticket.id, Survey.rated_at.is_not(None))
        .order_by(Survey.round.desc()).limit(1)
    )
    if survey is None:
        return None
    # `defaulted`: nobody answered; the closing survey recorded 基本满意 by default (README: 好差评)
    return {"score": survey.score, "label": label(SCORE_LABELS, survey.score), "comment": survey.comment,
            "round": survey.round, "rated_at": iso(survey.rated_at), "defaulted": survey.defaulted}


def _headline(ticket: Ticket) -> dict:
    """The fields every audience sees first: number, status and kind of problem, with their labels."""
    return {
        "tracking_no": ticket.tracking_no,
        "status": ticket.status,
        "status_label": label(STATUS_LABELS, ticket.status),
        "problem_type": ticket.problem_type,
        "problem_type_label": label(PROBLEM_TYPE_LABELS, ticket.problem_type),
    }


def public_view(session, ticket: Ticket, *, survey_open: bool = False) -> dict:
    return {
        **_headline(ticket),
        "office_name": session.scalar(sa.select(Office.name).where(Office.id == ticket.office_id)),
        "created_at": iso(ticket.created_at),
        "due_at": iso(ticket.due_at),
        "timeline": public_timeline(session, ticket),
        "reply": ticket.public_reply if ticket.status in ANSWER_SHOWN else None,
        "rating": latest_rating(session, ticket),
        "survey_open": survey_open,
        "may_withdraw": may_withdraw(ticket),      # 撤回 (tickets.workflow.citizen)
        "may_supplement": may_supplement(ticket),  # 补充材料
        "attachments": attachment_list(session, ticket, citizen=True),
        "handled_with": handled_with(session, ticket),
        "anonymised": ticket.anonymised_at is not None,  # the citizen's name and number are no longer kept
        # a deletion request waits for the case to end (the citizen's or the office's; tickets.workflow.citizen)
        "deletion_requested_at": iso(ticket.anonymise_requested_at) if ticket.anonymised_at is None else None,
        "may_request_deletion": may_request_deletion(ticket),
        **what_next(session, ticket, survey_open),
    }


ANSWER_SHOWN = (Status.closed.value, Status.rectifying.value, Status.merged.value)


def handled_with(session, ticket: Ticket) -> dict | None:
    """并单: the progress of the case a merged one joined, as its citizen may see it: its status and deadline, the
    department handling it and the office's handling steps. Never that case's number, its citizen's words (补充材料),
    ratings or anything else of another person's (tickets/workflow/merging.py)."""
    if ticket.status != Status.merged.value or ticket.merged_into_id is None:
        return None
    target = session.get(Ticket, ticket.merged_into_id)
    if target is None:
        return None
    steps = [name for name, kind in ACTIONS.items() if kind.public and not kind.rates_survey]
    events = session.scalars(sa.select(Event).where(Event.ticket_id == target.id, Event.public.is_(True),
                                                    Event.action.in_(steps)).order_by(Event.at, Event.id))
    names = _department_names(session, [target.department_id])
    return {
        "status": target.status,
        "status_label": label(STATUS_LABELS, target.status),
        "due_at": iso(target.due_at),
        "department_name": names.get(target.department_id),
        "timeline": [{"at": iso(e.at), "status": e.to_status, "label": label_of(e.action), "note": public_note(e)}
                     for e in events],
    }


def what_next(session, ticket: Ticket, survey_open: bool) -> dict:
    """What the citizen is told happens next. While the survey is open, `rework_days`: the working days the department
    gets to put things right if they rate 4 or 5 (不满意, 非常不满意: the deadline policy's 整改 for this case). While the
    case is being put right, `rework`: by which department and by when (the running 整改 deadline)."""
    rework_days = rework = None
    if survey_open:
        rework_days = deadlines.policy().working_days(
            DeadlineKind.rectify.value, problem_type=ticket.problem_type, department_id=ticket.department_id,
            office_id=ticket.office_id)
    if ticket.status == Status.rectifying.value:
        names = _department_names(session, [ticket.department_id])
        rework = {"department_name": names.get(ticket.department_id), "due_at": iso(ticket.due_at)}
    return {"rework_days": rework_days, "rework": rework}


def attachment_list(session, ticket: Ticket, *, citizen: bool) -> list[dict]:
    """The case's files this audience may download (tickets/attachments.py), with where to get each: the citizen's
    addresses need `?code=` (the query code), staff's their sign-in or token."""
    endpoint = "api.public_attachment" if citizen else "api.staff_attachment"
    out = []
    for row in attachments.of_ticket(session, ticket.id, citizen=citizen):
        item = attachments.describe(row)
        if citizen:
            item.pop("visible_to_citizen")
        item["url"] = url_for(endpoint, tracking_no=ticket.tracking_no, attachment_id=row.id)
        item["thumbnail_url"] = url_for(endpoint, tracking_no=ticket.tracking_no, attachment_id=row.id,
                                        thumbnail=1) if row.thumb_key else None
        out.append(item)
    return out


def _department_names(session, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(session.execute(sa.select(Department.id, Department.name).where(Department.id.in_(ids))).all())


def _offices(session, ids) -> dict[int, tuple[str, str]]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {i: (code, name) for i, code, name in
            session.execute(sa.select(Office.id, Office.code, Office.name).where(Office.id.in_(ids)))}


def _user_names(session, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {i: display or username for i, display, username in
            session.execute(sa.select(User.id, User.display_name, User.username).where(User.id.in_(ids)))}


def possible_duplicates(session, candidates: list[duplicates.Candidate]) -> list[dict]:
    """The API's and the console's `possible_duplicates`: each candidate's number, state, reasons, score, date, a
    snippet of its text, its window and department, and the masked number (never the whole one). The candidates:
    `duplicates.possible_duplicates`."""
    if not candidates:
        return []
    departments = _department_names(session, [c.ticket.department_id for c in candidates])
    office_rows = _offices(session, [c.ticket.office_id for c in candidates])
    return [{
        "tracking_no": c.ticket.tracking_no, "status": c.ticket.status,
        "status_label": label(STATUS_LABELS, c.ticket.status), "reasons": list(c.reasons), "score": c.score,
        "created_at": iso(c.ticket.created_at), "summary": lists.snippet(c.ticket.description),
        "service_item": c.ticket.service_item,
        "office_code": office_rows.get(c.ticket.office_id, (None, None))[0],
        "office_name": office_rows.get(c.ticket.office_id, (None, None))[1],
        "department_name": departments.get(c.ticket.department_id),
        "phone": phones.mask(c.ticket.phone),
    } for c in candidates]


def list_item(ticket: Ticket, departments: dict[int, str], now: datetime,
              office_rows: dict[int, tuple[str, str]] | None = None, users: dict[int, str] | None = None) -> dict:
    office_code, office_name = (office_rows or {}).get(ticket.office_id, (None, None))
    users = users or {}
    return {
        **_headline(ticket),
        "office_code": office_code,
        "office_name": office_name,
        "citizen_name": shown(ticket.citizen_name),  # 已匿名化 for an anonymised case (tickets/personal.py)
        "phone": phones.mask(ticket.phone),
        "phone_type": phones.phone_type(ticket.phone),  # "mobile", or "landline": no texts reach it
        "service_item": ticket.service_item,
        "department_id": ticket.department_id,
        "department_name": departments.get(ticket.department_id),
        "supervision_level": ticket.supervision_level,
        "created_at": iso(ticket.created_at),
        "due_at": iso(ticket.due_at),
        "due_kind": ticket.due_kind,
        "overdue": ticket.overdue(now),
        "contact_due_at": iso(ticket.contact_due_at),
        **lists.time_left(ticket, now),
        "channel": ticket.channel,
        "source": ticket.source,              # the system that handed the case over (integration API), or None
        "external_ref": ticket.external_ref,  # and its own number for the case
        "summary": lists.snippet(ticket.description),
        "owner_id": ticket.owner_id,        # 我来办: the window's clerk who works the case
        "owner_name": users.get(ticket.owner_id),
        "handler_id": ticket.handler_id,    # and the department's handler
        "handler_name": users.get(ticket.handler_id),
        "version": ticket.version,
    }


def list_items(session, tickets: list[Ticket], now: datetime) -> list[dict]:
    names = _department_names(session, [t.department_id for t in tickets])
    office_rows = _offices(session, [t.office_id for t in tickets])
    users = _user_names(session, [i for t in tickets for i in (t.owner_id, t.handler_id)])
    return [list_item(t, names, now, office_rows, users) for t in tickets]


def _hours(minutes: int | None):
    """Working minutes as working hours (8, or 7.5), for deadlines counted in hours; None for the others."""
    if minutes is None:
        return None
    return minutes // 60 if minutes % 60 == 0 else round(minutes / 60, 2)


def _name(user) -> str | None:
    return (user.display_name or user.username) if user is not None else None


def first_contact(deadline_rows, events, names: dict, users: dict, now: datetime,
                  department_id: int | None = None) -> dict | None:
    """先行联系 of the department that has the case (else of the latest one asked): awaited (`awaiting`, `past_due`
    once its time has run out), or how it ended (`met`, `late`, `not_contacted`), with the contact as the department
    recorded it. None: the case never reached a department with a first-contact deadline."""
    rounds = [d for d in deadline_rows if d.kind == DeadlineKind.contact.value]
    if not rounds:
        return None
    deadline = next((d for d in reversed(rounds) if d.department_id == department_id), rounds[-1])
    recorded = next((e for e in reversed(events) if e.action == "record_contact"
                     and (e.data or {}).get("round") == deadline.round), None)
    data = (recorded.data or {}) if recorded is not None else {}
    state = deadline.outcome or ("past_due" if deadline.due_at < now else "awaiting")
    return {"state": state, "round": deadline.round, "department_id": deadline.department_id,
            "department_name": names.get(deadline.department_id), "started_at": iso(deadline.started_at),
            "working_hours": _hours(deadline.working_minutes), "due_at": iso(deadline.due_at),
            "ended_at": iso(deadline.ended_at),
            "contacted_at": iso(datetime.fromisoformat(data["contacted_at"])) if data.get("contacted_at") else None,
            "method": data.get("method"), "outcome": recorded.note if recorded is not None else None,
            "recorded_at": iso(recorded.at) if recorded is not None else None,
            "recorded_by": _name(users.get(recorded.actor_id)) if recorded is not None else None}


def staff_phone(ticket: Ticket, actor: Actor, *, full_phone: bool = False) -> str | None:
    """The case's number in the staff view: whole when `full_phone` (the caller decided to show it and logged the
    showing) for who `sees_full_phone`, else masked."""
    return shown(ticket.phone) if full_phone and sees_full_phone(actor, ticket) else phones.mask(ticket.phone)


def staff_view(session, ticket: Ticket, actor: Actor, now: datetime, *, full_phone: bool = False) -> dict:
    """The case as staff see it. The phone number is masked unless `full_phone`: the caller decided to show it whole
    (only to who `sees_full_phone`) and logged the showing (tickets/privacy/access.py)."""
    co_ids = co_department_ids(session, ticket)
    dispatch = offices.suggested_department(session, ticket)
    names = _department_names(session, [ticket.department_id, ticket.suggested_department_id,
                                        ticket.arbitrated_department_id, *co_ids])
    view = public_view(session, ticket)
    view.update(list_item(ticket, names, now, _offices(session, [ticket.office_id]),
                          _user_names(session, [ticket.owner_id, ticket.handler_id])))
    events = list(session.scalars(sa.select(Event).where(Event.ticket_id == ticket.id).order_by(Event.at, Event.id)))
    deadline_rows = list(session.scalars(sa.select(Deadline).where(Deadline.ticket_id == ticket.id)
                                        .order_by(Deadline.id)))
    names.update(_department_names(session, [d.department_id for d in deadline_rows if d.department_id not in names]))
    actor_ids = {e.actor_id for e in events if e.actor_id}
    users = {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(actor_ids)))} if actor_ids else {}
    view.update({
        "phone": staff_phone(ticket, actor, full_phone=full_phone),
        # retention (tickets/privacy/retention.py): when the name and number were replaced by tokens; None: not
        "anonymised_at": iso(ticket.anonymised_at),
        "anonymise_requested_at": iso(ticket.anonymise_requested_at),  # a deletion request waiting for the case to end
        "description": ticket.description,
        "channel": ticket.channel,
        "suggested_department_id": ticket.suggested_department_id,
        "suggested_department_name": names.get(ticket.suggested_department_id),
        "dispatch_department_id": dispatch.id if dispatch is not None else None,
        "dispatch_department_name": dispatch.name if dispatch is not None else None,
        "disputed": ticket.disputed,
        "arbitrated_department_id": ticket.arbitrated_department_id,
        "co_department_ids": co_ids,
        "co_department_names": [names.get(i) for i in co_ids],
        "reply_content": ticket.reply_content,
        "reject_reason": ticket.reject_reason,
        "extension_pending": ticket.extension_pending,
        "due_provisional": ticket.due_provisional,
        "updated_at": iso(ticket.updated_at),
        "closed_at": iso(ticket.closed_at),
        "deadlines": [
            {"kind": d.kind, "label": label(DEADLINE_LABELS, d.kind), "round": d.round,
             "department_id": d.department_id, "started_at": iso(d.started_at), "working_days": d.working_days,
             "working_hours": _hours(d.working_minutes),
             "due_at": iso(d.due_at), "original_due_at": iso(d.original_due_at), "extended_days": d.extended_days,
             "provisional": d.provisional, "ended_at": iso(d.ended_at), "outcome": d.outcome}
            for d in deadline_rows
        ],
        "first_contact": first_contact(deadline_rows, events, names, users, now, ticket.department_id),
        "events": [
            {"id": e.id, "at": iso(e.at), "action": e.action, "label": label_of(e.action),
             "from_status": e.from_status, "to_status": e.to_status,
             "actor": _name(users.get(e.actor_id)),
             "actor_role": e.actor_role, "note": e.note, "public": e.public, "public_note": e.public_note,
             "data": e.data}
            for e in events
        ],
        "appeals": appeals_of(session, ticket, users),
        # 批示: a leader's (or the supervisor's) instructions, newest first, shown at the top of the case
        "instructions": [{"id": e.id, "at": iso(e.at), "by": _name(users.get(e.actor_id)), "role": e.actor_role,
                          "content": e.note} for e in reversed(events) if e.action == "instruct"],
        "new_information": new_information(events),
        "attachments": attachment_list(session, ticket, citizen=False),
        # 并单: the case this one joined, and the cases joined to this one (tickets/workflow/merging.py)
        "merged_into": session.scalar(sa.select(Ticket.tracking_no).where(Ticket.id == ticket.merged_into_id))
        if ticket.merged_into_id else None,
        "merged_cases": list(session.scalars(sa.select(Ticket.tracking_no).where(Ticket.merged_into_id == ticket.id)
                                             .order_by(Ticket.id))),
        "allowed_actions": allowed_actions(session, ticket, actor),
        # 可能重复: open or lately closed cases, among those this actor may see, that are probably the same problem
        # on every case page but a merged one's (it is handled as the case it joined)
        "possible_duplicates": possible_duplicates(session, duplicates.possible_duplicates(session, ticket, actor, now))
        if ticket.status != Status.merged.value else [],
    })
    return view


def new_information(events) -> list[dict]:
    """补充材料 the citizen added since staff last acted on the case (the case page's notice), oldest first."""
    last_staff = max((e.at for e in events if e.actor_id is not None), default=None)
    return [{"at": iso(e.at), "content": e.note, "event_id": e.id, "files": (e.data or {}).get("attachments", 0)}
            for e in events if e.action == SUPPLEMENT and (last_staff is None or e.at > last_staff)]


def appeals_of(session, ticket: Ticket, users: dict) -> list[dict]:
    """The case's appeals of 差评 (申诉复核), oldest first, with the round and rating appealed and the decision."""
    rows = session.execute(
        sa.select(Appeal, Survey.round, Survey.score).join(Survey, Survey.id == Appeal.survey_id)
        .where(Appeal.ticket_id == ticket.id).order_by(Appeal.id)
    ).all()
    if not rows:
        return []
    names = _department_names(session, [a.department_id for a, _round, _score in rows])
    missing = {i for a, _round, _score in rows for i in (a.filed_by, a.decided_by) if i and i not in users}
    if missing:
        users = {**users, **{u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(missing)))}}

    def who(user_id):
        user = users.get(user_id)
        return (user.display_name or user.username) if user is not None else None

    return [{"id": a.id, "status": a.outcome, "status_label": label(APPEAL_OUTCOME_LABELS, a.outcome),
             "survey_round": round_, "score": score, "department_id": a.department_id,
             "department_name": names.get(a.department_id), "reason": a.reason, "evidence": a.evidence,
             "filed_at": iso(a.filed_at), "filed_by": who(a.filed_by), "decided_at": iso(a.decided_at),
             "decided_by": who(a.decided_by), "upheld": a.upheld, "decision_reason": a.decision_reason,
             "lifted_rectification": a.lifted_rectification}
            for a, round_, score in rows]
