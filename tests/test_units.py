"""Pure pieces: phone numbers, query codes, message catalogs."""
from __future__ import annotations

import pathlib

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo

from tickets import secrets
from tickets.phones import mask, normalise_mobile

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("raw", [
    "13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "+8613800138000", "0086 13800138000",
    "8613800138000", "(138) 0013-8000", "１３８００１３８０００", " 13800138000 ", "＋86 13800138000",
])
def test_mobile_spellings(raw):
    assert normalise_mobile(raw) == "+8613800138000"


@pytest.mark.parametrize("raw", ["", "12345", "010-12345678", "+1 415 555 0100", "1380013800", "138001380001",
                                 "abc", "+852 9123 4567", None, 13800138000, "1" * 100])
def test_not_mainland_mobiles(raw):
    assert normalise_mobile(raw) is None


def test_mask():
    assert mask("+8613800138000") == "138****8000" and mask(None) == "" and mask("+86123") == "***"


def test_query_codes():
    code = secrets.new_query_code()
    stored = secrets.hash_query_code(code)
    assert code not in stored and secrets.check_query_code(stored, code)
    assert secrets.check_query_code(stored, code.lower()[:4] + " " + code[4:])
    wrong = ("Y" if code[0] == "X" else "X") + code[1:]
    assert not secrets.check_query_code(stored, wrong) and not secrets.check_query_code("junk", code)
    assert secrets.hash_query_code(code) != stored  # salted


def test_every_message_has_a_chinese_translation():
    """Strings in the code and templates must all be in the zh catalog (run `make messages` and translate)."""
    method_map = [("**.py", "python"), ("**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None, "ngettext": (1, 2)}
    found = set()
    for folder in ("tickets", "escalation", "notify", "reports", "admin", "templates"):
        for _file, _line, message, _comments, _context in extract_from_dir(ROOT / folder, method_map, keywords=keywords):
            found.add(message if isinstance(message, str) else message[0])
    mo = ROOT / "translations/zh_Hans_CN/LC_MESSAGES/messages.mo"
    with mo.open("rb") as handle:
        catalog = read_mo(handle)
    # a plural entry's id and strings are lists: the singular names it, and every form must be translated
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog
                  if m.id and (m.string if isinstance(m.string, str) else all(m.string))}
    assert found - translated == set()


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_postgresql_connections_run_without_jit(app):
    """JIT compilation cost the report's aggregates and a city's counts more than it saved (tests/bench/README.md):
    every connection of the pool has it off, also after a rollback returned it to the pool."""
    import sqlalchemy as sa

    from tickets.db import db

    with app.app_context():
        assert db.session.scalar(sa.text("SHOW jit")) == "off"
        db.session.rollback()
        db.session.close()
        engine = db.engine
        with engine.connect() as first, engine.connect() as second:
            assert [c.scalar(sa.text("SHOW jit")) for c in (first, second)] == ["off", "off"]


def test_ctrl_c_held_delivers_the_interrupt_once_the_block_has_run():
    """`tickets.db.ctrl_c_held`: a SIGINT inside the block is delivered when it ends (the commit and its count both
    happen), Python's own handler is back afterwards, and without a signal nothing is raised."""
    import os
    import signal
    import threading

    from tickets.db import ctrl_c_held

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    # as in a terminal: a process started in the background by a shell (as CI may be) inherits SIGINT ignored
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ran = []
        with pytest.raises(KeyboardInterrupt):
            with ctrl_c_held():
                os.kill(os.getpid(), signal.SIGINT)
                ran.extend(range(1000))  # Python runs a handler between bytecodes: it has run by now
                ran.append("end of the block")
        assert ran[-1] == "end of the block" and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with ctrl_c_held():
            ran.append("no signal")
        assert ran[-1] == "no signal"
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored before: ignored while held, and nothing after
        with ctrl_c_held():
            os.kill(os.getpid(), signal.SIGINT)
            ran.append("ignored")
        assert ran[-1] == "ignored" and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, outer)
