"""申诉复核 in the console: the list of appeals of 差评, pending, upheld or rejected, with their reasons.

Who sees which: the appeals of the cases the viewer may see (`tickets.access.visibility`, in the query), and a
department handler only its own department's appeals. The appeal and the decision are taken on the case page
(`appeal`, `decide_appeal`: workflow actions like any other); this list links there and marks the appeals the
viewer may decide (the owning office's supervisor, or an administrator).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import g, has_request_context
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from tickets.clock import local_text
from tickets.db import db
from tickets.labels import APPEAL_OUTCOME_LABELS, label
from tickets.models import (ALL_ROLES, APPEAL_OUTCOMES, Appeal, Department, Role, Survey, Ticket,
                            appeal_outcome_condition)

from .base import ConsoleModelView, RoleGuard, current_actor, row_id
from .queues import department_names
from .scope import OfficeFilter, OfficeFilterGroups, ticket_rows_condition
from .sms import CATEGORY as SURVEYS_CATEGORY
from .sms import TicketLinks, case_link

PENDING_FILTER = 0  # the outcome filter's place in column_filters: the dashboard links to flt0_0=pending
SHORT = 120  # characters of a reason shown in the list; the case page has the whole text


class OutcomeFilter(FilterEqual):
    """Pending, upheld or rejected (`Appeal.outcome`)."""

    def __init__(self):
        super().__init__(Appeal.upheld, _l("Status"))

    def get_options(self, view):
        return [(outcome, label(APPEAL_OUTCOME_LABELS, outcome)) for outcome in APPEAL_OUTCOMES]

    def validate(self, value):
        return value in APPEAL_OUTCOMES

    def clean(self, value):
        return value

    def apply(self, query, value, alias=None):
        return query.filter(appeal_outcome_condition(value))


class AppealDepartmentFilter(FilterEqual):
    """The department that appealed, among the departments as they are now (read per request)."""

    def __init__(self):
        super().__init__(Appeal.department_id, _l("Department"))

    def get_options(self, view):
        if not has_request_context():
            return None
        return [(str(i), name) for i, name in
                db.session.execute(sa.select(Department.id, Department.name).order_by(Department.code)).all()]

    def validate(self, value):
        return row_id(value) is not None

    def clean(self, value):
        return int(value)


def visible_appeals(actor):
    """WHERE clause of the appeals this actor may see: those of the cases they see; a department only its own."""
    condition = ticket_rows_condition(Appeal.ticket_id, actor)
    if actor.role == Role.department:
        condition = sa.and_(condition, Appeal.department_id == actor.department_id)
    return condition


def pending_count(actor) -> int:
    """Appeals waiting for a decision among those the actor sees: the number the dashboard shows, and the length of
    the list it links to."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Appeal).where(
        visible_appeals(actor), appeal_outcome_condition("pending")))


def _short(value: str | None) -> str:
    value = value or ""
    return value if len(value) <= SHORT else value[:SHORT] + "…"


def _outcome(view, context, model, name):
    css = {"pending": "warning", "upheld": "success", "rejected": "secondary"}[model.outcome]
    badge = Markup('<span class="badge badge-{}">{}</span>').format(css, label(APPEAL_OUTCOME_LABELS, model.outcome))
    if model.outcome == "pending" and model.ticket_id in g.get("banjie_appeals_to_decide", ()):
        badge += Markup(' <span class="badge badge-danger appeal-to-decide">{}</span>').format(_("To decide"))
    return badge


class AppealView(TicketLinks, OfficeFilterGroups, RoleGuard, ConsoleModelView):
    """Appeals of 差评 (申诉复核), newest first: which case and rating, the department's reason, the decision."""

    roles = ALL_ROLES
    can_create = can_edit = can_delete = False
    column_display_actions = False
    page_size = 50
    column_list = ("filed_at", "ticket_id", "department_id", "survey_id", "outcome", "reason", "decided_at",
                   "decision_reason", "lifted_rectification")
    column_labels = {"filed_at": _l("Filed"), "ticket_id": _l("Case"), "department_id": _l("Department"),
                     "survey_id": _l("Rating appealed"), "outcome": _l("Status"), "reason": _l("Reason"),
                     "decided_at": _l("Decided"), "decision_reason": _l("Reason for the decision"),
                     "lifted_rectification": _l("Rectification lifted")}
    column_default_sort = ("filed_at", True)  # newest first; the id breaks ties
    column_sortable_list = ("filed_at", "decided_at")
    column_filters = (OutcomeFilter(), AppealDepartmentFilter(), OfficeFilter(Appeal.ticket_id, via_ticket=True))
    column_formatters = {
        "filed_at": lambda v, c, m, n: local_text(m.filed_at),
        "decided_at": lambda v, c, m, n: local_text(m.decided_at) if m.decided_at else "",
        "ticket_id": lambda v, c, m, n: case_link(m.ticket_id),
        "department_id": lambda v, c, m, n: department_names().get(m.department_id, ""),
        "survey_id": lambda v, c, m, n: g.get("banjie_appeal_ratings", {}).get(m.survey_id, ""),
        "outcome": _outcome,
        "reason": lambda v, c, m, n: _short(m.reason),
        "decision_reason": lambda v, c, m, n: _short(m.decision_reason),
        "lifted_rectification": lambda v, c, m, n: _("Yes") if m.lifted_rectification else "",
    }

    def _visible(self, query):
        return query.filter(visible_appeals(current_actor()))

    def get_query(self):
        return self._visible(super().get_query())

    def get_count_query(self):
        return self._visible(super().get_count_query())

    def get_list(self, *args, **kwargs):
        """The page's rows, with what their cells need read once per page: the ratings appealed and the cases this
        viewer may decide an appeal of."""
        count, rows = super().get_list(*args, **kwargs)
        surveys = {row.survey_id for row in rows}
        g.banjie_appeal_ratings = {
            survey_id: _("Round %(round)d, rated %(score)d", round=round_, score=score or 0)
            for survey_id, round_, score in db.session.execute(
                sa.select(Survey.id, Survey.round, Survey.score).where(Survey.id.in_(surveys))).all()
        } if surveys else {}
        actor = current_actor()
        tickets = {row.ticket_id for row in rows}
        if actor.role == Role.admin:
            g.banjie_appeals_to_decide = tickets
        elif actor.role == Role.supervisor and tickets:
            g.banjie_appeals_to_decide = set(db.session.scalars(
                sa.select(Ticket.id).where(Ticket.id.in_(tickets), Ticket.office_id == actor.office_id)))
        else:
            g.banjie_appeals_to_decide = set()
        return count, rows


def register(admin) -> None:
    # 申诉复核 is part of 好差评: beside the surveys, not one more item on a menu bar that must fit one line
    admin.add_view(AppealView(Appeal, db, name=_l("Appeals"), endpoint="appeals", url="/admin/appeals",
                              category=SURVEYS_CATEGORY))
