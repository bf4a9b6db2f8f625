"""The one clock the workflow reads, so tests and the sweeper can move time without sleeping, and the office's
local time: its zone, days and how times are written."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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


# --- local time: the office's zone (TIMEZONE), the one place that turns instants into the office's days and hours ---

MINUTE = "%Y-%m-%d %H:%M"  # how a time is written for people: local, to the minute


def zone_of(config) -> ZoneInfo:
    """The office's time zone as an app's configuration names it (for wiring, before any app context)."""
    return ZoneInfo(config["TIMEZONE"])


def local_tz() -> ZoneInfo:
    """The office's time zone: deadlines, quiet hours, tracking numbers, reports and every time shown."""
    return zone_of(current_app.config)


def local(value: datetime) -> datetime:
    """An instant as the office's wall clock reads it."""
    return value.astimezone(local_tz())


def today(at: datetime | None = None) -> date:
    """The office's date at `at` (default: now)."""
    return local(at or now()).date()


def day_bounds(at: datetime) -> tuple[datetime, datetime]:
    """The office's day around `at`: its first instant and the first instant of the next day."""
    start = datetime.combine(today(at), time.min, tzinfo=local_tz())
    return start, start + timedelta(days=1)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with the office's offset, as the API writes times."""
    return local(value).isoformat() if value else None


def local_text(value: datetime | None, tz: ZoneInfo | None = None) -> str:
    """A time as people read it: local (the office's zone unless `tz` is given), to the minute; "" for none."""
    return value.astimezone(tz or local_tz()).strftime(MINUTE) if value else ""


def iso_text(value: str | None) -> str:
    """An ISO 8601 time (as `iso` writes it in view dicts) as people read it."""
    return local_text(datetime.fromisoformat(value)) if value else ""
