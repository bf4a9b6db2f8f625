"""The one entry point for staff actions (`perform`) and the pieces every action's handler uses.

`perform` checks the caller's role, the optional `version`, the current state and the payload, claims the
ticket row (a conditional version bump, so two concurrent actions cannot both win), runs the action's handler
and returns the Event it recorded. `record` appends an Event and hands it to the app's reactions (the SMS and
escalation rooms' receivers, see `reactions.py`). Nothing here commits: the caller does, once, and rolls
back on error.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.attributes import set_committed_value

from .. import clock, deadlines
from ..access import Actor
from ..db import new_row
from ..errors import Conflict, Forbidden, InvalidTransition, NotFound
from ..models import OFFICE_MEMBER_ROLES, DeadlineKind, Event, Role, Status, Ticket
from .reactions import reactions
from .registry import ACTIONS, Action


# --- who may do what ------------------------------------------------------------------------------

def role_allows(rule: Action, ticket: Ticket, actor: Actor) -> bool:
    if actor.role == Role.admin:
        return True
    if actor.role in OFFICE_MEMBER_ROLES and ticket.office_id != actor.office_id and not rule.reaches_below:
        return False  # an office acts on the cases it owns; below it only 上级督办 (remind, note)
    if rule.office_without_department and actor.role == Role.office and ticket.department_id is None:
        return True
    if actor.role not in rule.roles:
        return False
    if rule.lead_department_only and actor.role == Role.department:
        return ticket.department_id is not None and ticket.department_id == actor.department_id
    return True


def state_problem(session, ticket: Ticket, action: Action, now: datetime, actor: Actor | None = None):
    """None when the ticket's state permits the action (for this actor), else the message that explains why not."""
    if Status(ticket.status) not in action.statuses:
        return InvalidTransition.default_message
    if action.precondition is not None:
        problem = action.precondition(session, ticket, now)
        if problem is not None:
            return problem
    if action.actor_precondition is not None and actor is not None:
        return action.actor_precondition(session, ticket, actor)
    return None


def allowed_actions(session, ticket: Ticket, actor: Actor) -> list[str]:
    """The actions this actor may take on this ticket now (for the console and the API's ticket view)."""
    now = clock.now()
    return [name for name, action in ACTIONS.items()
            if role_allows(action, ticket, actor) and state_problem(session, ticket, action, now, actor) is None]


def perform(session, ticket: Ticket, actor: Actor, action: str, payload: dict | None = None,
            *, expected_version: int | None = None) -> Event:
    definition = ACTIONS.get(action)
    if definition is None:
        raise NotFound(_l("Unknown action."))
    if not role_allows(definition, ticket, actor):
        raise Forbidden()
    if expected_version is not None and expected_version != ticket.version:
        raise Conflict()
    now = clock.now()
    problem = state_problem(session, ticket, definition, now, actor)
    if problem is not None:
        raise InvalidTransition(problem)
    data = definition.parse(session, ticket, payload or {})
    if definition.changes_state:
        claim(session, ticket, now)
    return definition.handle(session, ticket, actor, data, now)


DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE for a transaction it aborted to break a deadlock


def claim(session, ticket: Ticket, now: datetime) -> None:
    """Bump the version only if nobody else did since we read the ticket; the loser gets 409 conflict.

    On PostgreSQL the UPDATE also takes the row lock, so a concurrent action waits for our commit and
    then finds the version moved. An action that claims two cases (并单: its own, then the other) may wait for one
    that claimed them the other way round; the database breaks that deadlock by aborting one of the two, which lost
    the race as any other loser does (409, its transaction rolled back by whoever answers the error).
    """
    try:
        result = session.execute(
            sa.update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.version == ticket.version)
            .values(version=Ticket.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    except sa.exc.OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == DEADLOCK_DETECTED:
            raise Conflict() from error
        raise
    if result.rowcount != 1:
        raise Conflict()
    set_committed_value(ticket, "version", ticket.version + 1)
    set_committed_value(ticket, "updated_at", now)


def record(session, ticket: Ticket, actor: Actor, action: str, now: datetime, *, from_status=None,
           note=None, public=False, public_note=None, data=None, **context) -> Event:
    """Append the Event and let the app's reactions add their rows (texts, ladder steps) to this transaction.

    Rows a reaction writes name the event as their cause (`event_id`), so the case page can say why a text
    went out. `context` goes to the reactions only (a filing passes the citizen's query code)."""
    event = new_row(Event, ticket_id=ticket.id, at=now, actor_id=actor.user_id, actor_role=actor.role_name,
                    action=action, from_status=from_status, to_status=ticket.status, note=note, public=public,
                    public_note=public_note, data=data, id=context.pop("event_id", None))
    session.add(event)
    reactions(current_app).dispatch(event, session=session, ticket=ticket, **context)
    return event


def move(ticket: Ticket, status: Status) -> str:
    previous = ticket.status
    ticket.status = status.value
    return previous


def open_deadline(session, ticket: Ticket, kind: DeadlineKind):
    return next((d for d in deadlines.open_deadlines(session, ticket) if d.kind == kind.value), None)
