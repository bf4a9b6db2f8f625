"""What every console view shares: who may open it, and what happens to those who may not."""
from __future__ import annotations

import inspect
import re
import sys

import sqlalchemy as sa
from babel.lists import format_list
from flask import abort, g, redirect, request, url_for
from flask_admin import babel as admin_babel
from flask_admin.contrib.sqla import ModelView, filters
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from sqlalchemy.orm import Query
from wtforms import HiddenField, PasswordField, StringField, TextAreaField
from wtforms.fields.core import UnboundField
from wtforms.validators import Length, StopValidation

from tickets import validation
from tickets.db import db
from tickets.errors import BadRequest
from tickets.models import ALL_ROLES, Role
from tickets.validation import FieldError, identifier
from tickets.workflow import Actor

def current_role() -> Role | None:
    return Role(current_user.role) if current_user.is_authenticated else None


def current_actor() -> Actor:
    return Actor.of(current_user._get_current_object())


class RoleGuard:
    """Mixin for Flask-Admin views: only `roles` may open the view; it is also hidden from everyone else's menu.

    The anonymous are sent to the login page (and come back afterwards); a signed-in user of another role
    gets 403.
    """

    roles: frozenset[Role] = ALL_ROLES

    def is_accessible(self) -> bool:
        return current_role() in self.roles

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(403)


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_LIST_ITEMS = 100  # values in one "in list" filter
MAX_PAGE = 100_000  # no list is that long; a page number past it is a mistake (and its offset past any integer)


def _bounded(filter_class):
    """An integer filter that refuses values its column cannot hold (Flask-Admin then ignores the filter
    and says the value is not valid): PostgreSQL would fail with "integer out of range", SQLite with an
    OverflowError."""

    class Bounded(filter_class):
        def validate(self, value) -> bool:
            if not super().validate(value):
                return False
            numbers = self.clean(value)
            numbers = numbers if isinstance(numbers, list) else [numbers]
            low, high = (INT64_MIN, INT64_MAX) if isinstance(self.column.type, sa.BigInteger) else (INT32_MIN, INT32_MAX)
            return len(numbers) <= MAX_LIST_ITEMS and all(low <= n <= high for n in numbers)

    Bounded.__name__ = filter_class.__name__
    return Bounded


class BoundedFilterConverter(filters.FilterConverter):
    """Flask-Admin's filters for every console list, with integer values kept within their column's range."""

    int_filters = tuple(f if f is filters.FilterEmpty else _bounded(f) for f in filters.FilterConverter.int_filters)


# Query arguments named as url_for's own parameters: Flask-Admin hands a list's arguments back to url_for to build its
# links (the pager, the sorting, the export), where `endpoint` or `export_type` clashes with the one it names (a
# TypeError) and Flask's `_method`, `_scheme`, `_external`, `_anchor` change the link (a BuildError, another scheme).
# No console address has them.
def url_parameter(name: str) -> bool:
    return name in ("endpoint", "export_type") or name.startswith("_")


def refuse_url_parameters(args) -> None:
    """400 when the query string has an argument that would be taken for one of url_for's parameters."""
    if any(url_parameter(name) for name in args):
        raise BadRequest(_l("The address has an argument the console does not take."))


def version_number(raw: str) -> int | None:
    """The version a form says a case was seen at (digits, ASCII only: int() takes other scripts' digits and refuses
    「²」, which isdigit() passes), or None when it says none."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def row_id(value) -> int | None:
    """A row id from a URL argument (`?id=`, a filter's value), or None when it cannot name a row."""
    try:
        return identifier(value, required=True) if isinstance(value, str) else None
    except FieldError:
        return None


# --- staff-typed text: the API's one definition of a text field (tickets/validation.py `text`) -----------------------

UNBOUNDED = sys.maxsize  # a field whose length another rule bounds (or no column does): only the characters are checked


def storable_text(value, *, max_len: int | None = None, single_line: bool = False) -> str | None:
    """A console text field as `validation.text` takes it (None when empty; FieldError with its message otherwise):
    no control characters or lone surrogates, a CRLF counted as one character, at most `max_len`.

    For the hand-written forms that save what staff type without going through a workflow or an operation that
    checks it; the model forms get the same rule from `StorableText`."""
    return validation.text(value, required=False, max_len=UNBOUNDED if max_len is None else max_len,
                           single_line=single_line)


class StorableText:
    """WTForms validator: the text as typed passes `validation.text` (its message on the field, validation stops).

    It checks what was typed (`raw_data`), before the field's filters: a strip would quietly drop the control
    characters Python counts as white space (\x1c-\x1f, \x0b, \x0c) and save the rest. Emptiness is left to the
    field's InputRequired/Optional."""

    def __init__(self, max_len: int | None = None, *, single_line: bool = False):
        self.max_len = max_len
        self.single_line = single_line

    def __call__(self, form, field) -> None:
        if field.process_errors:
            return  # the field could not read what was typed (ServiceItemsField): it said why already
        typed = field.raw_data[0] if field.raw_data else field.data
        if not isinstance(typed, str):
            return
        try:
            storable_text(typed, max_len=self.max_len, single_line=self.single_line)
        except FieldError as error:
            raise StopValidation(str(error.message)) from None


def hold_to_text_rules(form_class):
    """Give every free-text field of a scaffolded form `StorableText`: one line for a text input, lines for a text
    area, and the column's length (in place of WTForms' Length, which counts a CRLF as two characters).

    Passwords and hidden fields are not free text; a field that already has the validator keeps it."""
    for name in dir(form_class):
        unbound = getattr(form_class, name, None)
        if not isinstance(unbound, UnboundField) or not issubclass(unbound.field_class, StringField):
            continue
        if issubclass(unbound.field_class, (PasswordField, HiddenField)):
            continue
        if "validators" in unbound.kwargs or len(unbound.args) < 2:
            checks = list(unbound.kwargs.get("validators") or ())
        else:
            checks = list(unbound.args[1] or ())
        if any(isinstance(check, StorableText) for check in checks):
            continue
        lengths = [c for c in checks if type(c) is Length and c.min in (-1, 0, None) and c.max not in (-1, None)]
        checks = [c for c in checks if not any(c is length for length in lengths)]
        max_len = min((length.max for length in lengths), default=None)
        single_line = not issubclass(unbound.field_class, TextAreaField)
        checks.insert(0, StorableText(max_len, single_line=single_line))
        if "validators" in unbound.kwargs or len(unbound.args) < 2:
            unbound.kwargs["validators"] = checks
        else:
            unbound.args = (unbound.args[0], checks, *unbound.args[2:])
    return form_class


class SQLModelQueries:
    """Mixin for every Flask-Admin SQLAlchemy view: build the legacy Query directly, within what the database takes.

    Flask-Admin calls `session.query()`, which SQLModel's Session marks deprecated (a warning on every
    list page); constructing `Query` on the same session is what that call does, without the warning.
    Flask-Admin also hands the database whatever the URL says (`?page=`, `?id=`, `?flt0_0=`): the page is
    clamped, an id that cannot be one names no row, and integer filters stay within their column's range; an argument
    named as one of url_for's parameters is refused (`url_parameter`).
    """

    filter_converter = BoundedFilterConverter()

    def get_query(self):
        return Query([self.model], session=db.session)

    def get_count_query(self):
        return Query([sa.func.count("*")], session=db.session).select_from(self.model)

    def get_one(self, id):
        """The row with this id among those the view shows, or None (Flask-Admin says it does not exist)."""
        key = row_id(id)
        if key is None:
            return None
        (column,) = sa.inspect(self.model).primary_key
        return self.get_query().filter(column == key).one_or_none()

    def _get_list_extra_args(self):
        """Flask-Admin reads `?page=` with int(): 20 digits overflow the query's OFFSET and a negative one is
        refused by the database. A page number is a whole number from 0 to MAX_PAGE, else 400."""
        refuse_url_parameters(request.args)
        raw = request.args.get("page")
        if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) <= MAX_PAGE):
            raise BadRequest(_l("The page number is not valid."))
        return super()._get_list_extra_args()


def switched_off(view, name: str) -> bool:
    """Whether the view's class turns this Flask-Admin switch (`can_create`, `can_edit`, ...) off for everyone: a class
    attribute False, not a per-user property."""
    return inspect.getattr_static(view, name) is False


def neither_creates_nor_edits(view) -> bool:
    """A console list whose create and edit are off for everyone (`switched_off`)."""
    return switched_off(view, "can_create") and switched_off(view, "can_edit")


# Flask-Admin's model view routes that serve one switch, and the switch.
ROUTE_SWITCHES = {"create_view": "can_create", "edit_view": "can_edit", "delete_view": "can_delete",
                  "details_view": "can_view_details", "export": "can_export"}


def routes_never_served(view) -> set[str]:
    """The model view's Flask-Admin routes (view function names) that nobody can use: those of a switch its class
    turns off (`switched_off`), the in-list editing one without editable columns, the form look-ups one without
    look-up fields and the selected rows' actions one without an action but the switched-off delete. Flask-Admin
    registers them all whatever the view allows, to redirect to the list."""
    never = {route for route, switch in ROUTE_SWITCHES.items() if switched_off(view, switch)}
    if not view.column_editable_list:
        never.add("ajax_update")
    if not view.form_ajax_refs:
        never.add("ajax_lookup")
    if switched_off(view, "can_delete") and all(name == "delete" for name, _text in view._actions):
        never.add("action_view")  # Flask-Admin's one action is delete (its list templates leave the form out then)
    return never


class ConsoleModelView(SQLModelQueries, ModelView):
    """Base of the console's Flask-Admin lists.

    Every list ends its order with the primary key: rows that tie on the sorted column (filed in the same
    second, due at the same 23:59) keep one order, so "newest first" is time order and no row moves
    between pages. The search box names its columns as a list in the page's language (「A或B」, "A or B"),
    not Flask-Admin's "A, B".
    """

    list_template = "admin/console_list.html"  # Flask-Admin's, with the row buttons' column named

    def scaffold_form(self):
        """The model's form, its free text held to the API's rules (`hold_to_text_rules`): every console model form
        that saves what staff type is scaffolded here, whichever view adds fields of its own."""
        return hold_to_text_rules(super().scaffold_form())

    def create_blueprint(self, admin):
        """The view's routes but those nobody can use (`routes_never_served`): they only redirected to the list, and
        were 162 of the app's 360 URL rules, made with every app and walked by the route tests. Such an address
        answers 404 like any other the console does not have."""
        never = routes_never_served(self)
        self._urls = [route for route in type(self)._urls if route[1] not in never]
        return super().create_blueprint(admin)

    def get_form(self):
        """A list that neither creates nor edits (most of the console's) gets a form without fields: Flask-Admin
        scaffolds every view's create and edit forms from its model when the console is built, which was a third of
        building the app, for forms such a view never shows (its create and edit routes redirect). A view that
        decides per user (a property) gets its model's form."""
        if self.form is None and neither_creates_nor_edits(self):
            return type(f"{type(self).__name__}Form", (self.form_base_class,), {})
        return super().get_form()

    def _apply_sorting(self, query, joins, sort_column, sort_desc):
        query, joins = super()._apply_sorting(query, joins, sort_column, sort_desc)
        if sort_column is None:  # the default order: the tie-break follows its first column's direction
            first = next(iter(self._get_default_order()), None)
            sort_desc = bool(first and first[2])
        key = sa.inspect(self.model).primary_key[0]
        return query.order_by(key.desc() if sort_desc else key), joins

    def render(self, template, **kwargs):
        # Flask-Admin's templates translate through these two; the page-size menu is ours (see list_gettext).
        self._template_args.update(_gettext=list_gettext, _ngettext=list_ngettext)
        return super().render(template, **kwargs)

    def search_placeholder(self):
        names = [getattr(column, "key", column) for column in self.column_searchable_list or ()]
        labels = [str((self.column_labels or {}).get(name, name)) for name in names]
        return format_list(labels, style="or", locale=get_locale()) if labels else None


PAGE_SIZE_OPTION = re.compile(r"\d+ items")


def list_gettext(string, **variables):
    """Flask-Admin's wording, but the page-size button: its catalog says 「20 项目」 for "20 items"."""
    if string == "items":
        return _("per page")
    return admin_babel.gettext(string, **variables)


def list_ngettext(singular, plural, num, **variables):
    """Flask-Admin's wording, but the page-size menu, whose "50 items" it builds as untranslatable text."""
    if PAGE_SIZE_OPTION.fullmatch(plural):
        return _("%(num)d per page", num=num)
    return admin_babel.ngettext(singular, plural, num, **variables)


def request_names(key: str, statement) -> dict:
    """A per-request id → name map for list cells, read once per page rather than once per row."""
    cache = g.setdefault("banjie_names", {})
    if key not in cache:
        cache[key] = dict(db.session.execute(statement).all())
    return cache[key]
