"""Work queues: one Flask-Admin list per stage of the loop, limited in the query to what the viewer may see."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import abort, g, has_request_context, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterEqual
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from tickets import clock, deadlines, phones
from tickets.access import visibility
from tickets.db import db
from tickets.labels import PROBLEM_TYPE_LABELS, STATUS_LABELS, label, supervision_text
from tickets.models import (ALL_ROLES, OFFICE_ROLES, OFFICE_WIDE_ROLES, OPEN_STATUS_VALUES, Department, ProblemType, Role,
                            Status, Ticket)
from tickets.clock import local_text

from .base import ConsoleModelView, RoleGuard, current_actor, current_role, request_names, row_id
from .export import SafeCsvExport
from .scope import OfficeFilter, OfficeFilterGroups, office_names

TRACKING_NO = re.compile(r"^BJ\d{8}-\d{4,}$", re.IGNORECASE)


@dataclass(frozen=True)
class Queue:
    endpoint: str
    name: object
    statuses: tuple[Status, ...]  # empty: every status
    roles: frozenset[Role] = ALL_ROLES
    by_deadline: bool = True  # open work is sorted by what falls due first; history by what came last
    category: object = None  # a menu dropdown: finished cases and the whole list are looked up, not worked


LOOKUP = _l("Case lookup")

# Each queue holds exactly the cases its name says, one status each, so that a dashboard card's number is
# its queue's count. Cases without a department (submitted, accepted, rejected) and those the department
# gave back (returned) are the office's work: department handlers do not get those queues.
QUEUES = (
    Queue("queue_intake", STATUS_LABELS["submitted"], (Status.submitted,), OFFICE_WIDE_ROLES),
    Queue("queue_accepted", _l("Awaiting transfer"), (Status.accepted,), OFFICE_WIDE_ROLES),
    Queue("queue_in_progress", STATUS_LABELS["transferred"], (Status.transferred,)),
    Queue("queue_review", STATUS_LABELS["replied"], (Status.replied,)),
    Queue("queue_returned", STATUS_LABELS["returned"], (Status.returned,), OFFICE_WIDE_ROLES),
    Queue("queue_rectifying", STATUS_LABELS["rectifying"], (Status.rectifying,)),
    Queue("queue_closed", STATUS_LABELS["closed"], (Status.closed,), by_deadline=False, category=LOOKUP),
    Queue("queue_rejected", STATUS_LABELS["rejected"], (Status.rejected,), OFFICE_WIDE_ROLES, by_deadline=False,
          category=LOOKUP),
    Queue("queue_withdrawn", STATUS_LABELS["withdrawn"], (Status.withdrawn,), OFFICE_WIDE_ROLES, by_deadline=False,
          category=LOOKUP),
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


def due_badge(ticket: Ticket, now: datetime) -> Markup:
    if ticket.due_at is None or ticket.status not in OPEN_STATUS_VALUES:
        return Markup("")
    text = local_text(ticket.due_at)
    if ticket.overdue(now):
        return Markup('<span class="due-badge due-overdue" title="{}">{}</span>').format(_l("Overdue"), text)
    if ticket.due_at <= soon_threshold(now):
        return Markup('<span class="due-badge due-soon" title="{}">{}</span>').format(
            _l("Due within a working day"), text)
    return Markup('<span class="due-badge">{}</span>').format(text)


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
    return filters + [DueTodayFilter(), FiledTodayFilter(), OfficeFilter(), AwaitingContactFilter()]


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
    column_list = ("tracking_no", "status", "problem_type", "citizen_name", "phone", "office_id", "department_id",
                   "supervision_level", "created_at", "due_at")
    column_labels = {
        "tracking_no": _l("Tracking number"), "status": _l("Status"), "problem_type": _l("Problem type"),
        "citizen_name": _l("Citizen's name"), "phone": _l("Phone number"), "department_id": _l("Department"),
        "supervision_level": _l("Supervision"), "created_at": _l("Filed at"), "due_at": _l("Due"),
        "service_item": _l("Service item"), "description": _l("Description"), "office_id": _l("Window"),
        "contact_due_at": _l("First contact by"),
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
        if Status.transferred in queue.statuses:  # 办理中: which cases still await the department's first contact
            self.column_list = (*QueueView.column_list, "contact_due_at")
        super().__init__(Ticket, db, name=queue.name, category=queue.category,
                         endpoint=queue.endpoint, url=f"/admin/{queue.endpoint.replace('_', '-')}")

    # --- what the viewer may see -------------------------------------------------------------------

    def _restrict(self, query):
        query = query.filter(visibility(current_actor()))
        if self.queue.statuses:
            query = query.filter(Ticket.status.in_([s.value for s in self.queue.statuses]))
        return query

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

    def search_placeholder(self):
        return _l("Tracking number, phone number or text")

    def row_cells(self, row, list_columns) -> Markup:
        """A row's cells in one call: Flask-Admin's row block makes two template calls per cell (editable? value),
        which was a third of a queue page's time; a queue has no editable cells and no row actions."""
        formatters, type_formatters = self.column_formatters, self.column_type_formatters
        return Markup("".join(
            f'<td class="col-{escape(name)}">{escape(self._get_list_value(None, row, name, formatters, type_formatters))}</td>'
            for name, _label in list_columns))

    # --- search: a tracking number or a phone number exactly, anything else as text --------------------

    def _apply_search(self, query, count_query, joins, count_joins, search):
        term = search.strip()
        if not term:
            return query, count_query, joins, count_joins
        phone = phones.normalise_phone(term)  # a mobile number or a landline, in any spelling
        if TRACKING_NO.match(term):
            condition = Ticket.tracking_no == term.upper()
        elif phone:
            condition = Ticket.phone == phone
        else:
            pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            condition = sa.or_(*(column.ilike(pattern, escape="\\") for column in
                                 (Ticket.tracking_no, Ticket.citizen_name, Ticket.description, Ticket.service_item)))
        query = query.filter(condition)
        if count_query is not None:
            count_query = count_query.filter(condition)
        return query, count_query, joins, count_joins

    # --- how cells look ------------------------------------------------------------------------------

    def _case_link(view, context, model, name):
        return Markup('<a href="{}">{}</a>').format(url_for("case.show", tracking_no=model.tracking_no),
                                                   model.tracking_no)

    column_formatters = {
        "tracking_no": _case_link,
        "status": lambda v, c, m, n: label(STATUS_LABELS, m.status),
        "problem_type": lambda v, c, m, n: label(PROBLEM_TYPE_LABELS, m.problem_type),
        "phone": lambda v, c, m, n: phones.mask(m.phone),
        "office_id": lambda v, c, m, n: office_names().get(m.office_id, ""),
        "department_id": lambda v, c, m, n: department_names().get(m.department_id, ""),
        "supervision_level": lambda v, c, m, n: supervision_text(m.supervision_level),
        "created_at": lambda v, c, m, n: local_text(m.created_at),
        "due_at": lambda v, c, m, n: due_badge(m, page_now()),
        "contact_due_at": lambda v, c, m, n: contact_badge(m, page_now()),
    }
    # Export is for the office and admins. Every value passes the formula guard in SafeCsvExport; phone
    # numbers are its business too.
    column_formatters_export = {
        "tracking_no": lambda v, c, m, n: m.tracking_no,
        "status": lambda v, c, m, n: label(STATUS_LABELS, m.status),
        "problem_type": lambda v, c, m, n: label(PROBLEM_TYPE_LABELS, m.problem_type),
        "office_id": lambda v, c, m, n: office_names().get(m.office_id, ""),
        "department_id": lambda v, c, m, n: department_names().get(m.department_id, ""),
        "supervision_level": lambda v, c, m, n: supervision_text(m.supervision_level),
        "created_at": lambda v, c, m, n: local_text(m.created_at),
        "due_at": lambda v, c, m, n: local_text(m.due_at) if m.status in OPEN_STATUS_VALUES else "",
    }

    def get_export_name(self, export_type="csv"):
        return f"banjie-{self.endpoint}-{clock.local(clock.now()):%Y%m%d-%H%M}.{export_type}"


def counts_by_status(actor) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Ticket.status, sa.func.count()).where(visibility(actor)).group_by(Ticket.status)
    ).all()
    return {status: count for status, count in rows}


def queue_count(queue: Queue, by_status: dict[str, int]) -> int:
    statuses = [s.value for s in queue.statuses] or list(by_status)
    return sum(by_status.get(s, 0) for s in statuses)
