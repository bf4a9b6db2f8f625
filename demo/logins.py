"""The demo's logins that still open with the demo password, for the banner of `flask serve`."""
from __future__ import annotations

import sqlalchemy as sa
from werkzeug.security import check_password_hash

from tickets.models import User

from .data import DEMO_PASSWORD, DEMO_USERS, NETWORK_USERS


# The usernames of the demo's logins, in the banner's order.
DEMO_LOGINS = [name for name, *_ in DEMO_USERS] + [name for name, *_ in NETWORK_USERS]


def demo_logins(session) -> list[User]:
    """The demo's logins that still open with the demo password: none on a real office's database."""
    users = session.scalars(sa.select(User).where(User.username.in_(DEMO_LOGINS), User.active.is_(True))).all()
    order = {name: index for index, name in enumerate(DEMO_LOGINS)}
    # Each distinct hash is checked once: the demo gives all its logins one (demo/seed.py), and a check takes a tenth
    # of a second by design.
    hashes = {u.password_hash for u in users if u.password_hash}
    opens = {digest: check_password_hash(digest, DEMO_PASSWORD) for digest in hashes}
    return sorted((u for u in users if u.password_hash and opens[u.password_hash]), key=lambda u: order[u.username])


def login_lines(session) -> list[str]:
    """The banner's lines about the demo's logins; none when the demo is not loaded (or its passwords changed)."""
    users = demo_logins(session)
    if not users:
        return []
    width = max(len(u.username) for u in users) + 2
    return [f"  demo logins (password {DEMO_PASSWORD}):"] + [
        f"    {u.username:<{width}}{u.role:<12}{u.display_name or ''}" for u in users]
