"""Dramatiq actor of the reports room: generate a month's report in the background (the scheduler's job on the 1st).

Imported only after `init_broker` (see `setup.init_app`), and re-bound there to each app's broker.
"""
from __future__ import annotations

import dramatiq

from tickets.db import db

from . import metrics, operations


@dramatiq.actor(queue_name="reports", max_retries=3, time_limit=15 * 60 * 1000)
def generate_monthly_report(month: str) -> None:
    """Generate and keep `month`'s report unless it exists; the leaders get an SMS once it is committed."""
    operations.get_or_generate(db.session, metrics.Month.parse(month), trigger=operations.AUTO)
    db.session.commit()
