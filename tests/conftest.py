"""Fixtures: an app on SQLite and on real PostgreSQL, a clock tests can move, and a seeded office.

PostgreSQL-backed tests skip when no server is reachable, unless BANJIE_REQUIRE_SERVICES=1 (CI),
in which case they fail.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app import create_app
from tickets.accounts import create_user, issue_token
from tickets.schema import upgrade_database
from tickets.db import db
from tickets.models import Department, User
from werkzeug.security import generate_password_hash

TZ = ZoneInfo("Asia/Shanghai")
REQUIRE_SERVICES = os.environ.get("BANJIE_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("BANJIE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_TEST_DB = os.environ.get("BANJIE_TEST_PG_DB", "banjie_test")
PG_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_TEST_DB
# Database 15 of the local Redis is the suite's own; it is flushed before each test that uses it.
REDIS_URL = os.environ.get("BANJIE_TEST_REDIS", "redis://127.0.0.1:6379/15")
# A Monday morning in a published year, so deadlines are easy to reason about.
START = datetime(2026, 11, 16, 9, 0, tzinfo=TZ)


def service_missing(what: str, why: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required here (BANJIE_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


BASE_CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret", "RATELIMIT_PUBLIC": "off",
               "PUBLIC_BASE_URL": "http://localhost"}


def _migrated_app(url: str):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
    with app.app_context():
        upgrade_database()
        db.engine.dispose()
    return app


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "template.db"
    _migrated_app(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database():
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
            ), {"name": PG_TEST_DB})
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}"'))
            connection.execute(sa.text(f'CREATE DATABASE "{PG_TEST_DB}"'))
        admin.dispose()
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", str(error).splitlines()[0])
    _migrated_app(PG_URL)
    return PG_URL


@pytest.fixture
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as error:
        service_missing("Redis", str(error))
    yield REDIS_URL
    client.flushdb()
    client.close()


# Rows the migrations write (reference data), kept between tests.
SEEDED_TABLES = ("alembic_version", "calendar_day", "calendar_year")


def _truncate_all(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = connection.scalars(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL(:keep)"
        ), {"keep": list(SEEDED_TABLES)}).all()
        connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        # the calendar the migration seeded stays; what a test entered goes
        for table in ("calendar_day", "calendar_year"):
            connection.execute(sa.text(f"DELETE FROM {table} WHERE source <> 'chinese_calendar'"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "banjie.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    _truncate_all(url)
    return url


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


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_app(database_url, clock):
    apps = []

    def make(**config):
        app = create_app({**BASE_CONFIG, "DATABASE_URL": database_url, **config})
        app.extensions["banjie.clock"] = clock
        apps.append(app)
        return app

    yield make
    for app in apps:
        backend = app.extensions.get("banjie.sms_backend")
        if backend is not None:
            backend.close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


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


def page_csrf(client, path: str) -> str:
    """The CSRF token of the form on a page, as a browser would submit it."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


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


@pytest.fixture
def world(app, client) -> World:
    return seed_world(app, client)


def seed_world(app, client) -> World:
    """The small office of `world` in any app (for tests that build their own, e.g. with a broker URL)."""
    w = World(app=app, client=client)
    with app.app_context():
        for code, name in (("A", "市场监督管理局"), ("B", "人力资源和社会保障局"), ("C", "住房和城乡建设局")):
            department = Department(code=code, name=name, supervisor_phone="+8613900000001",
                                    leader_phone="+8613900000002")
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
