"""What the ticket room tells the metrics scrape: cases by status and overdue cases, one aggregate query each."""
from __future__ import annotations

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily

from .models import Status, Ticket


def cases(session, now):
    """banjie_cases{status} and banjie_cases_overdue (the one rule, `Ticket.overdue`, in SQL)."""
    counts = dict(session.execute(sa.select(Ticket.status, sa.func.count()).group_by(Ticket.status)).all())
    by_status = GaugeMetricFamily("banjie_cases", "Cases by status", labels=["status"])
    for status in Status:  # every status, 0 included, so that a series never vanishes
        by_status.add_metric([status.value], counts.get(status.value, 0))
    yield by_status
    overdue = session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(Ticket.overdue(now)))
    yield GaugeMetricFamily("banjie_cases_overdue", "Open cases past their running deadline", value=overdue)


def register(app) -> None:
    from .telemetry import reading

    reading(app, "cases", cases)
