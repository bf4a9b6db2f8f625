"""SMS: the outbox, its backends and worker, the webhooks, and the satisfaction survey (its replies, and its
closing: `closing`, the default rating of the rounds left unanswered). Outbound webhooks to other systems
(`subscriptions`, `events`, `deliveries`): case events POSTed, signed, to the URLs administrators subscribe.

Other rooms call `send_sms`; it writes an outbox row in the caller's transaction and the row is sent
by a Dramatiq worker only after that transaction commits (see `notify.outbox`).
"""
from __future__ import annotations

from .operations import send_sms, writing_history

__all__ = ["send_sms", "writing_history"]


def init_app(app) -> None:
    """Wire the SMS room: its reactions to workflow events (texts, webhook deliveries), the enqueue-after-commit
    session hooks, Twilio's webhooks, actors, the SMS and webhook re-drives and survey closing jobs and the CLI."""
    from sqlmodel import Session

    from tickets.broker import bind_actors, broker
    from tickets.workflow import reactions
    from tickets.schedule import schedule

    from . import cli, deliveries, events, hooks, operations, outbox, state, tasks, webhook_cli, webhooks
    from .quiet import parse_quiet_hours
    from .test_numbers import parse_test_numbers

    # malformed settings stop start-up with a clear message
    parse_quiet_hours(app.config["SMS_QUIET_HOURS"])
    parse_test_numbers(app.config["SMS_TEST_NUMBERS"])
    deliveries.check_settings(app.config)
    hooks.register(reactions(app))
    events.register(reactions(app))
    outbox.install_session_hooks(Session)  # process-wide and idempotent: SQLAlchemy's session events are per class
    deliveries.install_session_hooks(Session)
    bind_actors(broker(app), tasks.ACTORS)
    state.ENQUEUE.set(app, tasks.enqueue)
    state.WEBHOOK_ENQUEUE.set(app, tasks.enqueue_webhook)
    schedule(app, "sms-outbox", tasks.schedule_redrive)
    schedule(app, "webhook-outbox", tasks.schedule_webhook_redrive)
    schedule(app, "survey-closing", tasks.schedule_survey_closing)
    app.register_blueprint(webhooks.bp)
    app.cli.add_command(cli.sms_cli)
    app.cli.add_command(webhook_cli.webhooks_cli)
    app.add_template_global(operations.held_until, "sms_held_until")
    from . import monitoring  # /readyz and metrics: the outbox's backlog
    monitoring.register(app)
    from . import retention  # an anonymised case's texts, replies and deliveries (tickets/privacy/retention.py)
    retention.register(app)
