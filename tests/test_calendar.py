"""Working-day arithmetic against hand-checked cases (State Council calendar for 2025 and 2026)."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from escalation.calendar import (
    WorkCalendar,
    add_working_days,
    from_chinese_calendar,
    working_days_between,
)

TZ = ZoneInfo("Asia/Shanghai")
CAL = from_chinese_calendar()


def local(y, m, d, hh=10, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


@pytest.mark.parametrize(
    "filed, n, due_day",
    [
        # ordinary week
        (local(2026, 11, 16), 1, date(2026, 11, 17)),
        (local(2026, 11, 16), 5, date(2026, 11, 23)),
        # Friday evening and weekend filings
        (local(2026, 11, 20, 20, 30), 1, date(2026, 11, 23)),
        (local(2026, 11, 21), 1, date(2026, 11, 24)),  # Saturday counts as filed on Monday
        (local(2026, 11, 22), 5, date(2026, 11, 30)),
        # New Year 2026: Jan 1-3 off, Sunday Jan 4 is a make-up working day
        (local(2025, 12, 31), 1, date(2026, 1, 4)),
        (local(2026, 1, 4), 1, date(2026, 1, 5)),
        (local(2026, 1, 3), 1, date(2026, 1, 5)),  # holiday filing starts on Jan 4, counts from Jan 5
        # Spring Festival 2026: Feb 14 (Sat) works, Feb 15-23 off, Feb 28 (Sat) works
        (local(2026, 2, 13), 1, date(2026, 2, 14)),
        (local(2026, 2, 13), 2, date(2026, 2, 24)),
        (local(2026, 2, 14), 1, date(2026, 2, 24)),
        (local(2026, 2, 18), 1, date(2026, 2, 25)),
        (local(2026, 2, 27), 1, date(2026, 2, 28)),
        (local(2026, 2, 26), 5, date(2026, 3, 4)),  # Feb 27, 28 (make-up), Mar 2, 3, 4
        # National Day 2026: Sep 20 (Sun) works, Oct 1-7 off, Oct 10 (Sat) works
        (local(2026, 9, 18), 1, date(2026, 9, 20)),
        (local(2026, 9, 30), 1, date(2026, 10, 8)),
        (local(2026, 10, 3), 1, date(2026, 10, 9)),
        (local(2026, 10, 8), 2, date(2026, 10, 10)),
        (local(2026, 9, 29), 5, date(2026, 10, 12)),
        # 2025 National Day and Mid-Autumn: Oct 1-8 off, Sep 28 (Sun) and Oct 11 (Sat) work
        (local(2025, 9, 26), 1, date(2025, 9, 28)),
        (local(2025, 9, 30), 1, date(2025, 10, 9)),
        (local(2025, 10, 10), 1, date(2025, 10, 11)),
        # Labour Day 2026: May 1-5 off, May 9 (Sat) works
        (local(2026, 4, 30), 1, date(2026, 5, 6)),
        (local(2026, 5, 8), 1, date(2026, 5, 9)),
    ],
)
def test_hand_checked_deadlines(filed, n, due_day):
    due = add_working_days(CAL, filed, n, TZ)
    assert due.at == datetime.combine(due_day, datetime.max.time().replace(microsecond=0), tzinfo=TZ)
    assert not due.provisional


def test_utc_instant_is_read_in_local_time():
    # 2026-11-16 17:00 UTC is already Tuesday 01:00 in Shanghai
    due = add_working_days(CAL, datetime(2026, 11, 16, 17, 0, tzinfo=timezone.utc), 1, TZ)
    assert due.at.date() == date(2026, 11, 18)


def test_year_without_data_is_provisional_weekdays_only():
    due = add_working_days(CAL, local(2026, 12, 30), 3, TZ)
    # Dec 31 (Thu), Jan 1 2027 (Fri, weekday: no invented holiday), Jan 4 (Mon)
    assert due.at.date() == date(2027, 1, 4)
    assert due.provisional
    assert not add_working_days(CAL, local(2026, 12, 28), 3, TZ).provisional


def test_weekend_step_into_unknown_year_is_provisional():
    due = add_working_days(CAL, local(2026, 12, 31), 1, TZ)
    assert due.provisional


def test_rejects_naive_and_non_positive():
    with pytest.raises(ValueError):
        add_working_days(CAL, datetime(2026, 1, 5), 1, TZ)
    with pytest.raises(ValueError):
        add_working_days(CAL, local(2026, 1, 5), 0, TZ)


def test_between_counts_what_add_needs():
    assert working_days_between(CAL, local(2026, 9, 30), local(2026, 10, 8), TZ) == 1
    assert working_days_between(CAL, local(2026, 11, 20), local(2026, 11, 20, 23), TZ) == 0
    assert working_days_between(CAL, local(2026, 11, 23), local(2026, 11, 20), TZ) == 0


@given(
    start=st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(TZ)),
    n=st.integers(min_value=1, max_value=40),
)
def test_add_and_between_agree(start, n):
    due = add_working_days(CAL, start, n, TZ)
    assert working_days_between(CAL, start, due.at, TZ) == n
    assert CAL.is_working_day(due.at.date())
    assert due.at > start


def test_empty_calendar_is_all_provisional():
    cal = WorkCalendar()
    due = add_working_days(cal, local(2026, 1, 1), 1, TZ)
    assert due.at.date() == date(2026, 1, 2) and due.provisional


def test_seeded_years():
    assert min(CAL.known_years) == 2004 and 2026 in CAL.known_years
    assert CAL.is_working_day(date(2026, 1, 4)) and not CAL.is_working_day(date(2026, 10, 5))
    assert not CAL.is_working_day(date(2026, 1, 3)) and CAL.is_working_day(date(2026, 2, 14))
    assert all(CAL.is_working_day(date(2026, 9, 20) + timedelta(days=i)) for i in range(0, 5))
    assert not CAL.is_working_day(date(2026, 9, 25))  # Mid-Autumn
