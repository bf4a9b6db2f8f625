"""Dramatiq actors of the escalation room. Imported by create_app after the broker is set."""
from __future__ import annotations

import dramatiq

from tickets import clock
from tickets.db import db

from . import sweeper


# No retries: the next scheduler tick sweeps again, and a sweep that failed left nothing half done.
@dramatiq.actor(queue_name="escalation", max_retries=0, time_limit=60 * 60 * 1000)
def sweep_escalations() -> None:
    sweeper.sweep(db.session, clock.now())


ACTORS = (sweep_escalations,)
