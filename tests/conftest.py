"""Fixtures: an app on SQLite and on real PostgreSQL, a clock tests can move, and a seeded office.

PostgreSQL-backed tests skip when no server is reachable, unless BANJIE_REQUIRE_SERVICES=1 (CI),
in which case they fail. Tests get the markers `postgres`, `redis` and `browser` from the fixtures they use.

Under pytest-xdist (`make test` runs the suite in parallel) each worker has its own PostgreSQL database
(BANJIE_TEST_PG_DB with the worker's name appended) and its own Redis database (worker gwN takes the number of
BANJIE_TEST_REDIS minus N); everything else a test starts (servers, worker processes) listens on a free port.
"""
from __future__ import annotations

import gc
import os
import shutil
import weakref

# The young generation is collected after 5,000 new objects, not 700 (set before the app's modules are imported):
# building an app makes hundreds of thousands that live for the test, and each young pass moved a few hundred of them
# on to the older generations, then to the full passes. With the freezes below (`GC_FREEZE_BEFORE`), the collector's
# time in test_api and test_landline fell from 4.0 s to 1.3 s. `BANJIE_TEST_GC_FREEZE=0` turns both off.
if os.environ.get("BANJIE_TEST_GC_FREEZE") != "0":
    gc.set_threshold(5000, *gc.get_threshold()[1:])

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


def share_url_builders() -> None:
    """Compile each URL rule's builders once per test process, not once per app.

    Werkzeug compiles two small Python functions for every URL rule of an app (what url_for calls), through the
    ast module: about half of `create_app`'s time (some 300 rules), and nearly every test makes an app. The
    functions depend only on what the key below holds (the rule's text, its parsed parts, the names of its
    defaults, and a default's value only when it fills a part of the path, which is not shared), and Werkzeug binds
    each to its rule, so the next app's equal rule gets the same code and builds the same URLs. Only for the
    Werkzeug minor version this was read against: another one compiles as it always does.
    """
    import importlib.metadata

    from werkzeug.routing.rules import Rule

    if not importlib.metadata.version("werkzeug").startswith("3.1.") or hasattr(Rule, "shared_builders"):
        return
    compile_builder = Rule._compile_builder
    builders = {}

    def shared(self, append_unknown=True):
        defaults = tuple(sorted(self.defaults)) if self.defaults else ()
        if defaults and any(dynamic and name in defaults for dynamic, name in self._trace):
            return compile_builder(self, append_unknown)
        key = (self.rule, append_unknown, tuple(self._trace), defaults)
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    Rule._compile_builder = shared
    Rule.shared_builders = builders


share_url_builders()


def share_url_rules() -> None:
    """Parse each URL rule once per test process, not once per app.

    Werkzeug parses every rule's text when the rule is added to an app's map (`Rule.compile`: its parts for the
    matcher, its trace for the builders, a converter for each argument): about half of `create_app` once the builders
    are shared. What the parsing makes depends only on the rule's text, its host or subdomain, whether slashes merge
    and the map's converter classes (the key below); the next app's equal rule takes the same parts and trace (the
    matcher compares and sorts them, never changes them) and converters of its own, made the way the parsing made them
    (`Rule.get_converter` with the same arguments), bound to its own map. tests/test_harness.py compares every rule of
    an app with Werkzeug's own parsing. Only for the Werkzeug minor version this was read against;
    `BANJIE_TEST_PARSE_EACH_RULE=1` turns it off.
    """
    import importlib.metadata

    from werkzeug.routing.rules import Rule

    if (not importlib.metadata.version("werkzeug").startswith("3.1.") or hasattr(Rule, "shared_rules")
            or os.environ.get("BANJIE_TEST_PARSE_EACH_RULE") == "1"):
        return
    compile_rule = Rule.compile
    parsed = {}

    def shared(self):
        domain = (self.host if self.map.host_matching else self.subdomain) or ""
        key = (self.rule, domain, self.map.host_matching, bool(self.merge_slashes),
               frozenset(self.map.converters.items()))
        made = parsed.get(key)
        if made is None:
            asked = []
            own = type(self).get_converter

            def get_converter(variable_name, converter_name, args, kwargs):
                asked.append((variable_name, converter_name, args, dict(kwargs)))
                return own(self, variable_name, converter_name, args, kwargs)

            self.get_converter = get_converter
            try:
                compile_rule(self)
            finally:
                del self.get_converter
            parsed[key] = (tuple(self._parts), tuple(self._trace), tuple(asked))
            return
        parts, trace, asked = made
        self._parts, self._trace = list(parts), list(trace)
        self._converters = {name: self.get_converter(name, converter, args, kwargs)
                            for name, converter, args, kwargs in asked}
        self.arguments.update(name for name, *_ in asked)
        self._build = self._compile_builder(False).__get__(self, None)
        self._build_unknown = self._compile_builder(True).__get__(self, None)

    Rule.compile = shared
    Rule.shared_rules = parsed
    Rule.compile_each = compile_rule  # Werkzeug's own, for the test that compares


share_url_rules()


def share_console_scaffolding() -> None:
    """Scaffold each console list once per test process, not once per app.

    Flask-Admin's `BaseModelView._refresh_cache` derives a list's columns, forms, search and filters from its class
    and model when the console is built: more than half of `create_app` once the URL builders are shared, and
    nearly every test makes an app (sharing it took a twentieth off test_api's and test_landline's time). What it
    derives depends only on the view's class, endpoint and model (the console's views read no configuration when
    they are made: tests/test_admin_console.py compares each app's shared values with Flask-Admin's own), so the
    next app's view of the same class and endpoint takes the same values: the attributes `_refresh_cache` set on
    the first one. The lists that re-read their options per request (admin/scope.py `OfficeFilterGroups`) set new
    values on their own instance, never into the shared ones.
    """
    from flask_admin.model.base import BaseModelView

    if hasattr(BaseModelView, "shared_scaffolding"):
        return
    refresh = BaseModelView._refresh_cache
    kept = {}

    def shared(self):
        key = (type(self), self.endpoint, getattr(self, "model", None))
        made = kept.get(key)
        if made is None:
            before = dict(self.__dict__)
            refresh(self)
            made = kept[key] = {name: value for name, value in self.__dict__.items()
                                if name not in before or before[name] is not value}
        else:
            self.__dict__.update(made)

    BaseModelView._refresh_cache = shared
    BaseModelView.shared_scaffolding = kept
    BaseModelView.own_refresh_cache = refresh

    # The list's actions (`@action` methods), which Flask-Admin finds by reading every attribute of the view (a
    # quarter of what was left of building a console): the methods found on the first view of a class, bound to the
    # next one.
    from flask_admin import tools
    from flask_admin.actions import ActionsMixin

    init_actions = ActionsMixin.init_actions
    found = {}

    def shared_actions(self):
        methods = found.get(type(self))
        if methods is None:
            methods = found[type(self)] = [(name, attribute._action) for name in dir(self)
                                           if hasattr(attribute := tools.get_dict_attr(self, name), "_action")]
        self._actions = [(name, text) for _method, (name, text, _desc) in methods]
        self._actions_data = {name: (getattr(self, method), text, desc) for method, (name, text, desc) in methods}

    ActionsMixin.init_actions = shared_actions
    ActionsMixin.own_init_actions = init_actions


if os.environ.get("BANJIE_TEST_SCAFFOLD_EACH_APP") != "1":
    share_console_scaffolding()


class SharedCompiledSql:
    """One compiled-SQL cache for every engine of a test process, in place of each engine's own.

    SQLAlchemy keeps the SQL it compiled for a statement in its engine, keyed by the dialect object; nearly every test
    makes an app, so an engine, and compiled every statement it ran again: about a tenth of a test's time. Here an
    engine's dialect stands for every dialect of its class with the same settings (its plain values: server version,
    flags read at the first connection, paramstyle), which compile every statement to the same SQL. Only for the
    SQLAlchemy minor version this was read against (`ClauseElement._compile_w_cache`): another keeps its own caches.
    """

    def __init__(self):
        self.compiled = {}
        self.kinds = weakref.WeakKeyDictionary()  # dialect → its class and settings, once it has connected

    def kind(self, dialect):
        kind = self.kinds.get(dialect)
        if kind is None:
            plain = (bool, int, float, str, bytes, tuple, type(None))
            settings = sorted((name, value) for name, value in vars(dialect).items()
                              if isinstance(value, plain) and not name.startswith("__"))
            kind = (type(dialect), repr(settings))
            if dialect.server_version_info is not None:  # what the first connection reads is in (else read again)
                self.kinds[dialect] = kind
        return kind

    def _key(self, key):
        dialect, *rest = key  # ClauseElement._compile_w_cache's key: the dialect, then what the statement is
        return (self.kind(dialect), *rest)

    def get(self, key, default=None):  # what SQLAlchemy calls: get, set and clear
        return self.compiled.get(self._key(key), default)

    def __setitem__(self, key, compiled):
        self.compiled[self._key(key)] = compiled

    def clear(self):
        self.compiled.clear()


def share_compiled_sql() -> None:
    from sqlalchemy.engine.base import Engine

    if not sa.__version__.startswith("2.1.") or hasattr(Engine, "shared_compiled_sql"):
        return
    shared = Engine.shared_compiled_sql = SharedCompiledSql()
    # what Engine.__init__ sets (an LRU cache of its own, or None for query_cache_size=0) is left unread
    Engine._compiled_cache = property(lambda engine: shared, lambda engine, own: None)


if os.environ.get("BANJIE_TEST_COMPILE_EACH_ENGINE") != "1":
    share_compiled_sql()

# No Hypothesis deadline anywhere: an example's time says nothing about the product on a shared two-core machine
# running four test workers (a 5 ms example of tests/test_recover_code.py once took 255 ms and failed the 200 ms
# default), and speed is measured in tests/bench/, never in tests.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
# make test-fast: a tenth of the examples (tests that set their own count scale it with tests.helpers.examples).
settings.register_profile("fast", parent=settings.get_profile("suite"), max_examples=10)

# Markers from the fixtures a test uses, so `-m` can leave out what needs a service (make test-fast).
FIXTURE_MARKERS = {"postgres_database": "postgres", "postgres_reset": "postgres", "redis_url": "redis",
                   "browser_page": "browser", "module_chromium": "browser"}


# `make test` runs `pytest -n 4 --dist loadgroup`: xdist hands each worker one test at a time (holding at most three),
# so a test of minutes no longer has a batch of others queued behind it while the other workers run out of work, and
# the tests that share a module-scoped fixture (a browser, a served office) go to one worker together, as a group.
# The longest tests (the timing run of 2026-12-02, slowest first) start first, so that none of them starts late and
# holds up the end of the run; only the order changes, and only under loadgroup.
LONGEST_FIRST = (
    "tests/test_route_walk.py::test_no_route_answers_5xx",
    "tests/test_workflow_matrix.py::test_every_action_in_every_status",
    "tests/test_demo.py::test_the_demo_is_history_acted_in_office_hours",
    "tests/test_prod_stack.py::test_make_prod_runs_the_stack_end_to_end_and_recovers_from_kill_9",
    "tests/test_bench_scripts.py::test_the_filing_benchmark_checks_every_filing_and_every_photo",
    "tests/test_office_visibility.py::test_every_console_view_shows_each_window_its_subtree",
    "tests/test_route_walk.py::test_random_requests_never_answer_5xx",
    "tests/test_workflow_matrix.py::test_every_action_for_every_role",
    "tests/test_demo.py::test_with_twilio_loading_and_running_the_demo_texts_nobody",
    "tests/test_browser_csp.py::test_every_console_page_and_widget_under_the_csp",
    "tests/test_hostile_input.py::test_a_return_address_with_a_control_character_is_a_400_on_every_console_view",
    "tests/test_console_pages.py::test_console_text_has_chinese_punctuation_and_no_developer_commands",
    "tests/test_browser_console_pages.py::test_dashboard_cards_open_what_they_count",
    "tests/test_upgrade_offices.py::test_a_single_window_database_at_0009_upgrades_to_offices_with_nothing_lost",
    "tests/test_backup.py::test_a_dump_restored_into_an_empty_database_holds_every_case_file_and_report",
    "tests/test_escalation_failure.py::test_worker_killed_mid_batch_fires_each_step_once",
    "tests/test_browser_console.py::test_a_case_from_intake_to_closed_in_the_console",
    "tests/test_browser_story.py::test_an_elderly_citizen_and_a_landline_caller_are_served_to_the_end",
    "tests/test_smoke.py::test_flask_serve_answers_on_host_and_port",
    "tests/test_redis_outage.py::test_a_silent_redis_holds_a_filing_for_seconds_not_minutes",
    "tests/test_integration_api.py::test_sixteen_identical_requests_at_once_make_one_case",
    "tests/test_webhooks_crash.py::test_a_broker_outage_at_commit_loses_nothing_and_sends_once",
    "tests/test_webhooks_crash.py::test_a_worker_killed_mid_request_delivers_at_least_once_with_the_same_id",
    "tests/test_metrics.py::test_one_hosts_processes_are_added_up",
)
SHARED_SCOPES = ("module", "class", "package")


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("database_url") == "postgresql":
            names.add("postgres_database")
        for marker in {FIXTURE_MARKERS[name] for name in names & FIXTURE_MARKERS.keys()}:
            item.add_marker(marker)
        if shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
            if getattr(config.option, "loadgroup", False) and hasattr(item, "_id"):
                # xdist groups by a suffix of the node id, which it writes to `_nodeid`; pytest 9 reads `_id`
                from _pytest.nodeid import NodeId

                item._id = NodeId.parse(f"{item.nodeid}@{item.nodeid.split('::')[0]}")
    # on an xdist worker `dist` reads "no" and `loadgroup` says what the run was started with
    if config.getoption("dist", default=None) == "loadgroup" or getattr(config.option, "loadgroup", False):
        rank = {name: number for number, name in enumerate(LONGEST_FIRST)}

        def longest_first(item):
            number = rank.get(item.nodeid.split("[")[0], len(rank))
            if number == len(rank) or shares_a_fixture(item):
                return (len(rank), False)
            return (number, "[postgresql" not in item.nodeid)  # on PostgreSQL first: the longer

        items.sort(key=longest_first)


# The collector's full passes walk every object of the process: the libraries, the shared caches above, what the first
# tests load (some 400,000 objects; 150-180 ms a pass), and each test's app and database leave garbage that calls for
# one every few tests: a tenth of a worker's CPU. Before the tests below (counted per worker), what is alive once the
# collector has run (the last test's garbage gone) is moved out of its sight (`gc.freeze`, what the product does at
# start, app.py): it lives as long as the process anyway. A full pass then walks only what came after. What is frozen
# and later dropped stays (a few of the first tests' module-scoped fixtures at most). `BANJIE_TEST_GC_FREEZE=0` turns
# it off.
GC_FREEZE_BEFORE = frozenset({1, 4, 16, 64, 256})
_tests_started = 0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _tests_started
    _tests_started += 1
    if _tests_started in GC_FREEZE_BEFORE and os.environ.get("BANJIE_TEST_GC_FREEZE") != "0":
        gc.collect()
        gc.freeze()


def shares_a_fixture(item) -> bool:
    """Whether the test uses a fixture kept for its module (or class), which the other tests there share."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(definition.scope in SHARED_SCOPES for chain in definitions.values() for definition in chain)


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
    connection for every test), with the list of tables read once.

    A test leaves rows in a few tables: one query finds which, and those are emptied with DELETE, referencing tables
    first, and the sequences the test drew from start again at 1. That takes about 0.01 s where a TRUNCATE of every
    table (a new file for each) took 0.3 to 0.9 s on the shared two-core machine, for each of some 600 PostgreSQL
    tests. A test that left many rows in a table (DELETE would be slow), or a schema whose references DELETE cannot
    follow, gets the TRUNCATE."""

    MANY_ROWS = 2000

    def __init__(self, engine):
        self.engine = engine
        with engine.connect() as connection:
            tables = connection.scalars(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL(:keep)"
            ), {"keep": list(SEEDED_TABLES)}).all()
            references = connection.execute(sa.text(
                "SELECT c.relname, r.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
                " JOIN pg_class r ON r.oid = k.confrelid WHERE k.contype = 'f'")).all()
            # the sequences of the tables' serial and identity columns, which RESTART IDENTITY restarts
            self.sequences = connection.scalars(sa.text(
                "SELECT DISTINCT s.relname FROM pg_class s JOIN pg_depend d ON d.classid = 'pg_class'::regclass"
                " AND d.objid = s.oid AND d.deptype IN ('a', 'i') JOIN pg_class t ON t.oid = d.refobjid"
                " WHERE s.relkind = 'S' AND t.relname = ANY(:tables)"), {"tables": list(tables)}).all()
        self.truncate = sa.text(f"TRUNCATE {', '.join(sorted(tables))} RESTART IDENTITY CASCADE")
        self.order = referencing_first(tables, references)
        # each table that has rows, with how many (counted up to MANY_ROWS + 1)
        self.census = sa.text(" UNION ALL ".join(
            f"SELECT '{table}', (SELECT count(*) FROM (SELECT FROM \"{table}\" LIMIT {self.MANY_ROWS + 1}) AS r)"
            f" WHERE EXISTS (SELECT FROM \"{table}\")" for table in sorted(tables)))
        self.drawn = sa.text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                             " AND sequencename = ANY(:sequences) AND last_value IS NOT NULL")

    def __call__(self) -> None:
        try:
            with self.engine.begin() as connection:
                rows = dict(connection.execute(self.census).all())
                if any(n > self.MANY_ROWS for n in rows.values()):
                    connection.execute(self.truncate)
                else:
                    for table in self.order:
                        if table in rows:
                            connection.execute(sa.text(f'DELETE FROM "{table}"'))
                    for sequence in connection.scalars(self.drawn, {"sequences": self.sequences}).all():
                        connection.execute(sa.text("SELECT setval(:sequence, 1, false)"), {"sequence": sequence})
                self.reference_data(connection)
        except sa.exc.DBAPIError:  # a reference DELETE cannot follow (a cycle, a RESTRICT one): the slow way
            with self.engine.begin() as connection:
                connection.execute(self.truncate)
                self.reference_data(connection)

    @staticmethod
    def reference_data(connection) -> None:
        # the calendar the migration seeded stays; what a test entered goes
        for table in ("calendar_day", "calendar_year"):
            connection.execute(sa.text(f"DELETE FROM {table} WHERE source <> 'chinese_calendar'"))
        # the root office the migration wrote stays, as it wrote it; offices a test made go
        connection.execute(sa.text("DELETE FROM office WHERE id <> 1"))
        connection.execute(sa.text("UPDATE office SET code = 'root', level = 'city', parent_id = NULL, path = '1/',"
                                   " area_code = NULL, active = true, default_unanswered = true, name = :name"),
                           {"name": ROOT_OFFICE_NAME})
        connection.execute(sa.text("SELECT setval(pg_get_serial_sequence('office', 'id'), 1)"))


def referencing_first(tables, references) -> list[str]:
    """`tables` ordered so that each comes before the tables it references (a reference to itself aside)."""
    referenced_by = {table: set() for table in tables}
    for table, referenced in references:
        if table in referenced_by and referenced in referenced_by and table != referenced:
            referenced_by[referenced].add(table)
    order, seen = [], set()

    def visit(table):
        if table not in seen:
            seen.add(table)
            for other in sorted(referenced_by[table]):
                visit(other)
            order.append(table)

    for table in sorted(tables):
        visit(table)
    return order


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
