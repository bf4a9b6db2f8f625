"""`flask webhooks ...`: outbound webhook subscriptions and their deliveries, the console's 事件推送 on the command line
(the same operations: notify/subscriptions.py)."""
from __future__ import annotations

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from tickets import clock
from tickets.cli import enqueue_each, interruptible, refused
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.models import Office
from tickets.production import masked
from tickets.validation import ID_MAX

from . import deliveries
from .state import WEBHOOK_ENQUEUE
from .subscriptions import (EVENT_TYPES, WebhookDelivery, WebhookSubscription, create_subscription, send_test,
                            set_active)

webhooks_cli = AppGroup("webhooks", help="Outbound webhooks: subscriptions and deliveries.")
OPTION_NAMES = {"url": "URL", "event_types": "--events", "office": "--office", "label": "--label", "secret": "--secret"}


def _subscription(subscription_id: int) -> WebhookSubscription:
    # an id past the database's integers names no row (and would be the database's error, not an answer)
    subscription = db.session.get(WebhookSubscription, subscription_id) if 1 <= subscription_id <= ID_MAX else None
    if subscription is None:
        raise click.ClickException(f"no webhook subscription {subscription_id}")
    return subscription


@webhooks_cli.command("add")
@click.argument("url")
@click.option("--events", required=True, help=f"comma-separated, of: {', '.join(EVENT_TYPES)}")
@click.option("--office", "office_code", help="only the cases of this office and the offices below it")
@click.option("--label", help="what the subscription is for, e.g. the receiving system")
@click.option("--secret", help="the signing secret (16 to 128 printable ASCII characters); default: a new one")
def add(url, events, office_code, label, secret):
    """Subscribe URL to the EVENTS; prints the subscription's id and its secret (shown this once)."""
    try:
        subscription, secret = create_subscription(
            db.session, {"url": url, "event_types": events, "office_code": office_code, "label": label,
                         "secret": secret}, by=None, now=clock.now())
    except ValidationFailed as error:
        raise refused(error, OPTION_NAMES) from None
    db.session.commit()
    click.echo(f"subscription {subscription.id}: {', '.join(subscription.event_types)}")
    click.echo(f"secret (shown once): {secret}")


@webhooks_cli.command("list")
def list_():
    """Every subscription with its events, office and deliveries by status; never the secrets."""
    counts: dict = {}
    for subscription_id, status, count in db.session.execute(
            sa.select(WebhookDelivery.subscription_id, WebhookDelivery.status, sa.func.count())
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status)).all():
        counts.setdefault(subscription_id, {})[status] = count
    codes = dict(db.session.execute(sa.select(Office.id, Office.code)).all())
    rows = db.session.scalars(sa.select(WebhookSubscription).order_by(WebhookSubscription.id)).all()
    for s in rows:
        state = "active" if s.active else "disabled"
        office = f" office={codes.get(s.office_id)}" if s.office_id else ""
        tally = ", ".join(f"{k} {v}" for k, v in sorted(counts.get(s.id, {}).items())) or "no deliveries"
        click.echo(f"{s.id:>4} {state:8} {masked(s.url)}  [{','.join(s.event_types)}]{office}"
                   f"{'  ' + s.label if s.label else ''}  ({tally})")
    if not rows:
        click.echo("no webhook subscriptions")


@webhooks_cli.command("disable")
@click.argument("subscription_id", type=int)
def disable(subscription_id):
    """Stop sending to a subscription (its waiting deliveries end failed; re-sendable once it is enabled)."""
    changed = set_active(db.session, _subscription(subscription_id), False, now=clock.now())
    db.session.commit()
    click.echo(f"subscription {subscription_id} {'disabled' if changed else 'was already disabled'}")


@webhooks_cli.command("enable")
@click.argument("subscription_id", type=int)
def enable(subscription_id):
    """Send to a disabled subscription again."""
    changed = set_active(db.session, _subscription(subscription_id), True, now=clock.now())
    db.session.commit()
    click.echo(f"subscription {subscription_id} {'enabled' if changed else 'was already active'}")


@webhooks_cli.command("test")
@click.argument("subscription_id", type=int)
@click.option("--now", "in_process", is_flag=True, help="Send in this process and print the answer.")
def test(subscription_id, in_process):
    """Send a `ping` event to a subscription (in this process with --now or in embedded mode, else by a worker)."""
    try:
        delivery = send_test(db.session, _subscription(subscription_id), now=clock.now())
    except ValidationFailed as error:
        raise refused(error, OPTION_NAMES) from None
    delivery_id, key = delivery.id, delivery.uuid
    if in_process or not current_app.config["BROKER_URL"]:
        deliveries.not_enqueued(db.session)
        db.session.commit()
        _send_here(delivery_id)
        row = db.session.get(WebhookDelivery, delivery_id)
        db.session.refresh(row)
        answer = f"HTTP {row.last_status_code}" if row.last_status_code else row.last_error or ""
        click.echo(f"ping {key}: {row.status} {answer}".rstrip())
        if row.status != "delivered":
            raise SystemExit(1)
        return
    deliveries.not_enqueued(db.session)  # enqueued here, to say whether it was (the broker may be away)
    db.session.commit()
    enqueue_each(WEBHOOK_ENQUEUE.get(), [delivery_id], "deliveries")
    click.echo(f"ping {key} enqueued")


def _send_here(delivery_id: int) -> str:
    try:
        return deliveries.deliver(delivery_id)
    except deliveries.RetryLater:
        return "retry"


@webhooks_cli.command("redrive")
@click.option("--now", "in_process", is_flag=True, help="Send in this process instead of enqueuing for the workers.")
def redrive(in_process):
    """Send (or enqueue) every delivery that should have gone by now (what the scheduler does every interval)."""
    ids = deliveries.redrive(clock.now(), grace_seconds=0, batch=100_000)
    if in_process or not current_app.config["BROKER_URL"]:
        results = []
        with interruptible(lambda: f"{len(results)} of {len(ids)} deliveries tried"), \
                click.progressbar(ids, label="sending") as bar:
            for delivery_id in bar:
                results.append(_send_here(delivery_id))
        click.echo(", ".join(f"{r}: {results.count(r)}" for r in sorted(set(results))) or "nothing to send")
        return
    from .tasks import deliver_webhook

    enqueue_each(deliver_webhook.send, ids, "deliveries")
    click.echo(f"enqueued {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'}")


@webhooks_cli.command("status")
def status():
    """Count the deliveries by status."""
    rows = db.session.execute(sa.select(WebhookDelivery.status, sa.func.count()).group_by(WebhookDelivery.status)
                              .order_by(WebhookDelivery.status)).all()
    for name, count in rows:
        click.echo(f"{name:10} {count}")
    if not rows:
        click.echo("no deliveries")
