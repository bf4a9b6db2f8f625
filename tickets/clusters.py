"""一类事: the recurring problems, one definition read by the console, the API and (by month) the monthly report.

A cluster is the cases sharing one `cluster_id`: at filing a case joins the cluster of the most similar earlier case
at the same window about the same service item (tickets/duplicates.py), else starts its own (its own id). A cluster is
a **一类事** when at least CLUSTER_MIN_CASES of its cases were filed in the moving window: the last CLUSTER_DAYS local
calendar days, today included, up to now. Every case counts, merged ones too (each is a person who reported it),
except the office's own 主动治理 tasks (channel `proactive`). The trend compares that count with the previous window of
the same length; the daily counts are per local day of the window.

Only cases the actor may see are counted (`tickets.access.visibility`, in the query), and only the roles that see
a whole office read the list (`may_list`: not a department's handlers, whose own cases the department queue shows).
The window's cases are aggregated in SQL, grouped by cluster; only the listed clusters (at most LIST_LIMIT) are read
further (tests/bench/clusters.py times it on 2,000,000 cases).

`open_governance` opens a 主动治理 task from a 一类事 (tickets/workflow/governance.py says what happens to it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from . import clock, intake, offices, validation
from .access import visibility
from .errors import Forbidden, InvalidTransition, NotFound
from .models import (FINAL_STATUSES, OFFICE_ROLES, OFFICE_WIDE_ROLES, OPEN_STATUS_VALUES, Channel, Department, Event,
                     Office, Role, Ticket)
from .workflow import MAX_WORKING_DAYS, Actor, perform, record
from .workflow.governance import NOTIFY, OPENED, PROACTIVE, link

LIST_LIMIT = 100     # clusters listed at most, the largest first
SNIPPET = 30         # characters of the first case's text in a cluster's title
CASES_SHOWN = 200    # cases a cluster's page lists, newest first
CONTENT_MIN, CONTENT_MAX = 5, intake.DESCRIPTION_MAX
FINAL_VALUES = tuple(sorted(s.value for s in FINAL_STATUSES))


def settings() -> tuple[int, int]:
    """(CLUSTER_DAYS, CLUSTER_MIN_CASES)."""
    config = current_app.config
    return int(config["CLUSTER_DAYS"]), int(config["CLUSTER_MIN_CASES"])


def may_list(actor: Actor) -> bool:
    """The list is the office's tool: roles that see a whole office (not a department's handlers)."""
    return actor.role in OFFICE_WIDE_ROLES


def may_open(actor: Actor) -> bool:
    """Who may open a 主动治理 task (the window that owns the cases, or an administrator: `open_governance`)."""
    return actor.role in OFFICE_ROLES


@dataclass(frozen=True)
class Window:
    """The moving window: the last `days` local calendar days up to `end` (now), and the one before it."""

    start: datetime
    end: datetime
    previous_start: datetime
    days: int
    first_day: date

    @classmethod
    def ending(cls, now: datetime, days: int) -> "Window":
        first_day = clock.today(now) - timedelta(days=days - 1)
        start = datetime.combine(first_day, time.min, tzinfo=clock.local_tz())
        previous = datetime.combine(first_day - timedelta(days=days), time.min, tzinfo=clock.local_tz())
        return cls(start, now, previous, days, first_day)

    def dates(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.days)]


def _local_date(column, dialect: str):
    """The local calendar day of a UTC timestamp column, in SQL (as reports/metrics.py `local_date`)."""
    tz = clock.local_tz()
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone(tz.key, column), sa.Date)
    offset = datetime(2000, 1, 1, tzinfo=tz).utcoffset()  # SQLite keeps naive UTC; exact for zones without DST
    return sa.func.date(column, f"{int(offset.total_seconds())} seconds")


def _counted(actor: Actor, office_id: int | None):
    """WHERE clause of the cases that count: of a cluster, not a 主动治理 task, seen by the actor (and, with
    `office_id`, owned by that window or one below it)."""
    where = [Ticket.cluster_id.is_not(None), Ticket.channel != PROACTIVE, visibility(actor)]
    if office_id is not None:
        where.append(offices.ticket_in_subtree(office_id))
    return sa.and_(*where)


def listing(session, actor: Actor, *, office_id: int | None = None, now: datetime | None = None,
            limit: int = LIST_LIMIT) -> dict:
    """The 一类事 the actor sees (of `office_id`'s subtree when given), the largest first: {"items", "total", "days",
    "min_cases", "start", "end"}; each item as `describe` makes it. 403 for a department's handler."""
    if not may_list(actor):
        raise Forbidden()
    days, minimum = settings()
    window = Window.ending(now or clock.now(), days)
    grouped = _window_counts(window).where(_counted(actor, office_id)).having(sa.func.count() >= minimum).subquery()
    # One pass over the window's cases: the clusters that reach the minimum, the largest first, and how many there are
    # (a window function over the groups, before the limit).
    rows = session.execute(sa.select(grouped, sa.func.count().over().label("total"))
                           .order_by(grouped.c.n.desc(), grouped.c.last_at.desc(), grouped.c.cluster_id)
                           .limit(limit)).all()
    items = describe(session, actor, [row.cluster_id for row in rows], window, minimum, office_id=office_id,
                     counted={row.cluster_id: row for row in rows})
    return {"items": items, "total": rows[0].total if rows else 0, "days": days, "min_cases": minimum,
            "start": window.start, "end": window.end}


def _window_counts(window: Window) -> sa.Select:
    """Per cluster, of the cases filed in the window: how many (`n`), the latest filing (`last_at`), how many are still
    open (`open`) and how many no 主动治理 task links (`unlinked`). The caller adds which cases count."""
    return (sa.select(Ticket.cluster_id, sa.func.count().label("n"), sa.func.max(Ticket.created_at).label("last_at"),
                      sa.func.sum(sa.case((Ticket.status.in_(OPEN_STATUS_VALUES), 1), else_=0)).label("open"),
                      sa.func.sum(sa.case((Ticket.governance_id.is_(None), 1), else_=0)).label("unlinked"))
            .where(Ticket.created_at >= window.start, Ticket.created_at <= window.end).group_by(Ticket.cluster_id))


def cluster(session, actor: Actor, cluster_id: int, *, now: datetime | None = None) -> dict | None:
    """One cluster as `describe` makes it, whether or not it is a 一类事 now (`qualifies`); None when the actor sees
    none of its cases. 403 for a department's handler."""
    if not may_list(actor):
        raise Forbidden()
    days, minimum = settings()
    items = describe(session, actor, [cluster_id], Window.ending(now or clock.now(), days), minimum)
    return items[0] if items else None


def describe(session, actor: Actor, cluster_ids: list[int], window: Window, minimum: int, *,
             office_id: int | None = None, counted: dict | None = None) -> list[dict]:
    """The clusters `cluster_ids` (in that order) the actor sees a case of, each:

    {"id", "title", "office_id", "office_code", "office_name", "service_item", "problem_type", "count",
    "previous_count", "trend" (rising, falling or steady), "daily" [{"date", "count"}], "open", "closed",
    "unlinked", "qualifies", "first_case" {"tracking_no", "created_at"}, "last_at", "governance" (None, or
    `_governance`'s)}. `counted`: the window's counts of these clusters (`_window_counts`) when the caller has them.

    A few grouped queries over these clusters' cases (the index on cluster and date), never over all cases."""
    if not cluster_ids:
        return []
    dialect = session.get_bind().dialect.name
    mine = sa.and_(_counted(actor, office_id), Ticket.cluster_id.in_(cluster_ids))
    in_window = sa.and_(Ticket.created_at >= window.start, Ticket.created_at <= window.end)
    now_rows = counted if counted is not None else {
        row.cluster_id: row for row in session.execute(_window_counts(window).where(mine))}
    previous = dict(session.execute(
        sa.select(Ticket.cluster_id, sa.func.count())
        .where(mine, Ticket.created_at >= window.previous_start, Ticket.created_at < window.start)
        .group_by(Ticket.cluster_id)).all())
    day = _local_date(Ticket.created_at, dialect)
    daily: dict[int, dict[date, int]] = {}
    for cluster_id, on, n in session.execute(sa.select(Ticket.cluster_id, day, sa.func.count())
                                             .where(mine, in_window).group_by(Ticket.cluster_id, day)):
        daily.setdefault(cluster_id, {})[on if isinstance(on, date) else date.fromisoformat(on)] = n
    firsts = _first_cases(session, mine, cluster_ids)
    names = {i: (code, name) for i, code, name in session.execute(
        sa.select(Office.id, Office.code, Office.name).where(Office.id.in_({t.office_id for t in firsts.values()})))}
    tasks = _governance(session, actor, list(firsts))
    dates = window.dates()
    items = []
    for cluster_id in cluster_ids:
        first = firsts.get(cluster_id)
        if first is None:
            continue
        row = now_rows.get(cluster_id)
        n, still_open, unlinked = (row.n, int(row.open or 0), int(row.unlinked or 0)) if row is not None else (0, 0, 0)
        before = previous.get(cluster_id, 0)
        code, name = names.get(first.office_id, (None, None))
        items.append({
            "id": cluster_id, "title": title(first), "office_id": first.office_id, "office_code": code,
            "office_name": name, "service_item": first.service_item, "problem_type": first.problem_type,
            "count": n, "previous_count": before,
            "trend": "rising" if n > before else "falling" if n < before else "steady",
            "daily": [{"date": d, "count": daily.get(cluster_id, {}).get(d, 0)} for d in dates],
            "open": still_open, "closed": n - still_open, "unlinked": unlinked, "qualifies": n >= minimum,
            "first_case": {"tracking_no": first.tracking_no, "created_at": first.created_at},
            "last_at": row.last_at if row is not None else None,
            "governance": tasks.get(cluster_id),
        })
    return items


def _first_cases(session, mine, cluster_ids: list[int]) -> dict[int, Ticket]:
    """{cluster id: its first case the actor sees}. A cluster's id is its first case's (tickets/duplicates.py), read by
    its key; only a cluster whose first case the actor does not see (it moved to another window) is searched."""
    firsts = {t.cluster_id: t for t in session.scalars(
        sa.select(Ticket).where(mine, Ticket.id.in_(cluster_ids), Ticket.cluster_id == Ticket.id))}
    missing = [cluster_id for cluster_id in cluster_ids if cluster_id not in firsts]
    if missing:
        first_ids = (sa.select(sa.func.min(Ticket.id)).where(mine, Ticket.cluster_id.in_(missing))
                     .group_by(Ticket.cluster_id))
        firsts.update({t.cluster_id: t for t in session.scalars(sa.select(Ticket).where(Ticket.id.in_(first_ids)))})
    return firsts


def title(first: Ticket) -> str:
    """A cluster's name: its service item and the start of its first case's text."""
    text = " ".join((first.description or "").split())
    snippet = text if len(text) <= SNIPPET else text[:SNIPPET - 1] + "…"
    return f"{first.service_item} · {snippet}" if first.service_item else snippet


def latest_tasks(session, cluster_ids, where) -> dict[int, dict]:
    """{cluster id: its latest 主动治理 task among those `where` admits (a visibility or a report's scope)}, each as
    {"task": the Ticket, "linked": cases linked to it, "notified": its answer was sent, "department_name"}: what the
    console, the API and the report's 高频诉求 say was done about a 一类事."""
    if not cluster_ids:
        return {}
    tasks = {}
    for task in session.scalars(sa.select(Ticket).where(Ticket.cluster_id.in_(cluster_ids), Ticket.channel == PROACTIVE,
                                                        where).order_by(Ticket.id)):
        tasks[task.cluster_id] = task  # the latest wins
    if not tasks:
        return {}
    ids = [t.id for t in tasks.values()]
    linked = dict(session.execute(sa.select(Ticket.governance_id, sa.func.count()).where(Ticket.governance_id.in_(ids))
                                  .group_by(Ticket.governance_id)).all())
    told = set(session.scalars(sa.select(Event.ticket_id).where(Event.ticket_id.in_(ids), Event.action == NOTIFY)))
    departments = dict(session.execute(sa.select(Department.id, Department.name).where(
        Department.id.in_({t.department_id for t in tasks.values() if t.department_id}))).all())
    return {cluster_id: {"task": t, "linked": linked.get(t.id, 0), "notified": t.id in told,
                         "department_name": departments.get(t.department_id)} for cluster_id, t in tasks.items()}


def _governance(session, actor: Actor, cluster_ids: list[int]) -> dict[int, dict]:
    """{cluster id: its latest 主动治理 task the actor sees}: {"tracking_no", "status", "open", "department_id",
    "department_name", "due_at", "opened_at", "closed_at", "answer", "linked", "notified"}."""
    return {cluster_id: {
        "id": t.id, "tracking_no": t.tracking_no, "status": t.status, "open": t.status not in FINAL_VALUES,
        "department_id": t.department_id, "department_name": found["department_name"],
        "due_at": t.due_at, "opened_at": t.created_at, "closed_at": t.closed_at,
        "answer": t.public_reply if t.status == "closed" else None,
        "linked": found["linked"], "notified": found["notified"],
    } for cluster_id, found in latest_tasks(session, cluster_ids, visibility(actor)).items()
        for t in (found["task"],)}


def window_count(session, actor: Actor, cluster_id: int, now: datetime) -> int:
    """How many of the cluster's cases the actor sees were filed in the window (the case page's note: one index range)."""
    window = Window.ending(now, settings()[0])
    return session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(
        _counted(actor, None), Ticket.cluster_id == cluster_id, Ticket.created_at >= window.start,
        Ticket.created_at <= window.end))


def cases(session, actor: Actor, cluster_id: int, *, limit: int = CASES_SHOWN) -> list[Ticket]:
    """The cluster's cases the actor sees (its 主动治理 tasks too), newest first."""
    return list(session.scalars(sa.select(Ticket).where(Ticket.cluster_id == cluster_id, visibility(actor))
                                .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)))


def departments_for(session, office_id: int) -> list[Department]:
    """The departments a task of this window may go to: its own and those of the windows above it."""
    return list(session.scalars(offices.transfer_departments(session, session.get(Office, office_id))))


# --- 主动治理 ------------------------------------------------------------------------------------------------------

def opening_problem(entry: dict):
    """Why no 主动治理 task may be opened from this cluster now, or None: it must be a 一类事 (CLUSTER_MIN_CASES in the
    window), with no task of it open; after a task, as many new cases (not linked to one) must have come in."""
    days, minimum = settings()
    task = entry["governance"]
    if task is not None and task["open"]:
        return _l("A proactive task for this recurring problem is open already: %(no)s.", no=task["tracking_no"])
    if not entry["qualifies"]:
        return _l("Fewer than %(n)d of these cases were filed in the last %(days)d days: it is not a recurring problem "
                  "(一类事) now.", n=minimum, days=days)
    if task is not None and entry["unlinked"] < minimum:
        return _l("The proactive task %(no)s already took these cases up; another can be opened once %(n)d new cases "
                  "of this problem come in within %(days)d days.", no=task["tracking_no"], n=minimum, days=days)
    return None


def _check(session, office: Office, department_id, working_days, content) -> dict:
    check = validation.Collector()
    chosen = check.field("department_id", validation.identifier, department_id, required=True)
    check.field("working_days", validation.integer, working_days, required=False, minimum=1, maximum=MAX_WORKING_DAYS)
    check.field("content", validation.text, content, required=True, min_len=CONTENT_MIN, max_len=CONTENT_MAX)
    if chosen is not None:
        department = session.get(Department, chosen)
        if department is None or not department.active:
            check.fail("department_id", _l("No such department."))
        elif department.office_id not in offices.ancestor_ids(office):
            check.fail("department_id", _l("This department does not serve this window: choose one of its own or of a "
                                           "window above it."))
    return check.raise_if_errors()


def open_governance(session, actor: Actor, cluster_id, department_id, working_days, content, *,
                    now: datetime | None = None) -> Ticket:
    """Open a 主动治理 task from the 一类事 `cluster_id` (no commit): a case of channel `proactive` at the cluster's
    window, the window's name as its citizen and no phone number, `content` as its text, accepted and transferred
    to `department_id` with a handling deadline of `working_days` (None: the deadline policy's), its history saying
    who opened it from which cluster; the cluster's cases of the window are linked to it (`governance.link`).

    403 for roles other than the office and admins, and for an office other than the cluster's window; 404 for a
    cluster the actor does not see; 409 when it is not a 一类事 now or a task of it is still open; 422 for bad input
    (`department_id`, `working_days`, `content`)."""
    if not may_open(actor):
        raise Forbidden()
    if not isinstance(cluster_id, int) or isinstance(cluster_id, bool) or not 0 < cluster_id < 2**31:
        raise NotFound()
    now = now or clock.now()
    # Two clerks opening a task of one cluster at once: the second waits here for the first's commit, then finds its
    # task open (PostgreSQL; SQLite has one writer anyway). The row is the cluster's first case (its id is the cluster's).
    session.execute(sa.select(Ticket.id).where(Ticket.id == cluster_id).with_for_update())
    entry = cluster(session, actor, cluster_id, now=now)
    if entry is None:
        raise NotFound()
    office = session.get(Office, entry["office_id"])
    if actor.role != Role.admin and actor.office_id != office.id:
        raise Forbidden(_l("Only the window these cases belong to, or an administrator, opens a proactive task for "
                           "them."))
    problem = opening_problem(entry)
    if problem is not None:
        raise InvalidTransition(problem)
    values = _check(session, office, department_id, working_days, content)
    filed = intake.file_ticket(session, {
        "name": office.name[:intake.NAME_MAX], "phone": "", "problem_type": entry["problem_type"],
        "service_item": entry["service_item"], "description": values["content"], "office_id": office.id},
        channel=Channel.proactive.value, actor=actor)
    ticket = filed.ticket
    # Of the cluster, and never like anything (an empty match text: similarity 0), so that no citizen's filing joins
    # it as its cluster's nearest case or is offered it as a possible duplicate (tickets/duplicates.py).
    ticket.cluster_id, ticket.match_text = cluster_id, ""
    days = settings()[0]
    record(session, ticket, actor, OPENED.name, now, from_status=ticket.status, note=entry["title"],
           data={"cluster_id": cluster_id, "cases": entry["count"], "days": days,
                 "first_case": entry["first_case"]["tracking_no"], "service_item": entry["service_item"]})
    perform(session, ticket, actor, "accept_and_transfer",
            {"department_id": values["department_id"], "working_days": values["working_days"]})
    link(session, ticket, actor, now, start=Window.ending(now, days).start, end=now)
    return ticket


def to_json(value):
    """A listing or a cluster with its times in ISO 8601 (local offset) and its dates as YYYY-MM-DD, for the API."""
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items() if key != "office_id"}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, datetime):
        return clock.iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
