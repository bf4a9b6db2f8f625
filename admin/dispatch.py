"""The 派单目录 (dispatch catalogue) in the console, and the 争议件 list.

The catalogue is the office's to keep (OFFICE_ROLES): an office user sees and changes the entries of their own
window's subtree, an administrator every entry. Every change goes through tickets/dispatch.py, as the CLI's do.
The 争议件 list shows the disputed cases the caller may see (tickets.access.visibility, in the query) that can still
be arbitrated (in a status `arbitrate` takes: a case merged, refused or withdrawn meanwhile waits for nobody; split
again, it is back), with the departments that returned each and how often; the owning office's supervisor opens the
case to arbitrate.
"""
from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from tickets import clock, dispatch, offices
from tickets.access import visibility
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.labels import PROBLEM_TYPE_LABELS, STATUS_LABELS, label
from tickets.models import (OFFICE_ROLES, SUPERVISING_ROLES, Department, DispatchRule, DispatchScope, Event, Office,
                            ProblemType, Role, Ticket)
from tickets.workflow import ACTIONS

from .base import RoleGuard, current_actor, row_id
from .queues import department_names

CATEGORY = _l("Management")
PAGE_SIZE = 50
DISPUTED_LIMIT = 200
ERRORS_SHOWN = 50  # bad lines listed on the page; the count says how many there were


def _within() -> Office | None:
    """The office whose subtree the caller keeps: None (every office) for an administrator."""
    if current_user.role == Role.admin.value:
        return None
    office = db.session.get(Office, current_user.office_id) if current_user.office_id else None
    if office is None:
        abort(403)
    return office


def _office_choices(within: Office | None) -> list[tuple[Office, int]]:
    """The offices the caller may choose, depth first, with their depth below the first one (for indenting)."""
    tree = offices.tree(db.session)
    if within is not None:
        tree = [o for o in tree if o.path.startswith(within.path)]
    top = offices.depth(tree[0]) if tree else 0
    return [(o, offices.depth(o) - top) for o in tree]


def _departments() -> list[Department]:
    return list(db.session.scalars(sa.select(Department).where(Department.active.is_(True)).order_by(Department.code)))


def value_text(scope: str, value: str) -> str:
    if scope == DispatchScope.problem_type.value:
        return f"{label(PROBLEM_TYPE_LABELS, value)} ({value})"
    return value


class DispatchView(RoleGuard, BaseView):
    """派单目录: list (filtered by office), create, edit, delete, CSV upload and download."""

    roles = OFFICE_ROLES

    def _rule(self, rule_id) -> DispatchRule:
        """The entry if it exists and is the caller's to keep; the same 404 otherwise."""
        key = row_id(rule_id)
        if key is None:
            abort(404)
        rule = db.session.scalar(dispatch.rules_within(_within()).where(DispatchRule.id == key))
        if rule is None:
            abort(404)
        return rule

    @expose("/")
    def index(self, import_errors=None, import_error_count=0, status=200):
        within = _within()
        choices = _office_choices(within)
        shown = {o.code: o for o, _depth in choices}
        office_code = request.args.get("office", "")
        office = shown.get(office_code) if isinstance(office_code, str) else None
        if office_code and office is None:
            abort(404)
        query = dispatch.rules_within(office or within)
        total = db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
        page = row_id(request.args.get("page", "1")) or 1
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(page, pages)
        rules = db.session.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
        names = offices.names(db.session)
        codes = offices.codes(db.session)
        rows = [{"rule": r, "office": f"{codes.get(r.office_id, '')} · {names.get(r.office_id, '')}",
                 "scope": label(dispatch.SCOPE_LABELS, r.scope), "value": value_text(r.scope, r.value),
                 "department": department_names().get(r.department_id, "")} for r in rules]
        return self.render("admin/dispatch/rules.html", rows=rows, total=total, page=page, pages=pages,
                           choices=choices, office=office, import_errors=import_errors,
                           import_error_count=import_error_count, columns=",".join(dispatch.COLUMNS)), status

    @expose("/edit", methods=("GET", "POST"))
    def edit(self):
        within = _within()
        rule = self._rule(request.args["id"]) if "id" in request.args else None
        errors, status = {}, 200
        if request.method == "POST":
            form = request.form
            office_id, department_id = row_id(form.get("office_id")), row_id(form.get("department_id"))
            office = db.session.get(Office, office_id) if office_id else None
            department = db.session.get(Department, department_id) if department_id else None
            try:
                dispatch.set_rule(db.session, office, form.get("scope", ""), form.get("value", ""), department,
                                  rule=rule, within=within)
            except ValidationFailed as error:
                db.session.rollback()
                errors, status = error.fields, 400
            else:
                db.session.commit()
                flash(_("The dispatch catalogue entry was saved."), "success")
                return redirect(url_for(".index"))
            values = form
        elif rule is not None:
            values = {"office_id": str(rule.office_id), "scope": rule.scope, "value": rule.value,
                      "department_id": str(rule.department_id)}
        else:
            values = {"office_id": str(within.id) if within else "", "scope": DispatchScope.service_item.value}
        return self.render("admin/dispatch/rule_edit.html", rule=rule, errors=errors, values=values,
                           choices=_office_choices(within), departments=_departments(),
                           office_codes=offices.codes(db.session),
                           scopes=[(s, label(dispatch.SCOPE_LABELS, s)) for s in dispatch.SCOPES],
                           problem_types=[(p.value, label(PROBLEM_TYPE_LABELS, p.value)) for p in ProblemType]), status

    @expose("/<rule_id>/delete", methods=("POST",))
    def delete(self, rule_id):
        rule = self._rule(rule_id)
        dispatch.remove_rule(db.session, rule, within=_within())
        db.session.commit()
        flash(_("The dispatch catalogue entry was removed."), "success")
        return redirect(url_for(".index"))

    @expose("/import", methods=("POST",))
    def upload(self):
        within = _within()
        upload = request.files.get("file")
        try:
            if upload is None or not upload.filename:
                raise ValidationFailed(fields={"file": _l("Choose a CSV file.")})
            text = dispatch.decode(upload.read())
            counts = dispatch.import_csv(db.session, text, replace=request.form.get("replace") == "1",
                                         within=within)
        except ValidationFailed as error:
            db.session.rollback()
            lines = [(name, str(message)) for name, message in error.fields.items()]
            shown = [(_("Line %(n)s", n=name.removeprefix("line_")) if name.startswith("line_") else
                      (_("Header") if name == "header" else _("File")), message)
                     for name, message in lines[:ERRORS_SHOWN]]
            return self.index(import_errors=shown, import_error_count=len(lines), status=400)
        db.session.commit()
        flash(_("Imported: %(created)d created, %(updated)d changed, %(unchanged)d unchanged, %(removed)d removed.",
                **counts.as_dict()), "success")
        return redirect(url_for(".index"))

    @expose("/export.csv")
    def download(self):
        text = dispatch.export_csv(db.session, _within())
        name = f"banjie-dispatch-{clock.local(clock.now()):%Y%m%d-%H%M}.csv"
        return Response(text, mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


class DisputedView(RoleGuard, BaseView):
    """争议件: cases a department returned a second time, waiting for the owning office's supervisor (those the
    `arbitrate` action can still take: `disputed` stays on a case merged, refused or withdrawn meanwhile)."""

    roles = SUPERVISING_ROLES

    @expose("/")
    def index(self):
        actor = current_actor()
        arbitrable = sorted(status.value for status in ACTIONS["arbitrate"].statuses)
        where = [visibility(actor), Ticket.disputed.is_(True), Ticket.status.in_(arbitrable)]
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(*where))
        tickets = db.session.scalars(sa.select(Ticket).where(*where)
                                     .order_by(Ticket.updated_at.desc(), Ticket.id.desc()).limit(DISPUTED_LIMIT)).all()
        returns: dict[int, Counter] = {t.id: Counter() for t in tickets}
        if tickets:
            events = db.session.execute(sa.select(Event.ticket_id, Event.data).where(
                Event.ticket_id.in_(list(returns)), Event.action == "return")).all()
            for ticket_id, data in events:
                returns[ticket_id][(data or {}).get("department_id")] += 1
        departments, names = department_names(), offices.names(db.session)
        rows = [{"ticket": t, "status": label(STATUS_LABELS, t.status), "office": names.get(t.office_id, ""),
                 "own": actor.role == Role.admin or (actor.role == Role.supervisor and t.office_id == actor.office_id),
                 "department": departments.get(t.department_id, ""),
                 "returns": [(departments.get(d, _("Unknown department")), n)
                             for d, n in sorted(returns[t.id].items(), key=lambda item: (-item[1], str(item[0])))]}
                for t in tickets]
        return self.render("admin/dispatch/disputed.html", rows=rows, total=total, limit=DISPUTED_LIMIT)


def register(admin) -> None:
    admin.add_view(DispatchView(name=_l("Dispatch catalogue"), endpoint="dispatch", url="/admin/dispatch",
                                category=CATEGORY))
    admin.add_view(DisputedView(name=_l("Disputed cases"), endpoint="disputed", url="/admin/disputed"))
