"""Who is calling, and which tickets they may see. Row filtering happens in the query, never after it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import g, request
from flask_login import current_user

from . import clock, offices
from .db import db
from .errors import InsufficientScope, NotFound, Unauthorized
from .extensions import csrf
from .models import (
    OFFICE_MEMBER_ROLES, OFFICE_ROLES, ApiToken, Role, Ticket, TicketCoDepartment, TokenScope, User,
)
from .secrets import hash_api_token

TOKEN_TOUCH_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user, or (user_id None, role None) the citizen."""

    user_id: int | None
    role: Role | None
    department_id: int | None = None
    system: bool = False  # the sweeper and other automatic steps
    office_id: int | None = None  # office, supervisor and leader users: their window

    @classmethod
    def of(cls, user) -> "Actor":
        return cls(user.id, Role(user.role), user.department_id, office_id=user.office_id)

    @property
    def role_name(self) -> str:
        return "system" if self.system else self.role.value if self.role else "citizen"


CITIZEN = Actor(None, None)
SYSTEM = Actor(None, None, system=True)


def _token_and_user(raw: str) -> tuple[ApiToken, User] | None:
    """The live token with this raw key and its active user; None for an unknown or revoked key or an inactive user.
    Notes when the token was used, at most once an hour."""
    if not isinstance(raw, str):
        return None
    raw = raw.strip()
    if not raw or len(raw) > 200:
        return None
    session = db.session
    row = session.execute(
        sa.select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_api_token(raw), ApiToken.revoked_at.is_(None), User.active.is_(True))
    ).first()
    if row is None:
        return None
    api_token, user = row
    now = clock.now()
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_TOUCH_INTERVAL:
        api_token.last_used_at = now
        session.commit()
    return api_token, user


def filing_token() -> ApiToken | None:
    """The live API token this request files with, if it may file (no scope, or `file`): a 12345 platform or another
    system files under its own rate limit (RATELIMIT_INTEGRATION, per token) instead of the public's per-client one.
    The key is `Authorization: Bearer …`, or Open311's `api_key` field. Looked up once per request."""
    if "filing_token" not in g:
        header = request.headers.get("Authorization", "")
        raw = header[len("Bearer "):] if header.startswith("Bearer ") else None
        if raw is None and request.blueprint == "open311" and request.method == "POST":
            raw = request.form.get("api_key")
        found = _token_and_user(raw) if raw else None
        g.filing_token = found[0] if found and token_allows(found[0].scope, TokenScope.file.value) else None
    return g.filing_token


def token_allows(token_scope: str | None, scope: str) -> bool:
    """A token without a scope may do everything its user may; one with a scope only that."""
    return token_scope is None or token_scope == TokenScope(scope).value


def user_for_api_key(raw: str, scope: str) -> User | None:
    """The user of a raw API token, for a request needing `scope` (a TokenScope value: "file", "read" or "act").

    None when the key is unknown, revoked or its user deactivated (answer 401); raises `InsufficientScope`
    (403, code `insufficient_scope`) when the token is valid but limited to another scope.
    """
    found = _token_and_user(raw)
    if found is None:
        return None
    api_token, user = found
    if not token_allows(api_token.scope, scope):
        raise InsufficientScope()
    return user


def request_scope() -> str:
    """The scope a staff request needs unless its view says otherwise: reading for GET, acting for writes."""
    return TokenScope.read.value if request.method in ("GET", "HEAD", "OPTIONS") else TokenScope.act.value


def current_staff(scope: str | None = None) -> User:
    """The signed-in staff user (Bearer token or console session), or 401.

    A token limited to a scope (`ApiToken.scope`) is refused with 403 `insufficient_scope` outside it: `scope`
    is what this request needs ("file", "read", "act"; by default `request_scope()`). A console session has
    every scope of its user. A session-authenticated write must carry the CSRF token, as console forms do;
    token callers are not exposed to cross-site requests, so they need none.
    """
    if "staff" not in g:
        header = request.headers.get("Authorization")
        if header:
            found = _token_and_user(header[len("Bearer "):]) if header.startswith("Bearer ") else None
            if found is None:
                raise Unauthorized()
            g.staff_token_scope, g.staff = found[0].scope, found[1]
        elif current_user.is_authenticated:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                csrf.protect()
            g.staff_token_scope, g.staff = None, current_user._get_current_object()
        else:
            raise Unauthorized()
    if not token_allows(g.staff_token_scope, scope or request_scope()):
        raise InsufficientScope()
    return g.staff


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
