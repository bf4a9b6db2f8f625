"""知识库 in the console (管理 → 知识库): the entries the viewer keeps, those due for review first, with their forms.

Who sees and changes which entries is tickets/knowledge.py (`listed_for`, `kept_by`), applied in the list's query:
an administrator every entry, a window's office staff their window's (its own and its departments'), a department
handler their department's; supervisors and leaders read their window's and change nothing. Every change goes
through the operations of tickets/knowledge.py (a changed text raises the version; 已复核 moves the review date).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, g, has_request_context, redirect, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError
from wtforms import DateField, TextAreaField
from wtforms.validators import Optional

from tickets import clock, knowledge
from tickets.clock import local_text
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.models import ALL_ROLES, Department, KnowledgeEntry, Role
from tickets.validation import FieldError

from .base import current_actor, current_role
from .management import ManagementView, _office_choices, office_name
from .queues import ShortcutFilter, department_names

REVIEW_FORM = Markup(
    '<form method="post" action="{action}" class="d-inline knowledge-review">'
    '<input type="hidden" name="csrf_token" value="{csrf}">'
    '<button type="submit" class="btn btn-sm btn-outline-success">{label}</button></form>')


class DueForReviewFilter(ShortcutFilter):
    """Entries past their review date (待复核): the dashboard's count links to the list with this filter on."""

    def __init__(self):
        super().__init__(KnowledgeEntry.review_by, _l("Due for review"))

    @staticmethod
    def condition(now):
        return knowledge.expired_condition(clock.today(now))


DUE_FILTER = 0  # its place in column_filters: flt0_0=yes


def due_list_args() -> dict[str, str]:
    return {f"flt0_{DUE_FILTER}": "yes"}


class ServiceItemsField(TextAreaField):
    """The service items an entry answers, one per line (or separated by 、); `data` is the list the entry keeps."""

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "\n".join(self.data or [])

    def process_formdata(self, valuelist) -> None:
        if not valuelist:
            return
        try:
            self.data = knowledge.service_item_names(valuelist[0])
        except FieldError as error:
            self.data = []
            raise ValueError(str(error.message)) from None


class ReviewDateField(DateField):
    """The review date, entered with the browser's date picker."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.pop("format", None)
        render_kw = {"type": "date", **(kwargs.pop("render_kw", None) or {})}
        super().__init__(label, validators, format="%Y-%m-%d", render_kw=render_kw, **kwargs)


def _department_choices():
    """The departments whose entries this user may write: an administrator any (named with their window), office
    staff those of their window."""
    actor = current_actor()
    query = sa.select(Department.id, Department.name, Department.office_id).order_by(Department.code)
    if actor.role != Role.admin:
        query = query.where(Department.office_id == actor.office_id)
    rows = db.session.execute(query).all()
    if actor.role == Role.admin:
        return [(i, f"{office_name(office_id)} · {name}") for i, name, office_id in rows]
    return [(i, name) for i, name, _office_id in rows]


def _today():
    if "banjie_today" not in g:
        g.banjie_today = clock.today()
    return g.banjie_today


def review_button(entry) -> Markup:
    return REVIEW_FORM.format(action=url_for("knowledge.review", entry_id=entry.id), csrf=generate_csrf(),
                              label=_("Reviewed"))


def _owner(view, context, model, name):
    if model.department_id is not None:
        return department_names().get(model.department_id, "")
    return _("%(office)s (the window's own)", office=office_name(model.office_id))


def _review_by(view, context, model, name):
    cell = Markup("{}").format(model.review_by.isoformat())
    if knowledge.is_expired(model, _today()):
        cell += Markup(' <span class="badge badge-warning knowledge-due">{}</span>').format(_("Due for review"))
        if view.keeps_entries():
            cell += Markup(" ") + review_button(model)
    return cell


class KnowledgeView(ManagementView):
    """知识库: the entries this user keeps (or reads), with those past their review date listed first."""

    roles = ALL_ROLES
    list_template = "admin/knowledge/list.html"
    column_list = ("title", "department_id", "service_items", "version", "review_by", "active", "updated_at")
    column_labels = {"title": _l("Title"), "content": _l("Text"), "department_id": _l("Owner"),
                     "office_id": _l("Window"), "service_items": _l("Service items"), "version": _l("Version"),
                     "review_by": _l("Review by"), "active": _l("Active"), "updated_at": _l("Last changed")}
    column_descriptions = {
        "content": _l("The text staff insert into a reply, an explanation or an answer, and then edit for the case."),
        "service_items": _l("The service items it answers, one per line: cases naming one of them are offered it "
                            "first."),
        "department_id": _l("Empty: the window's own entry, offered on every case of the window and the windows "
                            "below it. A department's entry is offered to that department and to the window."),
        "office_id": _l("The window whose cases, and those of the windows below it, may use the entry."),
        "review_by": _l("After this day the entry is no longer offered until someone reviews it (已复核)."),
        "active": _l("Inactive entries are kept but never offered."),
    }
    column_searchable_list = ("title", "content")
    column_sortable_list = ("title", "version", "review_by", "updated_at")
    column_default_sort = ("updated_at", True)
    column_filters = (DueForReviewFilter(), "active")
    column_formatters = {
        "department_id": _owner,
        "service_items": lambda v, c, m, n: "、".join(m.service_items or []),
        "review_by": _review_by,
        "updated_at": lambda v, c, m, n: local_text(m.updated_at),
    }
    # The version and the clock are the operations' to write; so is who changed the entry last.
    form_excluded_columns = ("version", "updated_by", "created_at", "updated_at")
    form_foreign_keys = {"office_id": _office_choices, "department_id": _department_choices}
    form_overrides = {"service_items": ServiceItemsField, "review_by": ReviewDateField}
    form_optional_types = (sa.Boolean, sa.JSON, sa.Date)  # none: no service items; the default review date
    form_args = {"review_by": {"default": knowledge.default_review_date, "validators": [Optional()]},
                 "department_id": {"blank_text": _l("None: the window's own entry")}}
    form_widget_args = {"content": {"rows": 10}, "service_items": {"rows": 3}}

    def __init__(self, **kwargs):
        super().__init__(KnowledgeEntry, **kwargs)

    # --- who: read-only roles see no forms; rows are the viewer's ---------------------------------------------

    @staticmethod
    def keeps_entries() -> bool:
        """Whether the viewer writes entries (supervisors and leaders read); outside a request, the view has forms."""
        return not has_request_context() or current_role() not in knowledge.READERS

    @property
    def can_create(self) -> bool:
        return self.keeps_entries()

    @property
    def can_edit(self) -> bool:
        return self.keeps_entries()

    def _scope(self, query):
        return query.filter(knowledge.listed_for(current_actor()))

    def get_query(self):
        return self._scope(super().get_query())

    def get_count_query(self):
        return self._scope(super().get_count_query())

    def get_one(self, id):
        """An entry the viewer does not see is a 404, as everywhere else in the console."""
        entry = super().get_one(id)
        if entry is None:
            abort(404)
        return entry

    # --- forms: the owner fields are the role's -----------------------------------------------------------------

    def _fit(self, form):
        """Office staff write their window's entries (no window to choose); a handler their department's (no owner
        to choose)."""
        role = current_role()
        if role != Role.admin:
            del form.office_id
        if role == Role.department:
            del form.department_id
        return form

    def create_form(self, obj=None):
        return self._fit(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._fit(super().edit_form(obj))

    FIELDS = ("title", "content", "service_items", "office_id", "department_id", "review_by", "active")

    def _values(self, form) -> dict:
        values = {name: form[name].data for name in self.FIELDS if name in form}
        values["active"] = bool(values.get("active"))
        return values

    def _save(self, form, change):
        try:
            entry = change(self._values(form))
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            for name, message in error.fields.items():
                if name in form:
                    form[name].errors = [*form[name].errors, str(message)]
                else:
                    flash(str(message), "error")
            return None
        except IntegrityError as error:
            db.session.rollback()
            self.handle_view_exception(error)
            return None
        return entry

    def create_model(self, form):
        entry = self._save(form, lambda values: knowledge.create_entry(db.session, current_actor(), **values))
        if entry is None:
            return False
        self.after_model_change(form, entry, True)
        return entry

    def update_model(self, form, model) -> bool:
        entry = self._save(form, lambda values: knowledge.update_entry(db.session, current_actor(), model, **values))
        if entry is None:
            return False
        self.after_model_change(form, model, False)
        return True

    # --- the list: what the viewer must review comes first --------------------------------------------------------

    def render(self, template, **kwargs):
        if template == self.list_template:
            actor = current_actor()
            kwargs["due_entries"] = knowledge.expired_for(db.session, actor)
            kwargs["owner"] = lambda entry: _owner(self, None, entry, "department_id")
            kwargs["review_button"] = review_button
            kwargs["due_list_url"] = url_for(".index_view", **due_list_args())
        return super().render(template, **kwargs)

    @expose("/review/<entry_id>", methods=("POST",))
    def review(self, entry_id):
        """已复核: the owner vouches for the entry as it is; it is due again a year from today."""
        entry = knowledge.entry_kept_by(db.session, current_actor(), entry_id)
        knowledge.review(db.session, current_actor(), entry)
        db.session.commit()
        flash(_("“%(title)s” was reviewed; next review by %(date)s.", title=entry.title,
                date=entry.review_by.isoformat()), "success")
        return redirect(url_for(".index_view"))


def register(admin) -> None:
    """Add 知识库 to the management menu."""
    admin.add_view(KnowledgeView(name=_l("Knowledge base"), endpoint="knowledge", url="/admin/knowledge"))


def due_alert(actor) -> dict | None:
    """The home page's 「N 条知识库条目待复核」: how many entries this user keeps are past their review date, and the
    list that shows them; None when there are none."""
    count = knowledge.expired_count(db.session, actor)
    return {"count": count, "url": url_for("knowledge.index_view", **due_list_args())} if count else None
