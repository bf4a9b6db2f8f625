"""Upgrading a single-window database to offices (migration 0010), on SQLite and PostgreSQL.

The database under test is built by the migrations up to 0009 (today's last one before offices) in a database of
its own, and filled with INSERTs into the tables as 0009 has them: every row of a busy office (cases in every
state with their events, deadlines, ladder steps, texts, surveys, a kept report, deadline policies, users of each
role and their tokens). The rows are what the app writes (made by it on a scratch database), without the columns
0010 adds. Then it is upgraded to head and checked row by row, put to work (actions over the API, the sweeper, the
kept report read), downgraded back to 0009 and upgraded again.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from app import create_app
from escalation import store
from escalation.sweeper import sweep
from tests.helpers import (
    BASE_CONFIG,
    PG_ADMIN_URL,
    PG_TEST_DB,
    PRIVACY_INDEX_KEY,
    PRIVACY_KEYS,
    World,
    an_office_in_every_state,
    at,
    give_phones,
)
from tickets.clock import set_clock
from tickets.db import db
from tickets.models import Status
from tickets.privacy.crypto import KeyRing
from tickets.schema import downgrade_database, upgrade_database

OFFICE_NAME = "东湖市办不成事反映窗口"
OFFICE_ROLES = ("office", "supervisor", "leader")
# Written by the migrations themselves (the calendar), or the migrations' own bookkeeping.
MIGRATION_ROWS = ("alembic_version", "calendar_day", "calendar_year")
REPORT_MONTH = "2026-10"


@pytest.fixture
def old_url(database_url, tmp_path):
    """An empty database of the same kind as the test's, for the schema at 0009."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'at_0009.db'}"
        return
    name = f"{PG_TEST_DB}_at_0009"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def drop(connection):
        connection.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))

    with admin.connect() as connection:
        drop(connection)
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        drop(connection)
    admin.dispose()


def a_busy_office(world, clock) -> dict[str, str]:
    """Cases in every status, texts, fired and pending ladder steps, surveys, a kept report and policies."""
    give_phones(world)
    with world.app.app_context():
        store.set_override(db.session, "review", "problem_type:other", "2", by=world.users["admin"], now=clock())
        store.set_override(db.session, "return", f"department:{world.departments['C']}", "3",
                           by=world.users["admin"], now=clock())
        db.session.commit()
        store.invalidate()
    cases = an_office_in_every_state(world, clock)
    for name, score in (("rated", 1), ("rectifying", 5)):  # 1 is 很满意; 4 and 5 are 差评 and reopen the case
        filed = world.file()
        no = cases[name] = filed["tracking_no"]
        world.act("office", no, "accept")
        world.act("office", no, "transfer", department_id=world.departments["A"])
        world.act("dept_a", no, "reply", content="已办理。")
        world.act("office", no, "approve")
        response = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": score})
        assert response.status_code == 200, response.get_json()
    withdrawn = world.file()  # 撤回 by the citizen
    cases["withdrawn"] = withdrawn["tracking_no"]
    assert world.client.post(f"/api/v1/tickets/{withdrawn['tracking_no']}/withdraw?code={withdrawn['query_code']}",
                             json={}).status_code == 200
    world.act("office", cases["rectifying"], "record_visit", contacted=True, visited_on="2026-11-16",
              outcome="已电话回访，说明整改安排。")
    cases["extension"] = filed = world.file()["tracking_no"]
    world.act("office", filed, "accept")
    world.act("office", filed, "transfer", department_id=world.departments["B"])
    world.act("dept_b", filed, "request_extension", working_days=3, reason="需要现场核查。")
    world.act("supervisor", cases["overdue"], "remind", note="请抓紧办理。")
    report = world.get("office", f"/api/v1/reports/monthly/{REPORT_MONTH}")  # the office's reading keeps it
    assert report.status_code == 200 and report.get_json()["kept"] is True
    at(clock, 2026, 11, 17, 10)  # the overdue case's ladder has fired its first steps; later ones wait
    with world.app.app_context():
        assert sweep(db.session, clock()).sms > 0
    return cases


def opened(table: str, row: dict) -> dict:
    """A row with its encrypted values (`enc:1:…`) opened with the tests' keys: what a release before encryption at
    rest held, in clear (migration 0021 leaves such values as they are; `flask privacy rotate-key` encrypts them)."""
    ring = KeyRing.from_config({"PRIVACY_KEYS": PRIVACY_KEYS, "PRIVACY_INDEX_KEY": PRIVACY_INDEX_KEY})
    return {name: ring.decrypt(value, f"{table}.{name}") if isinstance(value, str)
            else ring.decrypt_bytes(value, f"{table}.{name}") if isinstance(value, (bytes, memoryview))
            else value for name, value in row.items()}


def copy_rows(source_url: str, target_url: str) -> sa.MetaData:
    """Every row of the source's tables into the target's tables of the same name, only the columns the target
    has, in foreign-key order (the rows the migrations wrote themselves stay as they wrote them); on PostgreSQL the
    id sequences follow, as a restore sets them. Returns the target's tables."""
    source, target = sa.create_engine(source_url), sa.create_engine(target_url)
    tables = sa.MetaData()
    tables.reflect(target)
    try:
        with source.connect() as reading, target.begin() as writing:
            for table in tables.sorted_tables:
                if table.name in MIGRATION_ROWS:
                    continue
                rows = [opened(table.name, dict(r._mapping))  # the target's types, in clear as it kept them
                        for r in reading.execute(sa.select(*table.columns))]
                writing.execute(table.delete())
                if rows:
                    writing.execute(table.insert(), rows)
                if target.dialect.name == "postgresql" and "id" in table.columns and rows:
                    writing.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                                            f" (SELECT max(id) FROM {table.name}))"))
    finally:
        source.dispose()
        target.dispose()
    return tables


def rows_of(url: str, tables: sa.MetaData) -> dict[str, list[tuple]]:
    """Each table's rows (only the columns of `tables`), in primary-key order; not those the migrations wrote."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {table.name: [tuple(opened(table.name, dict(r._mapping)).values()) for r in connection.execute(
                sa.select(*table.columns).order_by(*table.primary_key.columns))]
                for table in tables.sorted_tables if table.name not in MIGRATION_ROWS}
    finally:
        engine.dispose()


def scalar(app, sql: str, **params):
    with app.app_context():
        return db.session.scalar(sa.text(sql), params)


def test_a_single_window_database_at_0009_upgrades_to_offices_with_nothing_lost(world, clock, database_url, old_url):
    cases = a_busy_office(world, clock)
    with world.app.app_context():
        statuses = set(db.session.scalars(sa.text("SELECT DISTINCT status FROM ticket")))
    # the source holds a case in every state but 并单's `merged`, which needs the columns of migration 0018 (a merged
    # case's row means nothing at 0009; tests/test_merging.py has its own)
    assert statuses == {s.value for s in Status} - {"merged"}

    old = create_app({**BASE_CONFIG, "DATABASE_URL": old_url, "OFFICE_NAME": OFFICE_NAME})
    set_clock(old, clock)
    try:
        with old.app_context():
            upgrade_database("0009")
            db.engine.dispose()
        tables = copy_rows(database_url, old_url)
        assert "office" not in tables.tables and "office_id" not in tables.tables["ticket"].columns
        assert scalar(old, "SELECT version_num FROM alembic_version") == "0009"
        before = rows_of(old_url, tables)
        for table in ("ticket", "event", "deadline", "escalation_step", "sms_message", "survey", "report",
                      "deadline_policy", "user_account", "api_token", "return_visit", "extension_request"):
            assert before[table], table  # something to lose in every table that matters
        assert before == rows_of(database_url, tables)  # the copy is the office's data, whole

        with old.app_context():
            upgrade_database()
            db.engine.dispose()
        # every row still there, as it was
        assert rows_of(old_url, tables) == before
        # and all of it in the one root office named after OFFICE_NAME
        with old.app_context():
            session = db.session
            assert session.execute(sa.text("SELECT id, code, name, level, parent_id, path FROM office")).all() == [
                (1, "root", OFFICE_NAME, "city", None, "1/")]
            for table in ("ticket", "department", "report"):
                assert set(session.scalars(sa.text(f"SELECT DISTINCT office_id FROM {table}"))) == {1}, table
            users = dict(session.execute(sa.text("SELECT role, office_id FROM user_account")).all())
            assert users == {"admin": None, "department": None, "office": 1, "supervisor": 1, "leader": 1}
            assert session.scalar(sa.text("SELECT count(*) FROM ticket WHERE disputed")) == 0
            assert session.scalar(sa.text("SELECT count(*) FROM deadline_policy WHERE office_id IS NOT NULL")) == 0
            session.close()

        still_working(old, world, clock, cases, before)

        # back to one window: 0010 -> 0009 keeps the root's data, and the way up works again
        with old.app_context():
            downgrade_database("0009")
            db.engine.dispose()
        assert scalar(old, "SELECT version_num FROM alembic_version") == "0009"
        down = sa.MetaData()
        engine = sa.create_engine(old_url)
        down.reflect(engine)
        engine.dispose()
        assert "office" not in down.tables and "dispatch_rule" not in down.tables
        assert "office_id" not in down.tables["ticket"].columns
        after = rows_of(old_url, tables)
        for table, rows in before.items():
            assert len(after[table]) >= len(rows), table  # the new work is kept too
        assert [r for r in before["report"] if r not in after["report"]] == []
        with old.app_context():
            upgrade_database()
            db.engine.dispose()
        assert scalar(old, "SELECT count(*) FROM ticket WHERE office_id = 1") == len(after["ticket"])
    finally:
        with old.app_context():
            db.session.close()
            db.engine.dispose()


def still_working(app, source: World, clock, cases: dict[str, str], before: dict) -> None:
    """The upgraded database at work: the same tokens, actions over the API, the sweeper, the kept report."""
    world = World(app=app, client=app.test_client(), departments=source.departments, tokens=source.tokens,
                  users=source.users)
    at(clock, 2026, 11, 18, 10)
    listed = world.get("office", "/api/v1/staff/tickets?per_page=100")
    assert listed.status_code == 200, listed.get_json()
    with app.app_context():
        everything = set(db.session.scalars(sa.text("SELECT tracking_no FROM ticket")))
    assert {item["tracking_no"] for item in listed.get_json()["items"]} == everything >= set(cases.values())

    # the loop on an upgraded case, start to end
    no = cases["submitted"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已办结。")
    assert world.act("office", no, "approve")["status"] == "closed"
    # the other open states move on too
    assert world.act("dept_a", cases["overdue"], "reply", content="已补办。")["status"] == "replied"
    assert world.act("office", cases["returned"], "transfer", department_id=world.departments["C"])["status"] == \
        "transferred"
    world.act("office", cases["extension"], "decide_extension", approve=True)
    assert world.act("supervisor", cases["due_today"], "remind", note="请今日办结。")
    # a department still sees only its own cases; the new case is filed in the root office
    assert world.get("dept_b", f"/api/v1/staff/tickets/{cases['overdue']}").status_code == 404
    new = world.file()["tracking_no"]
    assert scalar(app, "SELECT office_id FROM ticket WHERE tracking_no = :no", no=new) == 1

    # the sweeper fires the upgraded cases' ladders (written before the upgrade) and writes their texts
    at(clock, 2026, 12, 1, 10)
    with app.app_context():
        pending = db.session.scalar(sa.text("SELECT count(*) FROM escalation_step WHERE fired_at IS NULL"
                                            " AND cancelled_at IS NULL AND id <= :last"),
                                    {"last": max(row[0] for row in before["escalation_step"])})
        assert pending > 0
        result = sweep(db.session, clock())
        assert sum(result.fired.values()) + result.cancelled >= pending and result.sms > 0
        assert result.fired["supervisor"] and result.fired["leader"]  # the upgraded overdue cases climb on
        assert db.session.scalar(sa.text("SELECT count(*) FROM escalation_step WHERE fired_at IS NULL"
                                         " AND cancelled_at IS NULL AND due_at <= :now"), {"now": clock()}) == 0

    # the kept report is read as it was kept
    assert len(before["report"]) == 1
    for who in ("supervisor", "leader", "office"):
        report = world.get(who, f"/api/v1/reports/monthly/{REPORT_MONTH}")
        assert report.status_code == 200, report.get_json()
        assert report.get_json()["kept"] is True
    pdf = world.get("leader", f"/api/v1/reports/monthly/{REPORT_MONTH}.pdf")
    assert pdf.status_code == 200 and pdf.headers["X-Report-Kept"] == "true"
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT pdf FROM report WHERE month = :m"), {"m": REPORT_MONTH}) == pdf.data
