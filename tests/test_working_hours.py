"""Working-hour arithmetic (the first contact's deadline, 先行联系): lunch, evenings, weekends, 调休 make-up days,
holidays and an unpublished year, against a minute-by-minute reference.

The reference classifies each minute on its own (a working day of the State Council's calendar, and inside one of
the office's periods) and counts; `add_working_minutes` and `working_minutes_between` must agree with it from every
start minute of the ranges below, and, with random office hours and seconds, with each other.
"""
from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.calendar import (
    DEFAULT_OFFICE_HOURS,
    add_working_hours,
    add_working_minutes,
    at_share,
    from_chinese_calendar,
    parse_office_hours,
    working_minutes_between,
)
from escalation.ladder import Rung, ladder_from_config, step_time
from tests.helpers import examples

TZ = ZoneInfo("Asia/Shanghai")
CAL = from_chinese_calendar()
HOURS = parse_office_hours(DEFAULT_OFFICE_HOURS)
MINUTE = timedelta(minutes=1)


def local(y, m, d, hh=0, mm=0, ss=0):
    return datetime(y, m, d, hh, mm, ss, tzinfo=TZ)


def is_open(minute: datetime, office_hours) -> bool:
    """The reference: this minute is office time (a working day, inside one of the periods)."""
    clock = minute.time()
    return CAL.is_working_day(minute.date()) and any(start <= clock < end for start, end in office_hours)


class Reference:
    """Every minute from `first` for `days` days classified one by one, and the running count of open minutes."""

    def __init__(self, first: date, days: int, office_hours=HOURS):
        self.base = datetime.combine(first, time(0), tzinfo=TZ)
        self.counts = [0]
        for k in range(days * 1440):
            self.counts.append(self.counts[-1] + is_open(self.base + k * MINUTE, office_hours))

    def index(self, moment: datetime) -> int:
        return int((moment - self.base) / MINUTE)

    def add(self, start: datetime, minutes: int) -> datetime:
        """The end of the `minutes`-th open minute counted from `start`."""
        i = self.index(start)
        j = bisect_left(self.counts, self.counts[i] + minutes, lo=i)
        assert j < len(self.counts), "the reference range is too short"
        return self.base + j * MINUTE

    def between(self, start: datetime, end: datetime) -> int:
        return self.counts[self.index(end)] - self.counts[self.index(start)]


# (first day, days of start minutes, what they cover); each reference runs 12 days further for the deadlines' ends.
RANGES = [
    (date(2026, 11, 13), 4, "an ordinary Friday to Monday: lunch, evenings, a weekend"),
    (date(2026, 9, 18), 3, "a Sunday make-up day (Sep 20) before National Day"),
    (date(2026, 9, 30), 11, "National Day 2026: Oct 1-7 off, Saturday Oct 10 works"),
    (date(2026, 2, 13), 3, "Spring Festival 2026: Saturday Feb 14 works, Feb 15-23 off"),
    (date(2026, 12, 31), 3, "into 2027, unpublished: weekdays only, provisional"),
]
LIMITS = (1, 90, 360, 480)  # a minute, across lunch, the contact warning's 75 %, the default 8 working hours


@pytest.mark.parametrize("first, days, what", RANGES, ids=[r[2] for r in RANGES])
def test_every_start_minute_agrees_with_the_minute_by_minute_reference(first, days, what):
    reference = Reference(first, days + 12)
    for k in range(days * 1440):
        start = reference.base + k * MINUTE
        for minutes in LIMITS:
            due = add_working_minutes(CAL, start, minutes, TZ, HOURS)
            assert due.at == reference.add(start, minutes), (start, minutes)
        assert working_minutes_between(CAL, start, due.at, TZ, HOURS) == minutes, start
        assert due.provisional == (due.at.year == 2027), start


@pytest.mark.parametrize("start, limit, due", [
    # an ordinary Monday: the morning, lunch 12:00-13:30, the afternoon, the evening
    (local(2026, 11, 16, 9, 0), 8, local(2026, 11, 17, 10, 0)),
    (local(2026, 11, 16, 9, 0), 3, local(2026, 11, 16, 12, 0)),       # the morning used up: 12:00, not 13:30
    (local(2026, 11, 16, 13, 30), 4, local(2026, 11, 16, 17, 30)),    # the afternoon used up: 17:30, not tomorrow
    (local(2026, 11, 16, 11, 30), 1, local(2026, 11, 16, 14, 0)),     # half an hour before lunch, half after
    (local(2026, 11, 16, 12, 15), 0.5, local(2026, 11, 16, 14, 0)),   # at lunch: counts from 13:30
    (local(2026, 11, 16, 17, 0), 1, local(2026, 11, 17, 9, 30)),      # the evening
    (local(2026, 11, 16, 21, 0), 8, local(2026, 11, 18, 10, 0)),      # at night: Tuesday's 7 h, then 1 h
    (local(2026, 11, 16, 10, 17, 23), 8, local(2026, 11, 17, 11, 17, 23)),  # seconds are kept
    # the weekend
    (local(2026, 11, 20, 16, 0), 8, local(2026, 11, 23, 17, 0)),      # Friday 16:00: 1.5 h, then Monday's 6.5 h
    (local(2026, 11, 21, 10, 0), 8, local(2026, 11, 24, 10, 0)),      # Saturday: Monday's 7 h and Tuesday's first
    # 调休 and holidays
    (local(2026, 9, 19, 10, 0), 2, local(2026, 9, 20, 11, 0)),        # Saturday off, Sunday Sep 20 works
    (local(2026, 9, 30, 16, 0), 8, local(2026, 10, 8, 17, 0)),        # National Day: Oct 1-7 off
    (local(2026, 10, 9, 16, 0), 8, local(2026, 10, 10, 17, 0)),       # Friday, then the make-up Saturday Oct 10
    (local(2026, 2, 13, 16, 0), 8, local(2026, 2, 14, 17, 0)),        # Spring Festival: Saturday Feb 14 works ...
    (local(2026, 2, 14, 17, 0), 1, local(2026, 2, 24, 9, 30)),        # ... then Feb 15-23 off
    (local(2026, 1, 1, 10, 0), 8, local(2026, 1, 5, 10, 0)),          # Jan 1-3 off, Sunday Jan 4 works
])
def test_named_cases(start, limit, due):
    assert add_working_hours(CAL, start, limit, TZ, HOURS).at == due
    assert working_minutes_between(CAL, start, due, TZ, HOURS) == round(limit * 60)


def test_an_unpublished_year_counts_weekdays_and_says_so():
    due = add_working_hours(CAL, local(2026, 12, 31, 17, 0), 8, TZ, HOURS)
    assert due.at == local(2027, 1, 4, 9, 30)  # Jan 1, 2027 is a Friday like any other until the notice is in
    assert due.provisional
    assert not add_working_hours(CAL, local(2026, 12, 30, 9, 0), 8, TZ, HOURS).provisional


def test_other_office_hours():
    summer = parse_office_hours("08:30-12:00, 14:30-18:00")
    assert add_working_hours(CAL, local(2026, 7, 6, 11, 0), 2, TZ, summer).at == local(2026, 7, 6, 15, 30)
    one_period = parse_office_hours("09:00-17:00")
    assert add_working_hours(CAL, local(2026, 11, 16, 12, 0), 8, TZ, one_period).at == local(2026, 11, 17, 12, 0)


def test_between_is_zero_backwards_and_counts_only_office_time():
    monday, tuesday = local(2026, 11, 16, 8, 0), local(2026, 11, 17, 8, 0)
    assert working_minutes_between(CAL, tuesday, monday, TZ, HOURS) == 0
    assert working_minutes_between(CAL, monday, tuesday, TZ, HOURS) == 7 * 60
    assert working_minutes_between(CAL, local(2026, 11, 21), local(2026, 11, 23), TZ, HOURS) == 0  # a weekend
    assert working_minutes_between(CAL, local(2026, 11, 16, 9, 0, 30), local(2026, 11, 16, 9, 2), TZ, HOURS) == 1


def test_the_contact_ladder_fires_at_three_quarters_of_the_office_time():
    start = local(2026, 11, 16, 9, 0)
    due = add_working_hours(CAL, start, 8, TZ, HOURS).at
    assert at_share(CAL, start, due, 0.75, TZ, HOURS) == local(2026, 11, 16, 16, 30)  # 6 of 8 working hours
    assert at_share(CAL, start, due, 1, TZ, HOURS) == due
    # across a weekend and lunch: Friday 16:00 + 8 h is Monday 17:00; 6 h is Monday 15:00 (1.5 + 3 + 1.5)
    friday = local(2026, 11, 20, 16, 0)
    due = add_working_hours(CAL, friday, 8, TZ, HOURS).at
    rungs = ladder_from_config(None)["contact"]
    assert [step_time(CAL, rung, friday, due, TZ, HOURS) for rung in rungs] == [local(2026, 11, 23, 15, 0), due]
    assert [rung.before_due for rung in rungs] == [True, False]


def test_a_configured_ladder_step_takes_an_offset_or_a_share():
    steps = ladder_from_config('{"contact": [{"step": "early", "level": 0, "share": 0.5, "audience": "handler",'
                               ' "template": "contact_warning"}]}')["contact"]
    assert steps == (Rung("early", 0, audience="handler", template="contact_warning", share=0.5),)
    for bad in ('{"contact": [{"step": "x", "level": 0, "share": 0, "audience": "handler", "template": "t"}]}',
                '{"contact": [{"step": "x", "level": 0, "share": 1.5, "audience": "handler", "template": "t"}]}',
                '{"contact": [{"step": "x", "level": 0, "audience": "handler", "template": "t"}]}',
                '{"contact": [{"step": "x", "level": 0, "share": 0.5, "offset": 0, "audience": "handler",'
                ' "template": "t"}]}',
                '{"contact": [{"step": "x", "level": 0, "share": 0.5, "template": "t"}]}'):
        with pytest.raises(ValueError):
            ladder_from_config(bad)


@pytest.mark.parametrize("spec, problem", [
    ("", "must not be empty"),
    ("9-12", "is not a period"),
    ("09:00-12:00;13:30-17:30", "is not a period"),
    ("12:00-09:00", "must end after it starts"),
    ("09:00-09:00", "must end after it starts"),
    ("09:00-12:00,11:00-13:00", "overlaps"),
    ("13:30-17:30,09:00-12:00", "overlaps or comes before"),
    ("24:00-25:00", "is not a time of day"),
    ("09:60-10:00", "is not a time of day"),
])
def test_malformed_office_hours_say_what_is_wrong(spec, problem):
    with pytest.raises(ValueError, match=problem):
        parse_office_hours(spec)


def test_office_hours_are_read_loosely_but_exactly():
    assert parse_office_hours(" 9:00 - 12:00 ,13:30-17:30 ") == HOURS
    assert parse_office_hours("08:00-12:00,12:00-16:00") == ((time(8), time(12)), (time(12), time(16)))


# --- properties: random office hours, random starts to the second ---------------------------------------------

@st.composite
def office_hours(draw):
    """One to three periods, in order, not overlapping, as a setting would be written."""
    bounds = sorted(draw(st.sets(st.integers(0, 1439), min_size=2, max_size=6)))
    bounds = bounds[:len(bounds) // 2 * 2]
    spec = ",".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in zip(bounds[::2], bounds[1::2]))
    return spec, parse_office_hours(spec)


STARTS = st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2027, 1, 10)).map(
    lambda moment: moment.replace(tzinfo=TZ))


def daily_minutes(periods) -> int:
    return sum((end.hour * 60 + end.minute) - (start.hour * 60 + start.minute) for start, end in periods)


@settings(max_examples=examples(150), deadline=None)
@given(start=STARTS, hours=office_hours(), data=st.data())
def test_between_undoes_add_for_any_office_hours(start, hours, data):
    _spec, periods = hours
    minutes = data.draw(st.integers(1, 5 * daily_minutes(periods)), label="minutes")  # up to a working week
    due = add_working_minutes(CAL, start, minutes, TZ, periods).at
    assert due > start
    assert working_minutes_between(CAL, start, due, TZ, periods) == minutes
    # it ends inside a period (or at its close) of a working day, and a minute less ends earlier
    assert CAL.is_working_day(due.date()) and any(a < due.time() <= b for a, b in periods)
    if minutes > 1:
        assert add_working_minutes(CAL, start, minutes - 1, TZ, periods).at < due


@settings(max_examples=examples(60), deadline=None)
@given(start=STARTS.map(lambda m: m.replace(second=0, microsecond=0)), hours=office_hours(), data=st.data())
def test_random_office_hours_agree_with_the_minute_by_minute_reference(start, hours, data):
    _spec, periods = hours
    minutes = data.draw(st.integers(1, 2 * daily_minutes(periods)), label="minutes")
    due = add_working_minutes(CAL, start, minutes, TZ, periods).at
    # walk minute by minute from the start, counting open minutes, up to the result
    moment, counted = start, 0
    while counted < minutes:
        counted += is_open(moment, periods)
        moment += MINUTE
    assert due == moment
