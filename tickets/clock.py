"""The one clock the workflow reads, so tests and the sweeper can move time without sleeping."""
from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context

from .db import utcnow


def now() -> datetime:
    if has_app_context():
        clock = current_app.extensions.get("banjie.clock")
        if clock is not None:
            return clock()
    return utcnow()
