"""Wires the reports room into an app: API, CLI, the generation actor, the scheduler's monthly job, dashboard charts."""
from __future__ import annotations

import time

from tickets.db import db

SCHEDULE_KEY = "reports.monthly"
RETRY_SECONDS = 600  # a job enqueued but not yet done is enqueued again only after this long


def init_app(app) -> None:
    from . import models  # noqa: F401  (the table, for migrations and the console)
    from . import api, cli, dashboard, display, tasks

    app.register_blueprint(api.bp)
    app.cli.add_command(cli.report_cli)
    broker = app.extensions["banjie.broker"]
    tasks.generate_monthly_report.broker = broker
    broker.declare_actor(tasks.generate_monthly_report)
    app.extensions.setdefault("banjie.scheduled", {})[SCHEDULE_KEY] = MonthlyJob(app)
    app.add_template_global(dashboard.last_month, "report_dashboard")
    app.add_template_global(display.month_label, "report_month")


class MonthlyJob:
    """Every scheduler tick: when last month's report does not exist yet, enqueue its generation.

    Cheap (one indexed lookup) and idempotent: the row is unique per month and the actor skips a month
    that exists; an enqueued month is not enqueued again for RETRY_SECONDS while the worker runs.
    """

    def __init__(self, app):
        self.app = app
        self.enqueued: dict[str, float] = {}

    def __call__(self, now) -> str | None:
        from . import operations, tasks

        with self.app.app_context():
            month = operations.previous_month(now)
            if operations.exists(db.session, month):
                return None
        if time.monotonic() - self.enqueued.get(month, -RETRY_SECONDS) < RETRY_SECONDS:
            return None
        self.enqueued[month] = time.monotonic()
        tasks.generate_monthly_report.send(month)
        return month
