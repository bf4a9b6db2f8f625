"""What the SMS room tells /readyz and the metrics scrape: the outbox's backlog, the texts that are due and not sent
(pending, or held by a worker) and how long the oldest of them has waited since it was due. Texts held back for quiet
hours or waiting out a retry's backoff are not due yet and do not count."""
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


def outbox_check(session, now) -> dict:
    """The oldest due text has waited at most READY_OUTBOX_MAX_AGE_SECONDS (and, when READY_OUTBOX_MAX_PENDING is set,
    no more than that many are due)."""
    config = current_app.config
    count, oldest = backlog(session, now)
    max_age, max_pending = config["READY_OUTBOX_MAX_AGE_SECONDS"], config["READY_OUTBOX_MAX_PENDING"]
    ok = (oldest is None or oldest <= max_age) and (not max_pending or count <= max_pending)
    return {"ok": ok, "pending": count, "oldest_seconds": None if oldest is None else round(oldest),
            "max_age_seconds": max_age, **({"max_pending": max_pending} if max_pending else {})}


def readings(session, now):
    """banjie_sms_outbox_pending and banjie_sms_outbox_oldest_seconds."""
    count, oldest = backlog(session, now)
    yield GaugeMetricFamily("banjie_sms_outbox_pending", "Texts due and not sent yet", value=count)
    yield GaugeMetricFamily("banjie_sms_outbox_oldest_seconds", "Seconds the oldest due unsent text has waited "
                            "(0 when none waits)", value=oldest or 0.0)


def register(app) -> None:
    from tickets.health import readiness_check
    from tickets.telemetry import reading

    readiness_check(app, "outbox", outbox_check)
    reading(app, "outbox", readings)
