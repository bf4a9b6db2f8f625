"""登记来访/来电: office staff file a case on behalf of a walk-in or a caller, recording how it came in.

The rules are the public form's (`tickets.intake.validate_intake`) plus the channel and the window, which must be
the user's own or one below it (`tickets.intake.staff_windows`); `tickets.intake.file_for_caller` files it with the
member of staff as the filing event's actor. The citizen gets the receipt SMS as usual; the page shows the
tracking number and the query code once (after a redirect, so a reload does not file twice).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, redirect, request, session, url_for
from flask_admin import BaseView, expose
from flask_babel import lazy_gettext as _l

from tickets import attachments, clock, duplicates, intake, offices, phones, presenters
from tickets.db import db
from tickets.errors import StorageUnavailable, ValidationFailed
from tickets.labels import CHANNEL_LABELS, PROBLEM_TYPE_LABELS, label
from tickets.models import OFFICE_ROLES, STAFF_CHANNELS, Department, Office, ProblemType, Ticket
from tickets.secrets import seal, unseal

from .base import RoleGuard, current_actor
from .queues import LOOKUP

FILED_KEY = "staff_filed"


class IntakeView(RoleGuard, BaseView):
    """/admin/intake/: the form; /admin/intake/filed: the receipt, shown once."""

    roles = OFFICE_ROLES

    def _render(self, values, errors, status=200):
        actor = current_actor()
        windows = intake.staff_windows(db.session, actor)
        top = min((offices.depth(o) for o in windows), default=0)
        departments = db.session.scalars(sa.select(Department).where(Department.active.is_(True))
                                         .order_by(Department.code))
        return self.render(
            "admin/intake.html", values=values, errors=errors,
            windows=[(o.code, "\u3000" * (offices.depth(o) - top) + o.name) for o in windows],
            channels=[(c.value, label(CHANNEL_LABELS, c.value)) for c in STAFF_CHANNELS],
            problem_types=[(p.value, label(PROBLEM_TYPE_LABELS, p.value)) for p in ProblemType],
            departments=[(str(d.id), d.name) for d in departments], accept_files=attachments.ACCEPT), status

    @expose("/", methods=("GET", "POST"))
    def index(self):
        actor = current_actor()
        if request.method == "GET":
            own = db.session.scalar(sa.select(Office.code).where(Office.id == actor.office_id)) \
                if actor.office_id is not None else None
            return self._render({"office_code": own or "", "channel": STAFF_CHANNELS[0].value}, {})
        raw = {name: request.form.get(name) for name in intake.STAFF_INTAKE_FIELDS}
        try:
            filed = intake.file_for_caller(db.session, raw, actor,
                                           attachments.from_request(request.files.getlist(attachments.PART)))
        except ValidationFailed as error:
            db.session.rollback()
            return self._render(request.form, error.fields or {}, 422)
        except StorageUnavailable as error:  # the volume of files failed: what was typed stays, the files go again
            db.session.rollback()
            return self._render(request.form, {attachments.FIELD: error.message}, error.status)
        db.session.commit()
        no = filed.ticket.tracking_no
        session[FILED_KEY] = {"tracking_no": no, "code": seal(current_app.config["SECRET_KEY"], filed.query_code, no)}
        return redirect(url_for(".filed"), code=303)

    @expose("/filed")
    def filed(self):
        receipt = session.pop(FILED_KEY, None)
        no = receipt.get("tracking_no") if isinstance(receipt, dict) else None
        code = unseal(current_app.config["SECRET_KEY"], receipt.get("code"), no) if isinstance(no, str) else None
        if code is None:
            return redirect(url_for(".index"))
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        # 可能重复: the cases that are probably the same problem, among those this user may see (tickets/duplicates.py)
        found = presenters.possible_duplicates(db.session, duplicates.possible_duplicates(
            db.session, ticket, current_actor(), clock.now())) if ticket else []
        return self.render("admin/intake_filed.html", tracking_no=no, code=code,
                           landline=not phones.is_mobile(ticket.phone if ticket else None), duplicates=found)


def register(admin) -> None:
    # Under 案件查询: the console's bar must fit on one line at 1366 px, and one more top-level entry breaks it.
    admin.add_view(IntakeView(name=_l("Walk-in or phone filing"), endpoint="intake", url="/admin/intake",
                              category=LOOKUP))
