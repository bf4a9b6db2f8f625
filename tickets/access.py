"""Who is calling, and which tickets they may see. Row filtering happens in the query, never after it."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import g, request
from flask_login import current_user

from . import clock, offices
from .db import db
from .errors import NotFound, Unauthorized
from .extensions import csrf
from .models import OFFICE_MEMBER_ROLES, OFFICE_ROLES, ApiToken, Role, Ticket, TicketCoDepartment, User
from .secrets import hash_api_token
from .workflow import Actor

TOKEN_TOUCH_INTERVAL = timedelta(hours=1)


def user_from_bearer(header: str | None) -> User | None:
    if not header or not header.startswith("Bearer "):
        return None
    token = header[len("Bearer "):].strip()
    if not token or len(token) > 200:
        return None
    session = db.session
    row = session.execute(
        sa.select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_api_token(token), ApiToken.revoked_at.is_(None), User.active.is_(True))
    ).first()
    if row is None:
        return None
    api_token, user = row
    now = clock.now()
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_TOUCH_INTERVAL:
        api_token.last_used_at = now
        session.commit()
    return user


def current_staff() -> User:
    """The signed-in staff user (Bearer token or console session), or 401.

    A session-authenticated write must carry the CSRF token, as console forms do; token callers
    are not exposed to cross-site requests, so they need none.
    """
    if "staff" in g:
        return g.staff
    header = request.headers.get("Authorization")
    user = user_from_bearer(header)
    if user is None and header:
        raise Unauthorized()
    if user is None and current_user.is_authenticated:
        user = current_user._get_current_object()
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()
    if user is None:
        raise Unauthorized()
    g.staff = user
    return user


def visibility(actor: Actor, *, kept: bool = False):
    """WHERE clause of the tickets this actor may see: a department handler only its own (lead or co-department);
    office, supervisor and leader users their office's and those of every office below it; admins all. `kept`: for a
    statement built once and run many times (the bell's): the windows are then read when it runs, not listed."""
    if actor.role == Role.department:
        co = sa.select(TicketCoDepartment.ticket_id).where(TicketCoDepartment.department_id == actor.department_id)
        return sa.or_(Ticket.department_id == actor.department_id, Ticket.id.in_(co))
    if actor.role in OFFICE_MEMBER_ROLES:
        if actor.office_id is None:
            return sa.false()
        subtree = offices.ticket_in_subtree_statement if kept else offices.ticket_in_subtree
        return subtree(actor.office_id)
    return sa.true()


def visible_tickets(actor: Actor) -> sa.Select:
    """SELECT of the tickets this actor may see."""
    return sa.select(Ticket).where(visibility(actor))


def ticket_for(actor: Actor, tracking_no: str) -> Ticket:
    """The ticket if it exists and this actor may see it; the same 404 otherwise."""
    ticket = db.session.scalar(visible_tickets(actor).where(Ticket.tracking_no == tracking_no))
    if ticket is None:
        raise NotFound()
    return ticket


def co_department_ids(session, ticket: Ticket) -> list[int]:
    return list(session.scalars(
        sa.select(TicketCoDepartment.department_id).where(TicketCoDepartment.ticket_id == ticket.id)
        .order_by(TicketCoDepartment.department_id)
    ))


def sees_full_phone(actor: Actor, ticket: Ticket) -> bool:
    """Only those who handle the case see the whole number: the office and the lead department."""
    if actor.role in OFFICE_ROLES:
        return True
    return actor.role == Role.department and ticket.department_id == actor.department_id
