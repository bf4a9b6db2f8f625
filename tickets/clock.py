"""The one clock the workflow reads, so tests and the sweeper can move time without sleeping."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from flask import current_app, has_app_context

from .db import utcnow


def now() -> datetime:
    if has_app_context():
        clock = current_app.extensions.get("banjie.clock")
        if clock is not None:
            return clock()
    return utcnow()


@contextmanager
def at(moment: datetime):
    """Meanwhile, `now()` is `moment` in this app: for replaying the past (the demo loads months of work)."""
    app = current_app._get_current_object()
    previous = app.extensions.get("banjie.clock")
    app.extensions["banjie.clock"] = lambda: moment
    try:
        yield
    finally:
        if previous is None:
            app.extensions.pop("banjie.clock", None)
        else:
            app.extensions["banjie.clock"] = previous
