"""Reactions to workflow events: what other rooms do, in the same transaction, when the workflow records an
Event (the SMS room writes texts to the outbox, the escalation room plans the case's ladder).

Each room registers its receivers in its `init_app`, per app and per kind of event:

    reactions(app).on("transfer", text_the_citizen)
    reactions(app).on(*workflow.names(moves_deadlines=True), replan_ladder)

`tickets.workflow.record` (and filing, `tickets.intake`) calls `dispatch(event, session=..., ticket=...)` after
adding the event to the session. Receivers may add rows to that session and must not commit; rows they write
record `event` as their cause. For a filing nothing is written yet when they run (see `tickets.intake`): they
must not read the new ticket back or flush, and what they add leaves the session once the filing's one
statement has written it (only the ticket stays), so changing those objects afterwards writes nothing. Receivers run in the order they were registered.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

from flask import Flask

from ..slots import AppSlot
from .registry import KINDS

Receiver = Callable[..., None]  # (event, *, session, ticket, **context)


class Reactions:
    def __init__(self) -> None:
        self._receivers: dict[str, list[Receiver]] = defaultdict(list)

    def on(self, *kinds_and_receiver) -> None:
        """on(kind, ..., receiver): call `receiver` for every event of these kinds."""
        *kinds, receiver = kinds_and_receiver
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"no such kind of event: {kind!r}")
            self._receivers[kind].append(receiver)

    def receivers(self, kind: str) -> tuple[Receiver, ...]:
        return tuple(self._receivers.get(kind, ()))

    def dispatch(self, event, *, session, ticket, **context) -> None:
        for receiver in self._receivers.get(event.action, ()):
            receiver(event, session=session, ticket=ticket, **context)


_SLOT: AppSlot[Reactions] = AppSlot("banjie.reactions", "the app's reactions to workflow events",
                                    default=lambda app: Reactions())


def reactions(app: Flask) -> Reactions:
    return _SLOT.get(app)
