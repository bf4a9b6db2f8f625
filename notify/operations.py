"""The business actions of the SMS room. They add rows to the caller's session and never commit."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from babel import Locale
from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from tickets import clock
from tickets.phones import is_mobile
from tickets.db import db, new_row, utcnow
from tickets.errors import ValidationFailed
from tickets.models import Ticket

from .messages import KINDS, TemplateProblem, check_text, compose, default_text
from .models import SmsMessage, SmsOptOut, SmsStatus, SmsTemplate
from .quiet import parse_quiet_hours, quiet_until
from .retention import ANONYMISED
from .state import TEMPLATES


OPTED_OUT_CODE = "opted_out"
OPTED_OUT = {"status": SmsStatus.failed.value, "error_code": OPTED_OUT_CODE,
             "error_message": "the number opted out of surveys (TD/退订)"}
# Every text is Chinese, whatever the language of the request or the person that caused it (parsed once: each text
# switches to it, and `force_locale` would parse a name again every time).
SMS_LOCALE = Locale.parse("zh_CN")


# Administrators' wordings, read in one query and kept briefly: every outbox row would otherwise read its
# template. An edit in this process is seen at once; one made in another process within TEMPLATE_TTL.
TEMPLATE_TTL = timedelta(seconds=30)


def forget_templates() -> None:
    TEMPLATES.clear()


def custom_text(session, key: str) -> str | None:
    """What an administrator made of this message, if anything."""
    cached = TEMPLATES.find()
    now = utcnow()
    if cached is None or now - cached[0] > TEMPLATE_TTL:
        cached = (now, dict(session.execute(sa.select(SmsTemplate.key, SmsTemplate.body)).all()))
        TEMPLATES.set(current_app, cached)
    return cached[1].get(key) or None


def template_text(session, key: str) -> str:
    """What an administrator made of this message, or the default wording."""
    return custom_text(session, key) or default_text(key)


def save_template(session, key: str, body: str, *, by: int | None, now) -> SmsTemplate:
    """An administrator's wording of the message `key` (one of `KINDS`), checked by rendering it with sample
    values (`check_text`): ValidationFailed (field `body`) when it cannot make a message. After the commit,
    call `forget_templates()`."""
    try:
        check_text(key, body)
    except TemplateProblem as problem:
        raise ValidationFailed(fields={"body": str(problem)}) from None
    row = session.get(SmsTemplate, key) or SmsTemplate(key=key, body="")
    row.body, row.updated_at, row.updated_by = body.strip(), now, by
    session.add(row)
    return row


def reset_template(session, key: str) -> bool:
    """The message `key` uses the default wording again; False when it already did. After the commit, call
    `forget_templates()`."""
    row = session.get(SmsTemplate, key)
    if row is None:
        return False
    session.delete(row)
    return True


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


def in_history(session) -> bool:
    """Whether this session replays the past (`writing_history`): nothing it writes is ever sent (texts, webhooks)."""
    return bool(session.info.get(_HISTORY))


def is_opted_out(session, phone: str) -> bool:
    return session.get(SmsOptOut, phone) is not None


def hold_until(now):
    """The end of the quiet hours when `now` lies inside them, else None."""
    config = current_app.config
    return quiet_until(now, parse_quiet_hours(config["SMS_QUIET_HOURS"]), clock.local_tz())


def held_until(tracking_no: str, template: str) -> datetime | None:
    """When the case's text `template` waiting for the quiet hours to end will go, or None (sent, or not held): the
    citizen's confirmation page says when the receipt will arrive."""
    waiting = db.session.scalar(
        sa.select(SmsMessage.not_before).join(Ticket, Ticket.id == SmsMessage.ticket_id)
        .where(Ticket.tracking_no == tracking_no, SmsMessage.template == template,
               SmsMessage.status == SmsStatus.pending.value).order_by(SmsMessage.id.desc()).limit(1))
    return waiting if waiting is not None and waiting > clock.now() else None


def sms_label(mapping, code):
    """A label (`tickets.labels`) as a text's variable: left untranslated, so that `send_sms` renders it in Chinese
    whatever the request's language (`label()` would translate it now, into English for an English-speaking caller)."""
    return mapping.get(code, "" if code is None else str(code))


def _in_chinese(template: str, custom: str | None, context: dict) -> str:
    """The text of the message, rendered in SMS_LOCALE: a label passed untranslated (`sms_label`) is read in Chinese."""
    with force_locale(SMS_LOCALE):
        values = {name: str(value) if isinstance(value, LazyString) else value for name, value in context.items()}
        return compose(template, custom, values)


def send_sms(phone: str | None, template: str, context: dict, *, ticket_id: int | None = None,
             audience: str | None = None, session=None, cause=None, step_id: int | None = None) -> SmsMessage | None:
    """Write one text message to the outbox in the caller's transaction; a worker sends it after the commit.

    `phone` is E.164 (as stored); a missing number, or one no text can reach (a citizen's landline: anything but a
    mainland mobile number, `phones.is_mobile`), writes nothing and returns None: the one place that rule lives, so
    no text to a landline is ever queued, sent or logged as failed. A survey message to a
    number that opted out is written as failed (`opted_out`), so the console shows why it never went.
    During quiet hours the message waits until they end, unless the citizen is waiting for it (`immediate`). Every text
    is rendered in Chinese (SMS_LOCALE), whatever the request's language: pass a label with `sms_label`, untranslated,
    and it is read in Chinese here. An administrator's wording that cannot make this
    message gives way to the default (`messages.compose`): a text never stops the action that sends it.
    Inside `writing_history` it is recorded, never sent. `cause` is the case event it is written for, `step_id`
    the ladder step that fires it: the case page shows them as the reason the text went out.
    """
    if not phone or not is_mobile(phone):
        return None
    session = session or db.session
    kind = KINDS[template]
    now = clock.now()
    opted_out = kind.survey and is_opted_out(session, phone)
    message = new_row(
        SmsMessage, ticket_id=ticket_id, phone=phone, audience=audience or kind.audience, template=template,
        body=_in_chinese(template, custom_text(session, template), context), created_at=now,
        not_before=now if kind.immediate else hold_until(now) or now,
        event_id=cause.id if cause is not None else None, step_id=step_id,
        **(OPTED_OUT if opted_out else AS_HISTORY if session.info.get(_HISTORY) else {}),
    )
    if cause is not None and cause.id is None:
        # The event has no id before its flush (an event recorded without one reserved): write it now, so the text
        # names its cause. (A SQLModel object refuses the `cause` relationship's attribute, so it cannot wait.)
        session.flush()
        message.event_id = cause.id
    session.add(message)
    return message


RESENDABLE = frozenset({SmsStatus.failed.value, SmsStatus.undelivered.value})
# Texts that failed because they were never to go: to a number that opted out of surveys, or waiting when the case was
# anonymised (its number is no longer one). Sending them again would undo that decision.
NEVER_TO_GO = frozenset({OPTED_OUT_CODE, ANONYMISED})


def resend_refusal(session, message: SmsMessage):
    """Why the console may not send `message` again, or None when it may: only a failed or undelivered text, not one
    that was never to go (NEVER_TO_GO), and only to what `send_sms` would write to now (a mobile number; for a survey
    text, one that has not opted out since)."""
    if message.status not in RESENDABLE:
        return _l("Only a failed or undelivered message can be sent again.")
    kind = KINDS.get(message.template)
    if (message.error_code in NEVER_TO_GO or not message.phone or not is_mobile(message.phone)
            or (kind is not None and kind.survey and is_opted_out(session, message.phone))):
        return _l("This message cannot be sent again: the number opted out of surveys or can no longer be texted.")
    return None


def resend(session, message: SmsMessage, now) -> SmsMessage:
    """A failed or undelivered text goes out again as a new row (the failed one stays, as history); the worker
    sends it after the commit. ValidationFailed when it may not (`resend_refusal`)."""
    refusal = resend_refusal(session, message)
    if refusal is not None:
        raise ValidationFailed(refusal)
    copy = SmsMessage(ticket_id=message.ticket_id, phone=message.phone, audience=message.audience,
                      template=message.template, body=message.body, created_at=now, not_before=now,
                      resent_from_id=message.id, event_id=message.event_id, step_id=message.step_id)
    session.add(copy)
    session.flush()
    return copy
