"""Survey replies by SMS: apply a clear rating to the newest open survey of the number, ask once when unclear."""
from __future__ import annotations

import sqlalchemy as sa

from tickets import clock, workflow
from tickets.errors import BanjieError
from tickets.labels import SCORE_LABELS, label
from tickets.models import Survey, Ticket, is_bad_rating
from tickets.privacy import crypto

from .models import InboundSms, SmsOptOut
from .operations import send_sms
from .replies import parse_reply

RECENTLY_CLOSED_DAYS = 30


def _newest(session, phone, *conditions) -> Survey | None:
    return session.scalar(sa.select(Survey).where(Survey.phone_index == crypto.phone_index(phone), *conditions)
                          .order_by(Survey.opened_at.desc(), Survey.id.desc()).limit(1))


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
    survey = _newest(session, phone, Survey.rated_at.is_(None), Survey.closes_at > now)
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
    try:
        workflow.rate(session, ticket, reply.score, channel="sms")
    except BanjieError:
        inbound.outcome = "closed"  # the ticket moved on (e.g. reopened by a web rating a moment ago)
        return inbound
    inbound.outcome, inbound.score = "rated", reply.score
    template = "survey_thanks_bad" if is_bad_rating(reply.score) else "survey_thanks"
    send_sms(phone, template, {**context, "score_label": label(SCORE_LABELS, reply.score)}, ticket_id=ticket.id,
             session=session)
    return inbound


def _no_open_survey(session, inbound: InboundSms, now) -> None:
    """A reply after the survey closed is told so once per survey; a number we never surveyed gets nothing."""
    from datetime import timedelta

    last = _newest(session, inbound.phone, Survey.opened_at > now - timedelta(days=RECENTLY_CLOSED_DAYS))
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
