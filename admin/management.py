"""Management views: departments, users and their API tokens, service items, and the problem types.

Departments and service items are the office's to keep (admin and office); accounts and tokens are the
administrators' alone. Nothing here is ever deleted: rows have history, so they are deactivated instead.
Every form is scaffolded by `BanjieModelConverter`, which knows SQLModel's column types; what a form leaves
out on purpose is named in `form_excluded_columns` (tests/test_admin_management.py holds the views to that).
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import abort, flash, g, has_request_context, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_admin.model.template import LinkRowAction
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from wtforms import PasswordField, StringField, ValidationError
from wtforms.validators import InputRequired, Optional

from tickets import accounts, clock, contacts, offices, phones
from tickets.errors import ValidationFailed
from tickets.db import db
from tickets.labels import ALL_SCOPES_LABEL, PROBLEM_TYPE_LABELS, ROLE_LABELS, TOKEN_SCOPE_LABELS, label, scope_text
from tickets.models import (ADMIN_ROLES, ALL_ROLES, OFFICE_MEMBER_ROLES, OFFICE_ROLES, ApiToken, Department,
                            Office, ProblemType, Role, ServiceItem, User)
from tickets.clock import local_text

from .base import ConsoleModelView, RoleGuard, StorableText, current_actor, request_names, row_id
from .scope import (OFFICE_LABEL, OfficeChoice, OfficeFilterGroups, keeps_city_wide_settings, office_names,
                    visible_offices)
from .queues import department_names
from .converters import BanjieModelConverter, ChoicesField

log = logging.getLogger("banjie.admin")

CATEGORY = _l("Management")

PHONE_MESSAGE = _l("Enter a valid mainland mobile number, e.g. 138 0013 8000.")


class MobileNumber:
    """A mainland mobile number in any common spelling; the field's data becomes E.164. Empty passes."""

    def __call__(self, form, field) -> None:
        if not field.data:
            return
        normalised = phones.normalise_mobile(field.data)
        if normalised is None:
            raise ValidationError(str(PHONE_MESSAGE))
        field.data = normalised


def _department_choices():
    rows = db.session.execute(
        sa.select(Department.id, Department.code, Department.name, Department.active).order_by(Department.code)
    ).all()
    inactive = _("inactive")  # outside the f-string, where Babel's extractor can see it
    return [(i, f"{code} · {name}" if active else f"{code} · {name} ({inactive})") for i, code, name, active in rows]


def _office_choices():
    """The offices this user may put a row in, depth first and indented, so the tree reads in the select: every
    office for an administrator, an office member's own subtree."""
    inactive = _("inactive")
    shown = visible_offices(current_actor())
    top = min((offices.depth(o) for o in shown), default=0)
    return [(o.id, "\u3000" * (offices.depth(o) - top) + (f"{o.code} · {o.name}" if o.active else
                                                              f"{o.code} · {o.name} ({inactive})"))
            for o in shown]


def office_name(office_id) -> str:
    return office_names().get(office_id, "")


class OfficeColumnFilter(OfficeChoice, FilterEqual):
    """Rows (departments, users) of one office exactly; the options are the offices the viewer sees."""

    def __init__(self, column):
        super().__init__(column, OFFICE_LABEL)


def department_name(department_id) -> str:
    return department_names().get(department_id, "")


USER_NAMES = sa.select(User.id, User.username)  # built once: a list asks for it in every row


def username(user_id) -> str:
    return request_names("user", USER_NAMES).get(user_id, "")


def _time(name):
    return lambda v, c, m, n: local_text(getattr(m, name))


def _masked(name):
    return lambda v, c, m, n: phones.mask(getattr(m, name))


class ManagementView(RoleGuard, ConsoleModelView):
    """What every management list shares: SQLModel-aware forms, no deletion, friendly unique errors."""

    model_form_converter = BanjieModelConverter
    can_delete = False
    can_view_details = False
    page_size = 50

    def __init__(self, model, *, name, endpoint, url):
        super().__init__(model, db, name=name, endpoint=endpoint, url=url, category=CATEGORY)

    def build_new_instance(self):
        # Flask-Admin builds rows without __init__: no Pydantic state, and SQLModel's defaults (active,
        # created_at) read None until the INSERT. Build them the SQLModel way.
        return self.model()

    def handle_view_exception(self, exc: Exception) -> bool:
        if isinstance(exc, IntegrityError):
            # Two people saving the same code at once: the database refuses the second. Say so, not the SQL.
            flash(_("This could not be saved: a value that must be unique is already in use."), "error")
            return True
        if isinstance(exc, SQLAlchemyError):
            # Flask-Admin would flash str(exc): the SQL with its parameters (names, phone numbers) on the page
            # and in the session cookie, which anyone holding it can read. The log gets it; people get a sentence.
            log.exception("saving in %s failed", self.endpoint)
            flash(_("This could not be saved. Please try again."), "error")
            return True
        return super().handle_view_exception(exc)


# Who the escalation texts of a department's cases cannot reach (see tickets.contacts), as the console says it.
UNREACHABLE_LABELS = {
    "handler": _l("No handler with a mobile number: warnings and reminders (催办) reach nobody"),
    "supervisor": _l("No supervisor's mobile: 督办 and bad-rating texts reach nobody"),
    "leader": _l("No leader's mobile: 挂牌督办 texts reach nobody"),
}
ROLE_UNREACHABLE_LABELS = {
    "office": _l("No office staff member has a mobile number: reminders of acceptance and review deadlines reach nobody."),
    "leader": _l("No leader account has a mobile number: nobody is texted when the monthly report is ready."),
}


def _reach(view, context, model, name) -> Markup:
    missing = g.get("banjie_unreachable", {}).get(model.id)
    if missing is None:
        missing = contacts.unreachable(db.session, [model.id]).get(model.id, [])
    if not missing:
        return Markup('<span class="text-success">{}</span>').format(_("All reachable"))
    return Markup("").join(Markup('<div class="text-danger small reach-missing">{}</div>').format(
        label(UNREACHABLE_LABELS, audience)) for audience in missing)


class DepartmentView(OfficeFilterGroups, ManagementView):
    """Departments, and which of their escalation audiences have no mobile number (so their texts reach nobody).

    Administrators keep every office's departments; an office's staff those of their office and the offices below
    it (the list, the rows they may open and the offices they may choose are that subtree)."""

    roles = OFFICE_ROLES
    list_template = "admin/management/department_list.html"
    edit_template = "admin/management/department_edit.html"
    column_list = ("code", "name", "office_id", "supervisor_name", "supervisor_phone", "leader_name", "leader_phone", "reach",
                   "active", "created_at")
    column_labels = {
        "code": _l("Code"), "name": _l("Name"), "office_id": OFFICE_LABEL,
        "supervisor_name": _l("Supervisor in charge"), "supervisor_phone": _l("Supervisor's mobile"),
        "leader_name": _l("Leader in charge"), "leader_phone": _l("Leader's mobile"),
        "reach": _l("Escalation texts"), "active": _l("Active"), "created_at": _l("Created"),
    }
    column_descriptions = {
        "code": _l("A short code that stays the same, e.g. RSJ."),
        "active": _l("Inactive departments keep their history but no longer receive cases."),
        "reach": _l("Whether the department's handlers, supervisor and leader can be texted."),
        "office_id": _l("The window whose level's work it does: cases of that window and of those below it may "
                        "be transferred to it."),
    }
    column_searchable_list = ("code", "name")
    column_filters = ("active", OfficeColumnFilter(Department.office_id))
    column_default_sort = "code"
    column_formatters = {
        "office_id": lambda v, c, m, n: office_name(m.office_id),
        "supervisor_phone": _masked("supervisor_phone"),
        "leader_phone": _masked("leader_phone"),
        "reach": _reach,
        "created_at": _time("created_at"),
    }
    form_excluded_columns = ("created_at",)
    form_foreign_keys = {"office_id": _office_choices}
    form_args = {
        "supervisor_phone": {"validators": [MobileNumber()]},
        "leader_phone": {"validators": [MobileNumber()]},
    }

    @staticmethod
    def _scope(query):
        actor = current_actor()
        if actor.role in OFFICE_MEMBER_ROLES:
            return query.filter(Department.office_id.in_(offices.subtree(actor.office_id))
                                if actor.office_id is not None else sa.false())
        return query

    def get_query(self):
        return self._scope(super().get_query())

    def get_count_query(self):
        return self._scope(super().get_count_query())

    def get_list(self, *args, **kwargs):
        count, rows = super().get_list(*args, **kwargs)
        g.banjie_unreachable = contacts.unreachable(db.session, [row.id for row in rows]) if rows else {}
        return count, rows

    def render(self, template, **kwargs):
        if template == self.list_template:
            kwargs["roles_unreachable"] = [label(ROLE_UNREACHABLE_LABELS, role)
                                           for role in contacts.roles_without_phone(db.session)]
        model = kwargs.get("model")
        if template == self.edit_template and model is not None:
            kwargs["unreachable"] = [label(UNREACHABLE_LABELS, audience)
                                     for audience in contacts.unreachable(db.session, [model.id]).get(model.id, [])]
        return super().render(template, **kwargs)


class NewPasswordField(PasswordField):
    """Never shown, never written to the model as is: the view stores its hash."""

    def populate_obj(self, obj, name) -> None:
        pass


ROLE_CHOICES = [(role.value, ROLE_LABELS[role.value]) for role in Role]
# Fields of tickets/accounts.py that the user form shows under another name.
ACCOUNT_FORM_FIELDS = {"password": "new_password"}


class UserView(OfficeFilterGroups, ManagementView):
    """Accounts are made and changed by tickets/accounts.py, with the command line's rules and messages."""

    roles = ADMIN_ROLES
    column_list = ("username", "display_name", "role", "office_id", "department_id", "phone", "active",
                   "last_login_at")
    column_labels = {
        "username": _l("Username"), "display_name": _l("Display name"), "role": _l("Role"), "office_id": OFFICE_LABEL,
        "department_id": _l("Department"), "phone": _l("Phone"), "active": _l("Active"),
        "created_at": _l("Created"), "last_login_at": _l("Last sign-in"),
    }
    column_descriptions = {
        "department_id": _l("Department handlers only."),
        "office_id": _l("Office staff, supervisors and leaders only: they see the cases of this window and of the "
                        "windows below it (empty: the root). Administrators and department handlers belong to no "
                        "window."),
        "active": _l("Inactive accounts can neither sign in nor use their API tokens."),
    }
    column_searchable_list = ("username", "display_name")
    column_default_sort = "username"
    column_formatters = {
        "role": lambda v, c, m, n: label(ROLE_LABELS, m.role),
        "office_id": lambda v, c, m, n: office_name(m.office_id),
        "department_id": lambda v, c, m, n: department_name(m.department_id),
        "phone": _masked("phone"),
        "created_at": _time("created_at"),
        "last_login_at": _time("last_login_at"),
    }
    column_extra_row_actions = [
        LinkRowAction("fa fa-key", lambda action, row_id, row: url_for("api_tokens.issue", user_id=row_id),
                      title=_l("Issue an API token")),
    ]
    # Hashes are never shown; the clock fields are the system's to write.
    form_excluded_columns = ("password_hash", "created_at", "last_login_at")
    form_foreign_keys = {"department_id": _department_choices, "office_id": _office_choices}
    form_extra_fields = {
        "new_password": NewPasswordField(
            _l("New password"), validators=[Optional()],
            description=_l("Required for a new account. Leave empty to keep the current password. "
                           "A new password signs the account out everywhere.")),
    }

    def __init__(self, **kwargs):
        self.column_filters = [
            FilterEqual(User.role, _l("Role"), options=ROLE_CHOICES),
            "active",
            OfficeColumnFilter(User.office_id),
        ]
        super().__init__(User, **kwargs)

    def scaffold_form(self):
        form_class = super().scaffold_form()
        # No default role: an account gets the role someone chose, never the first of the list (administrator).
        role = ChoicesField(_l("Role"), choices=ROLE_CHOICES, allow_blank=True, blank_text=_l("Please choose"))
        role.creation_counter = form_class.role.creation_counter  # keep its place in the form
        form_class.role = role
        return form_class

    @staticmethod
    def _account_values(form) -> dict:
        return {"department_id": form.department_id.data, "office_id": form.office_id.data, "phone": form.phone.data,
                "display_name": form.display_name.data, "active": bool(form.active.data),
                "password": form.new_password.data or None}

    @staticmethod
    def _show(form, error: ValidationFailed) -> None:
        for name, message in error.fields.items():
            field = getattr(form, ACCOUNT_FORM_FIELDS.get(name, name))
            field.errors = [*field.errors, str(message)]

    def _save(self, form, change) -> User | None:
        """Run an accounts operation and commit; its field errors go onto the form."""
        try:
            user = change()
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            self._show(form, error)
            return None
        except IntegrityError as error:  # a colleague took the same username a moment earlier
            db.session.rollback()
            self.handle_view_exception(error)
            return None
        return user

    def create_model(self, form):
        user = self._save(form, lambda: accounts.create_user(
            db.session, form.username.data, form.role.data, require_password=True, **self._account_values(form)))
        if user is None:
            return False
        self.after_model_change(form, user, True)
        return user

    def update_model(self, form, model) -> bool:
        user = self._save(form, lambda: accounts.update_user(
            db.session, model, by=current_user._get_current_object(), username=form.username.data,
            role=form.role.data, **self._account_values(form)))
        if user is None:
            return False
        self.after_model_change(form, model, False)
        return True


LEVEL_CHOICES = [("city", _l("City")), ("county", _l("County")), ("township", _l("Township"))]


class OfficeView(ManagementView):
    """The tree of windows (administrators only): listed depth first and indented; made and changed by
    tickets/offices.py, with the command line's rules (one root, a parent a level up, no cycles)."""

    roles = ADMIN_ROLES
    column_list = ("name", "code", "level", "parent_id", "area_code", "active", "default_unanswered", "created_at")
    column_labels = {"code": _l("Code"), "name": _l("Name"), "level": _l("Level"), "parent_id": _l("Parent office"),
                     "area_code": _l("Area code"), "active": _l("Active"),
                     "default_unanswered": _l("Default rating"), "created_at": _l("Created")}
    column_descriptions = {
        "code": _l("A short code that stays the same, e.g. c1; the public form and the API name the window by it."),
        "parent_id": _l("The office above this one (empty only for the root)."),
        "area_code": _l("12-digit administrative area code (optional)."),
        "active": _l("Inactive windows keep their cases but are no longer offered to citizens."),
        "default_unanswered": _l("A satisfaction survey of this window's cases left unanswered when it closes is "
                                 "recorded as basically satisfied (3), marked as a default rating. Off: it stays "
                                 "unrated."),
    }
    column_searchable_list = ("code", "name")
    column_sortable_list = ()
    form_excluded_columns = ("path", "created_at")
    form_foreign_keys = {"parent_id": _office_choices}
    page_size = 500  # the whole tree on one page, in tree order

    def __init__(self, **kwargs):
        super().__init__(Office, **kwargs)

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        count, rows = super().get_list(page, sort_column, sort_desc, search, filters, execute, page_size)
        order = {office.id: i for i, office in enumerate(offices.tree(db.session))}
        return count, sorted(rows, key=lambda office: order.get(office.id, len(order)))

    def _name(view, context, model, name):
        return Markup("{}{}").format("\u3000" * offices.depth(model), model.name)

    column_formatters = {
        "name": _name,
        "level": lambda v, c, m, n: label(dict(LEVEL_CHOICES), m.level),
        "parent_id": lambda v, c, m, n: office_name(m.parent_id),
        "created_at": _time("created_at"),
    }

    def scaffold_form(self):
        form_class = super().scaffold_form()
        level = ChoicesField(_l("Level"), choices=LEVEL_CHOICES, allow_blank=True, blank_text=_l("Please choose"))
        level.creation_counter = form_class.level.creation_counter
        form_class.level = level
        return form_class

    @staticmethod
    def _values(form) -> dict:
        parent = db.session.get(Office, form.parent_id.data) if form.parent_id.data else None
        return {"code": form.code.data, "name": form.name.data, "level": form.level.data,
                "parent_code": parent.code if parent else None, "area_code": form.area_code.data or None,
                "active": bool(form.active.data), "default_unanswered": bool(form.default_unanswered.data)}

    def _save(self, form, change):
        try:
            office = change()
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            for name, message in error.fields.items():
                field = getattr(form, {"parent_code": "parent_id"}.get(name, name))
                field.errors = [*field.errors, str(message)]
            return None
        except IntegrityError as error:
            db.session.rollback()
            self.handle_view_exception(error)
            return None
        return office

    def create_model(self, form):
        office = self._save(form, lambda: offices.create_office(db.session, **self._values(form)))
        if office is None:
            return False
        self.after_model_change(form, office, True)
        return office

    def update_model(self, form, model) -> bool:
        office = self._save(form, lambda: offices.update_office(db.session, model, **self._values(form)))
        if office is None:
            return False
        self.after_model_change(form, model, False)
        return True


def _user_choices():
    rows = db.session.execute(sa.select(User.id, User.username).where(User.active.is_(True)).order_by(User.username))
    return rows.all()


class IssueTokenForm(FlaskForm):
    user_id = ChoicesField(_l("User"), validators=[InputRequired()], choices=_user_choices, coerce=int)
    label = StringField(_l("Label"), validators=[StorableText(accounts.TOKEN_LABEL_MAX, single_line=True), Optional()],
                        description=_l("What the token is for, e.g. the system that will use it."),
                        filters=[lambda value: value.strip() or None if isinstance(value, str) else value])
    scope = ChoicesField(_l("Scope"), validators=[Optional()], choices=lambda: list(TOKEN_SCOPE_LABELS.items()),
                         allow_blank=True, blank_text=ALL_SCOPES_LABEL,
                         description=_l("Limit the token to one kind of use, e.g. “File cases only” for a 12345 "
                                        "hotline platform that hands cases over."))


class ApiTokenView(ManagementView):
    """Tokens are listed, issued (shown once) and revoked here; their hashes never leave the database.

    There is no model form: a token is made by `issue` and changed only by `revoke`.
    """

    roles = ADMIN_ROLES
    can_create = can_edit = False
    list_template = "admin/management/token_list.html"
    column_list = ("user_id", "label", "scope", "created_at", "last_used_at", "revoked_at")
    column_labels = {
        "user_id": _l("User"), "label": _l("Label"), "scope": _l("Scope"), "created_at": _l("Issued"),
        "last_used_at": _l("Last used"), "revoked_at": _l("Status"),
    }
    column_default_sort = ("created_at", True)
    column_sortable_list = ("created_at", "last_used_at")
    column_searchable_list = ("label",)

    def _status(view, context, model, name):
        if model.revoked_at is not None:
            return _("Revoked %(at)s", at=local_text(model.revoked_at))
        return Markup(
            '<form method="post" action="{action}" class="d-inline" data-confirm="{confirm}">'
            '<input type="hidden" name="csrf_token" value="{csrf}">'
            '<span class="badge badge-success mr-2">{active}</span>'
            '<button type="submit" class="btn btn-sm btn-outline-danger">{revoke}</button></form>'
        ).format(action=url_for(".revoke", token_id=model.id), csrf=generate_csrf(), active=_("Active"),
                 revoke=_("Revoke"), confirm=_("Revoke this token? Programs using it stop working at once."))

    column_formatters = {
        "user_id": lambda v, c, m, n: username(m.user_id),
        "scope": lambda v, c, m, n: scope_text(m.scope),
        "created_at": _time("created_at"),
        "last_used_at": _time("last_used_at"),
        "revoked_at": _status,
    }

    def __init__(self, **kwargs):
        super().__init__(ApiToken, **kwargs)

    @expose("/issue/", methods=("GET", "POST"))
    def issue(self):
        form = IssueTokenForm()
        if request.method == "GET" and row_id(request.args.get("user_id")) is not None:
            form.user_id.data = row_id(request.args["user_id"])
        if form.validate_on_submit():
            user = db.session.get(User, form.user_id.data) or abort(404)
            try:
                token = accounts.issue_token(db.session, user, form.label.data, form.scope.data)
            except ValidationFailed as error:
                db.session.rollback()
                for name, message in error.fields.items():
                    getattr(form, name).errors = [str(message)]
            else:
                db.session.commit()
                # Shown on this page only: not flashed (the cookie would carry it), not logged, not cached.
                response = self.render("admin/management/token_issued.html", token=token, user=user,
                                       token_label=form.label.data,
                                       token_scope=scope_text(form.scope.data))
                return response, 200, {"Cache-Control": "no-store"}
        status = 400 if request.method == "POST" else 200
        return self.render("admin/management/token_issue.html", form=form), status

    @expose("/revoke/<int:token_id>", methods=("POST",))
    def revoke(self, token_id: int):
        token = db.session.get(ApiToken, token_id) or abort(404)
        if accounts.revoke_token(db.session, token, clock.now()):
            db.session.commit()
            flash(_("The token was revoked."), "success")
        return redirect(url_for(".index_view"))


class ServiceItemView(ManagementView):
    """The city's catalogue of service items (办理事项): one for the whole deployment (their codes go into every 好差评
    export, their being active into Open311's list). Every window's office staff read it; administrators and the root
    office keep it (`keeps_city_wide_settings`), as the calendar and the problem types' deadlines."""

    roles = OFFICE_ROLES
    list_template = "admin/management/service_item_list.html"
    column_list = ("name", "code", "department_id", "active", "created_at")
    column_labels = {"name": _l("Service item"), "code": _l("Item code"), "department_id": _l("Department"),
                     "active": _l("Active"), "created_at": _l("Created")}
    column_descriptions = {"department_id": _l("The department that usually handles it, if any."),
                           "code": _l("The item's code in the province's catalogue of government services (optional); "
                                      "the 好差评 export gives it for the cases that name this item.")}
    column_searchable_list = ("name", "code")
    column_filters = ("active",)
    column_default_sort = "name"
    column_formatters = {
        "department_id": lambda v, c, m, n: department_name(m.department_id),
        "created_at": _time("created_at"),
    }
    form_excluded_columns = ("created_at",)
    form_foreign_keys = {"department_id": _department_choices}

    def __init__(self, **kwargs):
        super().__init__(ServiceItem, **kwargs)

    @staticmethod
    def keeps_catalogue() -> bool:
        """Whether the viewer changes the catalogue; outside a signed-in request (the view's scaffolding: nobody else
        gets past RoleGuard), the view has forms."""
        if not has_request_context() or not current_user.is_authenticated:
            return True
        return keeps_city_wide_settings(current_user)

    @property
    def can_create(self) -> bool:
        return self.keeps_catalogue()

    @property
    def can_edit(self) -> bool:
        return self.keeps_catalogue()


class ProblemTypesView(RoleGuard, BaseView):
    """The problem types are part of the public API contract: shown here, changed only with the contract."""

    roles = ALL_ROLES

    @expose("/")
    def index(self):
        rows = [(p.value, label(PROBLEM_TYPE_LABELS, p.value)) for p in ProblemType]
        return self.render("admin/management/problem_types.html", rows=rows)


def register(admin) -> None:
    """Add the management views to the console."""
    admin.add_view(DepartmentView(Department, name=_l("Departments"), endpoint="departments",
                                  url="/admin/departments"))
    admin.add_view(ServiceItemView(name=_l("Service items"), endpoint="service_items", url="/admin/service-items"))
    admin.add_view(ProblemTypesView(name=_l("Problem types"), endpoint="problem_types", url="/admin/problem-types",
                                    category=CATEGORY))
    admin.add_view(OfficeView(name=_l("Offices"), endpoint="offices", url="/admin/offices"))
    admin.add_view(UserView(name=_l("Users"), endpoint="users", url="/admin/users"))
    admin.add_view(ApiTokenView(name=_l("API tokens"), endpoint="api_tokens", url="/admin/api-tokens"))
