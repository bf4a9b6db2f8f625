"""Sending webhook deliveries: after the commit, signed, with retries and backoff, recorded attempt by attempt.

A worker claims a delivery with a conditional UPDATE (pending and due, or `sending` whose claim is older than
WEBHOOK_CLAIM_LEASE_SECONDS) and writes its attempt in the same commit, so two workers given the same id cannot both
send it while the claim holds. It then POSTs the stored body with

    Content-Type: application/json
    X-Banjie-Event: <type>            X-Banjie-Delivery: <the delivery's uuid, the payload's id>
    X-Banjie-Timestamp: <unix seconds> X-Banjie-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

A 2xx answer delivers it. Anything else (another status, a redirect, which is never followed, a timeout, a refused
connection) is retried after WEBHOOK_BACKOFF_SECONDS × 2^(attempt − 1), at most WEBHOOK_BACKOFF_MAX_SECONDS, less a
random part of up to half (jitter), until WEBHOOK_MAX_ATTEMPTS; then the delivery fails (re-sendable in the console).

Delivery is at least once with a stable id: a worker killed after the receiver got the request but before the answer
was recorded leaves the delivery `sending`; once the claim lapses the scheduler's re-drive sends it again, with the
same id and body. Receivers drop a delivery id they have already processed. Order is not guaranteed (retries, several
workers): receivers read the event's `at` and the ticket's status.

Nothing here can fail the action that wrote the delivery: it was committed before anything is sent, and enqueueing
after the commit only logs when the broker is away (the re-drive sends it later). Logs name deliveries and
subscriptions by id, never by URL (a URL may carry a token) and never with a secret.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import dramatiq
import requests
import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from tickets import clock
from tickets.db import UTCDateTime, db
from tickets.errors import ValidationFailed

from .state import WEBHOOK_ENQUEUE
from .subscriptions import FINAL, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from .subscriptions import forget_targets, subscriptions_changed

log = logging.getLogger("banjie.webhooks")

PENDING, SENDING = DeliveryStatus.pending.value, DeliveryStatus.sending.value
EXCERPT_CHARACTERS = 1000   # of the receiver's answer kept with each attempt
READ_LIMIT = 64 * 1024      # of the answer read at all; the rest is left unread (and the connection closed)
USER_AGENT = "Banjie-Webhooks/1"
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RetryLater(dramatiq.Retry):
    """Raised to let Dramatiq try the delivery again after its backoff (not logged as an error)."""


def check_settings(config) -> None:
    """Settings that cannot work stop start-up with a message saying which."""
    for name in ("WEBHOOK_TIMEOUT_SECONDS", "WEBHOOK_BACKOFF_SECONDS", "WEBHOOK_BACKOFF_MAX_SECONDS",
                 "WEBHOOK_CLAIM_LEASE_SECONDS", "WEBHOOK_CACHE_SECONDS"):
        if not math.isfinite(config[name]) or config[name] < 0:
            raise ValueError(f"{name} must be a number of seconds, not {config[name]!r}")
    if config["WEBHOOK_TIMEOUT_SECONDS"] <= 0:
        raise ValueError("WEBHOOK_TIMEOUT_SECONDS must be more than 0")
    if config["WEBHOOK_MAX_ATTEMPTS"] < 1:
        raise ValueError("WEBHOOK_MAX_ATTEMPTS must be at least 1")
    if config["WEBHOOK_BACKOFF_SECONDS"] < 0 or config["WEBHOOK_BACKOFF_MAX_SECONDS"] < config["WEBHOOK_BACKOFF_SECONDS"]:
        raise ValueError("WEBHOOK_BACKOFF_SECONDS must be 0 or more and WEBHOOK_BACKOFF_MAX_SECONDS at least as much")
    if config["WEBHOOK_CLAIM_LEASE_SECONDS"] < 3 * config["WEBHOOK_TIMEOUT_SECONDS"]:
        # a request may take its connect and read timeouts and more: a claim must outlast it, or a slow request
        # would be sent again by another worker while it is still in flight
        raise ValueError("WEBHOOK_CLAIM_LEASE_SECONDS must be at least 3 times WEBHOOK_TIMEOUT_SECONDS")


# --- the signature ---------------------------------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256, keyed with the secret, of "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(delivery: WebhookDelivery, secret: str, body: bytes, timestamp: int) -> dict:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Banjie-Event": delivery.event_type, "X-Banjie-Delivery": delivery.uuid,
            "X-Banjie-Timestamp": str(timestamp), "X-Banjie-Signature": signature(secret, timestamp, body)}


# --- one request -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int


_HTTP = threading.local()


def _http() -> requests.Session:
    """One connection pool per worker thread (keep-alive to the receivers); no proxies or certificates from the
    environment: the settings are Banjie's only configuration."""
    session = getattr(_HTTP, "session", None)
    if session is None:
        session = _HTTP.session = requests.Session()
        session.trust_env = False
    return session


def _clean(text: str, limit: int) -> str:
    return _UNSTORABLE.sub("\ufffd", text)[:limit]


def _excerpt(response: requests.Response) -> str:
    raw = b""
    for chunk in response.iter_content(8192):
        raw += chunk
        if len(raw) >= READ_LIMIT:
            break
    head = raw[:EXCERPT_CHARACTERS * 4]
    try:
        text = head.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know, or a codec that is no text encoding (hex, base64)
        text = head.decode("utf-8", errors="replace")
    return _clean(text, EXCERPT_CHARACTERS)


def post(url: str, body: bytes, request_headers: dict, timeout: float) -> Outcome:
    """POST once; never raises. Redirects are not followed (a 3xx is a failure that names where it pointed), and
    only http(s) URLs are requested at all."""
    started = time.monotonic()

    def done(delivered=False, status=None, excerpt=None, error=None) -> Outcome:
        return Outcome(delivered, status, excerpt, error and _clean(error, 200),
                       int((time.monotonic() - started) * 1000))

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return done(error="refused: only http and https addresses are requested")
    try:
        with _http().post(url, data=body, headers=request_headers, timeout=(timeout, timeout),
                          allow_redirects=False, stream=True) as response:
            excerpt = _excerpt(response)
            status = response.status_code
            if 200 <= status < 300:
                return done(True, status, excerpt)
            if response.is_redirect or response.is_permanent_redirect:
                where = response.headers.get("Location", "")[:120]
                return done(False, status, excerpt, f"HTTP {status}: redirect to {where!r} not followed")
            return done(False, status, excerpt, f"HTTP {status}")
    except requests.Timeout:
        return done(error=f"timed out after {timeout:g} s")
    except requests.ConnectionError as error:
        return done(error=f"connection failed: {_reason(error)}")
    except requests.RequestException as error:
        return done(error=f"request failed: {type(error).__name__}")


def _reason(error: Exception) -> str:
    """The innermost cause's name and words (no URL: urllib3 puts it in its messages)."""
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    words = str(cause).split(": ")[-1] if str(cause) else ""
    return f"{type(cause).__name__}: {words}"[:150] if "://" not in words else type(cause).__name__


# --- a delivery ------------------------------------------------------------------------------------------------------
# The statements of sending, built once (a worker runs them for every delivery): on the tables, with parameters.

_D, _S, _A = WebhookDelivery.__table__, WebhookSubscription.__table__, WebhookAttempt.__table__
_NOW = sa.bindparam("now", type_=UTCDateTime())


def _claimable(now, lapsed):
    """Due, and pending or held by a claim older than the lease (`lapsed`: now less WEBHOOK_CLAIM_LEASE_SECONDS)."""
    return sa.and_(_D.c.not_before <= now,
                   sa.or_(_D.c.status == PENDING,
                          sa.and_(_D.c.status == SENDING, sa.or_(_D.c.claimed_at.is_(None), _D.c.claimed_at < lapsed))))


_CLAIMABLE = _claimable(_NOW, sa.bindparam("lapsed", type_=UTCDateTime()))
_TARGET = (sa.select(_D.c.status, _D.c.not_before, _D.c.uuid, _D.c.event_type, _D.c.body, _S.c.active, _S.c.url,
                     _S.c.secret)
           .join(_S, _S.c.id == _D.c.subscription_id).where(_D.c.id == sa.bindparam("delivery")))
_CLAIM = (sa.update(_D).where(_D.c.id == sa.bindparam("delivery"), _CLAIMABLE)
          .values(status=SENDING, claimed_at=_NOW, attempts=_D.c.attempts + 1).returning(_D.c.attempts))
_DISABLED = (sa.update(_D).where(_D.c.id == sa.bindparam("delivery"), _CLAIMABLE)
             .values(status=DeliveryStatus.failed.value, claimed_at=None, last_error="the subscription is disabled"))
_START = sa.insert(_A).values(delivery_id=sa.bindparam("delivery"), started_at=_NOW).returning(_A.c.id)
_ANSWER = (sa.update(_A).where(_A.c.id == sa.bindparam("attempt"))
           .values(duration_ms=sa.bindparam("v_duration"), status_code=sa.bindparam("v_code"),
                   response_excerpt=sa.bindparam("v_excerpt"), error=sa.bindparam("v_error")))
# only while the claim is still this worker's: one that lapsed (a request slower than the lease) changes nothing
_OUTCOME = (sa.update(_D).where(_D.c.id == sa.bindparam("delivery"), _D.c.status == SENDING,
                                _D.c.claimed_at == sa.bindparam("claimed", type_=UTCDateTime()))
            .values(status=sa.bindparam("v_status"), claimed_at=None, last_status_code=sa.bindparam("v_code"),
                    last_error=sa.bindparam("v_error"), delivered_at=sa.bindparam("v_delivered", type_=UTCDateTime()),
                    not_before=sa.func.coalesce(sa.bindparam("v_not_before", type_=UTCDateTime()), _D.c.not_before)))


def _lapsed(now):
    return now - timedelta(seconds=current_app.config["WEBHOOK_CLAIM_LEASE_SECONDS"])


def backoff(attempts: int, config) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubled each time up to the cap, then between half
    of it and all of it (so receivers coming back are not hit by every delivery at once)."""
    delay = min(config["WEBHOOK_BACKOFF_SECONDS"] * 2 ** max(attempts - 1, 0), config["WEBHOOK_BACKOFF_MAX_SECONDS"])
    return delay * random.uniform(0.5, 1.0)


def deliver(delivery_id: int) -> str:
    """Send one delivery if it is due and nobody else has it; what happened, as one word. RetryLater when it failed
    and has attempts left (Dramatiq sends the message again after the backoff)."""
    session = db.session
    config = current_app.config
    connection = session.connection()
    # One read of all that sending takes (the body and the subscription's address and secret), in the transaction the
    # claim then commits: a delivery costs two commits, the claim's and the outcome's.
    target = connection.execute(_TARGET, {"delivery": delivery_id}).one_or_none()
    if target is None or target.status in FINAL:
        session.rollback()
        return "done"
    now = clock.now()
    if target.not_before > now:
        session.rollback()
        raise RetryLater("not due yet", delay=int((target.not_before - now).total_seconds() * 1000) + 10)
    where = {"delivery": delivery_id, "now": now, "lapsed": _lapsed(now)}
    if not target.active:
        connection.execute(_DISABLED, where)
        session.commit()
        return "disabled"
    claimed = connection.execute(_CLAIM, where).scalar_one_or_none()
    if claimed is None:
        session.rollback()
        return "taken"
    attempt_id = connection.execute(_START, {"delivery": delivery_id, "now": now}).scalar_one()
    session.commit()

    body = target.body.encode("utf-8")
    outcome = post(target.url, body, headers(target, target.secret, body, int(time.time())),
                   config["WEBHOOK_TIMEOUT_SECONDS"])
    return _record(delivery_id, attempt_id, now, claimed, outcome)


def _record(delivery_id: int, attempt_id: int, claimed_at, attempts: int, outcome: Outcome) -> str:
    """Store the attempt's answer, and the delivery's new state if the claim is still this worker's."""
    session = db.session
    config = current_app.config
    now = clock.now()
    connection = session.connection()
    answer = {"v_code": outcome.status_code, "v_error": outcome.error}
    connection.execute(_ANSWER, {"attempt": attempt_id, "v_duration": outcome.duration_ms, "v_excerpt": outcome.excerpt,
                                 **answer})
    delay = None
    if outcome.delivered:
        result, state = "delivered", {"v_status": DeliveryStatus.delivered.value, "v_delivered": now,
                                      "v_not_before": None}
    elif attempts >= config["WEBHOOK_MAX_ATTEMPTS"]:
        result, state = "failed", {"v_status": DeliveryStatus.failed.value, "v_delivered": None, "v_not_before": None}
    else:
        delay = backoff(attempts, config)
        result, state = "retry", {"v_status": PENDING, "v_delivered": None,
                                  "v_not_before": now + timedelta(seconds=delay)}
    updated = connection.execute(_OUTCOME, {"delivery": delivery_id, "claimed": claimed_at, **answer, **state}).rowcount
    session.commit()
    if updated != 1:
        log.warning("webhook delivery %s: the claim lapsed during the request; the answer is kept with the attempt",
                    delivery_id)
        return "lapsed"
    # the log says what happened in a few words: a status code, or the connection's error (never where a redirect went)
    reason = f"HTTP {outcome.status_code}" if outcome.status_code else outcome.error
    if result == "failed":
        log.warning("webhook delivery %s failed after %s attempts (%s)", delivery_id, attempts, reason)
    elif result == "retry":
        log.info("webhook delivery %s: %s; attempt %s in %.1f s", delivery_id, reason, attempts + 1, delay)
        raise RetryLater(reason or "failed", delay=int(delay * 1000) + 10)
    return result


def redrive(now, *, grace_seconds: float = 30, batch: int = 1000) -> list[int]:
    """Ids of deliveries that should have gone by now and that no worker holds: the scheduler enqueues them again.

    Covers a broker that was down at commit time, retries lost with a broker restart, and a worker killed
    mid-request (its claim lapses after WEBHOOK_CLAIM_LEASE_SECONDS)."""
    due = now - timedelta(seconds=grace_seconds)
    return list(db.session.scalars(
        sa.select(_D.c.id).where(_claimable(now, _lapsed(now)), _D.c.not_before <= due)
        .order_by(_D.c.not_before, _D.c.id).limit(batch)))


def backlog(session, now) -> tuple[int, float | None]:
    """(deliveries due and not delivered, seconds the oldest has waited since it was due, or None), for a readiness check
    or a gauge beside the SMS outbox's (notify/monitoring.py). Deliveries waiting out a backoff are not due: a receiver
    that is down does not count against Banjie, workers that do not work do."""
    count, oldest = session.execute(
        sa.select(sa.func.count(), sa.func.min(WebhookDelivery.not_before))
        .where(WebhookDelivery.status.in_((PENDING, SENDING)), WebhookDelivery.not_before <= now)).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite's min() comes back as a plain value
        oldest = UTCDateTime().process_result_value(oldest, session.get_bind().dialect)
    return count, None if oldest is None else max(0.0, (now - oldest).total_seconds())


def resend(session, delivery: WebhookDelivery, *, by: int | None, now: datetime) -> None:
    """Queue a delivery again: the same id and body, a new attempt after the commit (a delivered or failed one starts a
    new round of WEBHOOK_MAX_ATTEMPTS; one waiting for its next attempt is sent now). ValidationFailed while a worker is
    sending it, or while its subscription is disabled."""
    subscription = session.get(WebhookSubscription, delivery.subscription_id)
    if not subscription.active:
        raise ValidationFailed(_l("The subscription is disabled: enable it before sending again."))
    if delivery.status == DeliveryStatus.sending.value:
        raise ValidationFailed(_l("A worker is sending this delivery right now."))
    if delivery.status in FINAL:
        delivery.attempts, delivery.delivered_at = 0, None
    delivery.status, delivery.not_before, delivery.claimed_at = DeliveryStatus.pending.value, now, None
    delivery.resent_at, delivery.resent_by = now, by
    queue_after_commit(session, delivery)


# --- enqueue after the commit ------------------------------------------------------------------------------------------

_KEY = "banjie.webhooks_to_send"


def queue_after_commit(session, delivery: WebhookDelivery) -> None:
    """Hand this delivery to a worker once the transaction commits (a re-send; new rows are found by themselves)."""
    session.info.setdefault(_KEY, []).append(delivery)


def not_enqueued(session) -> None:
    """The deliveries this transaction wrote so far are sent by the caller itself (`flask webhooks test --now`)."""
    session.info.pop(_KEY, None)


def _new_row(session, instance) -> None:
    if isinstance(instance, WebhookDelivery):
        queue_after_commit(session, instance)


def _after_commit(session) -> None:
    if subscriptions_changed(session):
        forget_targets()
    deliveries = session.info.pop(_KEY, None)
    if not deliveries:
        return
    enqueue = WEBHOOK_ENQUEUE.get()
    for delivery in deliveries:
        if delivery.id is None:
            continue
        try:
            enqueue(delivery.id)
        except Exception:  # a broker outage loses nothing: the scheduler re-drives the row
            log.warning("could not enqueue webhook delivery %s; the re-drive will send it", delivery.id, exc_info=True)


def _after_rollback(session) -> None:
    session.info.pop(_KEY, None)
    subscriptions_changed(session)


def install_session_hooks(session_class) -> None:
    """Enqueue the deliveries a transaction wrote once it commits (idempotent)."""
    if sa.event.contains(session_class, "after_commit", _after_commit):
        return
    sa.event.listen(session_class, "transient_to_pending", _new_row)
    sa.event.listen(session_class, "after_commit", _after_commit)
    sa.event.listen(session_class, "after_soft_rollback", lambda session, previous: _after_rollback(session))
