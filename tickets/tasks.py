"""Dramatiq actors of the ticket room. They run inside an app context (AppContextMiddleware)."""
from __future__ import annotations

import dramatiq

from . import attachments, clock
from .db import db


# No retries: the next scheduler tick purges again.
@dramatiq.actor(queue_name="tickets", max_retries=0)
def purge_held_attachments() -> None:
    """Delete the files the public form held for a filing that never came (after `attachments.HELD_FOR`)."""
    attachments.purge_held(db.session, clock.now())
    db.session.commit()


ACTORS = (purge_held_attachments,)


def schedule_purge(now) -> None:
    """The scheduler's job: enqueue the purge."""
    purge_held_attachments.send()
