"""Work queues: one Flask-Admin list per stage of the loop, limited in the query to what the viewer may see."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from flask import abort, flash, g, has_request_context, redirect, request, session, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from markupsafe import Markup, escape

from tickets import bulk, clock, deadlines, lists, offices, phones, workflow
from tickets.access import visibility
from tickets.db import db
from tickets.labels import CHANNEL_LABELS, PROBLEM_TYPE_LABELS, STATUS_LABELS, label, supervision_text
from tickets.models import (ALL_ROLES, OFFICE_ROLES, OFFICE_WIDE_ROLES, OPEN_STATUS_VALUES, OPEN_STATUSES, Department,
                            Office, ProblemType, Role, SavedFilter, Status, Ticket, User)
from tickets.clock import local_text
from tickets.personal import shown
from tickets.errors import ValidationFailed
from tickets.privacy import access as privacy
from tickets.validation import FieldError

from .base import (ConsoleModelView, RoleGuard, current_actor, current_role, refuse_url_parameters, request_names,
                   row_id, storable_text, version_number)
from .export import FULL_FIELD, SafeCsvExport
from .scope import OfficeFilter, OfficeFilterGroups, office_names

@dataclass(frozen=True)
class Queue:
    endpoint: str
    name: object
    statuses: tuple[Status, ...]  # empty: every status
    roles: frozenset[Role] = ALL_ROLES
    by_deadline: bool = True  # open work is sorted by what falls due first; history by what came last
    category: object = None  # a menu dropdown: finished cases and the whole list are looked up, not worked
    bulk: tuple[str, ...] = ()  # the actions its selection may take at once (tickets.bulk), for the roles allowed them
    condition: Callable | None = None  # (actor) -> a further SQL condition (我的案件: the cases the viewer works)

    def where(self, actor) -> list:
        """The queue's cases, as SQL conditions on Ticket: what the viewer may see, the statuses, the condition."""
        where = [visibility(actor)]
        if self.statuses:
            where.append(Ticket.status.in_([s.value for s in self.statuses]))
        if self.condition is not None:
            where.append(self.condition(actor))
        return where

    def order(self) -> tuple:
        """The order its list opens in (and 「下一件」 follows): what falls due first, else the newest."""
        if self.by_deadline:
            return (Ticket.due_at, Ticket.id)
        return (Ticket.created_at.desc(), Ticket.id.desc())

    def bulk_actions(self, role: Role) -> list[str]:
        return [a for a in self.bulk if role == Role.admin or role in workflow.ACTIONS[a].roles]


LOOKUP = _l("Case lookup")

# Each queue holds exactly the cases its name says, one status each, so that a dashboard card's number is
# its queue's count. Cases without a department (submitted, accepted, rejected) and those the department
# gave back (returned) are the office's work: department handlers do not get those queues.
MINE = "queue_mine"
QUEUES = (
    Queue(MINE, _l("My cases"), tuple(sorted(OPEN_STATUSES)), condition=lambda actor: lists.worked_by(actor.user_id),
          bulk=("remind",)),
    Queue("queue_intake", STATUS_LABELS["submitted"], (Status.submitted,), OFFICE_WIDE_ROLES,
          bulk=("accept_and_transfer", "accept", "assign")),
    Queue("queue_accepted", _l("Awaiting transfer"), (Status.accepted,), OFFICE_WIDE_ROLES, bulk=("transfer", "assign")),
    Queue("queue_in_progress", STATUS_LABELS["transferred"], (Status.transferred,), bulk=("remind", "assign")),
    Queue("queue_review", STATUS_LABELS["replied"], (Status.replied,), bulk=("assign",)),
    Queue("queue_returned", STATUS_LABELS["returned"], (Status.returned,), OFFICE_WIDE_ROLES, bulk=("transfer", "assign")),
    Queue("queue_rectifying", STATUS_LABELS["rectifying"], (Status.rectifying,), bulk=("remind", "assign")),
    Queue("queue_closed", STATUS_LABELS["closed"], (Status.closed,), by_deadline=False, category=LOOKUP),
    Queue("queue_rejected", STATUS_LABELS["rejected"], (Status.rejected,), OFFICE_WIDE_ROLES, by_deadline=False,
          category=LOOKUP),
    Queue("queue_withdrawn", STATUS_LABELS["withdrawn"], (Status.withdrawn,), OFFICE_WIDE_ROLES, by_deadline=False,
          category=LOOKUP),
    Queue("queue_merged", STATUS_LABELS["merged"], (Status.merged,), by_deadline=False, category=LOOKUP),
    Queue("cases", _l("All cases"), (), by_deadline=False, category=LOOKUP),
)


def soon_threshold(now: datetime) -> datetime:
    """A deadline before the end of the next working day is 'due soon' (amber); worked out once per page."""
    if not has_request_context():
        return deadlines.policy().due(now, 1).at
    memo = g.setdefault("banjie_soon_threshold", {})
    if now not in memo:
        memo[now] = deadlines.policy().due(now, 1).at
    return memo[now]


# Built once: a list asks for it in every row; in the departments' order, for the filter's options too.
DEPARTMENT_NAMES = sa.select(Department.id, Department.name).order_by(Department.code)


def department_names() -> dict[int, str]:
    return request_names("department", DEPARTMENT_NAMES)


USER_NAMES = sa.select(User.id, sa.func.coalesce(User.display_name, User.username))


def user_names() -> dict[int, str]:
    """Staff names by id, read once per request (who works each case of a list)."""
    return request_names("user", USER_NAMES)


class DepartmentFilter(FilterEqual):
    """Departments as they are now: read per request, not once when the console starts."""

    def __init__(self):
        super().__init__(Ticket.department_id, _l("Department"))

    def get_options(self, view):
        if not has_request_context():
            return None
        return [(str(i), name) for i, name in department_names().items()]

    def validate(self, value):
        return row_id(value) is not None

    def clean(self, value):
        return int(value)


def page_now() -> datetime:
    """The page's one "now": every row's badge is judged at the same moment (and the threshold read once)."""
    if "banjie_page_now" not in g:
        g.banjie_page_now = clock.now()
    return g.banjie_page_now


def due_badge(ticket: Ticket, now: datetime, *, days: bool = False) -> Markup:
    """The running deadline, coloured when overdue or due within a working day; with `days`, also the working days
    left (「剩3个工作日」, 「今日到期」) or past it (「超期2个工作日」), as lists show it."""
    if ticket.due_at is None or ticket.status not in OPEN_STATUS_VALUES:
        return Markup("")
    text = local_text(ticket.due_at)
    left = lists.time_left(ticket, now) if days else {}
    if ticket.overdue(now):
        n = left["working_days_overdue"] if days else 0
        extra = ngettext("%(num)d working day overdue", "%(num)d working days overdue", n) if days else ""
        return Markup('<span class="due-badge due-overdue" title="{}">{}</span>{}').format(
            _l("Overdue"), text, _days(extra))
    if days:
        n = left["working_days_left"]
        extra = _("due today") if n == 0 else ngettext("%(num)d working day left", "%(num)d working days left", n)
    else:
        extra = ""
    if ticket.due_at <= soon_threshold(now):
        return Markup('<span class="due-badge due-soon" title="{}">{}</span>{}').format(
            _l("Due within a working day"), text, _days(extra))
    return Markup('<span class="due-badge">{}</span>{}').format(text, _days(extra))


def _days(text) -> Markup:
    return Markup('<span class="days-left">{}</span>').format(text) if text else Markup("")


class ShortcutFilter(BaseSQLAFilter):
    """A yes-only filter for what the dashboard counts; `condition(now)` is the one definition of both."""

    def __init__(self, column, name):
        super().__init__(column, name, options=(("yes", _l("Yes")),))

    @staticmethod
    def condition(now: datetime):
        raise NotImplementedError

    def apply(self, query, value, alias=None):
        return query.filter(self.condition(clock.now()))

    def operation(self):
        return _l("only")


class OverdueFilter(ShortcutFilter):
    def __init__(self):
        super().__init__(Ticket.due_at, _l("Overdue"))

    @staticmethod
    def condition(now):
        return Ticket.overdue(now)


class DueTodayFilter(ShortcutFilter):
    """Open cases whose deadline is still ahead but falls before the end of today (local time)."""

    def __init__(self):
        super().__init__(Ticket.due_at, _l("Due today"))

    @staticmethod
    def condition(now):
        return sa.and_(Ticket.status.in_(OPEN_STATUS_VALUES), Ticket.due_at >= now,
                       Ticket.due_at < clock.day_bounds(now)[1])


class FiledTodayFilter(ShortcutFilter):
    """Cases filed today (local time), whatever has happened to them since."""

    def __init__(self):
        super().__init__(Ticket.created_at, _l("Filed today"))

    @staticmethod
    def condition(now):
        start, end = clock.day_bounds(now)
        return sa.and_(Ticket.created_at >= start, Ticket.created_at < end)


class AwaitingContactFilter(ShortcutFilter):
    """Cases whose department has not yet recorded its first contact with the citizen (先行联系)."""

    def __init__(self):
        super().__init__(Ticket.contact_due_at, _l("Awaiting first contact"))

    @staticmethod
    def condition(now):
        return Ticket.contact_due_at.is_not(None)


class DeletionRequestedFilter(ShortcutFilter):
    """Cases whose deletion request (the citizen's, or recorded by the office) waits for the case to end
    (tickets/privacy/retention.py `request_waits`; the scheduler anonymises each once it has ended for good)."""

    def __init__(self):
        super().__init__(Ticket.anonymise_requested_at, _l("Deletion requested"))

    @staticmethod
    def condition(now):
        from tickets.privacy.retention import request_waits
        return request_waits()


def contact_badge(ticket: Ticket, now: datetime) -> Markup:
    """When the first contact is due, while it is awaited: marked once its time is up (not as an overdue case: the
    row keeps the colour its handling deadline gives it)."""
    if ticket.contact_due_at is None:
        return Markup("")
    text = local_text(ticket.contact_due_at)
    if ticket.contact_due_at < now:
        return Markup('<span class="due-badge contact-late" title="{}">{}</span>').format(
            _l("First contact not recorded in time"), text)
    return Markup('<span class="due-badge">{}</span>').format(text)


def queue_filters(queue: Queue) -> list:
    """A queue's filters, in the order that numbers their URL arguments (flt0_<index>).

    The first ones keep their places (bookmarked URLs); the dashboard's shortcuts come after them.
    """
    filters = [OverdueFilter(),
               DepartmentFilter(),
               FilterEqual(Ticket.problem_type, _l("Problem type"),
                           options=[(p.value, PROBLEM_TYPE_LABELS[p.value]) for p in ProblemType])]
    if len(queue.statuses) != 1:
        shown = queue.statuses or tuple(Status)
        filters.append(FilterEqual(Ticket.status, _l("Status"),
                                   options=[(s.value, STATUS_LABELS[s.value]) for s in shown]))
    return filters + [DueTodayFilter(), FiledTodayFilter(), OfficeFilter(), AwaitingContactFilter(),
                      DeletionRequestedFilter()]


def shortcut_args(queue: Queue, kind: type[ShortcutFilter]) -> dict[str, str]:
    """The URL arguments that apply a shortcut filter to a queue's list."""
    index = next(i for i, f in enumerate(queue_filters(queue)) if type(f) is kind)
    return {f"flt0_{index}": "yes"}


class QueueView(RoleGuard, OfficeFilterGroups, SafeCsvExport, ConsoleModelView):
    """One work queue. Read-only: every change happens on the case page, through the workflow."""

    can_create = can_edit = can_delete = False
    can_view_details = False
    can_set_page_size = True
    column_display_actions = False  # rows open the case page; there is nothing to do from the list
    page_size = 20
    # What a clerk decides on without opening the case: what it is about, how long is left, who works it, how it came
    # in and how closely it is watched. `status` only where a list holds several.
    column_list = ("tracking_no", "status", "description", "problem_type", "citizen_name", "phone", "channel",
                   "office_id", "department_id", "owner_id", "supervision_level", "created_at", "due_at")
    column_labels = {
        "tracking_no": _l("Tracking number"), "status": _l("Status"), "problem_type": _l("Problem type"),
        "citizen_name": _l("Citizen's name"), "phone": _l("Phone number"), "department_id": _l("Department"),
        "supervision_level": _l("Supervision"), "created_at": _l("Filed at"), "due_at": _l("Due"),
        "service_item": _l("Service item"), "description": _l("Description"), "office_id": _l("Window"),
        "contact_due_at": _l("First contact by"), "channel": _l("Channel"), "owner_id": _l("Worked by"),
    }
    column_sortable_list = ("tracking_no", "created_at", "due_at", "supervision_level", "contact_due_at")
    # Flask-Admin shows the search box when this is set; what a term matches is decided in _apply_search.
    column_searchable_list = ("tracking_no", "citizen_name", "description")
    column_export_list = ("tracking_no", "status", "problem_type", "citizen_name", "phone", "service_item",
                          "office_id", "department_id", "supervision_level", "created_at", "due_at", "description")
    export_types = ("csv",)
    export_phone_columns = ("phone",)  # masked unless the office asks for whole numbers (admin/export.py)
    list_template = "admin/queue_list.html"

    def __init__(self, queue: Queue):
        self.queue = queue
        self.roles = queue.roles
        # The list's order is made total by the id (ConsoleModelView), so equal times keep a stable order.
        self.column_default_sort = ("due_at", False) if queue.by_deadline else ("created_at", True)
        # The history lists (closed, rejected, all cases) page with previous/next and no page count: counting a
        # county's 200,000 cases for the pager cost more than the rest of the page, and nobody pages to the last
        # page of a city's history; a search or a filter finds a case, and the dashboard counts every status.
        self.simple_list_pager = not queue.by_deadline
        self.column_filters = queue_filters(queue)
        columns = QueueView.column_list
        if len(queue.statuses) == 1:
            columns = tuple(c for c in columns if c != "status")
        if queue.statuses == (Status.transferred,):  # 办理中: which cases still await the department's first contact
            columns = (*columns, "contact_due_at")
        self.column_list = columns
        super().__init__(Ticket, db, name=queue.name, category=queue.category,
                         endpoint=queue.endpoint, url=f"/admin/{queue.endpoint.replace('_', '-')}")

    # --- what the viewer may see -------------------------------------------------------------------

    def _restrict(self, query):
        return query.filter(*self.queue.where(current_actor()))

    def get_query(self):
        return self._restrict(super().get_query())

    def get_count_query(self):
        return self._restrict(super().get_count_query())

    @property
    def can_export(self) -> bool:
        return current_role() in OFFICE_ROLES

    @expose("/export/<export_type>/")
    def export(self, export_type):
        if not self.can_export:
            abort(403)  # Flask-Admin would only flash and redirect; an export is refused outright
        return super().export(export_type)

    @expose("/export/<export_type>/full", methods=("POST",))
    def export_full(self, export_type):
        """The export form: the list's filters in the address, 「包含完整号码」 and a reason in the form. Unticked, the
        usual masked export; ticked, whole numbers for who sees them, with the reason in the access log."""
        if not self.can_export or current_role() not in OFFICE_ROLES:
            abort(403)
        refuse_url_parameters(request.args)  # before they go back to url_for in the redirect below
        if request.form.get(FULL_FIELD):
            try:
                self.grant_full_phones(privacy.clean_reason(request.form.get(privacy.REASON_FIELD)))
            except ValidationFailed as error:  # back to the list, the form open with the reason as typed
                self.keep_typed("export", error.fields[privacy.REASON_FIELD],
                                reason=request.form.get(privacy.REASON_FIELD, ""))
                return redirect(url_for(".index_view", **request.args.to_dict()))
        return self.export(export_type)

    def search_placeholder(self):
        return _l("Tracking number, phone number or text")

    def row_cells(self, row, list_columns) -> Markup:
        """A row's cells in one call: Flask-Admin's row block makes two template calls per cell (editable? value),
        which was a third of a queue page's time; a queue has no editable cells and no row actions. Each cell names its
        column (data-label): below 600 px a row is a card, its values labelled (static/console.css)."""
        formatters, type_formatters = self.column_formatters, self.column_type_formatters
        return Markup("".join(
            f'<td class="col-{escape(name)}" data-label="{escape(str(heading))}">'
            f'{escape(self._get_list_value(None, row, name, formatters, type_formatters))}</td>'
            for name, heading in list_columns))

    # --- search: a tracking number or a phone number exactly, anything else as text --------------------

    def _apply_search(self, query, count_query, joins, count_joins, search):
        condition = lists.search_condition(search)  # the API's `q=` reads the same definition
        if condition is None:
            return query, count_query, joins, count_joins
        query = query.filter(condition)
        if count_query is not None:
            count_query = count_query.filter(condition)
        return query, count_query, joins, count_joins

    # --- the selection and its bulk actions (tickets.bulk) ---------------------------------------------------------

    def bulk_actions(self) -> list[str]:
        return self.queue.bulk_actions(current_role())

    def render(self, template, **kwargs):
        if template == self.list_template and self.bulk_actions():
            kwargs.update(bulk_specs=workflow.ACTIONS, bulk_departments=transfer_choices(current_actor()))
        return super().render(template, **kwargs)

    def select_cell(self, row) -> Markup:
        """The row's checkbox for the bulk form: the case's number and the version it was listed at (a case changed
        since is refused as stale, not acted on blindly)."""
        return Markup('<td class="col-select"><input type="checkbox" class="bulk-select" form="bulk-form" name="tickets" '
                      'value="{}:{}" aria-label="{}"></td>').format(
            row.tracking_no, row.version, _l("Select %(no)s", no=row.tracking_no))

    # --- saved filters: a member of staff keeps a list's filters, search and order under a name ------------------

    def saved_filters(self) -> list[SavedFilter]:
        return list(db.session.scalars(sa.select(SavedFilter).where(
            SavedFilter.user_id == current_actor().user_id, SavedFilter.endpoint == self.endpoint)
            .order_by(SavedFilter.name)))

    def saved_filter_url(self, saved: SavedFilter) -> str:
        return self.get_url(".index_view") + "?" + saved.query

    def keep_typed(self, form: str, error, **values: str) -> None:
        """Note a form of this list refused: what was typed in it and why, for the list the redirect shows (`typed`).
        The list is Flask-Admin's page and is reached by a redirect, so the note goes through the session."""
        session[TYPED_KEY] = {"endpoint": self.endpoint, "form": form, "error": str(error),
                              **{name: value[:TYPED_KEPT] for name, value in values.items()}}

    def typed(self, form: str) -> dict | None:
        """What `form` (`filter`: the saved filter's name; `export`: the whole-number export's reason) held when this
        list refused it a moment ago, with why: shown once, as it was typed."""
        note = session.get(TYPED_KEY)
        if isinstance(note, dict) and note.get("endpoint") == self.endpoint and note.get("form") == form:
            session.pop(TYPED_KEY, None)
            return note
        return None

    @expose("/filters", methods=("POST",))
    def save_filter(self):
        typed = request.form.get("name", "")
        query = filter_query(request.form.get("query", ""))
        try:
            name = " ".join((storable_text(typed, max_len=FILTER_NAME_MAX, single_line=True) or "").split())
        except FieldError as error:
            # back to the list with the name as typed and the rule's message under it (nothing is saved); the save
            # form is on a list with filters only
            if query:
                self.keep_typed("filter", error.message, name=typed)
            else:
                flash(error.message, "error")
            return redirect(self.get_url(".index_view") + ("?" + query if query else ""))
        if not name:
            flash(_l("Give the filter a name."), "error")
        elif not query:
            flash(_l("Choose a filter, a search or an order first: there is nothing to save."), "error")
        else:
            user_id = current_actor().user_id
            saved = db.session.scalar(sa.select(SavedFilter).where(
                SavedFilter.user_id == user_id, SavedFilter.endpoint == self.endpoint, SavedFilter.name == name))
            if saved is None:
                if len(self.saved_filters()) >= MAX_SAVED_FILTERS:
                    flash(_l("At most %(n)d saved filters per list: delete one first.", n=MAX_SAVED_FILTERS), "error")
                    return redirect(self.get_url(".index_view") + "?" + query)
                saved = SavedFilter(user_id=user_id, endpoint=self.endpoint, name=name, query=query)
                db.session.add(saved)
            saved.query = query
            db.session.commit()
            flash(_l("Filter saved: %(name)s", name=name), "success")
        return redirect(self.get_url(".index_view") + ("?" + query if query else ""))

    @expose("/filters/<int:filter_id>/delete", methods=("POST",))
    def delete_filter(self, filter_id):
        saved = db.session.get(SavedFilter, filter_id)
        if saved is None or saved.user_id != current_actor().user_id or saved.endpoint != self.endpoint:
            abort(404)
        db.session.delete(saved)
        db.session.commit()
        flash(_l("Filter deleted: %(name)s", name=saved.name), "success")
        return redirect(self.get_url(".index_view"))

    def current_filter_query(self) -> str:
        return filter_query(request.query_string.decode("utf-8", "replace"))

    @expose("/bulk", methods=("POST",))
    def bulk(self):
        """One action on the selected cases: each through the workflow on its own, one result line per case."""
        action = request.form.get("action", "")
        if action not in self.bulk_actions():
            abort(404)
        items = []
        for value in request.form.getlist("tickets")[:bulk.MAX_ITEMS + 1]:
            number, _sep, version = value.partition(":")
            items.append({"tracking_no": number, "version": version_number(version)})
        if not items:
            flash(_l("Select at least one case."), "error")
            return redirect(self.get_url(".index_view"))
        spec = workflow.ACTIONS[action]
        payload = spec.payload_from_form(request.form)
        try:
            selection = bulk.parse_items(items)
        except ValidationFailed as error:
            flash(next(iter(error.fields.values()), error.message), "error")
            return redirect(self.get_url(".index_view"))
        results = bulk.run(db.session, current_actor(), action, selection, payload)
        return self.render("admin/bulk_results.html", action=spec, summary=bulk.summary(action, results),
                           back=_console_path(request.form.get("back")) or self.get_url(".index_view"))

    # --- how cells look ------------------------------------------------------------------------------

    def _case_link(view, context, model, name):
        """The case page, told which queue it was opened from (its 「下一件」 is the next case of this queue)."""
        return Markup('<a href="{}" class="case-link">{}</a>').format(
            url_for("case.show", tracking_no=model.tracking_no, queue=view.endpoint), model.tracking_no)

    def _worked_by(view, context, model, name):
        names = user_names()
        return " / ".join(names.get(i, "") for i in (model.owner_id, model.handler_id) if i)

    column_formatters = {
        "tracking_no": _case_link,
        "status": lambda v, c, m, n: label(STATUS_LABELS, m.status),
        "problem_type": lambda v, c, m, n: label(PROBLEM_TYPE_LABELS, m.problem_type),
        "phone": lambda v, c, m, n: phones.mask(m.phone),
        "citizen_name": lambda v, c, m, n: shown(m.citizen_name),  # 已匿名化 for an anonymised case
        "office_id": lambda v, c, m, n: office_names().get(m.office_id, ""),
        "department_id": lambda v, c, m, n: department_names().get(m.department_id, ""),
        "supervision_level": lambda v, c, m, n: supervision_text(m.supervision_level),
        "created_at": lambda v, c, m, n: local_text(m.created_at),
        "due_at": lambda v, c, m, n: due_badge(m, page_now(), days=True),
        "contact_due_at": lambda v, c, m, n: contact_badge(m, page_now()),
        "description": lambda v, c, m, n: Markup('<span class="case-summary" title="{}">{}</span>').format(
            lists.snippet(m.description, 200), lists.snippet(m.description)),
        "channel": lambda v, c, m, n: label(CHANNEL_LABELS, m.channel),
        "owner_id": _worked_by,
    }
    # Export is for the office and admins. Every value passes the formula guard in SafeCsvExport; phone
    # numbers are its business too.
    column_formatters_export = {
        "tracking_no": lambda v, c, m, n: m.tracking_no,
        "citizen_name": lambda v, c, m, n: shown(m.citizen_name),
        "status": lambda v, c, m, n: label(STATUS_LABELS, m.status),
        "problem_type": lambda v, c, m, n: label(PROBLEM_TYPE_LABELS, m.problem_type),
        "office_id": lambda v, c, m, n: office_names().get(m.office_id, ""),
        "department_id": lambda v, c, m, n: department_names().get(m.department_id, ""),
        "supervision_level": lambda v, c, m, n: supervision_text(m.supervision_level),
        "created_at": lambda v, c, m, n: local_text(m.created_at),
        "due_at": lambda v, c, m, n: local_text(m.due_at) if m.status in OPEN_STATUS_VALUES else "",
        "channel": lambda v, c, m, n: label(CHANNEL_LABELS, m.channel),
    }

    def get_export_name(self, export_type="csv"):
        return f"banjie-{self.endpoint}-{clock.local(clock.now()):%Y%m%d-%H%M}.{export_type}"


def _console_path(path: str | None) -> str | None:
    """A return address inside the console, or None."""
    if path and path.startswith("/admin/") and "\\" not in path and not any(ord(c) < 32 for c in path):
        return path
    return None


def transfer_choices(actor) -> list[tuple[int, str]]:
    """The departments the viewer's window transfers to (its own and those above it); every department for an admin.
    Each case of a bulk transfer is still checked against its own window."""
    office = db.session.get(Office, actor.office_id) if actor.office_id else None
    query = (offices.transfer_departments(db.session, office) if office is not None else
             sa.select(Department).where(Department.active.is_(True)).order_by(Department.code))
    return [(d.id, d.name) for d in db.session.scalars(query)]


MAX_SAVED_FILTERS = 20
FILTER_NAME_MAX = 40  # SavedFilter.name
TYPED_KEY = "banjie_typed"  # the session's note of a list's refused form (`QueueView.keep_typed`, read once)
TYPED_KEPT = 200  # of each value typed in a refused form, what the session keeps to show again
# What a saved filter keeps of a list's address: Flask-Admin's filters (flt…), the search, the order and page size.
SAVED_ARGUMENTS = re.compile(r"^(flt\d+_\d+|search|sort|desc|page_size)$")


def filter_query(query_string: str) -> str:
    """The part of a list's query string a saved filter keeps (never the page), normalised; "" when nothing is left."""
    pairs = [(k, v) for k, v in parse_qsl(query_string[:2000], keep_blank_values=False)
             if SAVED_ARGUMENTS.match(k) and len(v) <= 200]
    return urlencode(pairs)[:1000]


def counts_by_status(actor, statuses=None) -> dict[str, int]:
    """The cases this actor sees, counted by status (only `statuses`, when given)."""
    where = [visibility(actor)] + ([Ticket.status.in_(statuses)] if statuses is not None else [])
    rows = db.session.execute(
        sa.select(Ticket.status, sa.func.count()).where(*where).group_by(Ticket.status)
    ).all()
    return {status: count for status, count in rows}


def queue_count(queue: Queue, by_status: dict[str, int], actor=None) -> int:
    """The number of cases a queue's list holds: from the counts by status, or (a queue with a condition of its own,
    我的案件) counted with the same conditions as its list."""
    if queue.condition is not None:
        return db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(*queue.where(actor)))
    statuses = [s.value for s in queue.statuses] or list(by_status)
    return sum(by_status.get(s, 0) for s in statuses)
