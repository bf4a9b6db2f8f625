"""Dramatiq actors of the ticket room. They run inside an app context (AppContextMiddleware)."""
from __future__ import annotations

import dramatiq

from . import attachments, clock, idempotency
from .db import db
from .errors import StorageUnavailable


# No retries: the next scheduler tick purges again.
@dramatiq.actor(queue_name="tickets", max_retries=0)
def purge_held_attachments() -> None:
    """Delete the files the public form held for a filing that never came (after `attachments.HELD_FOR`)."""
    try:
        attachments.purge_held(db.session, clock.now())
    except StorageUnavailable:  # the volume away (tickets.storage logged why): the next tick purges
        db.session.rollback()
        return
    db.session.commit()


# No retries either: the next tick purges what this one left.
@dramatiq.actor(queue_name="tickets", max_retries=0)
def purge_idempotency_keys() -> None:
    """Forget the Idempotency-Keys older than IDEMPOTENCY_KEY_HOURS, with the answers kept for them."""
    idempotency.purge(db.session, clock.now())
    db.session.commit()


ACTORS = (purge_held_attachments, purge_idempotency_keys)


def schedule_purge(now) -> None:
    """The scheduler's job: enqueue the purge."""
    purge_held_attachments.send()


def schedule_idempotency_purge(now) -> None:
    """The scheduler's job: enqueue the purge of old Idempotency-Keys."""
    purge_idempotency_keys.send()
