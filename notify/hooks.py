"""What the SMS room says when something happens to a case: its reactions to workflow events (`register`).

They run inside the transaction that wrote the event, so each text is an outbox row committed (or rolled
back) with the change it reports, naming the event as its cause. Texts to staff record in the event's data how many went to each audience
(`notified`), so a case's history shows when nobody could be texted (no mobile number on record).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from tickets import contacts
from tickets.workflow import KINDS, RECOVER_CODE, SUPPLEMENT, names
from tickets.labels import SCORE_LABELS
from tickets.models import DEFAULT_SCORE, Department, Deadline, Office, Survey, is_bad_rating
from tickets.clock import local_text

from .models import SmsMessage, SmsStatus
from .operations import send_sms, sms_label

# 补充材料: a handler told of a case's new information is not texted again for the same case until this long after
# (a citizen adding five things in an evening sends one text, not five); the case page lists every supplement.
SUPPLEMENT_TEXT_INTERVAL = timedelta(hours=4)


def _department_name(session, department_id) -> str:
    department = session.get(Department, department_id) if department_id else None
    return department.name if department is not None else ""


def _date(value) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return local_text(value)[:10] if value else ""


def _notified(event, audience: str, sent: int) -> None:
    """Record on the event how many texts went to `audience` (0: nobody had a number). The event is this
    transaction's own, so its data may still be completed here."""
    data = dict(event.data or {})
    data["notified"] = {**data.get("notified", {}), audience: sent}
    event.data = data


def _citizen(session, ticket, event, template, **context):
    send_sms(ticket.phone, template, {"tracking_no": ticket.tracking_no, **context}, ticket_id=ticket.id,
             session=session, cause=event)


def _open_survey(session, ticket) -> Survey | None:
    return session.scalar(sa.select(Survey).where(Survey.ticket_id == ticket.id, Survey.rated_at.is_(None))
                          .order_by(Survey.round.desc()).limit(1))


def closed(event, *, session, ticket, **_):
    _citizen(session, ticket, event, "closed", reply=ticket.public_reply or "")
    survey = _open_survey(session, ticket) if KINDS[event.action].starts_survey else None
    if survey is not None:
        days = max(1, round((survey.closes_at - survey.opened_at).total_seconds() / 86400))
        _citizen(session, ticket, event, "survey", days=days, default_label=_default_label(session, ticket))


def joined_answered(event, *, session, ticket, **_):
    """并单: the case this one joined was answered; its citizen gets the answer, and the survey when one opened."""
    _citizen(session, ticket, event, "closed", reply=ticket.public_reply or "")
    survey = _open_survey(session, ticket) if (event.data or {}).get("survey") else None
    if survey is not None:
        days = max(1, round((survey.closes_at - survey.opened_at).total_seconds() / 86400))
        _citizen(session, ticket, event, "survey", days=days, default_label=_default_label(session, ticket))


def governance_answered(event, *, session, ticket, **_):
    """主动治理: the office's task opened from this case's 一类事 was answered; the citizen is texted the answer, once per
    number (the event's data says whether this case is the one that texts: tickets/workflow/governance.py)."""
    if (event.data or {}).get("text"):
        _citizen(session, ticket, event, "governance_answer", answer=event.public_note or "")


def merged(event, *, session, ticket, **_):
    _citizen(session, ticket, event, "merged")


def split(event, *, session, ticket, **_):
    _citizen(session, ticket, event, "split")


def _default_label(session, ticket):
    """What silence will count as (基本满意) when the case's office defaults unanswered surveys; "" when it does not."""
    if not session.scalar(sa.select(Office.default_unanswered).where(Office.id == ticket.office_id)):
        return ""
    return sms_label(SCORE_LABELS, DEFAULT_SCORE)  # in Chinese, as every text (`send_sms`)


def rated(event, *, session, ticket, **_):
    data = event.data or {}
    if not is_bad_rating(data.get("score")) or ticket.status == "merged":
        return  # a merged case's 差评 reopens the case it joined, whose `joined_rating` texts that one's supervisor
    department = session.get(Department, ticket.department_id) if ticket.department_id else None
    if department is None:
        return
    rectify = session.scalar(sa.select(Deadline).where(Deadline.ticket_id == ticket.id, Deadline.kind == "rectify",
                                                       Deadline.ended_at.is_(None)).order_by(Deadline.round.desc()))
    message = send_sms(contacts.department_phone(department, "supervisor"), "bad_rating_supervisor",
                       {"tracking_no": ticket.tracking_no, "department": department.name,
                        "score_label": sms_label(SCORE_LABELS, data.get("score")),
                        "due": _date(rectify.due_at) if rectify else ""},
                       ticket_id=ticket.id, session=session, cause=event)
    _notified(event, "supervisor", int(message is not None))


def reminded(event, *, session, ticket, **_):
    if not ticket.department_id:
        return
    sent = 0
    for phone in contacts.handler_phones(session, ticket.department_id):
        if send_sms(phone, "remind_handler", {"tracking_no": ticket.tracking_no,
                                              "department": _department_name(session, ticket.department_id),
                                              "due": _date(ticket.due_at)}, ticket_id=ticket.id,
                    session=session, cause=event) is not None:
            sent += 1
    _notified(event, "handler", sent)


def filed(event, *, session, ticket, query_code=None, **_):
    if query_code:
        _citizen(session, ticket, event, "receipt", query_code=query_code)


def rejected(event, *, session, ticket, **_):
    _citizen(session, ticket, event, "rejected", reason=ticket.reject_reason or "")


def transferred(event, *, session, ticket, **_):
    data = event.data or {}
    _citizen(session, ticket, event, "transferred", department=data.get("department_name", ""),
             due=_date(data.get("due_at")))


def extended(event, *, session, ticket, **_):
    data = event.data or {}
    if data.get("approved"):
        _citizen(session, ticket, event, "extended", department=_department_name(session, ticket.department_id),
                 due=_date(data.get("due_at")))


def recovered(event, *, session, ticket, query_code=None, **_):
    """找回查询码: the new code, to the number the case was filed with (that is who asked)."""
    if query_code:
        _citizen(session, ticket, event, "query_code", query_code=query_code)


def _workers(session, ticket) -> tuple[list[str], str, str]:
    """Who works the case now, to text: the lead department's handlers (while no department has it, the owning window's
    staff); with the audience and the department's name."""
    if ticket.department_id:
        return (contacts.handler_phones(session, ticket.department_id), "handler",
                _department_name(session, ticket.department_id))
    return contacts.staff_phones(session, (), (ticket.office_id,))[1].get(ticket.office_id, []), "office", ""


def _text_workers(session, ticket, event, template, *, told=frozenset(), **context) -> None:
    """Text those who work the case; the numbers in `told` already know (they count as notified, and get no text)."""
    phones, audience, department = _workers(session, ticket)
    sent = sum(phone in told or send_sms(phone, template, {"tracking_no": ticket.tracking_no, "department": department,
                                                           **context},
                                         ticket_id=ticket.id, audience=audience, session=session,
                                         cause=event) is not None
               for phone in phones)
    _notified(event, audience, sent)


def _recently_told(session, ticket, template: str, since) -> set[str]:
    """The numbers a text `template` of this case went (or is going) to since `since`; one that failed tells nobody."""
    return set(session.scalars(sa.select(SmsMessage.phone).where(
        SmsMessage.ticket_id == ticket.id, SmsMessage.template == template, SmsMessage.created_at > since,
        SmsMessage.status.not_in((SmsStatus.failed.value, SmsStatus.undelivered.value)))))


def supplemented(event, *, session, ticket, **_):
    """补充材料: those who work the case are told, so that nobody works on without what the citizen added; once per
    SUPPLEMENT_TEXT_INTERVAL per case and person (a burst of supplements is one text: the case page lists them all)."""
    told = _recently_told(session, ticket, "supplement_handler", event.at - SUPPLEMENT_TEXT_INTERVAL)
    _text_workers(session, ticket, event, "supplement_handler", told=told)


def instructed(event, *, session, ticket, **_):
    """批示: those who work the case are texted the instruction, so that it reaches them, not only their screens."""
    _text_workers(session, ticket, event, "instruction_handler", instruction=event.note or "")


def register(reactions) -> None:
    """Which events text whom: the citizen at each step they should hear of, staff when a case needs them."""
    reactions.on("file", filed)
    reactions.on(RECOVER_CODE, recovered)
    reactions.on(SUPPLEMENT, supplemented)
    reactions.on("reject", rejected)
    reactions.on("transfer", transferred)
    reactions.on("decide_extension", extended)
    reactions.on(*names(closes_case=True), closed)
    reactions.on(*names(rates_survey=True), rated)
    reactions.on("remind", reminded)
    reactions.on("instruct", instructed)
    reactions.on("merge", merged)
    reactions.on("split", split)
    reactions.on("joined_answer", joined_answered)
    reactions.on("governance_answer", governance_answered)
