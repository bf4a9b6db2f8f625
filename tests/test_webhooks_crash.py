"""Outbound webhooks when something dies: real `dramatiq` worker processes, PostgreSQL, Redis as the broker and a
local receiver (tests/webhook_receiver.py).

The promise (README, Webhooks): a delivery is never lost, and it is delivered at least once with the same id and
body. A worker killed while its request is in flight leaves the delivery claimed; once the claim lapses
(WEBHOOK_CLAIM_LEASE_SECONDS) the re-drive sends it again, and the receiver sees that delivery id twice. Nothing else
is sent twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import create_app
from notify.subscriptions import create_subscription
from tests.helpers import BASE_CONFIG, free_port
from tests.webhook_receiver import WebhookReceiver
from tickets import clock
from tickets.broker import broker as broker_of
from tickets.db import db

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 40.0
LEASE = 4  # seconds; WEBHOOK_TIMEOUT_SECONDS is 1 (the lease must be at least three times it)
CITIZEN = {"name": "王五", "phone": "13700137000", "problem_type": "too_slow", "description": "办了一个月还没结果。"}


def wait_for(what: str, condition, timeout: float = DEADLINE, logs=None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}" + (logs() if logs else ""))
        time.sleep(0.1)


class Stack:
    """A production worker's environment; worker processes started and killed here; the app in this process."""

    def __init__(self, env: dict, engine, tmp_path: Path):
        self.env, self.engine, self.tmp_path = env, engine, tmp_path
        self.workers: list[tuple[subprocess.Popen, object]] = []
        self.apps = []

    def start_worker(self, threads: int = 2) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker-{len(self.workers) + 1}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "--processes", "1", "--threads", str(threads), "worker"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append((process, log))
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """kill -9 the worker's whole process group (its main process and the forked worker process)."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def flask(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    def logs(self) -> str:
        text = []
        for number, (_, log) in enumerate(self.workers, 1):
            log.flush()
            tail = Path(log.name).read_text(errors="replace").splitlines()[-30:]
            text.append(f"\n--- worker {number} (last lines) ---\n" + "\n".join(tail))
        return "".join(text)

    def app(self, **config):
        app = create_app({**BASE_CONFIG, "DATABASE_URL": self.env["DATABASE_URL"], "BROKER_URL": self.env["BROKER_URL"],
                          "SMS_QUIET_HOURS": "", "WEBHOOK_TIMEOUT_SECONDS": 1, "WEBHOOK_CLAIM_LEASE_SECONDS": LEASE,
                          **config})
        self.apps.append(app)
        return app

    def deliveries(self) -> dict[str, dict]:
        with self.engine.connect() as connection:
            result = connection.execute(sa.text("SELECT id, uuid, status, attempts, body FROM webhook_delivery"))
            return {row.uuid: row._asdict() for row in result}

    def attempts(self) -> list[dict]:
        with self.engine.connect() as connection:
            result = connection.execute(sa.text("SELECT delivery_id, status_code, duration_ms FROM webhook_attempt"
                                                " ORDER BY id"))
            return [row._asdict() for row in result]

    def all_delivered(self) -> bool:
        rows = self.deliveries()
        return bool(rows) and all(row["status"] == "delivered" for row in rows.values())

    def close(self) -> None:
        for process, log in self.workers:
            if process.poll() is None:
                self.kill(process)
            log.close()
        for app in self.apps:
            broker_of(app).close()
            with app.app_context():
                db.engine.dispose()


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def stack(postgres_database, postgres_reset, redis_url, tmp_path):
    postgres_reset()
    engine = sa.create_engine(postgres_database)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "SMS_", "WEBHOOK_"))}
    env.update({"DATABASE_URL": postgres_database, "BROKER_URL": redis_url, "SECRET_KEY": "banjie-webhook-crash",
                "PUBLIC_BASE_URL": "http://127.0.0.1:9", "SMS_QUIET_HOURS": "", "PYTHONUNBUFFERED": "1",
                "WEBHOOK_TIMEOUT_SECONDS": "1", "WEBHOOK_CLAIM_LEASE_SECONDS": str(LEASE),
                "WEBHOOK_BACKOFF_SECONDS": "0.2"})
    stack = Stack(env, engine, tmp_path)
    try:
        yield stack
    finally:
        stack.close()
        engine.dispose()


def subscribe_and_file(app, receiver, cases: int) -> None:
    """A subscription to `created`, then `cases` filings through the public API, each committed on its own."""
    with app.app_context():
        _subscription, receiver.secret = create_subscription(
            db.session, {"url": receiver.url, "event_types": ["created"]}, by=None, now=clock.now())
        db.session.commit()
    client = app.test_client()
    for _ in range(cases):
        response = client.post("/api/v1/tickets", json=CITIZEN)
        assert response.status_code == 201, response.get_json()


def test_a_worker_killed_mid_request_delivers_at_least_once_with_the_same_id(stack, receiver):
    app = stack.app()
    receiver.hold_next = 1  # the first request arrives, and its answer never gets back to the worker
    first_worker = stack.start_worker(threads=1)
    subscribe_and_file(app, receiver, 6)
    [held] = receiver.wait_for(1, timeout=DEADLINE)
    stack.kill(first_worker)
    receiver.release.set()

    rows = stack.deliveries()
    assert rows[held.delivery]["status"] == "sending"
    stack.start_worker()
    # the scheduler's re-drive, by hand: once the dead worker's claim has lapsed, the delivery is due again
    time.sleep(LEASE + 0.5)
    assert "enqueued" in stack.flask("webhooks", "redrive")
    wait_for("every delivery to be delivered", stack.all_delivered, logs=stack.logs)

    rows = stack.deliveries()
    assert len(rows) == 6 and all(receiver.counts()[key] >= 1 for key in rows)
    assert receiver.duplicates() == {held.delivery: 2}  # at least once: the one in flight, with the same id
    again = [r for r in receiver.received if r.delivery == held.delivery]
    assert again[0].body == again[1].body and all(r.verified for r in receiver.received)
    assert rows[held.delivery]["attempts"] == 2
    attempts = [a for a in stack.attempts() if a["delivery_id"] == rows[held.delivery]["id"]]
    assert [a["status_code"] for a in attempts] == [None, 200]  # the first one's answer was never recorded
    logs = "".join(Path(log.name).read_text() for _process, log in stack.workers)
    assert receiver.url not in logs and receiver.secret not in logs and "13700137000" not in logs


def test_a_broker_outage_at_commit_loses_nothing_and_sends_once(stack, receiver, caplog):
    app = stack.app(BROKER_URL=f"redis://127.0.0.1:{free_port()}/12")
    started = time.monotonic()
    subscribe_and_file(app, receiver, 1)  # the filing commits although nothing can be enqueued
    assert time.monotonic() - started < 15
    [row] = stack.deliveries().values()
    assert row["status"] == "pending" and "could not enqueue webhook delivery" in caplog.text

    # The broker is back: two re-drives enqueue it twice before a worker runs; it is sent once.
    assert "enqueued 1 delivery" in stack.flask("webhooks", "redrive")
    assert "enqueued 1 delivery" in stack.flask("webhooks", "redrive")
    stack.start_worker()
    wait_for("the delivery", stack.all_delivered, logs=stack.logs)
    time.sleep(0.5)
    assert list(receiver.counts().values()) == [1] and receiver.received[0].verified
