"""SMS: the outbox, its backends and worker, the webhooks, and the satisfaction survey (its replies, and its
closing: `closing`, the default rating of the rounds left unanswered).

Other rooms call `send_sms`; it writes an outbox row in the caller's transaction and the row is sent
by a Dramatiq worker only after that transaction commits (see `notify.outbox`).
"""
from __future__ import annotations

from .operations import send_sms, writing_history

__all__ = ["send_sms", "writing_history"]


def init_app(app) -> None:
    """Wire the SMS room: its reactions to workflow events, the enqueue-after-commit session hooks, webhooks,
    actors, the outbox re-drive and survey closing jobs and the CLI."""
    from sqlmodel import Session

    from tickets.broker import bind_actors, broker
    from tickets.workflow import reactions
    from tickets.schedule import schedule

    from . import cli, hooks, operations, outbox, state, tasks, webhooks
    from .quiet import parse_quiet_hours
    from .test_numbers import parse_test_numbers

    # malformed settings stop start-up with a clear message
    parse_quiet_hours(app.config["SMS_QUIET_HOURS"])
    parse_test_numbers(app.config["SMS_TEST_NUMBERS"])
    hooks.register(reactions(app))
    outbox.install_session_hooks(Session)  # process-wide and idempotent: SQLAlchemy's session events are per class
    bind_actors(broker(app), tasks.ACTORS)
    state.ENQUEUE.set(app, tasks.enqueue)
    schedule(app, "sms-outbox", tasks.schedule_redrive)
    schedule(app, "survey-closing", tasks.schedule_survey_closing)
    app.register_blueprint(webhooks.bp)
    app.cli.add_command(cli.sms_cli)
    app.add_template_global(operations.held_until, "sms_held_until")
