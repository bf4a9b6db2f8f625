"""The business actions of the SMS room. They add rows to the caller's session and never commit."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import current_app

from tickets import clock
from tickets.db import db

from .messages import KINDS, default_text, render_text
from .models import SmsMessage, SmsOptOut, SmsStatus, SmsTemplate
from .quiet import parse_quiet_hours, quiet_until


OPTED_OUT = {"status": SmsStatus.failed.value, "error_code": "opted_out",
             "error_message": "the number opted out of surveys (TD/退订)"}


def template_text(session, key: str) -> str:
    """What an administrator made of this message, or the default wording."""
    row = session.get(SmsTemplate, key)
    return row.body if row is not None else default_text(key)


def is_opted_out(session, phone: str) -> bool:
    return session.get(SmsOptOut, phone) is not None


def hold_until(now):
    """The end of the quiet hours when `now` lies inside them, else None."""
    config = current_app.config
    return quiet_until(now, parse_quiet_hours(config["SMS_QUIET_HOURS"]), ZoneInfo(config["TIMEZONE"]))


def send_sms(phone: str | None, template: str, context: dict, *, ticket_id: int | None = None,
             audience: str | None = None, session=None) -> SmsMessage | None:
    """Write one text message to the outbox in the caller's transaction; a worker sends it after the commit.

    `phone` is E.164 (as stored); a missing number sends nothing and returns None. A survey message to a
    number that opted out is written as failed (`opted_out`), so the console shows why it never went.
    During quiet hours the message waits until they end.
    """
    if not phone:
        return None
    session = session or db.session
    kind = KINDS[template]
    now = clock.now()
    opted_out = kind.survey and is_opted_out(session, phone)
    message = SmsMessage(
        ticket_id=ticket_id, phone=phone, audience=audience or kind.audience, template=template,
        body=render_text(template_text(session, template), context), created_at=now,
        not_before=hold_until(now) or now,
        **(OPTED_OUT if opted_out else {}),
    )
    session.add(message)
    return message
