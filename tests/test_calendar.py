"""Working-day arithmetic against hand-checked cases (State Council calendar for 2025 and 2026)."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation import store
from escalation.calendar import (
    WorkCalendar,
    add_working_days,
    from_chinese_calendar,
    working_days_between,
)
from escalation.ladder import fire_at
from tests.helpers import examples
from tickets.db import db
from tickets.models import Ticket

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
        # after hours and year ends: the local date decides, whatever the hour
        (local(2025, 12, 31, 23, 30), 1, date(2026, 1, 4)),
        (local(2026, 1, 4, 22, 0), 2, date(2026, 1, 6)),
        (local(2026, 12, 30, 23, 59), 1, date(2026, 12, 31)),
        # weekend filings next to make-up days: Saturday Sep 19 counts as filed on the working Sunday
        (local(2026, 9, 19), 1, date(2026, 9, 21)),
        (local(2026, 9, 20, 18, 30), 1, date(2026, 9, 21)),
        (local(2026, 10, 7, 12, 0), 1, date(2026, 10, 9)),  # last day of the holiday counts as filed on Oct 8
        (local(2026, 10, 9, 20, 0), 1, date(2026, 10, 10)),  # Friday evening: the make-up Saturday is day one
        (local(2026, 2, 14, 17, 30), 5, date(2026, 2, 28)),  # make-up Saturday: Feb 24-27, then the make-up Feb 28
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


# --- the calendar as the database holds it -----------------------------------------------------------



def test_seeded_table_is_the_chinese_calendar(app):
    with app.app_context():
        table = store.settings().calendar()
    assert table.known_years == frozenset(range(2004, 2027))
    assert table.holidays == CAL.holidays and table.makeup_workdays == CAL.makeup_workdays


def test_provisional_2027_until_imported(app, tmp_path, clock):
    clock.set(2026, 12, 31, 10, 0)
    filing = {"name": "张三", "phone": "13800138000", "problem_type": "too_slow", "description": "营业执照变更办了很久。"}

    def accept_due():
        tracking_no = app.test_client().post("/api/v1/tickets", json=filing).get_json()["tracking_no"]
        with app.app_context():
            ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
            return ticket.due_at.astimezone(TZ).date(), ticket.due_provisional

    # the next working day lies in 2027, unpublished: counted as a weekday (Jan 1, a Friday) and flagged
    assert accept_due() == (date(2027, 1, 1), True)
    runner = app.test_cli_runner()
    assert "provisional" in runner.invoke(args=["calendar", "show", "2027"]).output
    notice = tmp_path / "2027.csv"
    notice.write_text("date,workday,name\n# 国办发明电〔2026〕x号 (sample)\n2027-01-01,0,元旦\n2027-02-06,1,春节\n"
                      "2027-02-08,0,春节\n", encoding="utf-8")
    result = runner.invoke(args=["calendar", "import", str(notice), "--notice", "sample"])
    assert result.exit_code == 0 and "2027: 2 holiday(s), 1 make-up working day(s); published" in result.output
    shown = runner.invoke(args=["calendar", "show", "2027"]).output
    assert "2027-02-06  周六  make-up working day  春节" in shown and "published (import, sample)" in shown
    with app.app_context():
        cal = store.settings().calendar()  # the import invalidated this app's cache
    assert 2027 in cal.known_years and not cal.is_working_day(date(2027, 1, 1)) and cal.is_working_day(date(2027, 2, 6))
    due = add_working_days(cal, local(2026, 12, 30), 2, TZ)
    assert due.at.date() == date(2027, 1, 4) and not due.provisional  # Dec 31, (Jan 1 off now), Jan 4
    assert accept_due() == (date(2027, 1, 4), False)


@pytest.mark.parametrize("text, message", [
    ("", "lists no days"),
    ("2027-13-01,0,x", "not a date"),
    ("2027-01-01,maybe", "workday must be"),
    ("2027-01-01", "expected date,workday"),
    ("2027-01-01,0\n2027-01-01,1", "listed twice"),
])
def test_calendar_file_errors(text, message):
    with pytest.raises(store.CalendarFileError, match=message):
        store.parse_calendar_csv(text)


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_calendar_words(end):
    years = store.parse_calendar_csv(f"2027-02-06,班,春节{end}2027-02-08,休{end}")
    assert years == {2027: {date(2027, 2, 6): (True, "春节"), date(2027, 2, 8): (False, None)}}


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.sampled_from(["2027-01-01,0,元旦", "2027-02-06,1", '"2027-02-07",1',
                                                                  "\r", "\x00", '"', "date,workday"])), max_size=6))
def test_any_calendar_file_is_read_or_refused_with_a_message(parts):
    """What a clerk pastes or uploads: the years it gives, or CalendarFileError (a 400 with the line), nothing else."""
    try:
        years = store.parse_calendar_csv("".join(parts))
    except store.CalendarFileError:
        return
    assert all(isinstance(day, date) and day.year == year for year, days in years.items() for day in days)


def test_cache_sees_another_process_edit(app):
    """An edit made elsewhere (another worker process) is picked up once the cache's time is up."""
    with app.app_context():
        cache = store.SettingsCache(ttl=0)
        assert 2030 not in cache.calendar().known_years
        store.replace_year(db.session, 2030, {date(2030, 1, 1): (False, "元旦")}, source="admin",
                           now=datetime(2026, 11, 23, tzinfo=TZ))
        db.session.commit()
        assert 2030 in cache.calendar().known_years and not cache.calendar().is_working_day(date(2030, 1, 1))


def test_console_warning_years():
    assert store.provisional_years_ahead(date(2026, 10, 31), range(2004, 2027)) == []
    assert store.provisional_years_ahead(date(2026, 11, 1), range(2004, 2027)) == [2027]
    assert store.provisional_years_ahead(date(2027, 3, 1), range(2004, 2027)) == [2027]
    assert store.provisional_years_ahead(date(2026, 11, 23), range(2004, 2028)) == []


@given(
    start=st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2026, 12, 1), timezones=st.just(TZ)),
    n=st.integers(min_value=2, max_value=30),
)
def test_ladder_times_keep_their_order_and_working_days(start, n):
    due = add_working_days(CAL, start, n, TZ).at
    warning, supervisor, leader = (fire_at(CAL, due, offset, TZ) for offset in (-1, 0, 2))
    assert start < warning < supervisor == due < leader
    assert CAL.is_working_day(warning.date()) and CAL.is_working_day(leader.date())
    assert working_days_between(CAL, warning, due, TZ) == 1
    assert working_days_between(CAL, due, leader, TZ) == 2
