"""Office hours of the demo office: when its staff act. Pure: the working-day test and the zone are passed in.

Staff work 09:00–12:00 and 13:30–17:30 local time on working days (the escalation calendar's: 调休
make-up weekends count, public holidays do not), the usual hours of a Chinese government service window.
Citizens file at any hour; they rate by SMS only once the survey text can have reached them.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

OFFICE_HOURS = ((time(9, 0), time(12, 0)), (time(13, 30), time(17, 30)))

IsWorkingDay = Callable[[date], bool]


def _periods(day: date, tz: ZoneInfo):
    return [(datetime.combine(day, start, tzinfo=tz), datetime.combine(day, end, tzinfo=tz)) for start, end in OFFICE_HOURS]


def office_time_from(moment: datetime, is_working_day: IsWorkingDay, tz: ZoneInfo) -> datetime:
    """`moment` when the office is open then, else the next opening."""
    local = moment.astimezone(tz)
    day = local.date()
    while True:
        if is_working_day(day):
            for opening, closing in _periods(day, tz):
                if local < closing:
                    return max(local, opening)
        day += timedelta(days=1)

