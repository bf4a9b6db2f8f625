"""Dramatiq actor of the reports room: generate a month's report in the background (the scheduler's job on the 1st).

Bound to each app's broker by `reports.init_app`, which also schedules `MonthlyJob`.
"""
from __future__ import annotations

import time

import dramatiq

from notify import closing
from tickets import clock
from tickets.db import db

from . import metrics, operations


@dramatiq.actor(queue_name="reports", max_retries=3, time_limit=15 * 60 * 1000)
def generate_monthly_report(month: str) -> None:
    """Generate and keep `month`'s report as a draft unless it exists (the leaders are texted when the office
    publishes it).

    The surveys that closed by now are settled first (their default ratings recorded), so that a report made in the
    first seconds of the 1st does not race the survey sweep for the month's last default ratings."""
    closing.close_surveys(db.session, clock.now())
    operations.get_or_generate(db.session, metrics.Month.parse(month), trigger=operations.AUTO)
    db.session.commit()


ACTORS = (generate_monthly_report,)
SCHEDULE_KEY = "reports.monthly"
RETRY_SECONDS = 600  # a job enqueued but not yet done is enqueued again only after this long


class MonthlyJob:
    """Every scheduler tick: when last month's report does not exist yet, enqueue its generation; after a
    scheduler outage over a month's first days, the months it missed first, oldest first, one per tick
    (`operations.month_to_generate`).

    Cheap (one indexed lookup) and idempotent: the row is unique per month and the actor skips a month
    that exists; an enqueued month is not enqueued again for RETRY_SECONDS while the worker runs.
    """

    def __init__(self, app):
        self.app = app
        self.enqueued: dict[str, float] = {}

    def __call__(self, now) -> str | None:
        with self.app.app_context():
            month = operations.month_to_generate(db.session, now)
            if month is None:
                return None
        if time.monotonic() - self.enqueued.get(month, -RETRY_SECONDS) < RETRY_SECONDS:
            return None
        self.enqueued[month] = time.monotonic()
        generate_monthly_report.send(month)
        return month
