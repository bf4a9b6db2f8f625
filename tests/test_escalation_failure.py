"""Exactly once under failure: overlapping sweepers, a worker killed mid-batch, a broker that is down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import dramatiq
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from escalation import scheduler, sweeper
from escalation.models import EscalationStep
from notify.models import SmsMessage
from tests.helpers import OVERDUE_CASES as CASES
from tests.helpers import open_cases, seed_world, stop_worker, wait_until
from tickets.broker import broker as broker_of
from tickets.db import db
from tickets.models import Event
from tickets.schedule import JOBS

ROOT = Path(__file__).resolve().parent.parent
# Each case's handling deadline is long over at the sweep: its supervisor and leader steps fire, and its warning
# (「即将到期」, meant for before the deadline) is called off.
DUE_STEPS = CASES * 2


def fired_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(EscalationStep)
                                 .where(EscalationStep.fired_at.is_not(None)))


def settled_by_case(app) -> dict[int, set[bool]]:
    """Case → whether each of its steps is settled (fired or called off): a case is never half done."""
    with app.app_context():
        settled: dict[int, set[bool]] = {}
        for ticket_id, fired, cancelled in db.session.execute(sa.select(
                EscalationStep.ticket_id, EscalationStep.fired_at, EscalationStep.cancelled_at)
                .where(EscalationStep.kind == "handle")):
            settled.setdefault(ticket_id, set()).add(fired is not None or cancelled is not None)
        return settled


def assert_each_once(app, cases=CASES):
    """Every due step fired (or was called off) once: one escalation event per case, one SMS per recipient."""
    with app.app_context():
        assert fired_count(app) == cases * 2
        events = Counter((e.ticket_id, e.data["level"]) for e in db.session.scalars(
            sa.select(Event).where(Event.action == "escalate")))
        assert len(events) == cases and set(events.values()) == {1} and {level for _, level in events} == {3}
        sms = db.session.execute(sa.select(SmsMessage.ticket_id, SmsMessage.template, sa.func.count())
                                 .where(SmsMessage.template.like("escalation_%"))
                                 .group_by(SmsMessage.ticket_id, SmsMessage.template)).all()
        assert len(sms) == cases * 2 and {n for *_, n in sms} == {1}
        assert {template for _, template, _ in sms} == {"escalation_supervisor", "escalation_leader"}
        sms_counted = db.session.scalar(sa.select(sa.func.sum(EscalationStep.sms_count)))
        assert sms_counted == cases * 2
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EscalationStep).where(
            EscalationStep.cancel_reason == "moment_passed")) == cases


@pytest.mark.slow
def test_two_sweepers_at_once(world, clock, monkeypatch, database_url):
    open_cases(world, clock)
    act = sweeper._act

    def act_then_wait(*args, **kwargs):  # hold each batch open so the two overlap
        act(*args, **kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(sweeper, "_act", act_then_wait)
    barrier, results = threading.Barrier(2), []

    def run():
        with world.app.app_context():
            barrier.wait()
            results.append(sweeper.sweep(db.session, clock(), batch_size=4))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(sum(r.fired.values()) for r in results) == DUE_STEPS
    if database_url.startswith("postgresql"):  # SQLite has one writer: there the second just waits its turn
        assert all(r.batches for r in results), [r.summary() for r in results]  # both took part, disjointly
    assert_each_once(world.app)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_second_sweeper_takes_no_step_of_a_case_the_first_is_claiming(world, clock, database_url):
    """Sweepers split the due work by case: while one is claiming a case (between taking its first step and the
    rest), another takes none of that case's steps, so one sweep writes one history line per case."""
    open_cases(world, clock, n=1)
    with world.app.app_context():
        engine = db.engine
        due = set(db.session.scalars(sa.select(EscalationStep.id).where(sweeper.PENDING,
                                                                         EscalationStep.due_at <= clock())))
    first, second = Session(engine), Session(engine)
    first_connection = first.connection()
    paused, resume = threading.Event(), threading.Event()

    def pause_after_first_select(conn, cursor, statement, parameters, context, executemany):
        if conn is first_connection and statement.lstrip().upper().startswith("SELECT") and not paused.is_set():
            paused.set()
            resume.wait(10)

    sa.event.listen(engine, "after_cursor_execute", pause_after_first_select)
    try:
        mine: list[int] = []
        claiming = threading.Thread(target=lambda: mine.extend(sweeper.claim(first, clock(), limit=1)))
        claiming.start()
        assert paused.wait(10)
        theirs = sweeper.claim(second, clock(), limit=100)  # while the first holds the case, half claimed
        resume.set()
        claiming.join(10)
    finally:
        sa.event.remove(engine, "after_cursor_execute", pause_after_first_select)
        resume.set()
    try:
        assert len(due) > 1 and set(mine) == due and theirs == []  # the first took all the case's due steps
    finally:
        first.rollback(), second.rollback()
        first.close(), second.close()


def _worker(database_url, redis_url, log, module="worker"):
    """A `dramatiq worker` process of `module` (tests/paused_worker.py holds each sweep batch open)."""
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": redis_url, "SECRET_KEY": "test-secret",
           "ESCALATION_BATCH_SIZE": "5"}
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dramatiq"), module, "--processes", "1", "--threads", "1",
         "--queues", "escalation"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_killed_mid_batch_fires_each_step_once(world, clock, make_app, database_url, redis_url, tmp_path):
    open_cases(world, clock)  # the worker runs on real time: March 2026 is long past
    producer = make_app(BROKER_URL=redis_url)
    from escalation.tasks import sweep_escalations

    with (tmp_path / "worker.log").open("ab") as log:
        worker = _worker(database_url, redis_url, log, module="tests.paused_worker")
        try:
            with producer.app_context():
                sweep_escalations.send()
            wait_until(lambda: fired_count(world.app) >= 5)
            time.sleep(0.5)  # well inside the next batch's pause: claimed, acted, not committed
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            killed_at = fired_count(world.app)
            assert 0 < killed_at < DUE_STEPS
            # only whole batches survived, and a batch takes all due steps of its cases: no case is half done
            assert all(len(flags) == 1 for flags in settled_by_case(world.app).values())
            worker = _worker(database_url, redis_url, log)
            with producer.app_context():
                sweep_escalations.send()
            wait_until(lambda: fired_count(world.app) == DUE_STEPS)
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
    assert_each_once(world.app)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_broker_down_loses_nothing(make_app, clock, redis_url):
    down = make_app(BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens there
    world = seed_world(down, down.test_client())
    open_cases(world, clock, n=5)  # filing and transferring never touch the broker
    # every job that enqueues fails, each logged and none raised: the loop goes on
    assert set(scheduler.tick(down)) == {"escalation-sweep", *JOBS.get(down)}
    assert fired_count(down) == 0
    up = make_app(BROKER_URL=redis_url)
    assert scheduler.tick(up) == []
    broker = broker_of(up)
    worker = dramatiq.Worker(broker, worker_threads=1, queues={"escalation"})
    worker.start()
    try:
        broker.join("escalation", timeout=30_000)
        worker.join()
    finally:
        stop_worker(worker)
    assert_each_once(up, cases=5)


def test_failing_job_does_not_stop_the_others(app, caplog):
    ran = []
    JOBS.get(app).update({
        "broken": lambda now: 1 / 0,
        "fine": lambda now: ran.append(now),
    })
    assert scheduler.tick(app) == ["broken"]
    assert len(ran) == 1 and "scheduled job broken failed" in caplog.text
