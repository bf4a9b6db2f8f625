"""What tests share besides fixtures: where the services are, the movable clock, the seeded office, forms,
polling, and the escalation and console scenarios several test files build on.

Test files import from here (and from the topical helpers: browser.py, sms_support.py, report_figures.py,
report_month.py, twilio_server.py), never from conftest.py or from one another.
"""
from __future__ import annotations

import html
import os
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask_admin.contrib.sqla import ModelView
from hypothesis import settings
from werkzeug.security import generate_password_hash

from admin import console
from escalation import sweeper
from escalation.models import EscalationStep
from tickets.accounts import create_user, issue_token
from tickets.clock import CLOCK
from tickets import clock, offices
from tickets.db import db
from tickets.models import Department, Event, Ticket, User

TZ = ZoneInfo("Asia/Shanghai")
# A Monday morning in a published year, so deadlines are easy to reason about.
START = datetime(2026, 11, 16, 9, 0, tzinfo=TZ)

# --- the services ------------------------------------------------------------------------------------------

REQUIRE_SERVICES = os.environ.get("BANJIE_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("BANJIE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under pytest -n; empty otherwise
PG_TEST_DB = os.environ.get("BANJIE_TEST_PG_DB", "banjie_test") + (f"_{WORKER}" if WORKER else "")
PG_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_TEST_DB


def worker_redis_url(url: str, worker: str) -> str:
    """The Redis database of an xdist worker: gwN takes the base's number minus N (15, 14, ... by default)."""
    if not worker:
        return url
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    if number < 0:
        raise RuntimeError(f"{url} leaves no Redis database for xdist worker {worker}: use a higher number")
    return parts._replace(path=f"/{number}").geturl()


# Database 15 of the local Redis is the suite's own (15, 14, ... in parallel); it is flushed before each test
# that uses it.
REDIS_URL = worker_redis_url(os.environ.get("BANJIE_TEST_REDIS", "redis://127.0.0.1:6379/15"), WORKER)


def service_missing(what: str, why: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required here (BANJIE_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


def examples(n: int) -> int:
    """n hypothesis examples in the full suite; proportionally fewer under a profile with fewer (make test-fast's
    `--hypothesis-profile=fast`), for tests that set their own count."""
    return max(1, n * settings().max_examples // settings.get_profile("default").max_examples)


def free_port() -> int:
    """A local port nobody listens on (bound, then closed), for a server a test starts in another process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout=60.0):
    """Poll `condition` (a database probe) until it holds; the processes under test run on real time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


WORKER_STOP_MS = 10_000


def stop_worker(worker) -> None:
    """Stop a dramatiq Worker a test started, waiting at most WORKER_STOP_MS for its threads.

    dramatiq's own bound is ten minutes a group of threads (`Worker.stop(timeout=600000)`): in one CI run a thread of
    tests/test_logging.py's worker did not stop and the test took 600.1 s, then passed. What a test checks is done
    by the time it stops its worker; a thread still running afterwards is a daemon, gone with the test process."""
    worker.stop(timeout=WORKER_STOP_MS)


# --- the app and its office ----------------------------------------------------------------------------

# The tests' encryption keys (tickets/privacy/crypto.py), fixed so that a database one test app wrote opens in the next;
# the processes tests start (servers, workers, `flask` commands) find them in the environment, as production's do.
PRIVACY_KEYS = "test1:YmFuamllLXRlc3QtcHJpdmFjeS1rZXktMzItYnl0ZXM="
PRIVACY_INDEX_KEY = "YmFuamllLXRlc3QtYmxpbmQtaW5kZXgta2V5LTMyYnk="
os.environ.setdefault("PRIVACY_KEYS", PRIVACY_KEYS)
os.environ.setdefault("PRIVACY_INDEX_KEY", PRIVACY_INDEX_KEY)


def clear(stored, column: str):
    """A value read from an encrypted column by plain SQL (`enc:1:…`), opened with the tests' keys; None stays None."""
    from tickets.privacy.crypto import KeyRing

    return None if stored is None else KeyRing.from_config(
        {"PRIVACY_KEYS": PRIVACY_KEYS, "PRIVACY_INDEX_KEY": PRIVACY_INDEX_KEY}).decrypt(stored, column)

BASE_CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret", "RATELIMIT_PUBLIC": "off",
               "PUBLIC_BASE_URL": "http://localhost", "PRIVACY_KEYS": PRIVACY_KEYS,
               "PRIVACY_INDEX_KEY": PRIVACY_INDEX_KEY}


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> datetime:
        self.now = self.now + timedelta(**kwargs)
        return self.now

    def set(self, *args) -> datetime:
        self.now = datetime(*args, tzinfo=TZ)
        return self.now


def numbered(tracking_no) -> Ticket | None:
    """The case with this tracking number, read in the session of the app context the caller holds."""
    return db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))


@dataclass
class World:
    """A small office: three departments, one user of each role (two department handlers), their tokens."""

    app: object
    client: object
    departments: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)

    def headers(self, who: str | None) -> dict:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def get(self, who, path, **kwargs):
        return self.client.get(path, headers=self.headers(who), **kwargs)

    def post(self, who, path, json=None, **kwargs):
        return self.client.post(path, json=json, headers=self.headers(who), **kwargs)

    def file(self, **overrides) -> dict:
        body = {"name": "张三", "phone": "13800138000", "problem_type": "too_slow",
                "description": "营业执照变更办了一个月还没结果。", **overrides}
        response = self.client.post("/api/v1/tickets", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def act(self, who, tracking_no, action, expect=200, **body):
        response = self.post(who, f"/api/v1/staff/tickets/{tracking_no}/{action}", json=body)
        assert response.status_code == expect, (action, response.get_json())
        return response.get_json()

    def step(self, who, tracking_no, action, **payload) -> None:
        """`act` for a test's set-up: the action taken through `tickets.workflow.perform` and committed, as the API's
        staff_action takes it, without the HTTP request and its answer (the case's staff view, which costs more than
        most actions). What a test checks of the action itself still goes through `act` or `post`."""
        from tickets.workflow import Actor, perform

        with self.app.app_context():
            ticket = numbered(tracking_no)
            perform(db.session, ticket, Actor.of(db.session.get(User, self.users[who])), action, payload)
            db.session.commit()

    def case(self, tracking_no) -> Ticket:
        """A case's row as the database holds it now (detached: its columns read, nothing loads)."""
        with self.app.app_context():
            return numbered(tracking_no)

    def state(self, tracking_no) -> tuple[str, int, int]:
        """(status, version, number of events) of a case, read from the database."""
        with self.app.app_context():
            ticket = numbered(tracking_no)
            events = db.session.scalar(sa.select(sa.func.count()).where(Event.ticket_id == ticket.id))
            return ticket.status, ticket.version, events

    def console(self, who: str):
        """A new browser-like client signed into the console as `who` (through the real sign-in form)."""
        with self.app.app_context():
            user = db.session.get(User, self.users[who])
            user.password_hash = user.password_hash or CONSOLE_PASSWORD_HASH
            db.session.commit()
        client = self.app.test_client()
        response = client.post("/admin/login", data={"username": who, "password": CONSOLE_PASSWORD,
                                                      "csrf_token": page_csrf(client, "/admin/login")})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    def ticket(self, who, tracking_no) -> dict:
        response = self.get(who, f"/api/v1/staff/tickets/{tracking_no}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()


CONSOLE_PASSWORD = "test-password-1"
# A cheap hash for tests (the product uses Werkzeug's default, scrypt); checked by the same function.
CONSOLE_PASSWORD_HASH = generate_password_hash(CONSOLE_PASSWORD, method="pbkdf2:sha256:1")

ROLES = {
    "admin": ("admin", None),
    "office": ("office", None),
    "dept_a": ("department", "A"),
    "dept_b": ("department", "B"),
    "supervisor": ("supervisor", None),
    "leader": ("leader", None),
}


def seed_world(app, client) -> World:
    """The small office of `world` in any app (for tests that build their own, e.g. with a broker URL)."""
    w = World(app=app, client=client)
    with app.app_context():
        root_id = offices.root_id(db.session)
        for code, name in (("A", "市场监督管理局"), ("B", "人力资源和社会保障局"), ("C", "住房和城乡建设局")):
            department = Department(code=code, name=name, supervisor_phone="+8613900000001",
                                    leader_phone="+8613900000002", office_id=root_id)
            db.session.add(department)
        db.session.flush()
        for code, department in ((d.code, d) for d in db.session.scalars(sa.select(Department))):
            w.departments[code] = department.id
        for username, (role, code) in ROLES.items():
            user = create_user(db.session, username, role, department_code=code)
            w.users[username] = user.id
            w.tokens[username] = issue_token(db.session, user)
        db.session.commit()
    return w


# --- forms -------------------------------------------------------------------------------------------------

def page_csrf(client, path: str = "/") -> str:
    """The CSRF token of the form on a page, as a browser would submit it."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def file_by_form(client, **fields):
    """File a case through the public form."""
    data = {"name": "李四", "phone": "139 1234 5678", "problem_type": "too_hard",
            "description": "<script>alert(1)</script> 开证明要跑三个部门 😀 𠀀", **fields}
    return client.post("/", data={"privacy": "y", **data, "csrf_token": page_csrf(client)})


# Console forms of the management views, signed in with a password the test sets (hashed the product's way).
MANAGEMENT_PASSWORD = "correct-horse-battery"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def set_password(world, who: str, password: str = MANAGEMENT_PASSWORD) -> None:
    with world.app.app_context():
        db.session.get(User, world.users[who]).password_hash = generate_password_hash(password)
        db.session.commit()


ELEMENT_ID = re.compile(r'<[a-zA-Z][^<>]*?\sid="([^"]+)"')


def console_lists(app) -> list[ModelView]:
    """The console's Flask-Admin model views (its lists)."""
    return [view for view in console(app)._views if isinstance(view, ModelView)]


def serves(app, view, route: str) -> bool:
    """Whether the console view has this Flask-Admin route (`create_view`, `export`, ...): a list's routes that nobody
    can use are not made (admin/base.py `routes_never_served`)."""
    return f"{view.endpoint}.{route}" in app.view_functions


def ids_given_twice(page: str) -> set[str]:
    """The element ids a page gives to more than one element: a label, a skip link or an SVG's url(#clip) reaches
    the first of them only."""
    return {name for name, count in Counter(ELEMENT_ID.findall(page)).items() if count > 1}


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no csrf_token in the page"
    return html.unescape(match.group(1))


def console_sign_in(client, username: str, password: str = MANAGEMENT_PASSWORD, lang: str = "en"):
    page = client.get(f"/admin/login?lang={lang}").get_data(as_text=True)
    return client.post("/admin/login", data={"username": username, "password": password,
                                              "csrf_token": csrf_of(page)})


def submit(client, path: str, data: dict, form_path: str | None = None):
    """POST a console form the way a browser does: with the csrf_token of the page that shows it."""
    page = client.get(form_path or path)
    assert page.status_code == 200, (form_path or path, page.status_code)
    return client.post(path, data={**data, "csrf_token": csrf_of(page.get_data(as_text=True))})


def row(world, model, **where):
    with world.app.app_context():
        return db.session.scalar(sa.select(model).filter_by(**where))


# --- escalation --------------------------------------------------------------------------------------------

HANDLER_PHONE, OFFICE_PHONE = "+8613800000011", "+8613800000012"


def local(*args):
    return datetime(*args, tzinfo=TZ)


def give_phones(world):
    with world.app.app_context():
        db.session.get(User, world.users["dept_a"]).phone = HANDLER_PHONE
        db.session.get(User, world.users["office"]).phone = OFFICE_PHONE
        db.session.commit()


def sweep(world):
    with world.app.app_context():
        return sweeper.sweep(db.session, CLOCK.get(world.app)())


def steps(world, tracking_no) -> dict:
    """(kind, round, step) -> (local due time, fired?, cancelled?)"""
    with world.app.app_context():
        ticket = numbered(tracking_no)
        rows = db.session.scalars(sa.select(EscalationStep).where(EscalationStep.ticket_id == ticket.id))
        return {(s.kind, s.round, s.step): (s.due_at.astimezone(TZ), s.fired_at is not None, s.cancelled_at is not None)
                for s in rows}


def escalations(world, tracking_no) -> list[dict]:
    with world.app.app_context():
        ticket = numbered(tracking_no)
        events = db.session.scalars(sa.select(Event).where(Event.ticket_id == ticket.id, Event.action == "escalate")
                                    .order_by(Event.id))
        return [{**e.data, "public": e.public, "actor_role": e.actor_role} for e in events]


def contacted(world, tracking_no, who="dept_a"):
    """The department records its first contact (先行联系) now: its own ladder stops, only the handling ladder runs."""
    now = CLOCK.get(world.app)()
    world.step(who, tracking_no, "record_contact", contacted_at=now.isoformat(), method="phone",
               outcome="已电话联系申请人，了解诉求。")


def transferred_case(world, clock):
    """Filed and transferred to A on Monday 2026-11-16 09:00: handling due Monday 11-23 at the end of the day. A
    contacts the citizen at once, so that the handling deadline's ladder is the only one running."""
    case = world.file()["tracking_no"]
    world.step("office", case, "accept")
    world.step("office", case, "transfer", department_id=world.departments["A"])
    contacted(world, case)
    return case


OVERDUE_CASES = 20


def open_cases(world, clock, n=OVERDUE_CASES):
    """n cases transferred to A in March 2026, so every rung of their ladders is long due."""
    with world.app.app_context():
        db.session.get(User, world.users["dept_a"]).phone = HANDLER_PHONE
        db.session.commit()
    clock.set(2026, 3, 2, 9, 0)
    for _ in range(n):
        case = world.file()["tracking_no"]
        world.step("office", case, "accept")
        world.step("office", case, "transfer", department_id=world.departments["A"])
        contacted(world, case)  # only the handling ladders are left to fire
    clock.set(2026, 4, 1, 9, 0)


# --- the console's lists -------------------------------------------------------------------------------------

def at(clock, *when):
    clock.now = datetime(*when, tzinfo=TZ)


def transferred(world, department="A", **transfer):
    no = world.file()["tracking_no"]
    world.step("office", no, "accept")
    world.step("office", no, "transfer", department_id=world.departments[department], **transfer)
    return no


def replied(world, department="A"):
    no = transferred(world, department)
    world.step(f"dept_{department.lower()}", no, "reply", content="已办理。")
    return no


def an_office_in_every_state(world, clock) -> dict[str, str]:
    """Cases in every status, filed on several days, with deadlines past, due later today and due later.

    The clock ends on Monday 2026-11-16 at 15:00: some cases were filed that day, some before.
    """
    cases = {}
    at(clock, 2026, 11, 12, 10)  # Thursday: a one-day deadline that is overdue by Monday
    cases["overdue"] = transferred(world, "A", working_days=1)
    cases["rejected_old"] = world.file()["tracking_no"]
    world.step("office", cases["rejected_old"], "reject", reason="属于诉讼事项，请通过法院解决。")
    at(clock, 2026, 11, 13, 10)  # Friday: due at the end of Monday
    cases["due_today"] = transferred(world, "B", working_days=1)
    cases["shared"] = transferred(world, "A", co_department_ids=[world.departments["B"]])
    cases["accepted_old"] = world.file()["tracking_no"]
    world.step("office", cases["accepted_old"], "accept")
    at(clock, 2026, 11, 16, 9)  # Monday
    cases["submitted"] = world.file()["tracking_no"]
    cases["accepted"] = world.file()["tracking_no"]
    world.step("office", cases["accepted"], "accept")
    cases["rejected"] = world.file()["tracking_no"]
    world.step("office", cases["rejected"], "reject", reason="属于民事纠纷，请通过调解或诉讼解决。")
    cases["replied"] = replied(world, "B")
    cases["closed"] = replied(world, "A")
    world.step("office", cases["closed"], "approve")
    cases["returned"] = transferred(world, "B")
    world.step("dept_b", cases["returned"], "return", reason="不属于本部门职责。")
    at(clock, 2026, 11, 16, 15)
    return cases


def supervise(world, tracking_no: str, level: int) -> None:
    """Raise a case's supervision as the ladder would (an `escalate` event by the system): 2 督办, 3 挂牌督办."""
    from tickets.workflow.actions import escalate

    with world.app.app_context():
        ticket = numbered(tracking_no)
        escalate(db.session, ticket, level, clock.now(), {"steps": []})
        db.session.commit()
