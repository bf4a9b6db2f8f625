"""What the SMS room keeps of a case that retention anonymises (tickets/privacy/retention.py): its texts, the citizen's
SMS replies to its surveys and its webhook deliveries.

The number of every text to the citizen, and of every reply they sent to one of the case's surveys, becomes the case's
token (not a mobile number: nothing is ever sent to it, `phones.is_mobile`); a text to the citizen still waiting is
failed (`anonymised`), never sent. Staff keep their own numbers on the texts sent to them. The numbers found in the
bodies of all of them are masked.
"""
from __future__ import annotations

import sqlalchemy as sa

from tickets.privacy.retention import Batch, holds, mask_columns, replace_numbers

from .models import InboundSms, SmsMessage, SmsStatus
from .subscriptions import WebhookDelivery

ANONYMISED = "anonymised"  # the error code of a text to the citizen that was waiting when its case was anonymised


def anonymise_texts(batch: Batch) -> None:
    session, sms = batch.session, SmsMessage.__table__
    to_citizen = session.execute(sa.select(sms.c.id, sms.c.ticket_id, sms.c.status).where(
        sms.c.ticket_id.in_(batch.ids), sms.c.audience == "citizen")).all()
    batch.counts.texts += len(to_citizen)
    replace_numbers(batch, sms, {row.id: batch.phone_tokens[row.ticket_id] for row in to_citizen})
    waiting = [row.id for row in to_citizen if row.status == SmsStatus.pending.value]
    if batch.write and waiting:
        session.execute(sa.update(sms).where(sms.c.id.in_(waiting), sms.c.status == SmsStatus.pending.value)
                        .values(status=SmsStatus.failed.value, error_code=ANONYMISED,
                                error_message="the case was anonymised"))
    mask_columns(batch, sms, ("body",), sms.c.ticket_id.in_(batch.ids))
    inbound = InboundSms.__table__
    if batch.survey_tokens:
        replies = dict(session.execute(sa.select(inbound.c.id, inbound.c.survey_id).where(
            inbound.c.survey_id.in_(list(batch.survey_tokens)))).all())
        batch.counts.texts += len(replies)
        replace_numbers(batch, inbound, {i: batch.survey_tokens[survey_id] for i, survey_id in replies.items()})
        mask_columns(batch, inbound, ("body",), inbound.c.survey_id.in_(list(batch.survey_tokens)))
    deliveries = WebhookDelivery.__table__
    mask_columns(batch, deliveries, ("body",), deliveries.c.ticket_id.in_(batch.ids))


def register(app) -> None:
    holds(app, anonymise_texts)
