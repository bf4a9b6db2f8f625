"""The SMS room never texts a reserved test number, whatever SMS_BACKEND says, and never sends history.

With the twilio backend against the Twilio test server (the real SDK over HTTP), on SQLite and PostgreSQL.
"""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from app import create_app
from notify import send_sms, writing_history
from notify.models import SmsMessage
from notify.test_numbers import DEFAULT_TEST_NUMBERS, is_test_number, parse_test_numbers
from tests.helpers import BASE_CONFIG
from tests.sms_support import drain, messages, twilio_config
from tickets.db import db
from tickets.phones import normalise_mobile
from tickets.schedule import JOBS

TEST_NUMBER = "+8617000000123"
REAL_NUMBER = "+8613800138000"


@pytest.fixture
def app(make_app, twilio):
    return make_app(**twilio_config(twilio))


def test_a_text_to_a_test_number_is_recorded_and_never_reaches_the_provider(world, twilio):
    world.file(phone="170 0000 0123")
    world.file(phone="138 0013 8000")
    drain(world.app)
    test, real = messages(world.app)
    assert test.phone == TEST_NUMBER and (test.status, test.backend) == ("recorded", "test_number")
    assert test.provider_sid == f"test-number-{test.id}" and test.attempts == 1
    assert real.status == "sent" and real.backend == "twilio"
    assert [m["to"] for m in twilio.messages] == [REAL_NUMBER]


def test_the_range_is_a_setting(make_app, twilio):
    for setting, recorded in (("+8613800138", {REAL_NUMBER}), ("", set()),
                              ("+8617000000, +86 138 0013 8000", {REAL_NUMBER, TEST_NUMBER})):
        twilio.reset()
        app = make_app(**twilio_config(twilio), SMS_TEST_NUMBERS=setting)
        with app.app_context():
            db.session.execute(sa.delete(SmsMessage))
            send_sms(TEST_NUMBER, "opted_out", {})
            send_sms(REAL_NUMBER, "opted_out", {})
            db.session.commit()
        drain(app)
        rows = messages(app)
        assert {m.phone for m in rows if m.backend == "test_number"} == recorded, setting
        assert {m["to"] for m in twilio.messages} == {TEST_NUMBER, REAL_NUMBER} - recorded


def test_a_malformed_range_stops_start_up(database_url):
    with pytest.raises(ValueError, match="SMS_TEST_NUMBERS"):
        create_app({**BASE_CONFIG, "DATABASE_URL": database_url, "SMS_TEST_NUMBERS": "170 0000 xxxx"})


def test_texts_written_as_history_are_recorded_and_never_sent_even_after_a_restart(world, twilio, clock):
    app = world.app
    with app.app_context():
        with writing_history(db.session):
            send_sms(REAL_NUMBER, "opted_out", {})
        send_sms(REAL_NUMBER, "opted_out", {})  # after the block: an ordinary text again
        db.session.commit()
    history, ordinary = messages(app)
    assert (history.status, history.backend, history.attempts) == ("recorded", "history", 0)
    assert ordinary.status == "pending"
    clock.advance(hours=1)
    runner = app.test_cli_runner()
    assert "sent: 1" in runner.invoke(args=["sms", "redrive", "--now"]).output  # the ordinary one only
    with app.app_context():
        JOBS.get(app)["sms-outbox"](clock())
    drain(app)
    assert len(twilio.messages) == 1 and messages(app)[0].status == "recorded"
    status = runner.invoke(args=["sms", "status"]).output
    assert re.search(r"^recorded\s+history\s+1$", status, re.M) and re.search(r"^sent\s+1$", status, re.M), status


def test_the_console_says_why_a_text_was_not_sent(world):
    with world.app.app_context():
        with writing_history(db.session):
            send_sms(REAL_NUMBER, "opted_out", {})
        send_sms(TEST_NUMBER, "opted_out", {})
        db.session.commit()
    drain(world.app)
    office = world.console("office")
    page = office.get("/admin/sms/").get_data(as_text=True)
    assert "演示历史（未发送）" in page and "测试号码（未发送）" in page
    history, test = messages(world.app)
    assert "演示历史（未发送）" in office.get(f"/admin/sms/message/{history.id}").get_data(as_text=True)
    assert "测试号码（未发送）" in office.get(f"/admin/sms/message/{test.id}").get_data(as_text=True)


def test_parsing_the_setting():
    assert parse_test_numbers(DEFAULT_TEST_NUMBERS) == ("+8617000000",)
    assert parse_test_numbers(" +86 170 0000 0 , +86-139-1234-5678,") == ("+8617000000", "+8613912345678")
    assert parse_test_numbers("") == parse_test_numbers("  ") == ()
    for bad in ("17000000", "+86 170 x", "+0861", "+8617000000; +8613800138000"):
        with pytest.raises(ValueError, match="SMS_TEST_NUMBERS"):
            parse_test_numbers(bad)


@given(st.integers(min_value=0, max_value=999))
def test_every_number_of_the_default_range_is_a_mobile_number_and_a_test_number(n):
    number = normalise_mobile(f"170 0000 0{n:03d}")
    assert number is not None and is_test_number(number, parse_test_numbers(DEFAULT_TEST_NUMBERS))
    assert not is_test_number(number, ())
    assert not is_test_number(f"+8617000001{n:03d}", parse_test_numbers(DEFAULT_TEST_NUMBERS))
