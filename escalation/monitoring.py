"""What the escalation room tells /readyz and the metrics scrape: whether the scheduler ticks (its own heartbeat,
written every tick) and whether the workers sweep (the sweeper's, written by the worker that ran the sweep), and how
many ladder steps are due and not yet fired.

A stale sweep alone cannot say who stopped; the two heartbeats can: `scheduler` failing means the scheduler process
is down; `scheduler` passing and `workers` failing means no worker takes the sweeps (workers down, or the broker).
Both go stale after three scheduler intervals (`sweeper.is_stale`), the console's red banner's rule.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from prometheus_client.core import GaugeMetricFamily

from .models import EscalationStep, Heartbeat
from .sweeper import PENDING, is_stale

SCHEDULER = "scheduler"  # the heartbeat the scheduler writes each tick (escalation/scheduler.py)
SWEEPER = "sweeper"      # the one the sweeper writes after each sweep (escalation/sweeper.py)


def _heartbeat(session, name: str, now) -> dict:
    interval = current_app.config["SWEEP_INTERVAL_SECONDS"]
    row = session.get(Heartbeat, name)
    age = None if row is None else max(0, round((now - row.at).total_seconds()))
    return {"ok": not is_stale(row, now, interval), "seconds_ago": age, "stale_after_seconds": 3 * interval}


def scheduler_check(session, now) -> dict:
    """The scheduler process ticked within three intervals."""
    return _heartbeat(session, SCHEDULER, now)


def workers_check(session, now) -> dict:
    """A worker ran the scheduler's sweep within three intervals."""
    return _heartbeat(session, SWEEPER, now)


def readings(session, now):
    """banjie_escalation_steps_due and banjie_heartbeat_age_seconds{name}."""
    due = session.scalar(sa.select(sa.func.count()).select_from(EscalationStep)
                         .where(PENDING, EscalationStep.due_at <= now))
    yield GaugeMetricFamily("banjie_escalation_steps_due", "Ladder steps whose time has come and that no sweep has "
                            "fired yet", value=due)
    beats = dict(session.execute(sa.select(Heartbeat.name, Heartbeat.at)
                                 .where(Heartbeat.name.in_((SCHEDULER, SWEEPER)))).all())
    ages = GaugeMetricFamily("banjie_heartbeat_age_seconds", "Seconds since the scheduler's last tick "
                             "(name=scheduler) and since a worker's last sweep (name=sweeper)", labels=["name"])
    for name in (SCHEDULER, SWEEPER):
        if name in beats:
            ages.add_metric([name], max(0.0, (now - beats[name]).total_seconds()))
    yield ages


def register(app) -> None:
    from tickets.health import readiness_check
    from tickets.telemetry import reading

    readiness_check(app, "scheduler", scheduler_check)
    readiness_check(app, "workers", workers_check)
    reading(app, "escalation", readings)
