"""Where an outbox row goes: `outbox` keeps it for the console, `twilio` sends it with the official SDK.

A backend answers `send(message)` with the provider's id, or raises `PermanentFailure` (never retry)
or `TransientFailure` (retry later; `maybe_sent` when the provider may have accepted it before the
connection broke, so the retry must look before it sends again). `find_sent(message)` is that look.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from tickets.personal import mask_text

from .state import BACKEND

# Twilio error codes that no retry can fix (https://www.twilio.com/docs/api/errors).
PERMANENT_TWILIO_CODES = {
    21211: "invalid_number",      # invalid 'To' phone number
    21408: "region_disabled",     # permission to send to this region is not enabled
    21610: "opted_out",           # the recipient replied STOP (unsubscribed)
    21612: "unreachable",         # the 'To' number cannot be reached with this 'From'
    21614: "not_mobile",          # 'To' is not a valid mobile number
    21606: "bad_sender",          # the 'From' number cannot send SMS
}


@dataclass
class DeliveryFailure(Exception):
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class PermanentFailure(DeliveryFailure):
    pass


@dataclass
class TransientFailure(DeliveryFailure):
    maybe_sent: bool = False
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


# The SDK logs every request at INFO, query string included (find_sent's To=+86...): numbers must never
# reach the logs, and a worker logs at INFO. The SDK logs nothing above INFO, so this silences it.
_SDK_LOG = logging.getLogger("banjie.sms.twilio_sdk")
_SDK_LOG.setLevel(logging.WARNING)


class OutboxBackend:
    """Records instead of sending: the default, so a laptop or a demo never texts anyone."""

    name = "outbox"
    final_status = "recorded"

    def send(self, message) -> str:
        return f"outbox-{message.id}"

    def find_sent(self, message) -> str | None:
        return None

    def close(self) -> None:
        return None


class ReservedRangeBackend(OutboxBackend):
    """What a text to a reserved test number gets, whatever SMS_BACKEND says: recorded, never handed to a provider."""

    name = "test_number"

    def send(self, message) -> str:
        return f"test-number-{message.id}"


TEST_NUMBER_BACKEND = ReservedRangeBackend()


class TwilioBackend:
    name = "twilio"
    final_status = "sent"

    def __init__(self, config):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        missing = [k for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not config.get(k)]
        if not (config.get("TWILIO_FROM_NUMBER") or config.get("TWILIO_MESSAGING_SERVICE_SID")):
            missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            raise RuntimeError(f"SMS_BACKEND=twilio needs {', '.join(missing)}")
        self.client = Client(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                             http_client=TwilioHttpClient(timeout=config["TWILIO_TIMEOUT_SECONDS"],
                                                          logger=_SDK_LOG))
        self.client.api.base_url = config["TWILIO_API_BASE"]
        self.sender = ({"messaging_service_sid": config["TWILIO_MESSAGING_SERVICE_SID"]}
                       if config.get("TWILIO_MESSAGING_SERVICE_SID") else {"from_": config["TWILIO_FROM_NUMBER"]})
        self.status_callback = config["PUBLIC_BASE_URL"] + "/sms/status"

    def send(self, message) -> str:
        import requests
        from twilio.base.exceptions import TwilioRestException

        try:
            # The row's id rides on the callback URL: a delivery report can arrive before we stored the sid.
            created = self.client.messages.create(to=message.phone, body=message.body,
                                                  status_callback=f"{self.status_callback}?m={message.id}",
                                                  **self.sender)
        except TwilioRestException as error:
            if error.status == 429 or error.status >= 500:
                raise TransientFailure(str(error.code or error.status), _short(error.msg)) from None
            code = PERMANENT_TWILIO_CODES.get(error.code, str(error.code or error.status))
            raise PermanentFailure(code, _short(error.msg)) from None
        except requests.exceptions.ConnectionError as error:
            # Refused before the request was written: nothing reached the provider.
            maybe = not isinstance(error, requests.exceptions.ConnectTimeout) and "refused" not in str(error).lower()
            raise TransientFailure("connection", _short(str(error)), maybe_sent=maybe) from None
        except requests.exceptions.Timeout as error:
            raise TransientFailure("timeout", _short(str(error)), maybe_sent=True) from None
        return created.sid

    def find_sent(self, message) -> str | None:
        """The provider's id of this row's text if an earlier attempt got through; None if none did.

        The provider's list of messages to the number since the first attempt, matched on the body; a
        sid that another row already owns is not ours.
        """
        from notify.models import SmsMessage
        from tickets.db import db

        import requests
        from twilio.base.exceptions import TwilioException

        since = message.first_claimed_at - timedelta(minutes=1)
        try:
            candidates = self.client.messages.list(to=message.phone, date_sent_after=since, limit=200)
        except (TwilioException, requests.exceptions.RequestException) as error:  # the SDK's page errors included
            # Not knowing whether the earlier attempt got through is no answer: look again later, never send blind.
            raise TransientFailure("lookup", _short(str(error)), maybe_sent=True) from None
        for candidate in candidates:
            if candidate.body != message.body:
                continue
            owner = db.session.scalar(sa.select(SmsMessage.id).where(SmsMessage.provider_sid == candidate.sid))
            if owner is None or owner == message.id:
                return candidate.sid
        return None

    def close(self) -> None:
        self.client.http_client.session.close() if self.client.http_client.session else None


def _short(text: str, limit: int = 300) -> str:
    """A provider's or the network's error as kept with the text and shown in the console: one line, cut, and the
    numbers in it masked (Twilio's 21211 names the 'To' number; a failed look-up's error carries its URL, To=...)."""
    text = mask_text(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def backend_for(phone: str):
    """Who takes a text to `phone`: the test-number recorder for the reserved range, else the configured backend."""
    from .test_numbers import is_test_number, parse_test_numbers

    if is_test_number(phone, parse_test_numbers(current_app.config["SMS_TEST_NUMBERS"])):
        return TEST_NUMBER_BACKEND
    return backend()


def backend():
    """The configured backend of this app, built once."""
    app = current_app
    cached = BACKEND.find(app)
    if cached is None:
        name = app.config["SMS_BACKEND"]
        if name == "outbox":
            cached = OutboxBackend()
        elif name == "twilio":
            cached = TwilioBackend(app.config)
        else:
            raise RuntimeError(f"SMS_BACKEND must be outbox or twilio, not {name!r}")
        BACKEND.set(app, cached)
    return cached
