"""The case page: everything about one ticket, and a form for each action this user may take now.

Every form posts to one handler that calls `tickets.workflow.perform`, the same entry point as the JSON
API, so the console can do nothing the workflow would refuse.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, request, session, url_for
from markupsafe import Markup
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from reports import slip
from tickets import attachments, clock, knowledge, logins, offices, workflow
from tickets.workflow.actions import ASSIGNING_ROLES, assignable_users
from tickets.access import ticket_for, visibility
from tickets.notices import mark_read
from tickets.db import db
from tickets.errors import Conflict, InvalidTransition, StorageUnavailable, ValidationFailed
from tickets.labels import CHANNEL_LABELS, RATING_CHANNEL_LABELS, SCORE_LABELS, label, supervision_text
from tickets.models import (
    OFFICE_ROLES,
    SUPERVISING_ROLES,
    Deadline,
    Event,
    Office,
    ReturnVisit,
    Role,
    Survey,
    Ticket,
)
from tickets.presenters import staff_view
from tickets.privacy import access as privacy
from tickets.workflow.contact import method_label as contact_method_label

from . import causes
from .base import RoleGuard, current_actor, current_role, version_number
from .escalation import event_lines, step_history
from .queues import QUEUES, Queue, due_badge

# The case page offers first what most cases need next (受理并转办 before 受理 alone).
FIRST = ("accept_and_transfer",)
QUEUE_BY_ENDPOINT = {q.endpoint: q for q in QUEUES}


def queue_of(endpoint: str | None) -> Queue | None:
    """The queue a case page was opened from (`?queue=`), if this viewer may use it."""
    queue = QUEUE_BY_ENDPOINT.get(endpoint or "")
    return queue if queue is not None and current_role() in queue.roles else None


def in_queue(queue: Queue, ticket: Ticket, actor) -> bool:
    return bool(db.session.scalar(sa.select(sa.literal(True)).where(*queue.where(actor), Ticket.id == ticket.id)))


QUICK_DEPARTMENTS = 3
RECENT_TRANSFERS = 30


def quick_departments(actor, ticket_view: dict, choices: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """常用部门, one click each: the dispatch catalogue's department for this case, then those this clerk transferred
    to most in their latest transfers; only departments this case may go to."""
    allowed = dict(choices)
    counts: dict[int, int] = {}
    for data in db.session.scalars(sa.select(Event.data).where(Event.actor_id == actor.user_id,
                                                               Event.action == "transfer")
                                   .order_by(Event.id.desc()).limit(RECENT_TRANSFERS)):
        department_id = (data or {}).get("department_id")
        if department_id in allowed:
            counts[department_id] = counts.get(department_id, 0) + 1
    ranked = sorted(counts, key=lambda i: -counts[i])  # stable: the most recent first among equals
    first = ticket_view.get("dispatch_department_id")
    ordered = ([first] if first in allowed else []) + [i for i in ranked if i != first]
    return [(i, allowed[i]) for i in ordered[:QUICK_DEPARTMENTS]]


def next_in_queue(queue: Queue, ticket: Ticket, actor, *, still_in: bool | None = None) -> str | None:
    """「下一件」: the tracking number of the case after this one in the queue's order, or its first other case when
    this one has left the queue (or was its last), among the cases the viewer works on; None when nothing else
    waits there for them. `still_in`: whether the case is in the queue, when the caller already knows."""
    base = sa.select(Ticket.tracking_no).where(*queue.where(actor), Ticket.id != ticket.id).order_by(*queue.order())
    # A window's staff see the windows below theirs too, but act on their own window's cases: a clerk goes on to those
    # only; a supervisor or a leader, who remind and instruct below, to those first.
    if actor.office_id is None:
        choices = [base]
    elif actor.role == Role.office:
        choices = [base.where(Ticket.office_id == actor.office_id)]
    else:
        choices = [base.where(Ticket.office_id == actor.office_id), base]
    if queue.by_deadline and ticket.due_at is not None:
        follows = in_queue(queue, ticket, actor) if still_in is None else still_in
    else:
        follows = False
    for query in choices:
        if follows:
            after = db.session.scalar(query.where(sa.or_(Ticket.due_at > ticket.due_at, sa.and_(
                Ticket.due_at == ticket.due_at, Ticket.id > ticket.id))).limit(1))
            if after is not None:
                return after
        first = db.session.scalar(query.limit(1))
        if first is not None:
            return first
    return None


OUTCOMES = {"met": _l("on time"), "late": _l("late"), "replied": _l("replied"), "returned": _l("returned"),
            "referred": _l("referred to another window"), "not_contacted": _l("ended without a recorded contact"),
            "lifted": _l("lifted (appeal upheld)")}


def _version(form) -> int | None:
    return version_number(form.get("version", ""))


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


def _knowledge(ticket, actor, actions) -> list[dict]:
    """知识库 suggestions for the page's answer forms (the actions with a knowledge input: reply, explain, resolve)."""
    if not any(field.kind == "knowledge" for name in actions for field in workflow.ACTIONS[name].inputs):
        return []
    entries = knowledge.describe(db.session, knowledge.suggest(db.session, ticket, actor))
    return [{**entry, "excerpt": knowledge.excerpt(entry["content"])} for entry in entries]


def console_session() -> int | None:
    """This browser's console sign-in (the access log remembers a reason per case and sign-in)."""
    return logins.session_id(db.session, session.get(logins.SESSION_KEY))


def _openable(actor, tracking_numbers: list) -> set[str]:
    """Which of the cases named on the page (并单: the case this one joined, those joined to it) this user may open:
    the others are named without a link (a department's handler sees that two more reports were merged into its
    case, not those cases, which are no department's: their link was a 404)."""
    numbers = [no for no in tracking_numbers if no]
    if not numbers:
        return set()
    return set(db.session.scalars(sa.select(Ticket.tracking_no).where(visibility(actor),
                                                                      Ticket.tracking_no.in_(numbers))))


def _phone_reveal(ticket, actor, full: bool, failed: dict | None) -> dict | None:
    """The 「查看完整号码」 control: None for who may not see the whole number (or when there is none); else whether it
    is shown, whether a reason is still to be given in this sign-in, and a refused reason with its message."""
    if not privacy.may_see_full_phone(actor, ticket):
        return None
    handler = privacy.is_handler(actor, ticket)
    needs_reason = not handler and privacy.reason_given(db.session, actor, ticket, console_session()) is None
    return {"full": full, "handler": handler, "needs_reason": needs_reason, "failed": failed,
            "min": privacy.REASON_MIN, "max": privacy.REASON_MAX}


class CaseView(RoleGuard, BaseView):
    """/admin/case/<tracking_no>: not in the menu; the queues and the dashboard link here."""

    def is_visible(self) -> bool:
        return False

    def _render(self, ticket, *, failed: dict | None = None, status: int = 200, queue: Queue | None = None,
                full_phone: bool = False, phone_failed: dict | None = None):
        actor = current_actor()
        view = staff_view(db.session, ticket, actor, clock.now(), full_phone=full_phone)
        actions = sorted(view["allowed_actions"], key=lambda name: name not in FIRST)
        assigning = actor.role in ASSIGNING_ROLES
        next_case = next_in_queue(queue, ticket, actor) if queue is not None else None
        ladder = step_history(db.session, ticket.id)
        events = {e["id"]: e for e in view["events"]}
        steps = {s["id"]: s for s in ladder}
        owner = db.session.get(Office, ticket.office_id)
        # A case goes to departments of its window or of one above it; down the tree to the windows below it.
        departments = [(d.id, d.name) for d in db.session.scalars(offices.transfer_departments(db.session, owner))]
        offices_below = [(o.code, o.name) for o in db.session.scalars(offices.below(owner))]
        html = self.render(
            "admin/case.html", case=view, ticket=ticket, specs=workflow.ACTIONS,
            actions=[a for a in actions if assigning or a != "assign"], take_it="assign" in actions and not assigning,
            assignable=assignable_users(db.session, ticket) if assigning else [],
            queue=queue, next_case=next_case,
            quick_departments=quick_departments(actor, view, departments) if {"transfer", "accept_and_transfer"} & set(
                actions) else [],
            now_local=clock.local(clock.now()).strftime("%Y-%m-%dT%H:%M"), contact_method=contact_method_label,
            departments=departments, offices_below=offices_below, failed=failed or {},
            due_badge=due_badge(ticket, clock.now()), supervision=supervision_text(ticket.supervision_level),
            label=label, channel_labels=CHANNEL_LABELS, accept_files=attachments.ACCEPT,
            attachment_sources=attachments.SOURCE_LABELS, overdue=_overdue_deadlines(ticket, clock.now()), outcomes=OUTCOMES,
            knowledge=_knowledge(ticket, actor, view["allowed_actions"]),
            # 并入此件 beside each possible duplicate, when 并单 is among this user's actions on the case now
            may_merge="merge" in view["allowed_actions"] and "merge" in workflow.ACTIONS,
            **_satisfaction_and_sms(ticket, actor),
            ladder=ladder, event_lines=event_lines,
            sms_cause=lambda message: causes.of_message(message, events, steps),
            step_cause=lambda step: causes.of_event(events.get(step["event_id"])),
            phone_reveal=_phone_reveal(ticket, actor, full_phone, phone_failed),
            openable=_openable(actor, [view["merged_into"], *view["merged_cases"]]),
        )
        return html, status

    @expose("/")
    def index(self):
        return redirect(url_for("cases.index_view"))

    @expose("/<tracking_no>")
    def show(self, tracking_no):
        actor = current_actor()
        ticket = ticket_for(actor, tracking_no)
        if mark_read(db.session, actor.user_id, clock.now(), ticket_id=ticket.id):  # what the bell said is seen here
            db.session.commit()
        return self._render(ticket, queue=queue_of(request.args.get("queue")))

    @expose("/<tracking_no>/whole-number", methods=("POST",))
    def reveal_phone(self, tracking_no):
        """「查看完整号码」: the case page again with the whole number, for who may see it; each showing is a line of the
        access log. The case's handler sees it at once; anyone else gives a reason the first time in this sign-in."""
        actor = current_actor()
        ticket = ticket_for(actor, tracking_no)
        if not privacy.may_see_full_phone(actor, ticket):
            abort(403)
        queue = queue_of(request.form.get("queue"))
        signed_in = console_session()
        reason = None
        if not privacy.is_handler(actor, ticket):
            reason = privacy.reason_given(db.session, actor, ticket, signed_in)
            if reason is None:
                try:
                    reason = privacy.clean_reason(request.form.get(privacy.REASON_FIELD))
                except ValidationFailed as error:
                    typed = request.form.get(privacy.REASON_FIELD, "")[:privacy.REASON_MAX]
                    return self._render(ticket, status=error.status, queue=queue, phone_failed={
                        "message": str(error.fields[privacy.REASON_FIELD]), "value": typed})
        privacy.show_phone(db.session, actor, ticket, via="console", reason=reason, console_session=signed_in)
        db.session.commit()
        return self._render(ticket, queue=queue, full_phone=True)

    @expose("/<tracking_no>/files/<int:attachment_id>")
    def attachment(self, tracking_no, attachment_id):
        """A file of the case (`?thumbnail=1`: an image's thumbnail), for whoever may see the case."""
        return attachments.download(db.session, ticket_for(current_actor(), tracking_no).id, attachment_id, citizen=False)

    @expose("/<tracking_no>/slip.pdf")
    def transfer_slip(self, tracking_no):
        """交办单: the case on one A4 page (more for a long text), for a department that signs paper."""
        actor = current_actor()
        return slip.pdf_response(db.session, ticket_for(actor, tracking_no), actor)

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
        except (ValidationFailed, InvalidTransition, Conflict, StorageUnavailable) as error:
            # Show the page again with what was typed, so nothing is lost; the latest state comes from the database.
            # (StorageUnavailable: the volume of files failed; the files are to be sent again.)
            db.session.rollback()
            ticket = ticket_for(actor, tracking_no)
            failed = {"action": action, "message": error.message, "fields": error.fields or {},
                      "values": request.form}
            return self._render(ticket, failed=failed, status=error.status, queue=queue_of(request.form.get("queue")))
        queue = queue_of(request.form.get("queue"))
        done = _("%(action)s: done.", action=spec.button)
        if queue is not None and not in_queue(queue, ticket, actor):
            # The case has left the queue it was worked from: straight on to the queue's next case (「下一件」).
            following = next_in_queue(queue, ticket, actor, still_in=False)
            if following is not None:
                flash(Markup('{} {} <a href="{}" id="previous-case">{}</a>').format(
                    ticket.tracking_no, done, url_for(".show", tracking_no=ticket.tracking_no),
                    _("Back to %(no)s", no=ticket.tracking_no)), "success")
                return redirect(url_for(".show", tracking_no=following, queue=queue.endpoint))
            flash(Markup('{} <a href="{}" id="queue-done">{}</a>').format(
                done, url_for(f"{queue.endpoint}.index_view"), _("%(queue)s: nothing else waits.", queue=queue.name)),
                "success")
        else:
            flash(done, "success")
        return redirect(url_for(".show", tracking_no=ticket.tracking_no, queue=queue.endpoint if queue else None))
