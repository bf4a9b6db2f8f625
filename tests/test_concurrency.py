"""Two staff acting on one ticket at once: exactly one wins, the other gets 409, no event is lost."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tickets import workflow
from tickets.db import db
from tickets.errors import Conflict
from tickets.models import Event, Ticket
from tickets.workflow import Actor


def _ticket(app, tracking_no):
    return db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))


def _office(app, world):
    from tickets.models import User
    return Actor.of(db.session.get(User, world.users["office"]))


@pytest.mark.slow
def test_racing_requests_exactly_one_wins(world):
    numbers = [world.file()["tracking_no"] for _ in range(12)]
    clients = [world.app.test_client() for _ in range(2)]
    headers = world.headers("office")

    def race(no):
        barrier = threading.Barrier(2)

        def attempt(client, action, body):
            barrier.wait()
            return client.post(f"/api/v1/staff/tickets/{no}/{action}", json=body, headers=headers)

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(attempt, clients[0], "accept", {}),
                       pool.submit(attempt, clients[1], "reject", {"reason": "不属于受理范围"})]
            return [f.result() for f in futures]

    for no in numbers:
        responses = race(no)
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409], [r.get_json() for r in responses]
        loser = next(r for r in responses if r.status_code == 409).get_json()
        assert loser["error"]["code"] in ("conflict", "invalid_transition")
        detail = world.ticket("office", no)
        decisive = [e for e in detail["events"] if e["action"] in ("accept", "reject")]
        assert len(decisive) == 1 and detail["version"] == 2
        assert detail["status"] == {"accept": "accepted", "reject": "rejected"}[decisive[0]["action"]]


def test_stale_read_loses_with_conflict(world):
    no = world.file()["tracking_no"]
    with world.app.app_context():
        actor = _office(world.app, world)
        stale = _ticket(world.app, no)  # read, as a slow request would, before the other one commits
        with world.app.app_context():
            fresh = _ticket(world.app, no)
            workflow.perform(db.session, fresh, actor, "accept")
            db.session.commit()
        with pytest.raises(Conflict):
            workflow.perform(db.session, stale, actor, "reject", {"reason": "重复"})
        db.session.rollback()
    detail = world.ticket("office", no)
    assert detail["status"] == "accepted" and [e["action"] for e in detail["events"]] == ["file", "accept"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite serialises writers as a whole
def test_second_writer_waits_for_the_row_lock_then_conflicts(world, database_url):
    no = world.file()["tracking_no"]
    app = world.app
    outcome = {}
    first_claimed = threading.Event()

    def second():
        with app.app_context():
            actor = _office(app, world)
            ticket = _ticket(app, no)
            first_claimed.wait(10)
            try:
                workflow.perform(db.session, ticket, actor, "reject", {"reason": "重复"})
                db.session.commit()
                outcome["second"] = "won"
            except Conflict:
                db.session.rollback()
                outcome["second"] = "conflict"

    with app.app_context():
        actor = _office(app, world)
        ticket = _ticket(app, no)
        thread = threading.Thread(target=second)
        thread.start()
        workflow.perform(db.session, ticket, actor, "accept")  # holds the row lock until commit
        first_claimed.set()
        # wait until PostgreSQL itself reports the second transaction blocked on our lock
        probe = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with probe.connect() as connection:
            for _ in range(500):
                waiting = connection.scalar(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ))
                if waiting:
                    break
                thread.join(0.01)
        probe.dispose()
        assert waiting == 1 and "second" not in outcome
        db.session.commit()
    thread.join(10)
    assert outcome["second"] == "conflict"
    with app.app_context():
        actions = db.session.scalars(sa.select(Event.action).join(Ticket).where(Ticket.tracking_no == no)).all()
    assert sorted(actions) == ["accept", "file"]


@pytest.mark.slow
def test_concurrent_filing_gives_unique_consecutive_numbers(world):
    def file_many(_):
        client = world.app.test_client()
        numbers = []
        for i in range(15):
            response = client.post("/api/v1/tickets", json={"name": "并发", "phone": "13800138000",
                                                            "problem_type": "other", "description": f"并发测试第{i}件"})
            assert response.status_code == 201, response.get_json()
            numbers.append(response.get_json()["tracking_no"])
        return numbers

    with ThreadPoolExecutor(8) as pool:
        numbers = [n for batch in pool.map(file_many, range(8)) for n in batch]
    assert len(numbers) == len(set(numbers)) == 120
    assert sorted(numbers) == [f"BJ20261116-{i:04d}" for i in range(1, 121)]
