"""/admin/reports: the kept monthly reports of an office, draft or published; the office and admins generate one now,
write a draft's 下步工作, publish it (the leaders are texted) and set the office's thresholds of 主要问题; everyone
downloads a PDF.

Those who see several offices (their office's subtree; admins: every office) choose the office (`?office=<code>`,
default: their own); another office's reports are 404 (`operations.office_for_reader`). Every write checks
`operations.may_keep` (403 for leaders and supervisors) and the office the same way."""
from __future__ import annotations

import re

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_login import current_user

from reports import operations, scores
from reports.api import pdf_response, thresholds_view
from reports.display import month_label, percent
from reports.formulas import FORMULA_BY_KEY
from tickets.db import db
from tickets.errors import BanjieError, NotFound
from tickets.models import OFFICE_WIDE_ROLES, Office

from .base import RoleGuard

NUMBER = re.compile(r"\s*[0-9]{1,3}(\.[0-9]{1,4})?\s*")


def flash_error(error: BanjieError) -> None:
    """The error's message, and what is wrong with each field (a threshold named by its figure)."""
    db.session.rollback()
    fields = [f"{FORMULA_BY_KEY[key].label if key in FORMULA_BY_KEY else key}: {message}"
              for key, message in error.fields.items()]
    flash(" ".join([str(error.message), *fields]) if fields else str(error.message), "error")


def threshold_values(form) -> dict:
    """The thresholds form as {rate key: percent}: empty fields left out; text that is not a number handed on as it is,
    for `operations.set_thresholds` to refuse."""
    values = {}
    for key in scores.SCORED_RATES:
        written = (form.get(key) or "").strip()
        if written:
            values[key] = float(written) if NUMBER.fullmatch(written) else written
    return values


class ReportsView(RoleGuard, BaseView):
    roles = OFFICE_WIDE_ROLES

    @expose("/")
    def index(self):
        return self._page(operations.office_for_reader(db.session, current_user, request.args.get("office")))

    def _page(self, office: Office, typed: dict | None = None):
        """The office's reports; `typed`: a form refused a moment ago ({"month", "next_steps"}), shown as typed."""
        may_keep = operations.may_keep(current_user.role)
        return self.render("admin/reports.html", reports=operations.listing(db.session, office.id),
                           months=operations.recent_months(), percent=percent, office=office,
                           offices=operations.visible_offices(db.session, current_user),
                           may_generate=may_keep, next_steps_max=operations.NEXT_STEPS_MAX,
                           thresholds=thresholds_view(office) if may_keep else None, typed=typed or {},
                           rates=[(key, FORMULA_BY_KEY[key].label) for key in scores.SCORED_RATES])

    def _kept_office(self) -> Office:
        """The office a write is for (the form's `office`), for those who keep reports: 403 for the others, 404 for an
        office outside what the caller sees."""
        if not operations.may_keep(current_user.role):
            abort(403)
        return operations.office_for_reader(db.session, current_user, request.form.get("office"))

    def _write(self, act, done, typed: dict | None = None) -> object:
        """One console write to the office of the form (`_kept_office`): `act(office)` in a transaction, then back
        to the list with `done(office, result)` as the message, or the error's (a 409 or 422 says what and why);
        with `typed` (what the form's text fields held), the list again at once with them, so nothing typed is lost."""
        office = self._kept_office()
        try:
            result = act(office)
            db.session.commit()
        except BanjieError as error:
            flash_error(error)
            if typed is not None:
                return self._page(office, typed), error.status
        else:
            flash(done(office, result), "success")
        return redirect(url_for(".index", office=office.code))

    def _month(self):
        return operations.ended_month(request.form.get("month", ""))

    @expose("/generate", methods=("POST",))
    def generate(self):
        """Generate (or generate again) the chosen month's report now, as a draft; the figures come from the history.
        A published month is frozen: 409, said in a message."""
        return self._write(
            lambda office: operations.get_or_generate(db.session, self._month(), office.id, trigger=operations.MANUAL,
                                                      user_id=current_user.id, regenerate=True),
            lambda office, report: _("The report for %(month)s is ready.", month=month_label(report.month)))

    @expose("/next-steps", methods=("POST",))
    def next_steps(self):
        """Write a draft's 下步工作; the draft is generated again with them."""
        return self._write(
            lambda office: operations.save_next_steps(db.session, self._month(), office.id,
                                                      request.form.get("next_steps"), user_id=current_user.id),
            lambda office, report: _("The next steps for %(month)s are saved.", month=month_label(report.month)),
            typed={"month": request.form.get("month", ""), "next_steps": request.form.get("next_steps", "")})

    @expose("/publish", methods=("POST",))
    def publish(self):
        """Publish a month's report: its figures are frozen and the office's leaders are texted."""
        return self._write(
            lambda office: operations.publish(db.session, self._month(), office.id, user_id=current_user.id),
            lambda office, published: _("The report for %(month)s is published; %(n)d leader(s) texted.",
                                        month=month_label(published.report.month), n=published.texted))

    @expose("/thresholds", methods=("POST",))
    def thresholds(self):
        """The office's own thresholds of 主要问题 (in percent), or back to the default (`reset`, or every field empty)."""
        return self._write(
            lambda office: operations.set_thresholds(
                db.session, office, None if request.form.get("reset") else threshold_values(request.form)),
            lambda office, _result: _("The thresholds of %(office)s are saved.", office=office.name))

    @expose("/<month>.pdf")
    def download(self, month):
        office = operations.office_for_reader(db.session, current_user, request.args.get("office"))
        report = operations.find(db.session, month, office.id)
        if report is None:
            raise NotFound()
        return pdf_response(report)
