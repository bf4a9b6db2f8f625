"""The bell in the console: its badge on every page (one query, `bell`), and /admin/notices, what concerns the user:
their open cases due today, then their unread notices, then the last read ones (tickets/notices.py writes them).

Marking read: one notice or all of them here, or every notice of a case by opening its page (admin/case.py).
"""
from __future__ import annotations

from flask import flash, g, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from tickets import clock, notices
from tickets.db import db
from tickets.labels import STATUS_LABELS, label
from tickets.models import ALL_ROLES

from .base import RoleGuard, current_actor, row_id


def bell() -> dict | None:
    """The bell of this page (computed once per request, on first use): None for the signed-out."""
    if not current_user.is_authenticated:
        return None
    if "banjie_bell" not in g:
        g.banjie_bell = notices.bell(db.session, current_actor(), clock.now())
    return g.banjie_bell


class NoticesView(RoleGuard, BaseView):
    """/admin/notices: not in the menu; the bell in the bar of every page leads here."""

    roles = ALL_ROLES

    def is_visible(self) -> bool:
        return False

    @expose("/")
    def index(self):
        actor, now = current_actor(), clock.now()
        due = [{"ticket": t, "status": label(STATUS_LABELS, t.status), "overdue": t.overdue(now)}
               for t in notices.due_today(db.session, actor, now)]
        listed = notices.entries(db.session, actor)
        return self.render("admin/notices.html", due=due, unread=listed["unread"], read=listed["read"],
                           unread_total=notices.unread_count(db.session, actor))

    @expose("/read", methods=("POST",))
    def read(self):
        """标为已读: the notices named by `id` (one or several), or all of the user's (`all`)."""
        every = request.form.get("all") == "1"
        ids = {i for i in (row_id(v) for v in request.form.getlist("id")[:notices.MARK_MAX]) if i is not None}
        marked = notices.mark_read(db.session, current_user.id, clock.now(), ids=ids, every=every)
        if marked:
            db.session.commit()
            flash(_("Marked as read."), "success")
        return redirect(url_for(".index"))


def register(admin) -> None:
    admin.add_view(NoticesView(name=_l("Notices"), endpoint="notices", url="/admin/notices"))
    admin.app.context_processor(lambda: {"notice_bell": bell})
