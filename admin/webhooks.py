"""The console's outbound webhooks (管理 → 事件推送, 推送记录): administrators subscribe other systems' URLs to case
events, see every delivery with each attempt and the receiver's answer, send one again, and send a test event.

Administrators only. The subscription forms call the operations of notify/subscriptions.py (as `flask webhooks`
does); a secret is shown once, on the page that made it, never in a list, a flash message or a log.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from babel.lists import format_list
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from notify.deliveries import resend as resend_delivery
from notify.subscriptions import (EVENT_TYPE_LABELS, EVENT_TYPES, FINAL, DeliveryStatus, WebhookAttempt,
                                  WebhookDelivery, WebhookSubscription, create_subscription, renew_secret,
                                  send_test, set_active, update_subscription)
from tickets import clock, offices
from tickets.clock import local_text
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.labels import label
from tickets.models import ADMIN_ROLES

from .base import ConsoleModelView, RoleGuard, request_names, row_id
from .management import CATEGORY
from .scope import office_names
from .sms import TicketLinks, case_link

STATUS_LABELS = {"pending": _l("Waiting"), "sending": _l("Sending"), "delivered": _l("Delivered"),
                 "failed": _l("Failed")}
STATUS_BADGES = {"pending": "warning", "sending": "info", "delivered": "success", "failed": "danger"}
FORM_FIELDS = {"url": "url", "event_types": "event_types", "office": "office_id", "label": "label", "secret": "secret"}
NO_STORE = {"Cache-Control": "no-store"}


def status_badge(status: str) -> Markup:
    return Markup('<span class="badge badge-{}">{}</span>').format(STATUS_BADGES.get(status, "light"),
                                                                     label(STATUS_LABELS, status))


def event_labels(types) -> str:
    """The event types as a list in the page's language (「案件登记、状态变更和案件办结」)."""
    labels = [label(EVENT_TYPE_LABELS, t) for t in types or ()]
    return format_list(labels, locale=get_locale()) if labels else ""


def office_choices() -> list[tuple[str, str]]:
    """Every office, depth first and indented, after 「all offices」."""
    tree = offices.tree(db.session)
    return [("", _("All offices"))] + [
        (str(o.id), "\u3000" * offices.depth(o) + f"{o.code} · {o.name}") for o in tree]


def _subscription(subscription_id: int) -> WebhookSubscription:
    return db.session.get(WebhookSubscription, subscription_id) or abort(404)


def _posted() -> dict:
    form = request.form
    return {"url": form.get("url", ""), "event_types": form.getlist("event_types"),
            "office_id": form.get("office_id", "") or None, "label": form.get("label", ""),
            "secret": form.get("secret", "")}


class SubscriptionView(RoleGuard, ConsoleModelView):
    """The subscriptions: listed (never their secrets), made, changed, disabled and enabled, tested."""

    roles = ADMIN_ROLES
    can_create = can_edit = can_delete = False
    can_view_details = False
    column_display_actions = False
    page_size = 50
    list_template = "admin/webhooks/subscription_list.html"
    column_list = ("id", "label", "url", "event_types", "office_id", "active")
    column_labels = {"id": _l("No."), "label": _l("Label"), "url": _l("Address"), "event_types": _l("Events"),
                     "office_id": _l("Office scope"), "active": _l("Status")}
    column_default_sort = ("id", False)
    column_sortable_list = ("id",)

    def _office(view, context, model, name):
        if model.office_id is None:
            return _("All offices")
        return _("%(office)s and below", office=office_names().get(model.office_id, ""))

    def _state(view, context, model, name):
        csrf = generate_csrf()
        badge = (Markup('<span class="badge badge-success mr-2">{}</span>').format(_("Active")) if model.active else
                 Markup('<span class="badge badge-secondary mr-2">{}</span>').format(_("Disabled")))
        links = Markup('<a class="btn btn-sm btn-outline-primary mr-1" href="{}">{}</a>'
                       '<a class="btn btn-sm btn-outline-secondary mr-1" href="{}">{}</a>').format(
            url_for(".edit", subscription_id=model.id), _("Edit"),
            url_for("webhook_deliveries.index_view", subscription=model.id), _("Deliveries"))
        form = Markup('<form method="post" action="{}" class="d-inline"><input type="hidden" name="csrf_token" '
                      'value="{}"><button type="submit" class="btn btn-sm btn-outline-{}">{}</button></form>')
        buttons = Markup("")
        if model.active:
            buttons += form.format(url_for(".ping", subscription_id=model.id), csrf, "primary", _("Send a test event"))
        buttons += form.format(url_for(".enable" if not model.active else ".disable", subscription_id=model.id), csrf,
                               "success" if not model.active else "danger",
                               _("Enable") if not model.active else _("Disable"))
        return badge + links + buttons

    column_formatters = {
        "label": lambda v, c, m, n: m.label or "",
        "event_types": lambda v, c, m, n: event_labels(m.event_types),
        "office_id": _office,
        "active": _state,
    }

    def __init__(self, **kwargs):
        super().__init__(WebhookSubscription, db, category=CATEGORY, **kwargs)

    def _form_page(self, template, *, values, errors, status=200, **context):
        return self.render(template, values=values, errors=errors, event_types=EVENT_TYPES,
                           event_type_labels={t: label(EVENT_TYPE_LABELS, t) for t in EVENT_TYPES},
                           office_choices=office_choices(), **context), status

    @expose("/new", methods=("GET", "POST"))
    def new(self):
        """Subscribe a URL; its secret is shown on the next page, once."""
        values, errors = {"event_types": list(EVENT_TYPES)}, {}
        if request.method == "POST":
            if not FlaskForm().validate_on_submit():
                abort(400)
            values = _posted()
            try:
                subscription, secret = create_subscription(db.session, values, by=current_user.id, now=clock.now())
            except ValidationFailed as error:
                db.session.rollback()
                errors = {FORM_FIELDS.get(k, k): str(m) for k, m in error.fields.items()}
                return self._form_page("admin/webhooks/subscription_form.html", values=values, errors=errors,
                                       status=error.status, creating=True)
            db.session.commit()
            return self._secret_page(subscription, secret, made=True)
        return self._form_page("admin/webhooks/subscription_form.html", values=values, errors=errors, creating=True)

    def _secret_page(self, subscription, secret, *, made: bool):
        # Shown on this page only: not flashed (the cookie would carry it), not logged, not cached.
        return self.render("admin/webhooks/secret.html", subscription=subscription, secret=secret, made=made), 200, \
            NO_STORE

    @expose("/<int:subscription_id>/edit", methods=("GET", "POST"))
    def edit(self, subscription_id: int):
        """Change a subscription's address, events, office and label."""
        subscription = _subscription(subscription_id)
        values = {"url": subscription.url, "event_types": list(subscription.event_types),
                  "office_id": str(subscription.office_id or ""), "label": subscription.label or ""}
        if request.method == "POST":
            if not FlaskForm().validate_on_submit():
                abort(400)
            values = _posted()
            try:
                update_subscription(db.session, subscription, values, now=clock.now())
            except ValidationFailed as error:
                db.session.rollback()
                errors = {FORM_FIELDS.get(k, k): str(m) for k, m in error.fields.items()}
                return self._form_page("admin/webhooks/subscription_form.html", values=values, errors=errors,
                                       status=error.status, creating=False, subscription=subscription)
            db.session.commit()
            flash(_("The subscription was saved."), "success")
            return redirect(url_for(".index_view"))
        return self._form_page("admin/webhooks/subscription_form.html", values=values, errors={}, creating=False,
                               subscription=subscription)

    def _switch(self, subscription_id: int, active: bool):
        if not FlaskForm().validate_on_submit():
            abort(400)
        if set_active(db.session, _subscription(subscription_id), active, now=clock.now()):
            db.session.commit()
            flash(_("The subscription was enabled.") if active else _("The subscription was disabled."), "success")
        return redirect(url_for(".index_view"))

    @expose("/<int:subscription_id>/disable", methods=("POST",))
    def disable(self, subscription_id: int):
        """Stop sending to this subscription."""
        return self._switch(subscription_id, False)

    @expose("/<int:subscription_id>/enable", methods=("POST",))
    def enable(self, subscription_id: int):
        """Send to this subscription again."""
        return self._switch(subscription_id, True)

    @expose("/<int:subscription_id>/secret", methods=("POST",))
    def secret(self, subscription_id: int):
        """A new secret, shown once; requests are signed with it from now on."""
        if not FlaskForm().validate_on_submit():
            abort(400)
        subscription = _subscription(subscription_id)
        secret = renew_secret(db.session, subscription, now=clock.now())
        db.session.commit()
        return self._secret_page(subscription, secret, made=False)

    @expose("/<int:subscription_id>/ping", methods=("POST",))
    def ping(self, subscription_id: int):
        """发送测试: a `ping` event to this subscription, sent by a worker like any other delivery."""
        if not FlaskForm().validate_on_submit():
            abort(400)
        try:
            delivery = send_test(db.session, _subscription(subscription_id), now=clock.now())
        except ValidationFailed as error:
            db.session.rollback()
            flash(str(error.message), "error")
            return redirect(url_for(".index_view"))
        db.session.commit()
        flash(_("A test event was queued; its page shows the receiver's answer."), "success")
        return redirect(url_for("webhook_deliveries.delivery", delivery_id=delivery.id))


SUBSCRIPTION_NAMES = sa.select(WebhookSubscription.id,
                               sa.func.coalesce(WebhookSubscription.label, WebhookSubscription.url))


def subscription_name(subscription_id) -> str:
    name = request_names("webhook_subscription", SUBSCRIPTION_NAMES).get(subscription_id, "")
    return f"#{subscription_id} {name[:80]}"


class DeliveryView(TicketLinks, RoleGuard, ConsoleModelView):
    """Every delivery, newest first, with its status; a page for each with its attempts and the answers."""

    roles = ADMIN_ROLES
    can_create = can_edit = can_delete = False
    can_view_details = False
    column_display_actions = False
    page_size = 50
    column_list = ("created_at", "subscription_id", "event_type", "ticket_id", "status", "attempts",
                   "last_status_code", "last_error")
    column_labels = {"created_at": _l("Written"), "subscription_id": _l("Subscription"), "event_type": _l("Event"),
                     "ticket_id": _l("Case"), "status": _l("Status"), "attempts": _l("Attempts"),
                     "last_status_code": _l("Last answer"), "last_error": _l("Error")}
    column_default_sort = ("created_at", True)
    column_sortable_list = ("created_at", "status")
    column_filters = (
        FilterEqual(WebhookDelivery.status, _l("Status"),
                    options=[(s.value, STATUS_LABELS[s.value]) for s in DeliveryStatus]),
        FilterEqual(WebhookDelivery.event_type, _l("Event"),
                    options=[(t, EVENT_TYPE_LABELS[t]) for t in (*EVENT_TYPES, "ping")]),
    )
    column_formatters = {
        "created_at": lambda v, c, m, n: Markup('<a href="{}">{}</a>').format(
            url_for(".delivery", delivery_id=m.id), local_text(m.created_at)),
        "subscription_id": lambda v, c, m, n: subscription_name(m.subscription_id),
        "event_type": lambda v, c, m, n: label(EVENT_TYPE_LABELS, m.event_type),
        "ticket_id": lambda v, c, m, n: case_link(m.ticket_id),
        "status": lambda v, c, m, n: status_badge(m.status),
        "last_status_code": lambda v, c, m, n: m.last_status_code or "",
        "last_error": lambda v, c, m, n: m.last_error or "",
    }

    def __init__(self, **kwargs):
        super().__init__(WebhookDelivery, db, category=CATEGORY, **kwargs)

    def _only_subscription(self, query):
        """`?subscription=<id>`: the deliveries of one subscription (its 推送记录 link)."""
        key = row_id(request.args.get("subscription"))
        return query.filter(WebhookDelivery.subscription_id == key) if key is not None else query

    def get_query(self):
        return self._only_subscription(super().get_query())

    def get_count_query(self):
        return self._only_subscription(super().get_count_query())

    @expose("/<int:delivery_id>")
    def delivery(self, delivery_id: int):
        """One delivery: what was sent, and every attempt with the receiver's answer."""
        delivery = db.session.get(WebhookDelivery, delivery_id) or abort(404)
        subscription = db.session.get(WebhookSubscription, delivery.subscription_id)
        attempts = list(db.session.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                                           .order_by(WebhookAttempt.id)))
        try:
            body = json.dumps(json.loads(delivery.body), ensure_ascii=False, indent=2)
        except ValueError:
            body = delivery.body
        waiting = delivery.status == DeliveryStatus.pending.value and delivery.not_before > clock.now()
        return self.render("admin/webhooks/delivery.html", delivery=delivery, subscription=subscription,
                           attempts=attempts, body=body, status=status_badge(delivery.status),
                           event_label=label(EVENT_TYPE_LABELS, delivery.event_type),
                           case=case_link(delivery.ticket_id), local_text=local_text,
                           next_attempt=local_text(delivery.not_before) if waiting else "",
                           resendable=delivery.status != DeliveryStatus.sending.value and subscription.active,
                           final=delivery.status in FINAL)

    @expose("/<int:delivery_id>/resend", methods=("POST",))
    def resend(self, delivery_id: int):
        """重新发送: the same delivery (id and body) is queued again for a new attempt."""
        if not FlaskForm().validate_on_submit():
            abort(400)
        delivery = db.session.get(WebhookDelivery, delivery_id) or abort(404)
        try:
            resend_delivery(db.session, delivery, by=current_user.id, now=clock.now())
        except ValidationFailed as error:
            db.session.rollback()
            flash(str(error.message), "error")
        else:
            db.session.commit()
            flash(_("The delivery was queued to be sent again."), "success")
        return redirect(url_for(".delivery", delivery_id=delivery_id))


def register(admin) -> None:
    admin.add_view(SubscriptionView(name=_l("Webhooks"), endpoint="webhooks", url="/admin/webhooks"))
    admin.add_view(DeliveryView(name=_l("Webhook deliveries"), endpoint="webhook_deliveries",
                                url="/admin/webhook-deliveries"))
