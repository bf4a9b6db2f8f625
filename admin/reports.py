"""/admin/reports: the generated monthly reports of an office, generate one now (office and admins), download a PDF.

Those who see several offices (their office's subtree; admins: every office) choose the office (`?office=<code>`,
default: their own); another office's reports are 404 (`operations.office_for_reader`)."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_login import current_user

from reports import operations
from reports.api import pdf_response
from reports.display import month_label, percent
from tickets.db import db
from tickets.errors import BanjieError, NotFound
from tickets.models import OFFICE_WIDE_ROLES

from .base import RoleGuard


class ReportsView(RoleGuard, BaseView):
    roles = OFFICE_WIDE_ROLES

    @expose("/")
    def index(self):
        office = operations.office_for_reader(db.session, current_user, request.args.get("office"))
        return self.render("admin/reports.html", reports=operations.listing(db.session, office.id),
                           months=operations.recent_months(), percent=percent, office=office,
                           offices=operations.visible_offices(db.session, current_user),
                           may_generate=operations.may_keep(current_user.role))

    @expose("/generate", methods=("POST",))
    def generate(self):
        """Generate (or generate again) the chosen month's report now; the figures come from the history."""
        if not operations.may_keep(current_user.role):
            abort(403)
        office = operations.office_for_reader(db.session, current_user, request.form.get("office"))
        back = url_for(".index", office=office.code)
        try:
            month = operations.ended_month(request.form.get("month", ""))
            operations.get_or_generate(db.session, month, office.id, trigger=operations.MANUAL,
                                       user_id=current_user.id, regenerate=True)
            db.session.commit()
        except BanjieError as error:
            db.session.rollback()
            flash(str(error.message), "error")
            return redirect(back)
        flash(_("The report for %(month)s is ready.", month=month_label(month)), "success")
        return redirect(back)

    @expose("/<month>.pdf")
    def download(self, month):
        office = operations.office_for_reader(db.session, current_user, request.args.get("office"))
        report = operations.find(db.session, month, office.id)
        if report is None:
            raise NotFound()
        return pdf_response(report)
