"""Why a text went out, or why a ladder step was planned: the case event or ladder step recorded as its cause.

The case page and the SMS log's message page both say it in these words, linking to the event in the case's
history or to the step in its escalation table. Both work from what the case page already shows: its events
(`tickets.presenters.staff_view`) and its ladder rows (`admin.escalation.step_row`).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from escalation.models import EscalationStep
from tickets.clock import iso, iso_text
from tickets.models import Event
from tickets.workflow import label_of


@dataclass(frozen=True)
class Cause:
    text: str
    anchor: str  # the element on the case page it points at


def of_event(event: dict | None) -> Cause | None:
    if event is None:
        return None
    return Cause(_("%(what)s, %(at)s", what=event["label"], at=iso_text(event["at"])), f"event-{event['id']}")


def of_step(step: dict | None) -> Cause | None:
    if step is None:
        return None
    return Cause(_("Escalation ladder: %(step)s (%(deadline)s)", step=step["step"], deadline=step["deadline"]),
                 f"step-{step['id']}")


def of_message(message, events: dict, steps: dict) -> Cause | None:
    """A text's cause from the case's events and ladder rows by id (None: a reply to the citizen, or no record)."""
    if message.step_id is not None:
        return of_step(steps.get(message.step_id))
    if message.event_id is not None:
        return of_event(events.get(message.event_id))
    return None


def load_for_message(session, message) -> Cause | None:
    """The cause of one text, read from the database (the SMS log's message page)."""
    from .escalation import step_row

    step = session.get(EscalationStep, message.step_id) if message.step_id is not None else None
    event = session.get(Event, message.event_id) if message.event_id is not None else None
    events = {event.id: {"id": event.id, "label": label_of(event.action), "at": iso(event.at)}} if event else {}
    return of_message(message, events, {step.id: step_row(step)} if step else {})
