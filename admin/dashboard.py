"""The console's home: what is waiting for this user, what is due today, what is late."""
from __future__ import annotations

import sqlalchemy as sa
from flask import url_for
from flask_admin import AdminIndexView, expose
from flask_babel import lazy_gettext as _l

from tickets import clock
from tickets.access import visibility
from tickets.db import db
from tickets.labels import STATUS_LABELS, label
from tickets.models import Ticket

from .base import RoleGuard, current_actor, current_role
from .queues import OPEN, OVERDUE_ARGS, QUEUES, counts_by_status, department_names, due_badge, local_day_bounds, queue_count

LIST_SIZE = 10


class Dashboard(RoleGuard, AdminIndexView):
    def __init__(self):
        super().__init__(name=_l("Home"), url="/admin", template="admin/dashboard.html")

    @expose("/")
    def index(self):
        actor = current_actor()
        now = clock.now()
        day_start, day_end = local_day_bounds(now)
        role = current_role()
        by_status = counts_by_status(actor)
        queues = [
            {"name": q.name, "count": queue_count(q, by_status), "url": url_for(f"{q.endpoint}.index_view")}
            for q in QUEUES if role in q.roles and q.statuses
        ]
        open_cases = sa.and_(visibility(actor), Ticket.status.in_(OPEN))
        count = lambda *conditions: db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(*conditions))
        figures = {
            "new_today": count(visibility(actor), Ticket.created_at >= day_start, Ticket.created_at < day_end),
            "due_today": count(open_cases, Ticket.due_at >= now, Ticket.due_at < day_end),
            "overdue": count(open_cases, Ticket.due_at < now),
        }
        listing = lambda *conditions: list(db.session.scalars(
            sa.select(Ticket).where(open_cases, *conditions).order_by(Ticket.due_at, Ticket.id).limit(LIST_SIZE)))
        overdue = listing(Ticket.due_at < now)
        due_today = listing(Ticket.due_at >= now, Ticket.due_at < day_end)
        all_cases = url_for("cases.index_view")
        overdue_url = url_for("cases.index_view", **OVERDUE_ARGS)
        return self.render(self._template, queues=queues, figures=figures, overdue=overdue, due_today=due_today,
                           departments=department_names(), badge=lambda t: due_badge(t, now), all_cases=all_cases,
                           overdue_url=overdue_url,
                           status_label=lambda status: label(STATUS_LABELS, status))
