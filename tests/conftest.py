"""Fixtures: an app on SQLite and on real PostgreSQL, a clock tests can move, and a seeded office.

PostgreSQL-backed tests skip when no server is reachable, unless BANJIE_REQUIRE_SERVICES=1 (CI),
in which case they fail. Tests get the markers `postgres`, `redis` and `browser` from the fixtures they use.

Under pytest-xdist (`make test` runs the suite in parallel) each worker has its own PostgreSQL database
(BANJIE_TEST_PG_DB with the worker's name appended) and its own Redis database (worker gwN takes the number of
BANJIE_TEST_REDIS minus N); everything else a test starts (servers, worker processes) listens on a free port.
"""
from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from hypothesis import settings

from app import create_app
from notify.state import BACKEND
from tests.browser import browser_page  # noqa: F401  (a fixture, here for every test file)
from tests.sms_support import twilio  # noqa: F401  (a fixture: the Twilio-compatible test server)
from tests.network import network  # noqa: F401  (a fixture: a city's network of windows on top of `world`)

# What tests import from tests.helpers; named here too for tests written before it existed.
from tests.helpers import (  # noqa: F401
    BASE_CONFIG,
    CONSOLE_PASSWORD,
    CONSOLE_PASSWORD_HASH,
    PG_ADMIN_URL,
    PG_TEST_DB,
    PG_URL,
    REDIS_URL,
    REQUIRE_SERVICES,
    ROLES,
    START,
    TZ,
    Clock,
    World,
    console_sign_in,
    page_csrf,
    seed_world,
    service_missing,
    set_password,
)
from tickets.clock import set_clock
from tickets.db import db
from tickets.schema import upgrade_database

# make test-fast: a tenth of the examples (tests that set their own count scale it with tests.helpers.examples).
settings.register_profile("fast", max_examples=10)

# Markers from the fixtures a test uses, so `-m` can leave out what needs a service (make test-fast).
FIXTURE_MARKERS = {"postgres_database": "postgres", "postgres_reset": "postgres", "redis_url": "redis",
                   "browser_page": "browser", "module_chromium": "browser"}


def pytest_collection_modifyitems(items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("database_url") == "postgresql":
            names.add("postgres_database")
        for marker in {FIXTURE_MARKERS[name] for name in names & FIXTURE_MARKERS.keys()}:
            item.add_marker(marker)


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


@pytest.fixture(scope="session")
def postgres_reset(postgres_database):
    """Empties the test database between tests, on one connection kept for the session."""
    engine = sa.create_engine(postgres_database)
    reset = PostgresReset(engine)
    yield reset
    engine.dispose()


# Rows the migrations write (reference data), kept between tests.
SEEDED_TABLES = ("alembic_version", "calendar_day", "calendar_year", "office")


ROOT_OFFICE_NAME = "办不成事反映窗口"


class PostgresReset:
    """Empties every table but the seeded reference data, on an engine kept for the session (not a new engine and
    connection for every test), with the list of tables read once."""

    def __init__(self, engine):
        self.engine = engine
        with engine.connect() as connection:
            tables = connection.scalars(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL(:keep)"
            ), {"keep": list(SEEDED_TABLES)}).all()
        self.truncate = sa.text(f"TRUNCATE {', '.join(sorted(tables))} RESTART IDENTITY CASCADE")

    def __call__(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(self.truncate)
            # the calendar the migration seeded stays; what a test entered goes
            for table in ("calendar_day", "calendar_year"):
                connection.execute(sa.text(f"DELETE FROM {table} WHERE source <> 'chinese_calendar'"))
            # the root office the migration wrote stays, as it wrote it; offices a test made go
            connection.execute(sa.text("DELETE FROM office WHERE id <> 1"))
            connection.execute(sa.text("UPDATE office SET code = 'root', level = 'city', parent_id = NULL, path = '1/',"
                                       " area_code = NULL, active = true, default_unanswered = true, name = :name"),
                               {"name": ROOT_OFFICE_NAME})
            connection.execute(sa.text("SELECT setval(pg_get_serial_sequence('office', 'id'), 1)"))


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "banjie.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    request.getfixturevalue("postgres_reset")()
    return PG_URL


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_app(database_url, clock):
    apps = []

    def make(**config):
        app = create_app({**BASE_CONFIG, "DATABASE_URL": database_url, **config})
        set_clock(app, clock)
        apps.append(app)
        return app

    yield make
    for app in apps:
        backend = BACKEND.find(app)
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


@pytest.fixture
def world(app, client) -> World:
    return seed_world(app, client)


@pytest.fixture
def console(world):
    """A new client signed in as `who` through the management pages' sign-in (English pages unless told)."""

    def as_(who: str, lang: str = "en"):
        set_password(world, who)
        client = world.app.test_client()
        response = console_sign_in(client, who, lang=lang)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return as_
