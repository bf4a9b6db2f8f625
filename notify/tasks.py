"""Dramatiq actors of the SMS room. They take ids and run inside an app context (AppContextMiddleware)."""
from __future__ import annotations

import dramatiq

from tickets import clock
from tickets.db import db

from . import closing, deliveries, outbox


# Only RetryLater is retried (with the row's own backoff); SMS_MAX_ATTEMPTS ends it as failed before 30.
@dramatiq.actor(queue_name="sms", retry_when=lambda retries, error: isinstance(error, outbox.RetryLater) and retries < 30)
def deliver_sms(message_id: int) -> None:
    outbox.deliver(message_id)


@dramatiq.actor(queue_name="sms", max_retries=0)
def redrive_outbox() -> None:
    for message_id in outbox.redrive(clock.now()):
        deliver_sms.send(message_id)


# No retries: the next scheduler tick sweeps again, and a sweep that failed left its batch unsettled.
@dramatiq.actor(queue_name="surveys", max_retries=0, time_limit=60 * 60 * 1000)
def close_surveys() -> None:
    closing.close_surveys(db.session, clock.now())


# Outbound webhooks (notify/deliveries.py): only RetryLater is retried, after the delivery's own backoff;
# WEBHOOK_MAX_ATTEMPTS ends it as failed first (and a lost retry is re-driven by the scheduler).
@dramatiq.actor(queue_name="webhooks", retry_when=lambda retries, error: isinstance(error, deliveries.RetryLater)
                and retries < 100)
def deliver_webhook(delivery_id: int) -> None:
    deliveries.deliver(delivery_id)


@dramatiq.actor(queue_name="webhooks", max_retries=0)
def redrive_webhooks() -> None:
    for delivery_id in deliveries.redrive(clock.now()):
        deliver_webhook.send(delivery_id)


ACTORS = (deliver_sms, redrive_outbox, close_surveys, deliver_webhook, redrive_webhooks)


def schedule_redrive(now) -> None:
    """The scheduler's job: look for rows that should have gone by now."""
    redrive_outbox.send()


def schedule_survey_closing(now) -> None:
    """The scheduler's job: settle the surveys that have closed (the default rating)."""
    close_surveys.send()


def enqueue(message_id: int) -> None:
    deliver_sms.send(message_id)


def schedule_webhook_redrive(now) -> None:
    """The scheduler's job: look for webhook deliveries that should have gone by now."""
    redrive_webhooks.send()


def enqueue_webhook(delivery_id: int) -> None:
    deliver_webhook.send(delivery_id)
