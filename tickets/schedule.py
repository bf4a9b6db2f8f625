"""Periodic jobs of every room, run by the scheduler (escalation/scheduler.py) on each tick.

A room registers its jobs in its `init_app` with `schedule(app, name, job)`; `job(now)` must be cheap and
idempotent, since a tick may repeat after a restart: typically it only enqueues an actor.
"""
from __future__ import annotations

from typing import Callable

from .slots import AppSlot

Job = Callable[..., object]  # (now) -> anything; raising is logged by the scheduler
JOBS: AppSlot[dict[str, Job]] = AppSlot("banjie.scheduled", "name -> periodic job", default=lambda app: {})


def schedule(app, name: str, job: Job) -> None:
    jobs = JOBS.get(app)
    if name in jobs:
        raise ValueError(f"a job named {name!r} is already scheduled")
    jobs[name] = job


def scheduled_jobs(app) -> dict[str, Job]:
    return dict(JOBS.get(app))
