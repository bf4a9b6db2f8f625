"""Migration 0012 (先行联系: `deadline.working_minutes`, `ticket.contact_due_at`) up, down and up again, on SQLite and
PostgreSQL, in a database of its own, with cases in it at every step."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from app import create_app
from escalation.sweeper import sweep
from tests.helpers import BASE_CONFIG, PG_ADMIN_URL, PG_TEST_DB, at, seed_world, transferred
from tickets.clock import set_clock
from tickets.db import db
from tickets.schema import downgrade_database, upgrade_database

BEFORE = "0011"  # the revision 0012 follows


@pytest.fixture
def scratch_url(database_url, tmp_path):
    """An empty database of the same kind as the test's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'contact.db'}"
        return
    name = f"{PG_TEST_DB}_contact"
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


def columns(app, table: str) -> set[str]:
    with app.app_context():
        names = {c["name"] for c in sa.inspect(db.engine).get_columns(table)}
        db.engine.dispose()
        return names


def rows(app, sql: str) -> list:
    """The rows of a query, on a connection closed afterwards (the schema changes under the app between reads)."""
    with app.app_context():
        found = db.session.execute(sa.text(sql)).all()
        db.session.close()
        db.engine.dispose()
        return found


def migrate(app, revision: str, down: bool = False) -> None:
    with app.app_context():
        (downgrade_database if down else upgrade_database)(revision)
        db.session.close()
        db.engine.dispose()


def test_0012_up_down_and_up_again_with_cases_in_it(scratch_url, clock):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": scratch_url})
    set_clock(app, clock)
    try:
        migrate(app, "head")
        assert {"working_minutes"} <= columns(app, "deadline") and {"contact_due_at"} <= columns(app, "ticket")
        world = seed_world(app, app.test_client())
        waiting = transferred(world, "A")
        assert world.ticket("office", waiting)["contact_due_at"] == "2026-11-17T10:00:00+08:00"

        migrate(app, BEFORE, down=True)
        assert "working_minutes" not in columns(app, "deadline") and "contact_due_at" not in columns(app, "ticket")
        kinds = [kind for (kind,) in rows(app, "SELECT kind FROM deadline ORDER BY id")]
        assert "contact" in kinds  # the rows stay; only the new columns go

        migrate(app, "head")
        assert rows(app, "SELECT working_minutes, (SELECT contact_due_at FROM ticket WHERE ticket.id = deadline.ticket_id)"
                    " FROM deadline WHERE kind = 'contact'") == [(None, None)]
        # the case whose limit the downgrade dropped is still worked: its ladder fires, its contact is recorded
        at(clock, 2026, 11, 17, 10, 0)
        with app.app_context():
            assert sweep(db.session, clock()).fired["contact_supervisor"] == 1
        done = world.act("dept_a", waiting, "record_contact", contacted_at="2026-11-17T10:00", method="phone",
                         outcome="已联系。")
        assert done["first_contact"]["state"] == "met" and done["first_contact"]["working_hours"] is None
        # and a new transfer has its first contact on the clock again
        fresh = transferred(world, "B")
        assert world.ticket("office", fresh)["first_contact"]["working_hours"] == 8
        page = world.console("office").get(f"/admin/case/{waiting}")
        assert page.status_code == 200
    finally:
        with app.app_context():
            db.session.close()
            db.engine.dispose()
