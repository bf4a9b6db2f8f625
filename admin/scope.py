"""Which windows (offices) a console user sees, and the "window" filter and column of the console's case lists.

Who sees which cases is `tickets.access.visibility` (enforced in every list's query); this module only adds, on
top of it, the choice of one window's subtree for those who see several, and the window's name in the rows.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import g, has_request_context
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from tickets import offices
from tickets.access import visibility
from tickets.db import db
from tickets.models import OFFICE_MEMBER_ROLES, OFFICE_ROLES, Office, Role, Ticket

from .base import current_actor, request_names, row_id

OFFICE_LABEL = _l("Window")


def visible_offices(actor) -> list[Office]:
    """The offices whose cases this actor may see, depth first: an office member's subtree, everyone else's all
    (a department handler's cases may come from any window; visibility still limits them to the department).

    Read once per request: a list page asks for it for each of its office filters and for the filter bar."""
    memo = g.setdefault("banjie_visible_offices", {}) if has_request_context() else {}
    key = (actor.role, actor.office_id)
    if key not in memo:
        memo[key] = _visible_offices(actor)
    return memo[key]


def _visible_offices(actor) -> list[Office]:
    tree = offices.tree(db.session)
    if actor.role in OFFICE_MEMBER_ROLES:
        if actor.office_id is None:
            return []
        top = db.session.get(Office, actor.office_id)
        return [o for o in tree if top is not None and o.path.startswith(top.path)]
    return tree


def office_options(actor) -> list[tuple[str, str]]:
    """(id, indented name) of the offices this actor sees, for a select."""
    shown = visible_offices(actor)
    top = min((offices.depth(o) for o in shown), default=0)
    return [(str(o.id), "\u3000" * (offices.depth(o) - top) + o.name) for o in shown]


def sees_several_offices() -> bool:
    return has_request_context() and current_user.is_authenticated and len(office_options(current_actor())) > 1


OFFICE_NAMES = sa.select(Office.id, Office.name)  # built once: a list asks for it in every row


def office_names() -> dict[int, str]:
    return request_names("office", OFFICE_NAMES)


def keeps_city_wide_settings(user) -> bool:
    """Whether this user sets what applies to the whole city (the working-day calendar, the problem types' deadlines,
    the catalogue of service items): administrators and the root office's staff, not a county's or a township's."""
    return user.role == Role.admin.value or (user.role in {r.value for r in OFFICE_ROLES}
                                             and user.office_id == offices.root_id(db.session))


def visible_ticket_ids(actor) -> sa.Select:
    """SELECT of the ids of the tickets this actor may see (for rows that point at a ticket: texts, surveys)."""
    return sa.select(Ticket.id).where(visibility(actor))


def sees_caseless_rows(actor) -> bool:
    """Rows tied to no case (a report's texts to leaders) belong to the whole deployment: administrators and the
    root office's members see them, a county's or a township's do not."""
    if actor.role == Role.admin:
        return True
    return actor.role in OFFICE_MEMBER_ROLES and actor.office_id is not None \
        and actor.office_id == offices.root_id(db.session)


class OfficeChoice:
    """A filter whose value is one of the offices the viewer sees (the options), given as its id."""

    def get_options(self, view):
        if not has_request_context() or not current_user.is_authenticated:
            return None
        return office_options(current_actor())

    def validate(self, value):
        return row_id(value) is not None

    def clean(self, value):
        return int(value)


class OfficeFilter(OfficeChoice, BaseSQLAFilter):
    """The cases of one window and of the windows below it (within what the list already limits to the viewer).

    `column` is the ticket's `office_id`, or a ticket id column of another table (`via_ticket=True`).
    """

    def __init__(self, column=Ticket.office_id, *, via_ticket: bool = False):
        self.via_ticket = via_ticket
        super().__init__(column, OFFICE_LABEL)

    def condition(self, office_id: int):
        in_window = Ticket.office_id.in_(offices.subtree(office_id))
        if self.via_ticket:
            return self.column.in_(sa.select(Ticket.id).where(in_window))
        return in_window

    def apply(self, query, value, alias=None):
        return query.filter(self.condition(value))

    def operation(self):
        return _l("and below")


class OfficeFilterGroups:
    """Mixin for a list with an OfficeFilter: its options are read per request (offices change), and the filter is
    offered only to those who see several windows."""

    def _get_filter_groups(self):
        self._refresh_filters_cache()
        groups = super()._get_filter_groups()
        if groups and not sees_several_offices():
            groups.pop(str(OFFICE_LABEL), None)
        return groups


def ticket_rows_condition(column, actor, *, caseless: bool = False):
    """WHERE clause of rows pointing at a ticket (`column`) that this actor may see; rows tied to no case too
    when `caseless` and the actor sees those (`sees_caseless_rows`)."""
    visible = column.in_(visible_ticket_ids(actor))
    if caseless and sees_caseless_rows(actor):
        return sa.or_(visible, column.is_(None))
    return visible


class VisibleTicketRows:
    """Mixin for a Flask-Admin list of rows that belong to a ticket (texts, surveys): only the rows of the tickets
    the viewer may see, in the query, whatever the filters; `caseless_rows` says whether rows of no case exist."""

    caseless_rows = False

    def _visible(self, query):
        column = getattr(self.model, "ticket_id")
        return query.filter(ticket_rows_condition(column, current_actor(), caseless=self.caseless_rows))

    def get_query(self):
        return self._visible(super().get_query())

    def get_count_query(self):
        return self._visible(super().get_count_query())
