"""The business actions of the SMS room. They add rows to the caller's session and never commit."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from tickets import clock
from tickets.db import db, new_row, utcnow

from .messages import KINDS, compose, default_text
from .models import SmsMessage, SmsOptOut, SmsStatus, SmsTemplate
from .quiet import parse_quiet_hours, quiet_until


OPTED_OUT = {"status": SmsStatus.failed.value, "error_code": "opted_out",
             "error_message": "the number opted out of surveys (TD/退订)"}


# Administrators' wordings, read in one query and kept briefly: every outbox row would otherwise read its
# template. An edit in this process is seen at once; one made in another process within TEMPLATE_TTL.
TEMPLATE_TTL = timedelta(seconds=30)


def forget_templates() -> None:
    current_app.extensions.pop("banjie.sms_templates", None)


def custom_text(session, key: str) -> str | None:
    """What an administrator made of this message, if anything."""
    cached = current_app.extensions.get("banjie.sms_templates")
    now = utcnow()
    if cached is None or now - cached[0] > TEMPLATE_TTL:
        cached = (now, dict(session.execute(sa.select(SmsTemplate.key, SmsTemplate.body)).all()))
        current_app.extensions["banjie.sms_templates"] = cached
    return cached[1].get(key) or None


def template_text(session, key: str) -> str:
    """What an administrator made of this message, or the default wording."""
    return custom_text(session, key) or default_text(key)


# Texts written while a session replays the past (the demo's months of history) are history: kept as they were
# for the console, never enqueued or sent, now or after any restart (only pending rows are ever sent).
_HISTORY = "banjie.sms_history"
HISTORY_BACKEND = "history"
AS_HISTORY = {"status": SmsStatus.recorded.value, "backend": HISTORY_BACKEND}


@contextmanager
def writing_history(session):
    """Every text `send_sms` writes in this session meanwhile is recorded as history and never sent."""
    session.info[_HISTORY] = True
    try:
        yield
    finally:
        session.info.pop(_HISTORY, None)


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
    During quiet hours the message waits until they end. An administrator's wording that cannot make this
    message gives way to the default (`messages.compose`): a text never stops the action that sends it.
    Inside `writing_history` it is recorded, never sent.
    """
    if not phone:
        return None
    session = session or db.session
    kind = KINDS[template]
    now = clock.now()
    opted_out = kind.survey and is_opted_out(session, phone)
    message = new_row(
        SmsMessage, ticket_id=ticket_id, phone=phone, audience=audience or kind.audience, template=template,
        body=compose(template, custom_text(session, template), context), created_at=now,
        not_before=hold_until(now) or now,
        **(OPTED_OUT if opted_out else AS_HISTORY if session.info.get(_HISTORY) else {}),
    )
    session.add(message)
    return message
