"""Quiet hours: local times at which no text message goes out. Pure: no clock, no configuration."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

_SPEC = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_quiet_hours(spec: str | None) -> tuple[time, time] | None:
    """'21:00-08:00' → (21:00, 08:00); empty → None (no quiet hours). ValueError for anything else."""
    if not spec or not spec.strip():
        return None
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"quiet hours must look like 21:00-08:00, not {spec!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    return start, end


def quiet_until(now: datetime, window: tuple[time, time] | None, tz: ZoneInfo) -> datetime | None:
    """When `now` falls in the quiet window, the instant it ends (local `end` on the right day); else None."""
    if window is None:
        return None
    start, end = window
    local = now.astimezone(tz)
    clock = local.time()
    if start < end:  # a window inside one day, e.g. 12:00-14:00
        inside = start <= clock < end
        end_day = local.date()
    else:            # a window across midnight, e.g. 21:00-08:00
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz)


def ends_quiet_hours(at: datetime, window: tuple[time, time] | None, tz: ZoneInfo) -> bool:
    """Whether `at` is the instant a quiet window ends: the time a text held back by quiet hours waits for."""
    return window is not None and quiet_until(at - timedelta(microseconds=1), window, tz) == at
