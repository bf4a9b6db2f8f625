"""The scheduler: every `SWEEP_INTERVAL_SECONDS` it enqueues the sweeper and runs the registered jobs.

Other rooms register periodic work without being imported here, with `tickets.schedule.schedule(app,
name, job)` in their `init_app`: a job is a callable taking the current time. A job must be cheap and idempotent, since a tick may repeat after a restart; typically it
only enqueues an actor (the SMS room's outbox re-driver, the reports room's monthly generation). Each
job runs on its own: one that raises is logged and the others still run, and so does the next tick.

Two ways to run it:
- production: one process, `python scheduler.py` (or `flask escalation scheduler`), next to the
  `dramatiq worker` processes that do the work;
- embedded (`flask serve` without BROKER_URL): a daemon thread of the serve process runs the same loop.
Running two schedulers is harmless (sweeps claim their steps) but wasteful.
"""
from __future__ import annotations

import logging
import signal
import threading

from tickets import clock
from tickets.db import db
from tickets.logs import new_request_id, request_id
from tickets.schedule import scheduled_jobs

from . import store
from .monitoring import SCHEDULER

log = logging.getLogger(__name__)


def tick(app) -> list[str]:
    """One round: enqueue a sweep, then every registered job, then record the tick (the scheduler's heartbeat, which
    /readyz reads). Returns the names of what failed. The tick's log lines, and those of the messages it enqueues,
    carry one id (`tick-...`)."""
    failed = []
    with app.app_context(), request_id(new_request_id("tick-")):
        from .tasks import sweep_escalations

        now = clock.now()
        jobs = {"escalation-sweep": lambda _now: sweep_escalations.send(), **scheduled_jobs(app)}
        for name, job in jobs.items():
            try:
                job(now)
            except Exception:  # a broker outage or one bad job must not stop the others or the loop
                log.exception("scheduled job %s failed", name)
                failed.append(name)
        try:
            store.mark_changed(db.session, SCHEDULER, now, {"failed": failed})
            db.session.commit()
        except Exception:  # the database is away: the heartbeat goes stale, which is what /readyz should say
            db.session.rollback()
            log.exception("could not record the scheduler's heartbeat")
    return failed


def run(app, stop: threading.Event) -> None:
    interval = app.config["SWEEP_INTERVAL_SECONDS"]
    if not interval >= 1:  # create_app refuses it too (app.RANGES): never a loop without a pause
        raise ValueError(f"SWEEP_INTERVAL_SECONDS must be 1 or more, not {interval!r}")
    log.info("scheduler: every %s s", interval)
    while not stop.is_set():
        tick(app)
        stop.wait(interval)


def start_thread(app) -> tuple[threading.Thread, threading.Event]:
    """The embedded scheduler: a daemon thread of this process."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(app, stop), name="banjie-scheduler", daemon=True)
    thread.start()
    return thread, stop


def run_process(app) -> None:
    """The scheduler as a process of its own, until SIGINT or SIGTERM."""
    if not app.config["BROKER_URL"]:
        raise SystemExit("The scheduler process needs BROKER_URL (its sweeps run on dramatiq workers); "
                         "without a broker, `flask serve` runs the scheduler itself.")
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    run(app, stop)
