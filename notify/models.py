"""Tables of the SMS room: the outbox, admins' template texts, opted-out numbers and every inbound reply."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tickets.db import UTCDateTime, utcnow
from tickets.models import Event
from tickets.privacy.crypto import Encrypted, EncryptedText, PhoneIndexed, indexed


def _time(**kwargs):
    return Field(sa_type=UTCDateTime, **kwargs)


class SmsStatus(str, enum.Enum):
    pending = "pending"          # written; waits for its commit, the end of quiet hours, or a retry
    sending = "sending"          # claimed by a worker: the provider call may be in flight
    sent = "sent"                # the provider accepted it (provider_sid is set)
    delivered = "delivered"      # the provider's status callback says the phone has it
    undelivered = "undelivered"  # the carrier could not deliver it
    failed = "failed"            # permanent: invalid number, opted out, or out of attempts; never retried
    recorded = "recorded"        # the outbox backend: kept for the console, not sent


FINAL = frozenset({SmsStatus.sent, SmsStatus.delivered, SmsStatus.undelivered, SmsStatus.failed, SmsStatus.recorded})


class SmsMessage(SQLModel, table=True):
    """One text message, written in the transaction that caused it and sent by a worker after the commit."""

    __tablename__ = "sms_message"
    __table_args__ = (sa.Index("ix_sms_message_status_not_before", "status", "not_before"),
                      sa.Index("ix_sms_message_created", "created_at", "id"))  # the SMS log, newest first

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    # encrypted at rest (citizens' and staff numbers alike); SQL compares `phone_index` (tickets/privacy/crypto.py)
    phone: str = Field(sa_type=Encrypted("sms_message.phone"))
    phone_index: Optional[str] = Field(default=None, sa_type=sa.String(64), index=True)
    audience: str = Field(sa_type=sa.String(16))  # citizen | handler | supervisor | leader | office
    template: str = Field(sa_type=sa.String(40), index=True)
    # encrypted at rest too: a receipt or a new code carries the query code, which (with the tracking number) opens
    # the citizen's case and its copy with the whole name and number; nothing in SQL reads the body
    body: str = Field(sa_type=EncryptedText("sms_message.body"))
    status: SmsStatus = Field(default=SmsStatus.pending, sa_type=sa.String(16))
    backend: Optional[str] = Field(default=None, sa_type=sa.String(16))
    attempts: int = Field(default=0)
    not_before: datetime = _time(default_factory=utcnow)
    first_claimed_at: Optional[datetime] = _time(default=None)
    claimed_at: Optional[datetime] = _time(default=None)
    provider_sid: Optional[str] = Field(default=None, sa_type=sa.String(64), unique=True)
    error_code: Optional[str] = Field(default=None, sa_type=sa.String(32))
    error_message: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _time(default_factory=utcnow)
    sent_at: Optional[datetime] = _time(default=None)
    status_at: Optional[datetime] = _time(default=None)
    resent_from_id: Optional[int] = Field(default=None, foreign_key="sms_message.id")
    # Why it was written: the case event whose reaction wrote it (a filing, a transfer, a closure, a rating,
    # a reminder), or the ladder step that fired it. Neither: a reply to the citizen's text, or no case at all.
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")
    step_id: Optional[int] = Field(default=None, foreign_key="escalation_step.id")


class SmsTemplate(SQLModel, table=True):
    """An administrator's wording of one message; a key without a row uses the default text."""

    __tablename__ = "sms_template"

    key: str = Field(sa_type=sa.String(40), primary_key=True)
    body: str = Field(sa_type=sa.Text)
    updated_at: datetime = _time(default_factory=utcnow)
    updated_by: Optional[int] = Field(default=None, foreign_key="user_account.id")


class SmsOptOut(SQLModel, table=True):
    """A number that answered TD/退订: it gets no more satisfaction surveys."""

    __tablename__ = "sms_opt_out"

    # the number's blind index (a number given is stored and looked up as its HMAC); `number` keeps it encrypted, so
    # that a new index key can index it again (`flask privacy rotate-key --reindex`)
    phone: str = Field(sa_type=PhoneIndexed, primary_key=True)
    number: Optional[str] = Field(default=None, sa_type=Encrypted("sms_opt_out.number"))
    opted_out_at: datetime = _time(default_factory=utcnow)
    source: str = Field(default="sms", sa_type=sa.String(16))


class InboundSms(SQLModel, table=True):
    """Every text a citizen sent us, with what it did. The provider's id makes a re-delivered webhook harmless."""

    __tablename__ = "sms_inbound"

    id: Optional[int] = Field(default=None, primary_key=True)
    provider_sid: str = Field(sa_type=sa.String(64), unique=True)
    phone: str = Field(sa_type=Encrypted("sms_inbound.phone"))  # encrypted at rest (tickets/privacy/crypto.py)
    body: str = Field(sa_type=sa.Text)
    received_at: datetime = _time(default_factory=utcnow)
    outcome: str = Field(sa_type=sa.String(16))  # rated | unclear | opt_out | no_survey | closed | conflict | unknown
    survey_id: Optional[int] = Field(default=None, foreign_key="survey.id", index=True)
    score: Optional[int] = Field(default=None)


# The event a text was written for, set by `send_sms(cause=...)` before the event has its id: the flush writes
# the event first and fills in `event_id`. Never loaded: the case page reads `event_id`.
SmsMessage.cause = sa.orm.relationship(Event, lazy="raise")

indexed(SmsMessage, ("phone", "phone_index", "phone"))  # the blind index follows the number (tickets/privacy/crypto.py)
