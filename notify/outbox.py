"""Sending the outbox: after the commit, once per row, at the configured rate, never during quiet hours.

A row is claimed with a conditional UPDATE (pending, or `sending` whose claim lapsed or was released),
so two workers given the same id cannot both send it. A row left `sending` means an earlier attempt may
have reached the provider (a timeout, or a worker killed mid-request): before sending again the worker
asks the provider whether the text went through, and adopts its id if it did.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import NamedTuple

import dramatiq
import sqlalchemy as sa
from flask import current_app
from prometheus_client import Counter, Histogram

from tickets import clock, telemetry
from tickets.db import db

from .backends import TEST_NUMBER_BACKEND, PermanentFailure, TransientFailure, backend_for
from .messages import KINDS
from .models import FINAL, SmsMessage, SmsStatus
from .operations import OPTED_OUT, hold_until, is_opted_out
from .quiet import ends_quiet_hours, parse_quiet_hours
from .ratelimit import limiter_for
from .state import ENQUEUE, RATE

log = logging.getLogger("banjie.sms")

SMS_QUEUED = Counter("banjie_sms_queued", "Texts written to the outbox to be sent (counted when their transaction "
                     "commits)")
SMS_SENT = Counter("banjie_sms_sent", "Texts handed to a backend for good, by backend (twilio; outbox and test_number "
                   "record without sending)", ["backend"])
SMS_FAILED = Counter("banjie_sms_failed", "Texts that failed for good, by backend", ["backend"])
PROVIDER_SECONDS = Histogram("banjie_sms_provider_duration_seconds", "Time of one send call to the backend, by backend "
                             "and outcome (sent, retry, failed)", ["backend", "outcome"],
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

PENDING, SENDING = SmsStatus.pending.value, SmsStatus.sending.value


class RetryLater(dramatiq.Retry):
    """Raised to let Dramatiq retry the send after the row's backoff (not logged as an error)."""


def _limiter():
    app = current_app
    limiter = RATE.find(app)
    if limiter is None:
        limiter = RATE.set(app, limiter_for(app.config))
    return limiter


def _claimable(now):
    lease = now - timedelta(seconds=current_app.config["SMS_CLAIM_LEASE_SECONDS"])
    return sa.and_(
        SmsMessage.not_before <= now,
        sa.or_(SmsMessage.status == PENDING,
               sa.and_(SmsMessage.status == SENDING,
                       sa.or_(SmsMessage.claimed_at.is_(None), SmsMessage.claimed_at < lease))),
    )


class Hold(NamedTuple):
    until: datetime
    quiet: bool  # held by quiet hours (SMS_QUIET_HOURS); otherwise waiting for a retry after a failed attempt


def held_by_quiet_hours(message: SmsMessage) -> bool:
    """Whether the text's `not_before` is the end of quiet hours: it was (or is) held back for the night."""
    config = current_app.config
    return ends_quiet_hours(message.not_before, parse_quiet_hours(config["SMS_QUIET_HOURS"]), clock.local_tz())


def hold(message: SmsMessage, now: datetime) -> Hold | None:
    """Until when a text that has not gone yet waits, and why; None when it is free to go (or gone)."""
    if message.status not in (PENDING, SENDING) or message.not_before <= now:
        return None
    return Hold(message.not_before, held_by_quiet_hours(message))


def _update(message_id: int, **values) -> None:
    db.session.execute(sa.update(SmsMessage).where(SmsMessage.id == message_id).values(**values))
    db.session.commit()


def _mark_sent(message_id: int, status: str, sid: str) -> None:
    """Store the provider's id; the status only if no delivery report has moved it on already."""
    _update(message_id, provider_sid=sid, sent_at=clock.now(), claimed_at=None, error_code=None, error_message=None,
            status=sa.case((SmsMessage.status.in_((PENDING, SENDING)), status), else_=SmsMessage.status))


def deliver(message_id: int) -> str:
    """Send one outbox row if it is due and nobody else has it; what happened, as one word."""
    session = db.session
    message = session.get(SmsMessage, message_id)
    if message is None or SmsStatus(message.status) in FINAL:
        return "done"
    now = clock.now()
    kind = KINDS.get(message.template)
    if kind is not None and kind.survey and message.status == PENDING and is_opted_out(session, message.phone):
        # the number opted out after the text was written (a survey held for the night, then 退订): it never goes
        db.session.execute(sa.update(SmsMessage).where(SmsMessage.id == message_id, SmsMessage.status == PENDING)
                           .values(status_at=now, **OPTED_OUT))
        db.session.commit()
        return "opted_out"
    held = None if kind is not None and kind.immediate else hold_until(now)  # the citizen waits for it (send_sms)
    if held is not None:
        _update(message_id, not_before=held)
        return "held"
    if message.not_before > now:
        return "later"
    now = clock.now()
    maybe_sent_before = message.status == SENDING
    sender = backend_for(message.phone)  # the one place a text is handed on: the test-number guard sits here
    claimed = session.execute(
        sa.update(SmsMessage).where(SmsMessage.id == message_id, _claimable(now))
        .values(status=SENDING, claimed_at=now, attempts=SmsMessage.attempts + 1, backend=sender.name,
                first_claimed_at=sa.func.coalesce(SmsMessage.first_claimed_at, now))
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if claimed != 1:
        return "taken"
    session.refresh(message)
    if maybe_sent_before:
        try:
            sid = sender.find_sent(message)
        except TransientFailure as failure:  # the provider could not say: the row stays `sending` for another look
            return _transient(message, failure)
        if sid is not None:
            _mark_sent(message_id, sender.final_status, sid)
            telemetry.inc(SMS_SENT, backend=sender.name)
            log.info("sms %s was already sent as %s; not sending again", message_id, sid)
            return "adopted"
        if message.attempts > current_app.config["SMS_MAX_ATTEMPTS"]:
            # The look after the last attempt (`_transient`): that attempt did not get through, and none is left.
            return _give_up(message, message.error_code or "lookup", message.error_message or "",
                            current_app.config["SMS_MAX_ATTEMPTS"])
    # The permit is taken right before the request: the rate holds where the provider counts it, at arrival.
    # (Taken before the claim, the claim's round trips put a varying delay between permit and arrival.)
    _limiter().acquire()
    if clock.now() - now > timedelta(seconds=current_app.config["SMS_CLAIM_LEASE_SECONDS"] / 2):
        # A long wait for the permit must not outlive the claim: renew it, unless someone else has the row.
        renewed = session.execute(
            sa.update(SmsMessage).where(SmsMessage.id == message_id, SmsMessage.claimed_at == now)
            .values(claimed_at=clock.now()).execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if renewed != 1:
            return "taken"
    started = time.perf_counter()
    try:
        sid = sender.send(message)
    except PermanentFailure as failure:
        telemetry.observe(PROVIDER_SECONDS, time.perf_counter() - started, backend=sender.name, outcome="failed")
        _update(message_id, status=SmsStatus.failed.value, error_code=failure.code, error_message=failure.detail,
                claimed_at=None, status_at=clock.now())
        telemetry.inc(SMS_FAILED, backend=sender.name)
        log.warning("sms %s failed for good: %s", message_id, failure.code)
        return "failed"
    except TransientFailure as failure:
        telemetry.observe(PROVIDER_SECONDS, time.perf_counter() - started, backend=sender.name, outcome="retry")
        return _transient(message, failure)
    telemetry.observe(PROVIDER_SECONDS, time.perf_counter() - started, backend=sender.name, outcome="sent")
    _mark_sent(message_id, sender.final_status, sid)
    telemetry.inc(SMS_SENT, backend=sender.name)
    return "recorded" if sender is TEST_NUMBER_BACKEND else "sent"


def _transient(message: SmsMessage, failure: TransientFailure) -> str:
    config = current_app.config
    now = clock.now()
    if message.attempts >= config["SMS_MAX_ATTEMPTS"]:
        # When the last attempt may have gone through, the row stays `sending` for one more look first.
        if failure.maybe_sent:
            _update(message.id, claimed_at=None, error_code=failure.code, error_message=failure.detail)
            raise RetryLater(str(failure), delay=1_000)
        return _give_up(message, failure.code, failure.detail, message.attempts)
    backoff = min(2 ** (message.attempts - 1), 300)
    _update(message.id, status=SENDING if failure.maybe_sent else PENDING, claimed_at=None,
            not_before=now + timedelta(seconds=backoff), error_code=failure.code, error_message=failure.detail)
    log.info("sms %s: %s, retrying in %ss", message.id, failure.code, backoff)
    raise RetryLater(str(failure), delay=backoff * 1000)


def _give_up(message: SmsMessage, code: str, detail: str, attempts: int) -> str:
    _update(message.id, status=SmsStatus.failed.value, claimed_at=None, status_at=clock.now(), error_code=code,
            error_message=f"gave up after {attempts} attempts: {detail}")
    telemetry.inc(SMS_FAILED, backend=message.backend or "unknown")
    log.warning("sms %s failed after %s attempts", message.id, attempts)
    return "failed"


# A provider status may only move forward: a late `sent` callback never undoes `delivered`.
_EARLIER = {
    SmsStatus.sent: (PENDING, SENDING),
    SmsStatus.delivered: (PENDING, SENDING, SmsStatus.sent.value),
    SmsStatus.undelivered: (PENDING, SENDING, SmsStatus.sent.value),
    SmsStatus.failed: (PENDING, SENDING, SmsStatus.sent.value),
}


def record_provider_status(sid: str, status: SmsStatus, at, *, message_id: int | None = None,
                           error_code: str | None = None) -> bool:
    """Apply a delivery report to the row the provider knows as `sid` (or, before the sender stored the
    sid, to row `message_id` from the callback URL); False when it changes nothing."""
    values = {"status": status.value, "status_at": at, "provider_sid": sid}
    if error_code:
        values.update(error_code=error_code, error_message=f"the carrier reported {status.value}")
    ours = SmsMessage.provider_sid == sid
    if message_id is not None:
        # ... unless another row owns that sid: then the report is that row's (or nobody's), never row `message_id`'s
        owner = sa.orm.aliased(SmsMessage)
        ours = sa.or_(ours, sa.and_(SmsMessage.id == message_id, SmsMessage.provider_sid.is_(None),
                                    ~sa.exists().where(owner.provider_sid == sid)))
    return db.session.execute(
        sa.update(SmsMessage).where(ours, SmsMessage.status.in_(_EARLIER[status]))
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount == 1


def redrive(now, *, grace_seconds: int = 30, batch: int = 500) -> list[int]:
    """Ids of rows that should have gone by now and that no worker holds: the scheduler enqueues them again.

    Covers a broker that was down at commit time, quiet hours that ended, a worker that died mid-send,
    and retries that were lost with a broker restart.
    """
    due = now - timedelta(seconds=grace_seconds)
    return list(db.session.scalars(
        sa.select(SmsMessage.id).where(_claimable(now), SmsMessage.not_before <= due)
        .order_by(SmsMessage.not_before, SmsMessage.id).limit(batch)
    ))


# --- enqueue after the commit ---------------------------------------------------------------------

_KEY = "banjie.sms_to_send"


def _new_row(session, instance) -> None:
    """Remember each new outbox row of the transaction, however it is written (a flush, or `tickets.db`'s
    one-statement inserts of the filing hot path); its id is known by the commit."""
    if isinstance(instance, SmsMessage):
        session.info.setdefault(_KEY, []).append(instance)


def _after_commit(session) -> None:
    messages = session.info.pop(_KEY, None)
    if not messages:
        return
    enqueue = ENQUEUE.get()
    queued = 0
    for message in messages:
        if message.id is None or message.status != PENDING:  # never written, or not to be sent (opted out)
            continue
        queued += 1
        try:
            enqueue(message.id)
        except Exception:  # a broker outage loses nothing: the scheduler re-drives the row
            log.warning("could not enqueue sms %s; the outbox sweep will send it", message.id, exc_info=True)
    if queued:
        telemetry.inc(SMS_QUEUED, queued)


def _after_rollback(session, previous) -> None:
    """A rolled-back transaction sends nothing it wrote. A savepoint's rollback (`begin_nested`: a refused rating, one
    survey of the closing sweep) takes back only the rows written inside it: the rest of the transaction's still go at
    its commit, not at the outbox sweep's next pass."""
    messages = session.info.pop(_KEY, None)
    if previous.nested and messages:
        kept = [message for message in messages if message in session]
        if kept:
            session.info[_KEY] = kept


def install_session_hooks(session_class) -> None:
    """Enqueue the outbox rows a transaction wrote once it commits (idempotent)."""
    if sa.event.contains(session_class, "after_commit", _after_commit):
        return
    sa.event.listen(session_class, "transient_to_pending", _new_row)
    sa.event.listen(session_class, "after_commit", _after_commit)
    sa.event.listen(session_class, "after_soft_rollback", _after_rollback)
