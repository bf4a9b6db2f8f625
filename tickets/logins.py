"""Console sessions: one row per sign-in, so that the server can end a session the browser still holds.

Flask's session is a signed cookie that the server cannot take back. The cookie therefore carries a random
key, and only the key's row (found by its hash) says whether the session is still good: signing out, a new
password, a role or department change and deactivation revoke rows, and idle time and an absolute lifetime
expire them. API tokens are separate (tickets/access.py) and unaffected. Operations here never commit.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa

from . import clock
from .models import User, UserSession

SESSION_KEY = "sid"  # where the signed cookie keeps the session's key
# last_seen_at is written at most this often: a page with a dozen requests costs one UPDATE, not twelve.
TOUCH_INTERVAL = timedelta(minutes=1)


def _hash(key: str) -> str:
    # 256 random bits: an unsalted fast hash is safe and lets us find the row by it (as for API tokens).
    return hashlib.sha256(key.encode()).hexdigest()


def start(session, user: User, now: datetime) -> str:
    """A new session of `user`; the key goes into the signed cookie, only its hash into the database."""
    key = secrets.token_urlsafe(32)
    session.add(UserSession(key_hash=_hash(key), user_id=user.id, created_at=now, last_seen_at=now))
    user.last_login_at = now
    return key


def session_id(session, key) -> int | None:
    """The id of the sign-in whose key the cookie holds (live or not), or None: what a console session is called
    where something is kept per sign-in (the access log's reasons, tickets/privacy/access.py)."""
    if not isinstance(key, str) or not key or len(key) > 100:
        return None
    return session.scalar(sa.select(UserSession.id).where(UserSession.key_hash == _hash(key)))


def end(session, key: str | None, now: datetime, reason: str = "sign_out") -> None:
    """Revoke the session of this key (signing out); a key that is unknown or already ended is left alone."""
    if not key or not isinstance(key, str):
        return
    session.execute(sa.update(UserSession)
                    .where(UserSession.key_hash == _hash(key), UserSession.revoked_at.is_(None))
                    .values(revoked_at=now, revoked_reason=reason))


def revoke_all(session, user_id: int, reason: str, now: datetime | None = None) -> int:
    """Revoke every live session of an account; the number revoked."""
    result = session.execute(sa.update(UserSession)
                             .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
                             .values(revoked_at=now or clock.now(), revoked_reason=reason))
    return result.rowcount


def live_user(session, user_id: str, key, now: datetime, *, idle: timedelta, lifetime: timedelta) -> User | None:
    """The account of a session that is still good, else None.

    Good means: the key's row belongs to this user id and is not revoked, was used within `idle`, began
    within `lifetime`, and the account is active. An expired row is marked so (the console can tell why);
    a live one has its last_seen_at moved on at most once per TOUCH_INTERVAL. Both are pending changes
    for the caller to commit.
    """
    if not isinstance(key, str) or not key or len(key) > 100 or not (user_id.isascii() and user_id.isdigit()):
        return None
    row = session.execute(
        sa.select(UserSession, User).join(User, User.id == UserSession.user_id)
        .where(UserSession.key_hash == _hash(key), UserSession.user_id == int(user_id))
    ).first()
    if row is None:
        return None
    login, user = row
    if login.revoked_at is not None or not user.active:
        return None
    expired = ("idle" if now - login.last_seen_at > idle else
               "expired" if now - login.created_at > lifetime else None)
    if expired:
        login.revoked_at, login.revoked_reason = now, expired
        return None
    if now - login.last_seen_at >= TOUCH_INTERVAL:
        login.last_seen_at = now
    return user
