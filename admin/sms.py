"""The console's SMS pages: the log (with a page per message to resend a failed one), the template editor,
and the satisfaction survey results."""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, g, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import TextAreaField
from wtforms.validators import InputRequired

from notify.messages import KINDS, MAX_LENGTH, TemplateProblem, check_text, default_text, segments, sms_length
from notify.backends import TEST_NUMBER_BACKEND
from notify.models import SmsMessage, SmsStatus, SmsTemplate
from notify.operations import (HISTORY_BACKEND, forget_templates, reset_template, resend, resend_refusal,
                               save_template, template_text)
from notify.outbox import held_by_quiet_hours, hold
from tickets import clock, phones
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.labels import RATING_CHANNEL_LABELS, SCORE_LABELS, label
from tickets.models import ADMIN_ROLES, OFFICE_ROLES, OFFICE_WIDE_ROLES, Survey, Ticket
from tickets.clock import local_text

from . import causes
from .base import ConsoleModelView, RoleGuard, StorableText, current_actor
from .scope import OfficeFilter, OfficeFilterGroups, VisibleTicketRows, ticket_rows_condition

CATEGORY = _l("SMS and surveys")

STATUS_LABELS = {
    "pending": _l("Waiting"), "sending": _l("Sending"), "sent": _l("Sent"), "delivered": _l("Delivered"),
    "undelivered": _l("Not delivered"), "failed": _l("Failed"), "recorded": _l("Recorded (not sent)"),
}
# Why a text was recorded instead of sent, by the backend that recorded it (the outbox backend: "Recorded (not sent)").
RECORDED_LABELS = {HISTORY_BACKEND: _l("Demo history (never sent)"),
                   TEST_NUMBER_BACKEND.name: _l("Test number (not sent)")}
STATUS_BADGES = {"failed": "danger", "undelivered": "danger", "pending": "warning", "sending": "info",
                 "delivered": "success", "sent": "primary", "recorded": "secondary"}
AUDIENCE_LABELS = {"citizen": _l("Citizen"), "handler": _l("Department handler"), "supervisor": _l("Supervisor"),
                   "leader": _l("Leader"), "office": _l("Office staff"),
                   "parent_office": _l("Parent office's supervisor")}


class TicketLinks:
    """Mixin for lists of rows with a `ticket_id`: one query per page for the tracking numbers."""

    def get_list(self, *args, **kwargs):
        count, rows = super().get_list(*args, **kwargs)
        ids = {row.ticket_id for row in rows if row.ticket_id}
        g.banjie_tracking = dict(db.session.execute(
            sa.select(Ticket.id, Ticket.tracking_no).where(Ticket.id.in_(ids))).all()) if ids else {}
        return count, rows


def tracking_number(ticket_id) -> str | None:
    numbers = g.get("banjie_tracking")
    if numbers is None or ticket_id not in numbers:
        ticket = db.session.get(Ticket, ticket_id) if ticket_id else None
        return ticket.tracking_no if ticket else None
    return numbers[ticket_id]


def status_badge(status: str, backend: str | None = None) -> Markup:
    text = RECORDED_LABELS.get(backend) if status == SmsStatus.recorded.value else None
    return Markup('<span class="badge badge-{}">{}</span>').format(STATUS_BADGES.get(status, "light"),
                                                                     text or label(STATUS_LABELS, status))


def hold_text(message: SmsMessage) -> str:
    """Until when a text that has not gone yet waits: the end of quiet hours, or its next attempt."""
    held = hold(message, clock.now())
    if held is None:
        return ""
    if held.quiet:
        return _("quiet hours: held until %(at)s", at=local_text(held.until))
    return _("next attempt at %(at)s", at=local_text(held.until))


def status_cell(message: SmsMessage) -> Markup:
    """The status badge, and for a text that waits, until when."""
    badge = status_badge(message.status, message.backend)
    text = hold_text(message)
    if not text:
        return badge
    return Markup('{} <small class="sms-hold text-muted">{}</small>').format(badge, text)


def shown_body(message: SmsMessage) -> str:
    kind = KINDS.get(message.template)
    if kind is not None and kind.secret:  # it carries the citizen's query code
        return _("(contains the citizen's query code; not shown)")
    return message.body


def case_link(ticket_id) -> Markup | str:
    number = tracking_number(ticket_id) if ticket_id else None
    if not number:
        return "—"
    return Markup('<a href="{}">{}</a>').format(url_for("case.show", tracking_no=number), number)


def visible_message(message_id: int) -> SmsMessage:
    """The text if this user may see its case (or, for a text of no case, such texts); 404 otherwise."""
    message = db.session.scalar(sa.select(SmsMessage).where(
        SmsMessage.id == message_id, ticket_rows_condition(SmsMessage.ticket_id, current_actor(), caseless=True)))
    return message or abort(404)


class SmsLogView(TicketLinks, VisibleTicketRows, OfficeFilterGroups, RoleGuard, ConsoleModelView):
    """Every text message of the cases this user sees: newest first, numbers masked, the ones that failed easy to
    find and resend."""

    roles = OFFICE_ROLES
    caseless_rows = True
    can_create = can_edit = can_delete = False
    can_view_details = False
    column_display_actions = False
    page_size = 50
    column_list = ("created_at", "ticket_id", "audience", "phone", "template", "status", "attempts", "provider_sid",
                   "error_code")
    column_labels = {
        "created_at": _l("Written"), "ticket_id": _l("Case"), "audience": _l("To"), "phone": _l("Mobile"),
        "template": _l("Message"), "status": _l("Status"), "attempts": _l("Attempts"),
        "provider_sid": _l("Provider id"), "error_code": _l("Error"),
    }
    column_default_sort = ("created_at", True)  # newest first by when it was written; the id breaks ties
    column_sortable_list = ("created_at", "status")
    column_filters = ("status", "template", "audience", OfficeFilter(SmsMessage.ticket_id, via_ticket=True))
    column_formatters = {
        "created_at": lambda v, c, m, n: Markup('<a href="{}">{}</a>').format(
            url_for(".message", message_id=m.id), local_text(m.created_at)),
        "ticket_id": lambda v, c, m, n: case_link(m.ticket_id),
        "audience": lambda v, c, m, n: label(AUDIENCE_LABELS, m.audience),
        "phone": lambda v, c, m, n: phones.mask(m.phone),
        "template": lambda v, c, m, n: label({k: kind.label for k, kind in KINDS.items()}, m.template),
        "status": lambda v, c, m, n: status_cell(m),
        "error_code": lambda v, c, m, n: m.error_code or "",
    }

    @expose("/message/<int:message_id>")
    def message(self, message_id: int):
        message = visible_message(message_id)
        history = list(db.session.scalars(sa.select(SmsMessage).where(sa.or_(
            SmsMessage.resent_from_id == message.id, SmsMessage.id == message.resent_from_id)).order_by(SmsMessage.id)))
        return self.render("admin/sms/message.html", message=message, body=shown_body(message),
                           phone=phones.mask(message.phone), status=status_badge(message.status, message.backend),
                           kind=KINDS.get(message.template), case=case_link(message.ticket_id),
                           resendable=resend_refusal(db.session, message) is None, history=history, local_text=local_text,
                           status_badge=status_badge, hold=hold_text(message),
                           quiet=held_by_quiet_hours(message), cause=causes.load_for_message(db.session, message),
                           number=tracking_number(message.ticket_id) if message.ticket_id else None)

    @expose("/message/<int:message_id>/resend", methods=("POST",))
    def resend(self, message_id: int):
        """A failed text goes out again as a new row (the failed one stays, as history)."""
        message = visible_message(message_id)
        try:
            copy = resend(db.session, message, clock.now())
        except ValidationFailed as error:
            db.session.rollback()
            flash(str(error.message), "error")
            return redirect(url_for(".message", message_id=message_id))
        db.session.commit()
        flash(_("The message will be sent again."), "success")
        return redirect(url_for(".message", message_id=copy.id))


# What an administrator may write as a message's source: ample for any wording of a text of at most MAX_LENGTH
# characters with its variables and filters (the rendering is checked on its own, `check_text`).
TEMPLATE_SOURCE_MAX = 1000


class TemplateForm(FlaskForm):
    # the characters here; the length (TEMPLATE_SOURCE_MAX) and the rest are save_template's, with its messages
    body = TextAreaField(_l("Text"), validators=[StorableText(), InputRequired()])


class SmsTemplatesView(RoleGuard, BaseView):
    """Administrators word the messages; each edit is checked by rendering it with sample values."""

    roles = ADMIN_ROLES

    @expose("/")
    def index(self):
        overrides = {row.key: row for row in db.session.scalars(sa.select(SmsTemplate))}
        rows = []
        for key, kind in KINDS.items():
            text = overrides[key].body if key in overrides else default_text(key)
            try:
                sample, broken = check_text(key, text), False
            except TemplateProblem as problem:
                # Saved before a rule existed: never rendered; the default text goes out instead (messages.compose).
                sample, broken = str(problem), True
            rows.append({"key": key, "kind": kind, "custom": key in overrides, "sample": sample, "broken": broken,
                         "segments": segments(sample),
                         "audience": label(AUDIENCE_LABELS, kind.audience)})
        return self.render("admin/sms/templates.html", rows=rows)

    @expose("/<key>", methods=("GET", "POST"))
    def edit(self, key: str):
        kind = KINDS.get(key) or abort(404)
        form = TemplateForm()
        preview, status = None, 200
        if request.method == "GET":
            form.body.data = template_text(db.session, key)
        elif form.validate_on_submit():
            try:
                save_template(db.session, key, form.body.data, by=current_user.id, now=clock.now())
            except ValidationFailed as error:
                db.session.rollback()
                form.body.errors = [str(message) for message in error.fields.values()]
                status = error.status
            else:
                db.session.commit()
                forget_templates()
                flash(_("The message “%(name)s” was saved.", name=kind.label), "success")
                return redirect(url_for(".index"))
        else:  # a text the form refuses (the CSRF token is the app's: a 400 before this view)
            status = 422
        if preview is None and form.body.data:
            try:
                preview = check_text(key, form.body.data)
            except TemplateProblem:
                preview = None
        return self.render("admin/sms/template_edit.html", form=form, kind=kind, key=key, preview=preview,
                           segments=segments(preview) if preview else 0, max_length=MAX_LENGTH,
                           length=sms_length(preview) if preview else 0,  # as the provider counts: an emoji is two
                           variables=sorted(kind.sample), default=default_text(key),
                           custom=db.session.get(SmsTemplate, key) is not None), status

    @expose("/<key>/reset", methods=("POST",))
    def reset(self, key: str):
        kind = KINDS.get(key) or abort(404)
        form = FlaskForm()
        if not form.validate_on_submit():
            abort(400)
        if reset_template(db.session, key):
            db.session.commit()
            forget_templates()
        flash(_("The message “%(name)s” uses the default text again.", name=kind.label), "success")
        return redirect(url_for(".index"))


def _score(view, context, model, name):
    if model.score is None:
        return Markup('<span class="text-muted">{}</span>').format(
            _("open") if model.closes_at > clock.now() else _("not rated"))
    if model.defaulted:  # nobody answered: recorded by the closing sweep, counted apart in the reports
        return Markup('<span class="badge badge-secondary" title="{}">{} {} · {}</span>').format(
            _("No rating was given within the survey period; recorded by default."), model.score,
            label(SCORE_LABELS, model.score), _("default"))
    css = "danger" if model.bad_rating else "success"
    return Markup('<span class="badge badge-{}">{} {}</span>').format(css, model.score, label(SCORE_LABELS, model.score))


class SurveyView(TicketLinks, VisibleTicketRows, OfficeFilterGroups, RoleGuard, ConsoleModelView):
    """Satisfaction survey rounds: what each citizen said, by which channel, and the 差评 to call back."""

    roles = OFFICE_WIDE_ROLES
    can_create = can_edit = can_delete = False
    column_display_actions = False
    page_size = 50
    column_list = ("opened_at", "ticket_id", "round", "score", "channel", "rated_at", "comment")
    column_labels = {"opened_at": _l("Survey sent"), "ticket_id": _l("Case"), "round": _l("Round"),
                     "score": _l("Rating"), "channel": _l("Channel"), "rated_at": _l("Rated"),
                     "comment": _l("Comment"), "defaulted": _l("Default rating")}
    column_default_sort = ("opened_at", True)  # newest first by when the survey went out; the id breaks ties
    column_filters = ("score", "channel", "defaulted", OfficeFilter(Survey.ticket_id, via_ticket=True))
    column_formatters = {
        "opened_at": lambda v, c, m, n: local_text(m.opened_at),
        "rated_at": lambda v, c, m, n: local_text(m.rated_at),
        "ticket_id": lambda v, c, m, n: case_link(m.ticket_id),
        "score": _score,
        "channel": lambda v, c, m, n: label(RATING_CHANNEL_LABELS, m.channel) if m.channel else "",
        "comment": lambda v, c, m, n: m.comment or "",
    }


def register(admin) -> None:
    admin.add_view(SmsLogView(SmsMessage, db, name=_l("SMS log"), endpoint="sms_log", url="/admin/sms",
                              category=CATEGORY))
    admin.add_view(SmsTemplatesView(name=_l("SMS templates"), endpoint="sms_templates", url="/admin/sms-templates",
                                    category=CATEGORY))
    admin.add_view(SurveyView(Survey, db, name=_l("Satisfaction surveys"), endpoint="surveys", url="/admin/surveys",
                              category=CATEGORY))
