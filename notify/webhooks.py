"""Twilio's webhooks (API.md): delivery status callbacks and inbound texts, both signed by Twilio."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from tickets import clock
from tickets.db import db
from tickets.extensions import csrf
from tickets.phones import normalise_mobile
from tickets.validation import ID_MAX

from .models import SmsStatus
from .outbox import record_provider_status
from .survey import handle_inbound

bp = Blueprint("sms", __name__, url_prefix="/sms")
csrf.exempt(bp)  # Twilio cannot carry our CSRF token; its signature is the proof instead
log = logging.getLogger("banjie.sms")

TWILIO_STATUSES = {
    "accepted": None, "scheduled": None, "queued": None, "sending": None,
    "sent": SmsStatus.sent, "delivered": SmsStatus.delivered, "undelivered": SmsStatus.undelivered,
    "failed": SmsStatus.failed, "read": SmsStatus.delivered,
}


def _verify_signature() -> None:
    """403 unless X-Twilio-Signature signs PUBLIC_BASE_URL + this path (and query) with our auth token."""
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    signature = request.headers.get("X-Twilio-Signature", "")
    url = current_app.config["PUBLIC_BASE_URL"] + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8", "replace")
    if not token or not signature or not RequestValidator(token).validate(url, request.form, signature):
        log.warning("refused an unsigned or wrongly signed call to %s", request.path)
        abort(403)


def _twiml() -> Response:
    return Response(str(MessagingResponse()), mimetype="application/xml")


@bp.post("/status")
def status_callback():
    """Twilio's delivery status for a message we sent."""
    _verify_signature()
    sid = request.form.get("MessageSid", "")[:64]
    new = TWILIO_STATUSES.get(request.form.get("MessageStatus", "").lower())
    if sid and new is not None:
        failed = new in (SmsStatus.undelivered, SmsStatus.failed)
        error_code = (request.form.get("ErrorCode") or "")[:32] or None
        row = request.args.get("m", "")
        message_id = int(row) if row.isascii() and row.isdigit() and len(row) < 12 else None
        if message_id is not None and not 1 <= message_id <= ID_MAX:
            message_id = None  # names no row (and is past the database's integers)
        if record_provider_status(sid, new, clock.now(), message_id=message_id,
                                  error_code=error_code if failed else None):
            db.session.commit()
    return _twiml()


@bp.post("/inbound")
def inbound():
    """A text from a citizen: a survey rating, TD/退订, or anything else (recorded, never guessed)."""
    _verify_signature()
    sid = request.form.get("MessageSid", "")[:64]
    phone = normalise_mobile(request.form.get("From", ""))
    if not sid or phone is None:
        return _twiml()  # not a mainland mobile: nothing we can survey
    handle_inbound(db.session, sid=sid, phone=phone, body=request.form.get("Body", ""))
    db.session.commit()
    return _twiml()
