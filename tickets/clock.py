"""The one clock the workflow reads, so tests and the sweeper can move time without sleeping."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from flask import current_app, has_app_context

from .db import utcnow
from .slots import AppSlot

# The app's clock: a callable returning an aware datetime (tests and the demo set one; default: the real time).
CLOCK: AppSlot = AppSlot("banjie.clock", "the clock this app reads")


def now() -> datetime:
    if has_app_context():
        clock = CLOCK.find()
        if clock is not None:
            return clock()
    return utcnow()


@contextmanager
def at(moment: datetime):
    """Meanwhile, `now()` is `moment` in this app: for replaying the past (the demo loads months of work)."""
    app = current_app._get_current_object()
    previous = CLOCK.find(app)
    CLOCK.set(app, lambda: moment)
    try:
        yield
    finally:
        if previous is None:
            CLOCK.clear(app)
        else:
            CLOCK.set(app, previous)


def set_clock(app, clock) -> None:
    """Make `clock` (a callable returning an aware datetime) this app's time; None: the real time again."""
    if clock is None:
        CLOCK.clear(app)
    else:
        CLOCK.set(app, clock)
