"""The case page: everything about one ticket, and a form for each action this user may take now.

Every form posts to one handler that calls `tickets.workflow.perform`, the same entry point as the JSON
API, so the console can do nothing the workflow would refuse.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from tickets import clock, workflow
from tickets.access import ticket_for
from tickets.db import db
from tickets.errors import Conflict, InvalidTransition, ValidationFailed
from tickets.labels import ACTION_LABELS, SCORE_LABELS, label, supervision_text
from tickets.models import OFFICE_ROLES, SUPERVISING_ROLES, Deadline, Department, ReturnVisit, Survey
from tickets.presenters import staff_view

from .base import RoleGuard, current_actor
from .escalation import event_lines, step_history
from .queues import due_badge


@dataclass(frozen=True)
class Input:
    name: str
    label: object
    kind: str = "text"   # text | department | departments | days | yesno | date
    required: bool = True
    hint: object = ""
    options: tuple = ()  # for yesno: ((value, label), ...) when the default approve/refuse does not fit


def _text(name, text, required=True, hint=""):
    return Input(name, text, "text", required, hint)


ACTION_FORMS: dict[str, tuple[Input, ...]] = {
    "accept": (_text("note", _l("Note (internal)"), False),),
    "reject": (_text("reason", _l("Reason, shown to the citizen"), hint=_l(
        "Say why the case is outside the window's scope and where the citizen can turn instead.")),),
    "transfer": (
        Input("department_id", _l("Lead department"), "department"),
        Input("working_days", _l("Working days to reply"), "days", False,
              _l("Leave empty for the default of the policy.")),
        Input("co_department_ids", _l("Co-departments"), "departments", False),
        _text("instructions", _l("Instructions to the department (internal)"), False),
    ),
    "return": (_text("reason", _l("Why this case is not for your department")),),
    "request_extension": (Input("working_days", _l("Extra working days"), "days"), _text("reason", _l("Reason"))),
    "decide_extension": (Input("approve", _l("Decision"), "yesno"), _text("note", _l("Note (internal)"), False)),
    "reply": (_text("content", _l("Reply to the citizen"), hint=_l(
        "The office reviews the reply before the citizen sees it.")),),
    "approve": (_text("note", _l("Note (internal)"), False),),
    "send_back": (_text("reason", _l("What the department must do again")),),
    "resolve": (_text("content", _l("Answer to the citizen")),),
    "remind": (_text("note", _l("Note (internal)"), False),),
    "note": (_text("content", _l("Internal note")),),
    "explain": (_text("content", _l("Explanation to the citizen")),),
    "record_visit": (
        Input("visited_on", _l("Date of the return visit"), "date"),
        Input("contacted", _l("Reached the citizen?"), "yesno",
              options=(("yes", _l("Reached")), ("no", _l("Not reached")))),
        _text("outcome", _l("What came of it")),
    ),
}

ACTION_BUTTONS = {
    "accept": _l("Accept"),
    "reject": _l("Do not accept"),
    "transfer": _l("Transfer"),
    "return": _l("Return to the office"),
    "request_extension": _l("Request an extension"),
    "decide_extension": _l("Decide the extension"),
    "reply": _l("Send the reply for review"),
    "approve": _l("Approve and close"),
    "send_back": _l("Send the reply back"),
    "resolve": _l("Resolve and close"),
    "remind": _l("Remind the department"),
    "note": _l("Add an internal note"),
    "explain": _l("Explain and close"),
    "record_visit": _l("Record the return visit"),
}

# Actions that end the case or cannot be undone ask for confirmation first.
CONFIRM = {
    "reject": _l("Refuse this case? The citizen is told the reason and the case ends."),
    "approve": _l("Approve the reply and close the case? The citizen sees the reply."),
    "resolve": _l("Close the case with this answer? The citizen sees it."),
    "explain": _l("Close the case with this explanation? The citizen sees it."),
    "return": _l("Return this case to the office?"),
}

OUTCOMES = {"met": _l("on time"), "late": _l("late"), "replied": _l("replied"), "returned": _l("returned")}

assert set(ACTION_FORMS) == set(ACTION_BUTTONS) == set(workflow.ACTIONS)


def payload_from_form(action: str, form) -> dict:
    """The action's JSON-shaped payload from the posted form; the workflow validates it."""
    payload: dict = {}
    for field in ACTION_FORMS[action]:
        if field.kind == "departments":
            payload[field.name] = [int(v) if v.isascii() and v.isdigit() else v for v in form.getlist(field.name) if v]
        elif field.kind == "yesno":
            payload[field.name] = {"yes": True, "no": False}.get(form.get(field.name, ""))
        else:
            value = form.get(field.name, "")
            payload[field.name] = value if value.strip() else None
    return payload


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
            "score_label": lambda score: label(SCORE_LABELS, score)}


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
        departments = list(db.session.execute(
            sa.select(Department.id, Department.name).where(Department.active.is_(True)).order_by(Department.code)
        ).all())
        html = self.render(
            "admin/case.html", case=view, ticket=ticket, actions=view["allowed_actions"], forms=ACTION_FORMS,
            buttons=ACTION_BUTTONS, confirm=CONFIRM, departments=departments, failed=failed or {},
            due_badge=due_badge(ticket, clock.now()), supervision=supervision_text(ticket.supervision_level),
            action_labels=ACTION_LABELS, label=label, overdue=_overdue_deadlines(ticket, clock.now()), outcomes=OUTCOMES,
            **_satisfaction_and_sms(ticket, actor),
            ladder=step_history(db.session, ticket.id), event_lines=event_lines,
        )
        return html, status

    @expose("/")
    def index(self):
        return redirect(url_for("cases.index_view"))

    @expose("/<tracking_no>")
    def show(self, tracking_no):
        return self._render(ticket_for(current_actor(), tracking_no))

    @expose("/<tracking_no>/<action>", methods=("POST",))
    def act(self, tracking_no, action):
        if action not in ACTION_FORMS:
            abort(404)
        actor = current_actor()
        ticket = ticket_for(actor, tracking_no)
        payload = payload_from_form(action, request.form)
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
        flash(_("%(action)s: done.", action=ACTION_BUTTONS[action]), "success")
        return redirect(url_for(".show", tracking_no=ticket.tracking_no))
