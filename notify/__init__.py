"""SMS: the outbox, its backends and worker, the webhooks, and the satisfaction survey.

Other rooms call `send_sms`; it writes an outbox row in the caller's transaction and the row is sent
by a Dramatiq worker only after that transaction commits (see `notify.outbox`).
"""
from __future__ import annotations

from .operations import send_sms, writing_history

__all__ = ["send_sms", "writing_history"]


def init_app(app) -> None:
    """Wire the SMS room: session hooks that enqueue after commit, event receivers, webhooks, actors, the sweep job."""
    from sqlmodel import Session

    from tickets.broker import bind_actors
    from tickets.signals import event_recorded

    from . import cli, hooks, outbox, tasks, webhooks
    from .test_numbers import parse_test_numbers

    parse_test_numbers(app.config["SMS_TEST_NUMBERS"])  # a malformed setting stops start-up with a clear message
    outbox.install_session_hooks(Session)
    event_recorded.connect(hooks.on_event, weak=False)
    bind_actors(app.extensions["banjie.broker"], tasks.ACTORS)
    app.extensions["banjie.sms_enqueue"] = tasks.enqueue
    app.extensions.setdefault("banjie.scheduled", {})["sms-outbox"] = tasks.schedule_redrive
    app.register_blueprint(webhooks.bp)
    app.cli.add_command(cli.sms_cli)
