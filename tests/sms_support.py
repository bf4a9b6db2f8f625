"""Helpers for SMS tests: a Twilio test server wired to an app, the app served over HTTP for callbacks,
and an in-process Dramatiq worker."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import dramatiq
import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from notify.models import SmsMessage
from tickets.broker import broker as broker_of
from tests.browser import closing
from tests.helpers import stop_worker
from tests.twilio_server import TwilioTestServer
from tickets.db import db

ACCOUNT_SID = "AC" + "b2" * 16
AUTH_TOKEN = "sms-test-auth-token"
SENDER = "+15005550006"


def twilio_config(server, **extra) -> dict:
    return {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": SENDER, "TWILIO_API_BASE": server.url, "SMS_QUIET_HOURS": "",
            "SMS_RATE_PER_SECOND": 0, **extra}


@contextmanager
def served(app):
    """The app on a free local port (Twilio's callbacks need a real URL); yields the base URL."""
    server = make_server("127.0.0.1", 0, closing(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def drain(app, timeout: float = 30.0) -> None:
    """Run a worker until the SMS queue and its delay queue are empty (retries with their real backoff);
    an actor that failed for good re-raises here."""
    run_queue(broker_of(app), "sms", timeout)


def run_queue(broker, queue: str, timeout: float = 30.0) -> None:
    """A dramatiq worker on `broker` until `queue` (and its delay queue) is empty; a job that failed for good
    re-raises here."""
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        broker.join(queue, timeout=int(timeout * 1000), fail_fast=True)
        worker.join()
    finally:
        stop_worker(worker)


@pytest.fixture
def twilio():
    """A Twilio-compatible test server for the app's SMS backend (see twilio_config)."""
    with TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN, callback_delay=0.01) as server:
        yield server


def messages(app, **where) -> list[SmsMessage]:
    with app.app_context():
        query = sa.select(SmsMessage).order_by(SmsMessage.id)
        for name, value in where.items():
            query = query.where(getattr(SmsMessage, name) == value)
        return list(db.session.scalars(query))
