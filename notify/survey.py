"""Survey replies by SMS: apply a clear rating to the newest open survey of the number whose question was sent, ask
once when unclear."""
from __future__ import annotations

import sqlalchemy as sa

from tickets import clock, workflow
from tickets.errors import BanjieError, Conflict
from tickets.labels import SCORE_LABELS
from tickets.models import Survey, Ticket, is_bad_rating
from tickets.privacy import crypto

from .models import InboundSms, SmsMessage, SmsOptOut, SmsStatus
from .operations import send_sms, sms_label
from .replies import parse_reply

RECENTLY_CLOSED_DAYS = 30


def _question_waits(now):
    """The survey's question (its `survey` text, written when the round opened) still waits to go, held for the quiet
    hours or for a retry: nothing of that survey has reached the phone, so no reply can be an answer to it."""
    return sa.exists().where(SmsMessage.ticket_id == Survey.ticket_id, SmsMessage.template == "survey",
                             SmsMessage.created_at >= Survey.opened_at, SmsMessage.status == SmsStatus.pending.value,
                             SmsMessage.not_before > now)


def _newest(session, phone, now, *conditions) -> Survey | None:
    """The number's newest survey (of `conditions`) whose question the citizen may have: none still held back."""
    return session.scalar(sa.select(Survey).where(Survey.phone_index == crypto.phone_index(phone), *conditions,
                                                  ~_question_waits(now))
                          .order_by(Survey.opened_at.desc(), Survey.id.desc()).limit(1))


def _rate(session, ticket: Ticket, score: int) -> str:
    """The citizen's rating by SMS: the reply's outcome, "rated", "closed" (the case refused it: it moved on) or
    "conflict" (staff kept acting on the case meanwhile; the survey stays open for another reply).

    A refused rating keeps nothing (a savepoint): `rate` claims the round before it claims the case, so a case that
    moved on meanwhile (Conflict, from the case or from the case a merged one joined) would otherwise leave the round
    taken and unscored for ever, neither answerable nor defaulted by the closing sweep. A Conflict (a staff action
    committed on the case since it was read) is tried once more on the case as it is now."""
    for attempt in range(2):
        try:
            with session.begin_nested():
                workflow.rate(session, ticket, score, channel="sms")
            return "rated"
        except Conflict:
            if attempt:
                return "conflict"
            session.refresh(ticket)
        except BanjieError:
            return "closed"
    return "conflict"


def handle_inbound(session, *, sid: str, phone: str, body: str) -> InboundSms:
    """Record one inbound text and act on it; a webhook delivered twice (same sid) acts once."""
    existing = session.scalar(sa.select(InboundSms).where(InboundSms.provider_sid == sid))
    if existing is not None:
        return existing
    now = clock.now()
    inbound = InboundSms(provider_sid=sid, phone=phone, body=body[:1000], received_at=now, outcome="unknown")
    try:
        with session.begin_nested():  # written first: the same sid posted again meanwhile (Twilio's retry) acts once
            session.add(inbound)
    except sa.exc.IntegrityError:
        return session.scalar(sa.select(InboundSms).where(InboundSms.provider_sid == sid))
    reply = parse_reply(body)
    if reply.kind == "opt_out":
        inbound.outcome = "opt_out"
        if session.get(SmsOptOut, phone) is None:
            session.add(SmsOptOut(phone=phone, number=phone, opted_out_at=now, source="sms"))  # kept by its index
            send_sms(phone, "opted_out", {}, session=session)
        return inbound
    survey = _newest(session, phone, now, Survey.rated_at.is_(None), Survey.closes_at > now)
    if survey is None:
        _no_open_survey(session, inbound, now)
        return inbound
    ticket = session.get(Ticket, survey.ticket_id)
    inbound.survey_id = survey.id
    context = {"tracking_no": ticket.tracking_no}
    if reply.kind == "unclear":
        inbound.outcome = "unclear"
        asked = session.scalar(sa.select(sa.func.count()).select_from(InboundSms).where(
            InboundSms.survey_id == survey.id, InboundSms.outcome == "unclear", InboundSms.id != inbound.id))
        if not asked:
            send_sms(phone, "survey_unclear", context, ticket_id=ticket.id, session=session)
        return inbound
    inbound.outcome = _rate(session, ticket, reply.score)
    if inbound.outcome != "rated":  # the ticket moved on (e.g. reopened by a web rating a moment ago), or is busy
        return inbound
    inbound.score = reply.score
    template = "survey_thanks_bad" if is_bad_rating(reply.score) else "survey_thanks"
    send_sms(phone, template, {**context, "score_label": sms_label(SCORE_LABELS, reply.score)}, ticket_id=ticket.id,
             session=session)
    return inbound


def _no_open_survey(session, inbound: InboundSms, now) -> None:
    """A reply after the survey closed is told so once per survey; a number we never surveyed gets nothing."""
    from datetime import timedelta

    last = _newest(session, inbound.phone, now, Survey.opened_at > now - timedelta(days=RECENTLY_CLOSED_DAYS))
    if last is None:
        inbound.outcome = "no_survey"
        return
    inbound.outcome, inbound.survey_id = "closed", last.id
    told = session.scalar(sa.select(sa.func.count()).select_from(InboundSms).where(
        InboundSms.survey_id == last.id, InboundSms.outcome == "closed", InboundSms.id != inbound.id))
    if not told:
        ticket = session.get(Ticket, last.ticket_id)
        send_sms(inbound.phone, "survey_closed", {"tracking_no": ticket.tracking_no}, ticket_id=ticket.id,
                 session=session)
