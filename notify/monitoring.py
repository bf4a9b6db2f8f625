"""What the SMS room tells /readyz and the metrics scrape: its two outboxes' backlogs, the texts and the webhook
deliveries that are due and not sent (pending, or held by a worker) and how long the oldest of each has waited since
it was due. Texts held back for quiet hours, and texts or deliveries waiting out a retry's backoff, are not due yet
and do not count: a receiver that is down does not count against Banjie, workers that do not work do."""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from prometheus_client.core import GaugeMetricFamily

from .models import SmsMessage, SmsStatus

UNSENT = (SmsStatus.pending.value, SmsStatus.sending.value)


def backlog(session, now) -> tuple[int, float | None]:
    """(texts due and not sent, seconds the oldest has waited since it was due, or None)."""
    count, oldest = session.execute(
        sa.select(sa.func.count(), sa.func.min(SmsMessage.not_before))
        .where(SmsMessage.status.in_(UNSENT), SmsMessage.not_before <= now)).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite's min() comes back as a plain value
        from tickets.db import UTCDateTime

        oldest = UTCDateTime().process_result_value(oldest, session.get_bind().dialect)
    return count, None if oldest is None else max(0.0, (now - oldest).total_seconds())


def _within_limits(count: int, oldest: float | None) -> dict:
    """Whether an outbox's backlog is within READY_OUTBOX_MAX_AGE_SECONDS (and READY_OUTBOX_MAX_PENDING, when set)."""
    config = current_app.config
    max_age, max_pending = config["READY_OUTBOX_MAX_AGE_SECONDS"], config["READY_OUTBOX_MAX_PENDING"]
    ok = (oldest is None or oldest <= max_age) and (not max_pending or count <= max_pending)
    return {"ok": ok, "pending": count, "oldest_seconds": None if oldest is None else round(oldest),
            "max_age_seconds": max_age, **({"max_pending": max_pending} if max_pending else {})}


def outbox_check(session, now) -> dict:
    """The oldest due text has waited at most READY_OUTBOX_MAX_AGE_SECONDS (and, when READY_OUTBOX_MAX_PENDING is set,
    no more than that many are due)."""
    return _within_limits(*backlog(session, now))


def webhooks_check(session, now) -> dict:
    """The same limits for the webhook deliveries that are due (notify/deliveries.py)."""
    from . import deliveries

    return _within_limits(*deliveries.backlog(session, now))


def readings(session, now):
    """banjie_sms_outbox_pending and banjie_sms_outbox_oldest_seconds."""
    count, oldest = backlog(session, now)
    yield GaugeMetricFamily("banjie_sms_outbox_pending", "Texts due and not sent yet", value=count)
    yield GaugeMetricFamily("banjie_sms_outbox_oldest_seconds", "Seconds the oldest due unsent text has waited "
                            "(0 when none waits)", value=oldest or 0.0)


def webhook_readings(session, now):
    """banjie_webhook_outbox_pending and banjie_webhook_outbox_oldest_seconds."""
    from . import deliveries

    count, oldest = deliveries.backlog(session, now)
    yield GaugeMetricFamily("banjie_webhook_outbox_pending", "Webhook deliveries due and not sent yet", value=count)
    yield GaugeMetricFamily("banjie_webhook_outbox_oldest_seconds", "Seconds the oldest due unsent webhook delivery "
                            "has waited (0 when none waits)", value=oldest or 0.0)


def register(app) -> None:
    from tickets.health import readiness_check
    from tickets.telemetry import reading

    readiness_check(app, "outbox", outbox_check)
    readiness_check(app, "webhooks", webhooks_check)
    reading(app, "outbox", readings)
    reading(app, "webhooks", webhook_readings)
