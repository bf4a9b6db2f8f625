"""What every console view shares: who may open it, and what happens to those who may not."""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from sqlalchemy.orm import Query

from tickets.db import db
from tickets.models import Role
from tickets.workflow import Actor

STAFF = frozenset(Role)


def current_role() -> Role | None:
    return Role(current_user.role) if current_user.is_authenticated else None


def current_actor() -> Actor:
    return Actor.of(current_user._get_current_object())


class RoleGuard:
    """Mixin for Flask-Admin views: only `roles` may open the view; it is also hidden from everyone else's menu.

    The anonymous are sent to the login page (and come back afterwards); a signed-in user of another role
    gets 403.
    """

    roles: frozenset[Role] = STAFF

    def is_accessible(self) -> bool:
        return current_role() in self.roles

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(403)


class SQLModelQueries:
    """Mixin for Flask-Admin SQLAlchemy views: build the legacy Query directly.

    Flask-Admin calls `session.query()`, which SQLModel's Session marks deprecated (a warning on every
    list page); constructing `Query` on the same session is what that call does, without the warning.
    """

    def get_query(self):
        return Query([self.model], session=db.session)

    def get_count_query(self):
        return Query([sa.func.count("*")], session=db.session).select_from(self.model)


def request_names(key: str, statement) -> dict:
    """A per-request id → name map for list cells, read once per page rather than once per row."""
    cache = g.setdefault("banjie_names", {})
    if key not in cache:
        cache[key] = dict(db.session.execute(statement).all())
    return cache[key]
