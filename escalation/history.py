"""The ladder in a replayed past: what a sweeper running on time would have fired, at the time it would have.

The demo writes months of work with the clock set back. Between two of its moments no sweeper runs, so
before each moment it calls `fire_on_time`: every step that fell due meanwhile fires at its own due time
(its event, supervision level and texts dated then), and a step that the next action ends is cancelled
by that action as usual. Never commits: the demo loads in one transaction.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tickets import clock

from .models import EscalationStep
from .sweeper import PENDING, SweepResult, _act, claim


def fire_on_time(session, until: datetime) -> SweepResult:
    """Fire every pending step due by `until`, earliest first, each at its own due time."""
    result = SweepResult()
    while True:
        first = session.scalar(sa.select(sa.func.min(EscalationStep.due_at)).where(PENDING, EscalationStep.due_at <= until))
        if first is None:
            return result
        # the steps due at that very instant (claim takes everything due by its `now`, and nothing is earlier)
        ids = claim(session, first, limit=100_000)
        if not ids:  # another sweeper holds them (PostgreSQL's SKIP LOCKED): it fires them, not us
            return result
        with clock.at(first):  # its texts are written then too
            _act(session, ids, first, result)
        session.flush()
