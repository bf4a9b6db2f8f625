"""The pool pings a PostgreSQL connection only after it sat unused (tickets.db `_ping_after_idle`).

A busy worker's connection, checked in a moment ago, is handed out without a round trip; one that sat idle past
PING_AFTER_IDLE_SECONDS is pinged first, and a dead one (the server restarted, a proxy dropped it) is replaced
before the request sees it. A connection that dies within the window fails one request with 503 and Retry-After,
and the next request gets a new connection.
"""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from tickets import db as db_module
from tickets.db import db
from tickets.http import RETRY_AFTER_SECONDS
from tickets.models import Ticket

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

FILING = {"name": "张三", "phone": "13800138000", "problem_type": "too_slow",
          "description": "营业执照变更办了一个月还没有结果。"}


# this test process's own name: the suite runs in several processes at once, each with its own database, and
# ending another process's connections fails that process's test (as two of these tests did to each other)
APP_NAME = f"banjie-pool-test-{os.getpid()}"


@pytest.fixture
def app(make_app, database_url):
    """The app, its connections named so that the test can end them all (a restart ends every one)."""
    return make_app(DATABASE_URL=f"{database_url}?application_name={APP_NAME}")


@pytest.fixture
def pings(app, monkeypatch):
    """Each ping the app's engine makes (SQLAlchemy's own `do_ping`, counted)."""
    with app.app_context():
        dialect = db.engine.dialect
    made = []
    real = dialect.do_ping

    def counted(dbapi_connection):
        made.append(dbapi_connection.info.backend_pid)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    with app.app_context():
        db.engine.dispose()  # from here on the pool holds the one connection a request at a time uses
    return made


def _backends(database_url: str) -> set[int]:
    """The server processes behind the app's pooled connections."""
    with _admin(database_url) as connection:
        return set(connection.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                                      {"name": APP_NAME}).scalars())


def _restart(database_url: str) -> set[int]:
    """What a server restart does to the app's connections: their backends are gone. Their pids."""
    with _admin(database_url) as connection:
        return set(connection.execute(sa.text(
            "SELECT pid FROM (SELECT pid FROM pg_stat_activity WHERE application_name = :name OFFSET 0) AS app "
            "WHERE pg_terminate_backend(pid)"),  # OFFSET 0: the name is matched first, then only those end
            {"name": APP_NAME}).scalars())


def _admin(database_url: str):
    return sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1),
                            poolclass=sa.pool.NullPool).connect()


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(world, client, pings):
    for _ in range(3):
        assert client.post("/api/v1/tickets", json=FILING).status_code == 201
    assert pings == []  # every connection was checked in a moment before


def test_a_connection_that_sat_idle_is_pinged_and_a_dead_one_replaced_unseen(world, client, pings, monkeypatch,
                                                                               database_url):
    assert client.post("/api/v1/tickets", json=FILING).status_code == 201
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection has now sat "long enough"
    dead = _restart(database_url)
    assert dead

    answer = client.post("/api/v1/tickets", json=FILING)
    assert answer.status_code == 201, answer.get_json()
    assert set(pings) <= dead and pings  # each ping found a dead connection; the pool connected again
    assert not _backends(database_url) & dead
    tracking_no, code = answer.get_json()["tracking_no"], answer.get_json()["query_code"]
    assert client.get(f"/api/v1/tickets/{tracking_no}?code={code}").status_code == 200


def test_a_connection_that_dies_within_the_window_fails_one_request_with_503(world, client, pings, monkeypatch,
                                                                             database_url):
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    assert client.post("/api/v1/tickets", json=FILING).status_code == 201
    with world.app.app_context():
        filed_before = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))
    assert _restart(database_url)

    failed = client.post("/api/v1/tickets", json=FILING)
    assert failed.status_code == 503 and failed.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert failed.get_json()["error"]["code"] == "service_unavailable"
    again = client.post("/api/v1/tickets", json=FILING)  # SQLAlchemy replaced the dead connection
    assert again.status_code == 201, again.get_json()
    assert pings == []
    with world.app.app_context():  # the failed filing left nothing behind
        numbers = {ticket.tracking_no for ticket in db.session.scalars(sa.select(Ticket))}
    assert again.get_json()["tracking_no"] in numbers and len(numbers) == filed_before + 1
