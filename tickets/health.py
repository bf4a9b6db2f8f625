"""The probes: `GET /healthz` (the process answers; nothing else is looked at) and `GET /readyz` (the deployment can
do its work: one entry per readiness check, 200 when every check passes, else 503).

Rooms register their checks in their `init_app` with `readiness_check(app, name, check)`, as they register
scheduled jobs: `check(session, now)` returns a dict of facts with `"ok"`, and raising counts as failing (the entry
then says only the exception's class). The platform registers `database`, `migrations` and `broker`; the ticket room
`attachments` (the volume of ATTACHMENT_DIR); the escalation room `scheduler` and `workers`; the SMS room `outbox` and
`webhooks`. The facts are counts, ages and revision ids:
never personal data.

Cheap enough for a probe every few seconds: the checks that use the database run one after the other on one
connection, the others each in a thread of their own, all at once; whatever has not answered after
READY_TIMEOUT_SECONDS fails as `timeout` (a silent Redis or database cannot hold the probe), and the answer is kept
READY_CACHE_SECONDS per process. A check whose run of an earlier probe has still not answered is not started again: it
fails as `timeout` until that run ends (PostgreSQL connections give up after DATABASE_CONNECT_TIMEOUT_SECONDS), so
hung runs never take every thread from the checks that would answer. Neither probe signs anyone in, reads the session, sets a cookie or is rate limited.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from flask import Blueprint, current_app, jsonify

from .slots import AppSlot

bp = Blueprint("health", __name__)
# Endpoints that skip the console's sign-in work (tickets/platform.py): a probe costs little and touches no session.
SESSIONLESS = frozenset({"health.healthz", "health.readyz", "telemetry.metrics"})

Check = Callable[..., dict]  # (session, now) -> {"ok": bool, ...facts}


@dataclass(frozen=True)
class ReadinessCheck:
    check: Check
    database: bool  # runs on the probe's one database connection, after the database checks before it


CHECKS: AppSlot[dict[str, ReadinessCheck]] = AppSlot("banjie.readiness", "name -> readiness check",
                                                     default=lambda app: {})


def readiness_check(app, name: str, check: Check, *, database: bool = True) -> None:
    """Register a check of /readyz; `database=False` for one that needs no database (it runs in its own thread)."""
    checks = CHECKS.get(app)
    if name in checks:
        raise ValueError(f"a readiness check named {name!r} is already registered")
    checks[name] = ReadinessCheck(check, database)


_EXECUTOR: dict[int, ThreadPoolExecutor] = {}  # process id -> the probes' threads (none survive a fork)
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    with _EXECUTOR_LOCK:
        pid = os.getpid()
        if pid not in _EXECUTOR:
            _EXECUTOR.clear()
            _EXECUTOR[pid] = ThreadPoolExecutor(max_workers=8, thread_name_prefix="banjie-readyz")
        return _EXECUTOR[pid]


class Probe:
    """Runs an app's checks in threads, with a time limit, and keeps the last answer a moment."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.kept: tuple[float, dict, bool] | None = None
        # group (its checks' names) -> its last run: a run still going (a silent database holding a connect) is not
        # started again, so hung runs cannot pile up in the shared threads and starve the other checks of later probes
        self.running: dict[tuple[str, ...], Future] = {}

    def answer(self) -> tuple[dict, bool]:
        config = self.app.config
        with self.lock:
            kept = self.kept
            if kept is not None and time.monotonic() - kept[0] < config["READY_CACHE_SECONDS"]:
                return kept[1], kept[2]
            results = self.run(config["READY_TIMEOUT_SECONDS"])
            ready = all(result.get("ok") for result in results.values())
            body = {"status": "ok" if ready else "unavailable", "checks": results}
            self.kept = (time.monotonic(), body, ready)
            return body, ready

    def run(self, timeout: float) -> dict[str, dict]:
        checks = CHECKS.get(self.app)
        results: dict[str, dict] = {}
        on_database = [(name, c.check) for name, c in checks.items() if c.database]
        groups = [on_database] + [[(name, c.check)] for name, c in checks.items() if not c.database]
        executor = _executor()
        futures = []
        for group in groups:
            key = tuple(name for name, _check in group)
            if not group or (key in self.running and not self.running[key].done()):
                continue  # its previous run has not answered yet: it fails as `timeout` again
            self.running[key] = executor.submit(self._run_group, group, results)
            futures.append(self.running[key])
        wait(futures, timeout=timeout)
        return {name: dict(results.get(name) or {"ok": False, "error": "timeout"}) for name in checks}

    def _run_group(self, group, results: dict) -> None:
        from . import clock
        from .db import db

        with self.app.app_context():
            now = clock.now()
            for name, check in group:
                started = time.perf_counter()
                try:
                    outcome = {"ok": False, **check(db.session, now)}
                except Exception as error:  # the class says what went wrong; its text could say too much
                    db.session.rollback()
                    outcome = {"ok": False, "error": type(error).__name__}
                outcome["ms"] = round((time.perf_counter() - started) * 1000, 1)
                results[name] = outcome
            db.session.rollback()


PROBE: AppSlot[Probe] = AppSlot("banjie.probe", "the /readyz runner", default=Probe)


@bp.get("/healthz")
def healthz():
    """The process is alive and answers (no database, no broker)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Whether the deployment can do its work: one entry per check; 200 when all pass, 503 otherwise."""
    body, ready = PROBE.get(current_app._get_current_object()).answer()
    return jsonify(body), 200 if ready else 503


# --- the platform's checks ----------------------------------------------------------------------------------------

def database(session, now) -> dict:
    import sqlalchemy as sa

    session.execute(sa.text("SELECT 1"))
    return {"ok": True}


def migrations(session, now) -> dict:
    from .schema import current_revisions, head_revisions

    current, head = current_revisions(session), head_revisions()
    return {"ok": current == head, "current": ",".join(current), "head": ",".join(head)}


# A probe must not wait on a silent broker: its own connection, with short timeouts whatever BROKER_URL says.
BROKER_TIMEOUT_SECONDS = 1.0
BROKER_CLIENT: AppSlot[object] = AppSlot("banjie.readiness_redis", "the broker check's Redis client")


def _redis_client(app):
    client = BROKER_CLIENT.find(app)
    if client is None:
        import redis

        pool = redis.ConnectionPool.from_url(app.config["BROKER_URL"])
        pool.connection_kwargs.update(socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                                      socket_timeout=BROKER_TIMEOUT_SECONDS, retry=None)
        client = BROKER_CLIENT.set(app, redis.Redis(connection_pool=pool))
    return client


def broker(session, now) -> dict:
    url = current_app.config["BROKER_URL"]
    if not url:
        return {"ok": True, "kind": "embedded"}
    if url.startswith(("amqp://", "amqps://")):
        import pika

        parameters = pika.URLParameters(url)
        parameters.socket_timeout = parameters.stack_timeout = parameters.blocked_connection_timeout = \
            BROKER_TIMEOUT_SECONDS
        parameters.connection_attempts, parameters.retry_delay = 1, 0
        pika.BlockingConnection(parameters).close()
        return {"ok": True, "kind": "rabbitmq"}
    _redis_client(current_app).ping()
    return {"ok": True, "kind": "redis"}


def init_app(app) -> None:
    """The probes' routes and the platform's own checks (the rooms add theirs). READY_TIMEOUT_SECONDS and
    READY_CACHE_SECONDS are checked with the other numbers (app.RANGES)."""
    app.register_blueprint(bp)
    readiness_check(app, "database", database)
    readiness_check(app, "migrations", migrations)
    readiness_check(app, "broker", broker, database=False)
