"""`flask serve` in embedded mode: the scheduler thread and the in-process worker fire an overdue case's
steps within a sweep interval, and a restart neither repeats nor loses them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from escalation.models import EscalationStep, Heartbeat
from notify.models import SmsMessage
from tests.helpers import free_port, open_cases, wait_until
from tickets.db import db
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parent.parent


def _serve(database_url, log):
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": "", "SECRET_KEY": "test-secret",
           "PORT": str(free_port()), "SWEEP_INTERVAL_SECONDS": "1"}
    return subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "app", "serve"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def _stop(process):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _sms(app) -> list[tuple[int, str]]:
    with app.app_context():
        return sorted(db.session.execute(sa.select(SmsMessage.ticket_id, SmsMessage.template)
                                         .where(SmsMessage.template.like("escalation_%"))).all())


def _last_sweep(app):
    with app.app_context():
        row = db.session.get(Heartbeat, "sweeper")
        db.session.rollback()
        return row.at if row else None


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_make_run_fires_overdue_steps_once_across_restarts(world, clock, database_url, tmp_path):
    open_cases(world, clock, n=3)  # overdue since March 2026; the server runs on real time
    # months past the deadline the handler's 「即将到期」 warning is called off; the supervisor and leader are told
    expected = sorted((ticket_id, template) for ticket_id in range(1, 4)
                      for template in ("escalation_supervisor", "escalation_leader"))
    with (tmp_path / "serve.log").open("ab") as log:
        server = _serve(database_url, log)
        try:
            wait_until(lambda: _sms(world.app) == expected)
        finally:
            _stop(server)
        restarted_at = _last_sweep(world.app)
        server = _serve(database_url, log)
        try:
            wait_until(lambda: (_last_sweep(world.app) or restarted_at) > restarted_at)  # swept again after the restart
        finally:
            _stop(server)
    assert _sms(world.app) == expected
    with world.app.app_context():
        assert set(db.session.scalars(sa.select(Ticket.supervision_level))) == {3}
        assert db.session.scalars(sa.select(EscalationStep.cancel_reason).where(
            EscalationStep.step == "warning")).all() == ["moment_passed"] * 3
