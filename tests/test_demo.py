"""The demo office of `make run`: history that is never sent, office times, test numbers, and the serve banner.

The properties are checked on the seeded data itself, on SQLite and PostgreSQL, with the clock pinned to
awkward moments (just after a long holiday, on New Year's Day), against an independent source of working
days (`chinese_calendar`, the State Council's calendar the migration publishes).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import chinese_calendar
import pytest
import requests
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.security import check_password_hash

from app import banner
from demo import DEMO_PASSWORD, seed
from demo import logins as demo_logins_module
from demo.logins import DEMO_LOGINS, demo_logins
from demo.hours import office_time_from
from demo.numbers import Numbers, spelled
from escalation.models import EscalationStep
from escalation.sweeper import sweep
from notify.models import SmsMessage
from reports.figures import monthly_figures
from reports.metrics import Month
from tests.helpers import TZ, free_port, page_csrf
from tests.sms_support import drain, twilio_config
from tickets.accounts import create_user
from tickets.clock import CLOCK
from tickets.db import db
from tickets.privacy import crypto
from tickets.models import (
    Attachment,
    Deadline,
    Department,
    Event,
    ReturnVisit,
    ServiceItem,
    Status,
    Survey,
    Ticket,
    User,
)
from demo.data import LANDLINE
from tickets.phones import is_mobile, normalise_mobile, normalise_phone
from tickets.schedule import JOBS

ROOT = Path(__file__).resolve().parent.parent
STAFF_ROLES = ("office", "department", "supervisor", "leader", "admin")
TEST_RANGE = "+8617000000"
LADDER_TEMPLATES = ("escalation_warning", "escalation_supervisor", "escalation_leader", "office_reminder",
                    "contact_warning", "contact_supervisor")


def office_hours(moment: datetime) -> bool:
    """09:00–12:00 and 13:30–17:30 on a working day of the State Council's calendar."""
    local = moment.astimezone(TZ)
    minutes = local.hour * 60 + local.minute
    return chinese_calendar.is_workday(local.date()) and (9 * 60 <= minutes < 12 * 60 or 13 * 60 + 30 <= minutes < 17 * 60 + 30)


def quiet_hours(moment: datetime) -> bool:
    """The default SMS_QUIET_HOURS, 21:00–08:00."""
    hour = moment.astimezone(TZ).hour
    return hour >= 21 or hour < 8


def load(app, now: datetime):
    CLOCK.get(app).now = now
    with app.app_context():
        loaded = seed(db.session)
        db.session.commit()
    return loaded


# --- the seeded data -------------------------------------------------------------------------------------

AFTER_NATIONAL_DAY = datetime(2026, 10, 8, 8, 30, tzinfo=TZ)  # the first working morning after a week of holidays
NEW_YEARS_DAY = datetime(2026, 1, 1, 10, 0, tzinfo=TZ)         # a holiday, the first of a month and of a year


@pytest.mark.slow  # loads the whole demo (each load is most of a minute: the second date on one database only)
@pytest.mark.parametrize("database_url, now", [
    ("sqlite", AFTER_NATIONAL_DAY),
    pytest.param("postgresql", AFTER_NATIONAL_DAY, marks=pytest.mark.postgres),
    pytest.param("postgresql", NEW_YEARS_DAY, marks=pytest.mark.postgres),
], ids=["sqlite-after-national-day", "postgresql-after-national-day", "postgresql-new-years-day"],
   indirect=["database_url"])
def test_the_demo_is_history_acted_in_office_hours(app, now):
    loaded = load(app, now)
    with app.app_context():
        session = db.session
        events = session.scalars(sa.select(Event)).all()
        assert loaded.cases == session.scalar(sa.select(sa.func.count()).select_from(Ticket)) > 100

        staff = [e for e in events if e.actor_role in STAFF_ROLES]
        outside = [(e.action, e.at.astimezone(TZ).isoformat()) for e in staff if not office_hours(e.at)]
        assert staff and outside == []
        ratings = list(session.scalars(sa.select(Survey).where(Survey.rated_at.is_not(None))))
        sms_ratings = [s for s in ratings if not s.defaulted]
        assert sms_ratings and all(s.channel == "sms" for s in sms_ratings)
        assert [s.rated_at.astimezone(TZ).isoformat() for s in sms_ratings if quiet_hours(s.rated_at)] == []
        # the surveys left unanswered were closed with the default rating at their closing time, as an on-time
        # sweep would have; none that closed is left unsettled
        defaulted = [s for s in ratings if s.defaulted]
        assert defaulted and all(s.rated_at == s.closes_at == s.swept_at and s.score == 3 for s in defaulted)
        assert session.scalar(sa.select(sa.func.count()).select_from(Survey).where(
            Survey.rated_at.is_(None), Survey.swept_at.is_(None), Survey.closes_at <= now)) == 0
        # citizens file at any hour: the demo shows that too
        assert any(not office_hours(e.at) for e in events if e.action == "file")

        # nothing is dated after the moment of loading
        times = [e.at for e in events] + list(session.scalars(sa.select(SmsMessage.created_at)))
        times += list(session.scalars(sa.select(Deadline.started_at)))
        times += list(session.scalars(sa.select(ReturnVisit.created_at)))
        times += [t for t in session.scalars(sa.select(EscalationStep.fired_at)) if t is not None]
        assert max(times) <= now

        # every text is history: recorded as written, nothing left for any sender
        statuses = session.execute(sa.select(SmsMessage.status, SmsMessage.backend, sa.func.count())
                                   .group_by(SmsMessage.status, SmsMessage.backend)).all()
        assert [(status, backend) for status, backend, _n in statuses] == [("recorded", "history")]
        # the ladder of the past fired at its own time, as an on-time sweeper would have; nothing due is left
        fired = session.scalars(sa.select(EscalationStep).where(EscalationStep.fired_at.is_not(None))).all()
        assert fired and all(step.due_at == step.fired_at for step in fired)
        # and its texts were written then, not when the demo was loaded
        written = Counter(session.execute(sa.select(SmsMessage.ticket_id, SmsMessage.created_at)
                                          .where(SmsMessage.template.in_(LADDER_TEMPLATES))).all())
        expected = Counter()
        for step in fired:
            expected[(step.ticket_id, step.fired_at)] += step.sms_count
        assert written == +expected and sum(written.values()) > 20
        assert session.scalar(sa.select(sa.func.count()).select_from(EscalationStep).where(
            EscalationStep.fired_at.is_(None), EscalationStep.cancelled_at.is_(None), EscalationStep.due_at <= now)) == 0
        assert {"escalation_warning", "escalation_supervisor", "escalation_leader"} <= set(
            session.scalars(sa.select(SmsMessage.template)))

        # every person of the demo has a number of the reserved test range, but the caller with a landline, which no
        # text can reach: filed on the phone by the office, closed, its survey open for the office to record by phone
        # (a 主动治理 task has no citizen, and no number: nothing is ever texted to it)
        assert set(session.scalars(sa.select(Ticket.phone).where(Ticket.channel == "proactive"))) <= {""}
        phones = list(session.scalars(sa.select(Ticket.phone).where(Ticket.channel != "proactive")))
        phones += list(session.scalars(sa.select(User.phone)))
        for department in session.scalars(sa.select(Department)):
            phones += [department.supervisor_phone, department.leader_phone]
        landline = normalise_phone(LANDLINE)
        assert all(phone and (phone.startswith(TEST_RANGE) or phone == landline) for phone in phones), phones
        assert not is_mobile(landline)
        caller = session.scalar(sa.select(Ticket).where(Ticket.phone_index == crypto.phone_index(landline)))
        assert (caller.channel, caller.status) == ("phone", "closed")
        # its survey waits for the office's call (unless the holidays before loading left no working day in its reach:
        # then it closed and was defaulted, as any unanswered round is)
        survey = session.scalar(sa.select(Survey).where(Survey.ticket_id == caller.id))
        assert survey.channel in (None, "default") and (survey.closes_at > now) == (survey.rated_at is None)
        assert session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                              .where(SmsMessage.ticket_id == caller.id)) == 0

        # 附件: a citizen's photo of the paper the window gave back, and a reply's notice the citizen may download
        files = {row.name: row for row in session.scalars(sa.select(Attachment))}
        assert set(files) == {"窗口退回的变更申请.jpg", "个体户注销登记通知书.jpg"}
        assert (files["窗口退回的变更申请.jpg"].source, files["个体户注销登记通知书.jpg"].source) == ("citizen", "reply")
        assert all(row.visible_to_citizen and row.thumb_key for row in files.values())

        # the catalogue of 办理事项 holds every item a case names, with its code, and (but one) the department doing it
        catalogue = {item.name: item for item in session.scalars(sa.select(ServiceItem))}
        named = {name for name in session.scalars(sa.select(Ticket.service_item)) if name}
        assert len(named) > 10 and named <= set(catalogue)
        assert all(item.code and item.active for item in catalogue.values())
        assert [name for name, item in catalogue.items() if item.department_id is None] == ["高龄津贴申领"]

        # the variety: every stage now, every kind of step in the past
        assert set(session.scalars(sa.select(Ticket.status))) == {s.value for s in Status}
        assert {"accept", "reject", "transfer", "return", "request_extension", "decide_extension", "reply",
                "approve", "send_back", "resolve", "remind", "record_visit", "rate", "escalate",
                "record_contact"} <= {e.action for e in events}

        # last month's report has something to say
        figures = monthly_figures(session, Month.containing(now, TZ).shift(-1))["office"]
        assert figures["accepted"] > 20 and figures["closed"] > 10 and figures["rated"] > 10
        assert figures["supervised_2"] > 0 and figures["bad"] > 0
        # 先行联系: most departments called within hours, some did not
        assert figures["contacts_due"] > 10 and 0.5 < figures["contact_rate"] < 1
        citizens = {(t.phone, t.citizen_name) for t in session.scalars(sa.select(Ticket))}
    city_network_checks(app)
    if app.config["DATABASE_URL"].startswith("sqlite"):  # encrypted at rest: no demo citizen's number in the file
        with app.app_context():
            db.engine.dispose()
        stored = Path(app.config["DATABASE_URL"].split("///", 1)[1]).read_bytes()
        for phone, name in citizens:
            assert phone.encode() not in stored and phone[3:].encode() not in stored and name.encode() not in stored


# --- the SMS room and the demo with a real provider configured ---------------------------------------------

@pytest.mark.slow  # loads the whole demo
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL: the properties above
def test_with_twilio_loading_and_running_the_demo_texts_nobody(make_app, clock, twilio):
    app = make_app(**twilio_config(twilio))
    clock.set(2026, 11, 16, 10, 0)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "banjie-demo" in result.output and "office" in result.output
    assert "already present" in runner.invoke(args=["seed-demo", "--if-empty"]).output
    again = runner.invoke(args=["seed-demo"])  # asked to load it again: one line, not the database's traceback
    assert again.exit_code == 1 and "already has departments" in again.output and "Traceback" not in again.output
    with app.app_context():  # every demo login opens with the demo password, hashed once for all of them
        hashes = db.session.scalars(sa.select(User.password_hash).where(User.username.in_(DEMO_LOGINS))).all()
        assert len(hashes) == len(DEMO_LOGINS) and len(set(hashes)) == 1
        assert [user.username for user in demo_logins(db.session)] == DEMO_LOGINS

    # 一类事 and 并单: the demo's recurring problem is listed with the 主动治理 task opened from it; one report is merged
    client = app.test_client()
    assert client.post("/admin/login", data={"username": "office", "password": DEMO_PASSWORD,
                                             "csrf_token": page_csrf(client, "/admin/login")}).status_code == 302
    page = client.get("/admin/clusters/").get_data(as_text=True)
    assert "电子营业执照下载" in page and "办理中" in page
    with app.app_context():
        task = db.session.scalar(sa.select(Ticket).where(Ticket.channel == "proactive"))
        assert task is not None and task.status == "transferred"
        linked = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(Ticket.governance_id == task.id))
        merged = db.session.scalars(sa.select(Ticket.status).where(Ticket.merged_into_id.is_not(None))).all()
    assert linked == 6 and merged == ["merged"]

    # a restart: the outbox re-drive (by hand and the scheduler's job) and a worker find nothing to send
    assert "nothing to send" in runner.invoke(args=["sms", "redrive", "--now"]).output
    with app.app_context():
        JOBS.get(app)["sms-outbox"](clock())
    drain(app)
    assert twilio.messages == []

    # days later the sweeper escalates the demo's open cases: the texts go to demo staff, so they are recorded
    clock.advance(days=4)
    with app.app_context():
        assert sweep(db.session, clock()).sms > 0
    drain(app)
    assert twilio.messages == []
    with app.app_context():
        live = db.session.scalars(sa.select(SmsMessage).where(SmsMessage.backend == "test_number")).all()
        assert {m.template for m in live} & {"escalation_warning", "escalation_supervisor", "escalation_leader"}
        assert all(m.status == "recorded" and m.audience != "citizen" for m in live)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                                 .where(SmsMessage.status.not_in(("recorded",)))) == 0

    # the SMS log says which is which
    client = app.test_client()
    response = client.post("/admin/login", data={"username": "office", "password": DEMO_PASSWORD,
                                                 "csrf_token": page_csrf(client, "/admin/login")})
    assert response.status_code == 302
    page = client.get("/admin/sms/").get_data(as_text=True)  # newest first: the sweeper's, then the history
    assert "测试号码（未发送）" in page and "演示历史（未发送）" in page



def test_the_demo_needs_a_test_range(make_app):
    app = make_app(SMS_TEST_NUMBERS="")
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0 and "SMS_TEST_NUMBERS" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Department)) == 0


# --- pieces -----------------------------------------------------------------------------------------------

def test_demo_numbers_come_from_the_configured_range():
    numbers = Numbers("+86 139 0000 0")
    assert numbers.staff(0) == "+8613900000000" and len(numbers.pool) == 1000
    assert all(normalise_mobile(n) == n and n.startswith("+861390000") for n in numbers.pool)
    assert numbers.citizen(0) not in {numbers.staff(i) for i in range(40)}
    assert normalise_mobile(spelled(numbers.citizen(3), "plus86")) == numbers.citizen(3)
    for spec in ("", "+1555", "+8613900000001", "+8610000"):  # none, foreign, one number, no valid mobiles
        with pytest.raises(Exception, match="SMS_TEST_NUMBERS"):
            Numbers(spec)


WORKDAY = chinese_calendar.is_workday
moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 1),
                       timezones=st.just(TZ))


@given(moments)
def test_office_time_from_is_the_next_open_minute(moment):
    at = office_time_from(moment, WORKDAY, TZ)
    assert at >= moment and office_hours(at)
    if at > moment:  # an opening, with the office closed all the time before it
        assert at.astimezone(TZ).strftime("%H:%M") in ("09:00", "13:30")
        assert not office_hours(at - timedelta(minutes=1))


# --- the banner of `flask serve` (what `make run` ends with) -------------------------------------------

def test_the_banner_lists_only_logins_that_open_with_the_demo_password(app):
    with app.app_context():
        assert "demo logins" not in banner(app)
        create_user(db.session, "office", "office", password=DEMO_PASSWORD, display_name="受理员 王敏")
        create_user(db.session, "admin", "admin", password="a-real-password")
        create_user(db.session, "someone", "office", password=DEMO_PASSWORD)
        db.session.commit()
        text = banner(app)
    assert "http://127.0.0.1:5000/admin/" in text and "http://127.0.0.1:5000/" in text
    assert f"demo logins (password {DEMO_PASSWORD})" in text
    assert re.search(r"^\s+office\s+office\s+受理员 王敏$", text, re.M)
    assert not re.search(r"^\s+(admin|someone)\b", text, re.M)
    app.config.update(HOST="0.0.0.0", PORT=8080)
    with app.app_context():
        text = banner(app)
    assert "(every interface)" in text and "console      http://127.0.0.1:8080/admin/" in text


def test_the_banner_checks_each_distinct_password_hash_once(app, monkeypatch):
    """A password check takes a tenth of a second by design: the banner checks a hash that several logins share once."""
    checked = []

    def check(digest, password):
        checked.append(digest)
        return check_password_hash(digest, password)

    monkeypatch.setattr(demo_logins_module, "check_password_hash", check)
    with app.app_context():
        shared = create_user(db.session, "office", "office", password=DEMO_PASSWORD).password_hash
        for username in ("admin", "leader"):
            create_user(db.session, username, username).password_hash = shared
        create_user(db.session, "office_dh", "office", password="another-password")
        db.session.commit()
        assert [user.username for user in demo_logins(db.session)] == ["admin", "office", "leader"]
    assert sorted(checked) == sorted({shared, db_hash(app, "office_dh")})


def db_hash(app, username: str) -> str:
    with app.app_context():
        return db.session.scalar(sa.select(User.password_hash).where(User.username == username))


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_prints_where_the_console_is_and_the_demo_logins(app, database_url):
    with app.app_context():  # the demo's logins (loading the whole demo is the business of other tests)
        for username in ("admin", "office", "leader"):
            create_user(db.session, username, username, password=DEMO_PASSWORD)
        db.session.commit()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": "", "SECRET_KEY": "test-secret",
           "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "app", "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(line.startswith("    leader") for line in list(lines)):
            time.sleep(0.2)
        text = "".join(lines)
        assert f"console      http://127.0.0.1:{port}/admin/" in text, text
        assert f"demo logins (password {DEMO_PASSWORD})" in text
        assert all(re.search(rf"^\s+{name}\s", text, re.M) for name in ("admin", "office", "leader"))
        response = requests.get(f"http://127.0.0.1:{port}/admin/login", timeout=10)
        assert response.status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        reader.join(5)  # the pipe ended with the process
        server.stdout.close()


def test_serve_on_a_taken_port_says_so_and_prints_no_address(app, database_url):
    """The banner tells where the site answers, so it comes only once the socket is bound: a taken port is a
    one-line refusal naming the address, never an address that does not answer (nor a traceback)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": "", "SECRET_KEY": "test-secret",
               "HOST": "127.0.0.1", "PORT": str(port)}
        done = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "app", "serve"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert f"Port {port} is in use" in done.stderr, done.stderr  # Werkzeug's words
    assert "Traceback" not in done.stderr and "console" not in done.stdout


# --- the city's network of windows ---------------------------------------------------------------------------

def city_network_checks(app):
    """The demo is a city's network (checked on the same load as the history above, a load being most of a minute):
    every window has cases, 挂牌督办 below the root told the parent, a county sees only its own subtree."""
    from demo.data import COUNTIES, NETWORK_USERS
    from tickets import offices
    from tickets.accounts import issue_token
    from tickets.models import Office

    with app.app_context():
        session = db.session
        tree = {o.code: o for o in session.scalars(sa.select(Office))}
        assert len(tree) == 1 + 3 * 3 and tree["root"].name == "市民服务中心"
        assert {o.level for o in tree.values()} == {"city", "county", "township"}
        per_office = dict(session.execute(sa.select(Ticket.office_id, sa.func.count()).group_by(Ticket.office_id)).all())
        assert all(per_office.get(o.id, 0) > 0 for o in tree.values()), per_office  # every window has cases
        assert len(set(session.scalars(sa.select(Ticket.status).where(Ticket.office_id != tree["root"].id)))) >= 4
        # 挂牌督办 below the root told the parent office's supervisors
        assert session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                              .where(SmsMessage.audience == "parent_office")) > 0
        for username, _role, office, _department, _display in NETWORK_USERS:
            user = session.scalar(sa.select(User).where(User.username == username))
            assert user.office_id == (tree[office].id if office else None)
        county, sibling = COUNTIES[0][0], COUNTIES[1][0]
        token = issue_token(session, session.scalar(sa.select(User).where(User.username == f"office_{county}")))
        mine = set(session.scalars(sa.select(Ticket.tracking_no).where(
            Ticket.office_id.in_(offices.subtree_ids(session, tree[county].id)))))
        theirs = session.scalar(sa.select(Ticket.tracking_no).where(Ticket.office_id == tree[sibling].id).limit(1))
        session.commit()
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/staff/tickets?per_page=100", headers=headers).get_json()
    assert {t["tracking_no"] for t in listed["items"]} == mine and listed["total"] == len(mine)
    assert client.get(f"/api/v1/staff/tickets/{theirs}", headers=headers).status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_db_upgrade_says_what_it_did_without_alembics_plugin_chatter(database_url):
    """`make run` starts with `flask db upgrade`: its output is what Alembic did and one line, not Alembic's set-up
    of its plugins (seven INFO lines before anything happened)."""
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": "", "SECRET_KEY": "test-secret"}
    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "database at head" in done.stdout
    assert "alembic.runtime.migration" in done.stderr  # Alembic's own lines still come (the log is configured)
    assert "setup plugin" not in done.stderr, done.stderr[:2000]
