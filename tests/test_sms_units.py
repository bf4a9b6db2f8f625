"""Pure pieces of the SMS room: quiet hours, reading survey replies, message length and template checks."""
import unicodedata
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.quiet import parse_quiet_hours, quiet_until
from notify.replies import WORDS, parse_reply

TZ = ZoneInfo("Asia/Shanghai")
NIGHT = (time(21, 0), time(8, 0))


def local(h, m=0, day=23):
    return datetime(2026, 11, day, h, m, tzinfo=TZ)


@pytest.mark.parametrize("now, until", [
    (local(20, 59), None),
    (local(21, 0), local(8, 0, day=24)),
    (local(23, 30), local(8, 0, day=24)),
    (local(0, 0), local(8, 0)),
    (local(7, 59), local(8, 0)),
    (local(8, 0), None),
    (local(12, 0), None),
])
def test_quiet_hours_across_midnight(now, until):
    assert quiet_until(now, NIGHT, TZ) == until


def test_quiet_hours_inside_one_day_and_none():
    lunch = parse_quiet_hours("12:00-13:30")
    assert quiet_until(local(12, 15), lunch, TZ) == local(13, 30)
    assert quiet_until(local(13, 30), lunch, TZ) is None
    assert quiet_until(local(23, 0), parse_quiet_hours(""), TZ) is None


def test_quiet_hours_read_utc_instants_in_local_time():
    utc = datetime(2026, 11, 23, 14, 0, tzinfo=ZoneInfo("UTC"))  # 22:00 in Shanghai
    assert quiet_until(utc, NIGHT, TZ) == local(8, 0, day=24)


@pytest.mark.parametrize("spec", ["21-08", "25:00-08:00", "21:00-21:00", "21:00/08:00", "夜间"])
def test_bad_quiet_hours_are_refused(spec):
    with pytest.raises(ValueError):
        parse_quiet_hours(spec)


@pytest.mark.parametrize("text, score", [
    ("1", 1), ("2", 2), ("3", 3), ("4", 4), ("5", 5),
    ("１", 1), ("５", 5), (" 3 ", 3), ("3。", 3), ("【2】", 2), ("2 谢谢", 2),
    ("非常满意", 1), ("满意", 2), ("基本满意", 3), ("不满意", 4), ("非常不满意", 5),
    ("不满意！", 4), ("4不满意", 4), ("1非常满意", 1), ("３基本满意", 3),
])
def test_clear_replies(text, score):
    assert parse_reply(text).kind == "score" and parse_reply(text).score == score


@pytest.mark.parametrize("text", ["TD", "td", "T D", "退订", " 退订 ", "ＴＤ"])
def test_opt_out_replies(text):
    assert parse_reply(text).kind == "opt_out"


@pytest.mark.parametrize("text", ["", "0", "6", "12", "4满意", "2不满意", "还行吧", "好", "满意吗", "ok", "1 2",
                                  "很满意", "不太满意"])
def test_unclear_replies_are_never_guessed(text):
    assert parse_reply(text).kind == "unclear"


@given(st.text(max_size=40))
def test_any_text_reads_as_exactly_one_meaning(text):
    reply = parse_reply(text)
    assert reply.kind in ("score", "opt_out", "unclear")
    if reply.kind == "score":
        # a score comes only from its own digit or its own word, never from anything else in the text
        normal = unicodedata.normalize("NFKC", text)
        assert str(reply.score) in normal or any(w in normal for w, s in WORDS.items() if s == reply.score)


def test_message_lengths(app):
    from notify.messages import (
        KINDS,
        MAX_LENGTH,
        TemplateProblem,
        check_text,
        default_text,
        segments,
    )

    assert segments("字" * 70) == 1 and segments("字" * 71) == 2 and segments("字" * 134) == 2
    with app.app_context():
        for key in KINDS:
            assert len(check_text(key, default_text(key))) <= MAX_LENGTH, key
        with pytest.raises(TemplateProblem):
            check_text("receipt", "{{ tracking_no ")  # syntax error
        with pytest.raises(TemplateProblem):
            check_text("receipt", "{{ phone }}")  # not a variable of this message
        with pytest.raises(TemplateProblem):
            check_text("receipt", "长" * 300)
        with pytest.raises(TemplateProblem):
            check_text("receipt", "{{ tracking_no.__class__.__mro__ }}")  # the sandbox refuses


def test_lengths_count_what_the_provider_bills_utf16_units():
    """UCS-2 bills UTF-16 code units: an emoji or a CJK Extension B character (𠀀) is two of the 70 (67 per part)."""
    from notify.messages import segments, sms_length
    from notify.sandbox import render
    from tests.twilio_server import count_segments

    assert sms_length("字😀𠀀") == 5
    for text in ("😀" * 35, "😀" * 36, "字" + "𠀀" * 67, "𠀀" * 100, "字" * 134 + "😀"):
        assert segments(text) == count_segments(text), text
    assert segments("😀" * 35) == 1 and segments("😀" * 36) == 2 and segments("😀" * 101) == 4
    clipped = render("{{ reply|clip(10) }}", {"reply": "😀" * 20})
    assert sms_length(clipped) <= 10 and clipped.endswith("…")
    assert render("{{ reply|clip(10) }}", {"reply": "字😀" * 3}) == "字😀" * 3  # 9 units: nothing to cut
