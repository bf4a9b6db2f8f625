"""一类事 in the console: the recurring problems the viewer sees, with counts, trend and a bar of daily counts; a
cluster's page with its cases; and the form that opens a 主动治理 task from it (tickets/clusters.py).

Who: the roles that see a whole office (the list is theirs, not a department's: tickets/clusters.py `may_list`);
the form is offered to the window that owns the cases and to administrators (`open_governance` checks it again).
The task's answer is sent to the linked citizens from the task's own case page (「答复告知关联群众」, a workflow action).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tickets import clock, clusters, phones
from tickets.db import db
from tickets.errors import Forbidden, InvalidTransition, NotFound, ValidationFailed
from tickets.labels import CHANNEL_LABELS, STATUS_LABELS, label
from tickets.models import OFFICE_WIDE_ROLES, Role, Ticket
from tickets.personal import shown

from .base import RoleGuard, current_actor, row_id
from .queues import LOOKUP

CHART_HEIGHT = 28  # px of the tallest bar in a row's chart
BAR, GAP = 6, 2    # px: a day's bar and the space after it


def chart(daily: list[dict]) -> dict:
    """A row's bar chart of daily counts as an inline SVG's numbers (no scripts, no style attributes: the CSP)."""
    top = max((d["count"] for d in daily), default=0) or 1
    bars = []
    for n, day in enumerate(daily):
        height = round(day["count"] / top * CHART_HEIGHT) if day["count"] else 0
        bars.append({"x": n * (BAR + GAP), "y": CHART_HEIGHT - height, "height": height, "count": day["count"],
                     "date": day["date"].isoformat()})
    return {"width": len(daily) * (BAR + GAP), "height": CHART_HEIGHT, "bar": BAR, "bars": bars}


def _opener(entry: dict) -> bool:
    """Whether the viewer is one who opens this cluster's tasks: its window's office staff, or an administrator."""
    actor = current_actor()
    return clusters.may_open(actor) and (actor.role == Role.admin or actor.office_id == entry["office_id"])


class ClustersView(RoleGuard, BaseView):
    """/admin/clusters: the 一类事 list; /admin/clusters/<id>: one cluster, its cases and the 主动治理 form."""

    roles = OFFICE_WIDE_ROLES

    @expose("/")
    def index(self):
        listed = clusters.listing(db.session, current_actor(), now=clock.now())
        rows = [{**item, "chart": chart(item["daily"])} for item in listed["items"]]
        return self.render("admin/clusters/list.html", rows=rows, listed=listed, limit=clusters.LIST_LIMIT,
                           status_label=lambda code: label(STATUS_LABELS, code))

    def _entry(self, cluster_id) -> dict:
        key = row_id(cluster_id)
        entry = clusters.cluster(db.session, current_actor(), key, now=clock.now()) if key else None
        if entry is None:
            abort(404)
        return entry

    def _page(self, entry: dict, *, values=None, errors=None, message=None, status=200):
        actor = current_actor()
        cases = [{"ticket": t, "status": label(STATUS_LABELS, t.status), "channel": label(CHANNEL_LABELS, t.channel),
                  "phone": phones.mask(t.phone), "citizen_name": shown(t.citizen_name),
                  "linked": t.governance_id is not None,
                  "in_window": t.created_at >= clusters.Window.ending(clock.now(), clusters.settings()[0]).start}
                 for t in clusters.cases(db.session, actor, entry["id"])]
        opener = _opener(entry)
        why_not = clusters.opening_problem(entry) if opener else None
        may_open = opener and why_not is None
        return self.render(
            "admin/clusters/cluster.html", entry={**entry, "chart": chart(entry["daily"])}, cases=cases,
            shown=clusters.CASES_SHOWN, may_open=may_open, why_not=why_not,
            departments=clusters.departments_for(db.session, entry["office_id"]) if may_open else [],
            values=values or {}, errors=errors or {}, message=message,
            status_label=lambda code: label(STATUS_LABELS, code),
            min_cases=clusters.settings()[1], days=clusters.settings()[0]), status

    @expose("/<cluster_id>")
    def show(self, cluster_id):
        return self._page(self._entry(cluster_id))

    @expose("/<cluster_id>/governance", methods=("POST",))
    def open_governance(self, cluster_id):
        """「开启主动治理」: the task is opened and its case page shown; errors are shown on the cluster's page."""
        entry = self._entry(cluster_id)
        form = request.form
        try:
            ticket = clusters.open_governance(db.session, current_actor(), entry["id"], form.get("department_id"),
                                              form.get("working_days"), form.get("content"))
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            return self._page(entry, values=form, errors=error.fields, message=_("Some fields are not valid."),
                              status=422)
        except (InvalidTransition, Forbidden, NotFound) as error:
            db.session.rollback()
            return self._page(self._entry(cluster_id), values=form, message=str(error.message), status=error.status)
        linked = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(Ticket.governance_id == ticket.id))
        flash(_("Proactive task %(no)s opened and sent to the department; cases linked: %(n)d.",
                no=ticket.tracking_no, n=linked), "success")
        return redirect(url_for("case.show", tracking_no=ticket.tracking_no))


def case_note(ticket) -> dict | None:
    """What the case page says of the case's 一类事 (templates/admin/clusters/_case_note.html), for those who read the
    list: a 主动治理 task's cluster; the task a case is linked to; or that the case's cluster is a 一类事 now."""
    actor = current_actor()
    if not clusters.may_list(actor) or ticket.cluster_id is None:
        return None
    url = url_for("clusters.show", cluster_id=ticket.cluster_id)
    if ticket.channel == clusters.PROACTIVE:
        return {"kind": "task", "url": url}
    if ticket.governance_id is not None:
        task = db.session.scalar(sa.select(Ticket.tracking_no).where(Ticket.id == ticket.governance_id))
        return {"kind": "linked", "url": url, "task": task}
    days, minimum = clusters.settings()
    count = clusters.window_count(db.session, actor, ticket.cluster_id, clock.now())
    return {"kind": "cluster", "url": url, "count": count, "days": days} if count >= minimum else None


def register(admin) -> None:
    """一类事 beside the case lookups (it is looked up, not worked through); the case page's note."""
    admin.add_view(ClustersView(name=_l("Recurring problems (一类事)"), endpoint="clusters", url="/admin/clusters",
                                category=LOOKUP))
    admin.app.context_processor(lambda: {"cluster_note": case_note})
