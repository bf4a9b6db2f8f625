"""`flask sms ...`: look at the outbox and push out what is due."""
from __future__ import annotations

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from tickets import clock
from tickets.cli import enqueue_each, interruptible
from tickets.db import db

from . import outbox
from .models import SmsMessage, SmsStatus

sms_cli = AppGroup("sms", help="The SMS outbox.")


@sms_cli.command("status")
def status():
    """Count the outbox rows by status (recorded ones also by why: outbox, history, test_number)."""
    why = sa.case((SmsMessage.status == SmsStatus.recorded.value, SmsMessage.backend), else_=None)
    rows = db.session.execute(sa.select(SmsMessage.status, why, sa.func.count()).group_by(SmsMessage.status, why)
                              .order_by(SmsMessage.status, why)).all()
    for name, backend, count in rows:
        click.echo(f"{name:12} {backend or '':12} {count}")
    if not rows:
        click.echo("the outbox is empty")


@sms_cli.command("redrive")
@click.option("--now", "in_process", is_flag=True, help="Send in this process instead of enqueuing for the workers.")
def redrive(in_process):
    """Send (or enqueue) every row that should have gone by now.

    Without BROKER_URL (embedded mode) there are no workers to enqueue for, so it sends in this process."""
    ids = outbox.redrive(clock.now(), grace_seconds=0, batch=100_000)
    if in_process or not current_app.config["BROKER_URL"]:
        results = []
        with interruptible(lambda: f"{len(results)} of {len(ids)} message(s) tried"), \
                click.progressbar(ids, label="sending") as bar:
            for message_id in bar:
                results.append(_send_here(message_id))
        click.echo(", ".join(f"{r}: {results.count(r)}" for r in sorted(set(results))) or "nothing to send")
        return
    from .tasks import deliver_sms

    enqueue_each(deliver_sms.send, ids, "message(s)")
    click.echo(f"enqueued {len(ids)} message(s)")


def _send_here(message_id: int) -> str:
    """What one attempt came to; a text that waits for a retry (Twilio 429, 5xx, a timeout) stays in the outbox for
    the next re-drive, and the others are still sent."""
    try:
        return outbox.deliver(message_id)
    except outbox.RetryLater:
        return "retry"
