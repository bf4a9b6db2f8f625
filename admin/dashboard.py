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
from tickets.models import OPEN_STATUS_VALUES, Role, Ticket

from .appeals import PENDING_FILTER, pending_count
from .base import RoleGuard, current_actor, current_role
from .knowledge import due_alert
from .queues import (QUEUES, DeletionRequestedFilter, DueTodayFilter, FiledTodayFilter, OverdueFilter, counts_by_status,
                     department_names, due_badge, queue_count, shortcut_args)

LIST_SIZE = 10
ALL_CASES = next(q for q in QUEUES if q.endpoint == "cases")
# The figures at the top: each counts exactly what the all-cases list shows with that filter on.
CARDS = (("new_today", _l("New today"), "", FiledTodayFilter),
         ("due_today", _l("Due today"), "stat-warn", DueTodayFilter),
         ("overdue", _l("Overdue"), "stat-alert", OverdueFilter))
# Who is shown the appeals of 差评 waiting for a decision (申诉复核): those who decide them.
APPEAL_DECIDERS = frozenset({Role.supervisor, Role.admin})
# Who is shown the deletion requests waiting for their case to end: those who record and answer them (PIPL Art. 50).
DELETION_HANDLERS = frozenset({Role.office, Role.admin})


class Dashboard(RoleGuard, AdminIndexView):
    def __init__(self):
        super().__init__(name=_l("Home"), url="/admin", template="admin/dashboard.html")

    @expose("/")
    def index(self):
        actor = current_actor()
        now = clock.now()
        role = current_role()
        by_status = counts_by_status(actor, OPEN_STATUS_VALUES)
        # The work queues, counted; the history (已办结, 不予受理, 已撤回) is looked up from the menu, not counted here:
        # counting a city's two million finished cases was most of this page's time.
        queues = [
            {"name": q.name, "count": queue_count(q, by_status, actor), "url": url_for(f"{q.endpoint}.index_view")}
            for q in QUEUES if role in q.roles and q.statuses and q.category is None
        ]
        count = lambda condition: db.session.scalar(
            sa.select(sa.func.count()).select_from(Ticket).where(visibility(actor), condition))
        cards = [{"key": key, "text": text, "css": css, "count": count(kind.condition(now)),
                  "url": url_for("cases.index_view", **shortcut_args(ALL_CASES, kind))}
                 for key, text, css, kind in CARDS]
        if role in APPEAL_DECIDERS:
            cards.append({"key": "appeals", "text": _l("Appeals awaiting decision"), "css": "stat-warn",
                          "count": pending_count(actor),
                          "url": url_for("appeals.index_view", **{f"flt0_{PENDING_FILTER}": "pending"})})
        if role in DELETION_HANDLERS:
            waiting = count(DeletionRequestedFilter.condition(now))
            if waiting:  # a card only while requests wait: most days none does
                cards.append({"key": "deletion_requested", "text": _l("Deletion requests waiting"), "css": "",
                              "count": waiting,
                              "url": url_for("cases.index_view", **shortcut_args(ALL_CASES, DeletionRequestedFilter))})
        listing = lambda kind: list(db.session.scalars(
            sa.select(Ticket).where(visibility(actor), kind.condition(now))
            .order_by(Ticket.due_at, Ticket.id).limit(LIST_SIZE)))
        return self.render(self._template, queues=queues, cards=cards, overdue=listing(OverdueFilter),
                           due_today=listing(DueTodayFilter), departments=department_names(),
                           badge=lambda t: due_badge(t, now), status_label=lambda status: label(STATUS_LABELS, status),
                           knowledge_due=due_alert(actor))
