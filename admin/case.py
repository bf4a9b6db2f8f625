"""The case page: everything about one ticket, and a form for each action this user may take now.

Every form posts to one handler that calls `tickets.workflow.perform`, the same entry point as the JSON
API, so the console can do nothing the workflow would refuse.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tickets import attachments, clock, offices, workflow
from tickets.access import ticket_for
from tickets.db import db
from tickets.errors import Conflict, InvalidTransition, ValidationFailed
from tickets.labels import CHANNEL_LABELS, RATING_CHANNEL_LABELS, SCORE_LABELS, label, supervision_text
from tickets.models import (
    OFFICE_ROLES,
    SUPERVISING_ROLES,
    Deadline,
    Office,
    ReturnVisit,
    Survey,
)
from tickets.presenters import staff_view
from tickets.workflow.contact import method_label as contact_method_label

from . import causes
from .base import RoleGuard, current_actor
from .escalation import event_lines, step_history
from .queues import due_badge

OUTCOMES = {"met": _l("on time"), "late": _l("late"), "replied": _l("replied"), "returned": _l("returned"),
            "referred": _l("referred to another window"), "not_contacted": _l("ended without a recorded contact"),
            "lifted": _l("lifted (appeal upheld)")}


def _version(form) -> int | None:
    raw = form.get("version", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def _satisfaction_and_sms(ticket, actor) -> dict:
    """Survey rounds with their return visits, and (for the office and supervisors) the case's text messages."""
    from notify.models import SmsMessage

    from .sms import KINDS, status_cell

    surveys = db.session.execute(
        sa.select(Survey, ReturnVisit).outerjoin(ReturnVisit, ReturnVisit.survey_id == Survey.id)
        .where(Survey.ticket_id == ticket.id).order_by(Survey.round)
    ).all()
    sms = []
    if actor.role in SUPERVISING_ROLES:
        sms = list(db.session.scalars(sa.select(SmsMessage).where(SmsMessage.ticket_id == ticket.id)
                                      .order_by(SmsMessage.id)))
    return {"surveys": surveys, "sms": sms, "survey_now": clock.now(), "sms_link": actor.role in OFFICE_ROLES,
            "sms_status": status_cell,
            "sms_label": lambda m: label({k: kind.label for k, kind in KINDS.items()}, m.template),
            "score_label": lambda score: label(SCORE_LABELS, score),
            "rating_channel": lambda channel: label(RATING_CHANNEL_LABELS, channel)}


def _overdue_deadlines(ticket, now) -> set[tuple[str, int]]:
    """(kind, round) of the case's deadlines that are overdue now."""
    rows = db.session.execute(sa.select(Deadline.kind, Deadline.round)
                              .where(Deadline.ticket_id == ticket.id, Deadline.overdue(now)))
    return {(kind, round_) for kind, round_ in rows}


class CaseView(RoleGuard, BaseView):
    """/admin/case/<tracking_no>: not in the menu; the queues and the dashboard link here."""

    def is_visible(self) -> bool:
        return False

    def _render(self, ticket, *, failed: dict | None = None, status: int = 200):
        actor = current_actor()
        view = staff_view(db.session, ticket, actor, clock.now())
        ladder = step_history(db.session, ticket.id)
        events = {e["id"]: e for e in view["events"]}
        steps = {s["id"]: s for s in ladder}
        owner = db.session.get(Office, ticket.office_id)
        # A case goes to departments of its window or of one above it; down the tree to the windows below it.
        departments = [(d.id, d.name) for d in db.session.scalars(offices.transfer_departments(db.session, owner))]
        offices_below = [(o.code, o.name) for o in db.session.scalars(offices.below(owner))]
        html = self.render(
            "admin/case.html", case=view, ticket=ticket, actions=view["allowed_actions"], specs=workflow.ACTIONS,
            now_local=clock.local(clock.now()).strftime("%Y-%m-%dT%H:%M"), contact_method=contact_method_label,
            departments=departments, offices_below=offices_below, failed=failed or {},
            due_badge=due_badge(ticket, clock.now()), supervision=supervision_text(ticket.supervision_level),
            label=label, channel_labels=CHANNEL_LABELS, accept_files=attachments.ACCEPT,
            attachment_sources=attachments.SOURCE_LABELS, overdue=_overdue_deadlines(ticket, clock.now()), outcomes=OUTCOMES,
            **_satisfaction_and_sms(ticket, actor),
            ladder=ladder, event_lines=event_lines,
            sms_cause=lambda message: causes.of_message(message, events, steps),
            step_cause=lambda step: causes.of_event(events.get(step["event_id"])),
        )
        return html, status

    @expose("/")
    def index(self):
        return redirect(url_for("cases.index_view"))

    @expose("/<tracking_no>")
    def show(self, tracking_no):
        return self._render(ticket_for(current_actor(), tracking_no))

    @expose("/<tracking_no>/files/<int:attachment_id>")
    def attachment(self, tracking_no, attachment_id):
        """A file of the case (`?thumbnail=1`: an image's thumbnail), for whoever may see the case."""
        return attachments.download(db.session, ticket_for(current_actor(), tracking_no).id, attachment_id, citizen=False)

    @expose("/<tracking_no>/<action>", methods=("POST",))
    def act(self, tracking_no, action):
        spec = workflow.ACTIONS.get(action)
        if spec is None:
            abort(404)
        actor = current_actor()
        ticket = ticket_for(actor, tracking_no)
        payload = spec.payload_from_form(request.form, request.files)
        try:
            workflow.perform(db.session, ticket, actor, action, payload, expected_version=_version(request.form))
            db.session.commit()
        except (ValidationFailed, InvalidTransition, Conflict) as error:
            # Show the page again with what was typed, so nothing is lost; the latest state comes from the database.
            db.session.rollback()
            ticket = ticket_for(actor, tracking_no)
            failed = {"action": action, "message": error.message, "fields": error.fields or {},
                      "values": request.form}
            return self._render(ticket, failed=failed, status=error.status)
        flash(_("%(action)s: done.", action=spec.button), "success")
        return redirect(url_for(".show", tracking_no=ticket.tracking_no))
