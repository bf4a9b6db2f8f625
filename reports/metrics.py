"""The month's figures, by SQL aggregation over the history (events, deadlines, surveys), never by current status.

Every count is defined by rows whose timestamps fall inside the month (local time), or by the history as
it stood at the month's end, so a past month gives the same figures whenever it is computed. A report is
of one office and counts only the cases its subtree owns (`Scope`, read from `offices.subtree`: one condition on the
ticket, joined where a query reads other tables). The owning office is the one at the month's end (`owner_at`: the
window the last hand-over before then gave the case to, else the window it was filed at), so a case a window refers
up or assigns down later stays in the month of the window that had it. The queries group by (department, owning
office); a department's figures, a child office's (its subtree's) and the total are sums of those groups (each case
belongs to exactly one office, and to one department or to none when the window settled it itself). The department
is the one leading the case at the instant the figure reads (`department_at`): at the month's end for the cohort, at
the closing for a closing and the survey it opened.
Definitions: `formulas.FORMULAS`.

Appeals (申诉复核): a 差评 whose appeal was upheld by the time the report is made (`as_of`: a draft made again early
in the next month shows the supervisor's decisions of those days; a published report is frozen, and this is the one
figure that may move between two drafts of a month) stays in every office-wide figure but leaves
the figures of the department it was given to (`department_view`): its 差评数 and what is counted over them, and the
answers its 满意率 is taken over. The groups carry how many such ratings they hold (`bad_upheld`, ...), so a
department's row subtracts them while the office's total, the child offices' rows and `own` keep them.

Working days: the handling-time query groups the closed cases by (department, local filing day, local
closing day) in SQL, and the calendar is applied once per distinct day pair in Python. A month has at
most a few thousand distinct pairs however many cases it holds, and the calendar stays the one
`escalation.calendar` computes deadlines with (a SQL copy of the calendar could drift from it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from escalation.calendar import WorkCalendar, working_days_between
from tickets import offices
from tickets.models import Channel, Appeal, Deadline, Event, ExtensionRequest, Office, ReturnVisit, Survey, Ticket
from tickets.workflow import WITHDRAW, names
from tickets.workflow.merging import MERGE, SPLIT

from .formulas import ACCEPTED_BY_CHANNEL, CHANNEL_COUNTS, FORMULA_VERSION
from .models import Report

# Kinds of events by what they mean, from the workflow's definitions (tickets/workflow/actions.py).
CLOSING_ACTIONS = names(closes_case=True)                # approve, resolve, explain
RECLOSING_ACTIONS = names(answers_bad_rating=True)       # what answers a bad rating: approve, explain
SUPERVISION_ACTIONS = names(raises_supervision=True)     # escalate, remind (a remind counts as level 1)
INSTRUCTION_ACTIONS = names(listed_with_escalations=True)  # instruct (批示): listed with them, not counted
LIFTING_ACTIONS = names(lifts_rectification=True)        # decide_appeal: closes a reopened case again when upheld
RATING_ACTIONS = names(rates_survey=True)                # rate, record_rating: a 差评 reopens the case
HAND_OVER_ACTIONS = ("refer_up", "assign_down")   # the case goes to another window (`accepted` there)
DEPARTMENT_DEADLINES = ("handle", "rectify")      # deadlines the department is measured by
ON_TIME_DEADLINES = ("accept", "handle", "rectify")
CONTACT_DEADLINE = "contact"                      # 先行联系, its own figure (never in the on-time closure rate)
LEVELS = (1, 2, 3)
TREND_MONTHS = 12
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# The years a report can cover: the calendar editor's range. Beyond it a month is not a report's (and
# 9999-12 has no next month for `bounds` to end at).
FIRST_YEAR, LAST_YEAR = 2000, 2100
# A case's channel (Ticket.channel) -> the count of 受理数 by channel it adds to (`formulas.ACCEPTED_BY_CHANNEL`).
CHANNEL_KEY = {channel: key for key, channels in ACCEPTED_BY_CHANNEL for channel in channels}


# The cases the figures count: the citizens'. A 主动治理 case (channel `proactive`, tickets/clusters.py) is the office's
# own task from a 一类事; the 高频诉求 section lists it (reports/clusters.py), no figure counts it.
CITIZEN_CASES = Ticket.channel != Channel.proactive.value


class BadMonth(ValueError):
    pass


@dataclass(frozen=True, order=True)  # ordered by year, then month
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Month":
        match = MONTH.match(text or "")
        if not match or not 1 <= int(match.group(2)) <= 12 or not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
            raise BadMonth(text)
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, instant: datetime, tz: ZoneInfo) -> "Month":
        local = instant.astimezone(tz)
        return cls(local.year, local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shift(self, months: int) -> "Month":
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) of the month in local time, as aware datetimes."""
        nxt = self.shift(1)
        return (datetime(self.year, self.month, 1, tzinfo=tz), datetime(nxt.year, nxt.month, 1, tzinfo=tz))


@dataclass(frozen=True)
class Scope:
    """The cases a report counts: those owned by an office or an office below it (`offices.subtree`).

    The subtree's ids are read once (`offices.subtree_ids`, a few dozen at most), so every query carries a
    plain `ticket.office_id IN (...)` list that PostgreSQL's planner estimates well; the tree's path condition
    as a subquery in each made it choose nested loops, four times slower. When the subtree is every office
    (the root's report) no condition is needed at all, and the queries are those of a single window.
    """
    office_id: int
    office_ids: tuple[int, ...] | None  # None: every office

    @classmethod
    def of(cls, session, office_id: int) -> "Scope":
        ids = tuple(offices.subtree_ids(session, office_id))
        every = session.scalar(sa.select(sa.func.count()).select_from(Office))
        return cls(office_id, None if len(ids) == every else ids)

    def holds(self, office_id):
        """Condition: the office (an id column or expression) is in the scope."""
        return office_id.in_(self.office_ids) if self.office_ids is not None else sa.true()

    def owned(self, office_id=None, *, at=None):
        """WHERE clause on `Ticket`: the case is one this report counts, a citizen's (`CITIZEN_CASES`) owned by the
        scope: at the instant `at` (the month's end: `owner_at`), else now (`Ticket.office_id`: the lists of the
        present). With `office_id`, only the ownership, on that column or expression (a survey's case:
        `surveyed_case`)."""
        if office_id is not None:
            return self.holds(office_id)
        return sa.and_(self.holds(Ticket.office_id) if at is None else self.holds_at(at), CITIZEN_CASES)

    def holds_at(self, at, case=None):
        """Condition: the window owning `case` (a ticket table or alias; default `Ticket`'s) at the instant `at`
        (`owner_at`) is in the scope. The same as `holds(owner_at(at, case))`, written so that the window is looked up
        only for a case handed over since `at` (few): any other case's is its `office_id`."""
        if self.office_ids is None:
            return sa.true()
        columns = (case if case is not None else Ticket.__table__).c
        later = handed_over_since(columns.id, at)
        return sa.or_(sa.and_(~later, self.holds(columns.office_id)),
                      sa.and_(later, self.holds(office_at(columns.id, columns.office_id, at))))


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


# --- SQL building blocks --------------------------------------------------------------------------

def local_date(column, tz: ZoneInfo, dialect: str):
    """The local calendar day of a UTC timestamp column, in SQL."""
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone(tz.key, column), sa.Date)
    # SQLite stores naive UTC; a fixed offset is exact for zones without daylight saving (Asia/Shanghai).
    offset = datetime(2000, 1, 1, tzinfo=tz).utcoffset()
    return sa.func.date(column, f"{int(offset.total_seconds())} seconds")


def department_at(ticket_id, at, *, through: bool = False):
    """The department leading a case at an instant: the one of its latest handling deadline started before it (with
    `through`, or at it: the instant of an event that came after the transfer, such as the closing), unless that
    deadline had ended by then with the department returning the case (`return`): the case is back with its window,
    which leads it itself (None) until it transfers it again; a hand-over to another window or the window's own
    `resolve` do not give it back to the department. One lookup per case by `ix_deadline_ticket_id`."""
    lead = Deadline.__table__.alias("lead_deadline")
    by = (lambda column: column <= at) if through else (lambda column: column < at)
    returned = sa.and_(lead.c.outcome == "returned", by(lead.c.ended_at))
    return (
        sa.select(sa.case((returned, sa.null()), else_=lead.c.department_id))
        .where(lead.c.ticket_id == ticket_id, lead.c.kind == "handle", by(lead.c.started_at))
        .order_by(lead.c.started_at.desc(), lead.c.id.desc())
        .limit(1)
        .correlate_except(lead)
        .scalar_subquery()
    )


def office_at(ticket_id, office_id, at):
    """The window owning a case at the instant `at`: the one the last hand-over (`refer_up`, `assign_down`) before
    it gave the case to, else the window it was filed at. Read from the other side, as one lookup of the case's
    events (`ix_event_ticket_id`): the window the first hand-over at or after `at` took the case from, else the one
    that owns it now (`office_id`, the ticket's column: only a hand-over changes it). History, so a past month's
    figures stay those of the window that had the case then, whatever moves it later."""
    handed = Event.__table__.alias("handed_over")
    later = (sa.select(handed.c.data["from_office_id"].as_integer())
             .where(handed.c.ticket_id == ticket_id, handed.c.action.in_(HAND_OVER_ACTIONS), handed.c.at >= at)
             .order_by(handed.c.at, handed.c.id)
             .limit(1)
             .correlate_except(handed)
             .scalar_subquery())
    return sa.func.coalesce(later, office_id)


def handed_over_since(ticket_id, at):
    """Condition: the case was handed to another window (`refer_up`, `assign_down`) at or after `at`."""
    handed = Event.__table__.alias("handed_since")
    return sa.exists().where(handed.c.ticket_id == ticket_id, handed.c.action.in_(HAND_OVER_ACTIONS),
                             handed.c.at >= at)


def owner_at(at, case=None):
    """`office_at` of `case` (a ticket table or alias; default `Ticket`'s) at `at`."""
    columns = (case if case is not None else Ticket.__table__).c
    return office_at(columns.id, columns.office_id, at)


def between(column, start, end):
    return sa.and_(column >= start, column < end)


def _flag(condition):
    return sa.func.sum(sa.case((condition, 1), else_=0))


def joined_at(ticket_id, end):
    """Condition: the case was merged into another (并单) at the instant `end`: its last merge or split before then is a
    merge (a history condition, so a past month's figures stay what they were whatever happens later)."""
    merge, split = Event.__table__.alias("joined_merge"), Event.__table__.alias("joined_split")
    return (sa.select(merge.c.id).where(
        merge.c.ticket_id == ticket_id, merge.c.action == MERGE, merge.c.at < end,
        ~sa.select(split.c.id).where(split.c.ticket_id == ticket_id, split.c.action == SPLIT, split.c.at < end,
                                     split.c.at >= merge.c.at).correlate_except(split).exists())
            .correlate_except(merge).exists())


def accepting(events):
    """Condition on events: the one event that accepted a case: its `accept`, or a hand-over to another window out of
    `submitted` (a window refers a case it has not accepted up, `refer_up`, and the case is `accepted` at the window
    above, with no `accept` event): the receiving window's acceptance. A case leaves `submitted` once, so it has at
    most one such event."""
    return sa.or_(events.action == "accept",
                  sa.and_(events.action.in_(HAND_OVER_ACTIONS), events.from_status == "submitted"))


def accepted_in(events, start, end):
    """Condition on events (`Event` or its table's columns): the acceptance of a case of the month's cohort (受理数,
    `formulas` "accepted"): an accepting event (`accepting`) in the month, of a case not merged (并单) into another by
    the month's end (`joined_at`). The one reading of the cohort, for its figures (`cohort`) and its lists
    (`lists.recurring`)."""
    return sa.and_(accepting(events), between(events.at, start, end), ~joined_at(events.ticket_id, end))


def surveyed_case():
    """The case a survey's rating counts for: the case itself, or the case it was merged into (并单: the joined
    citizen rates the answer of that case, for the department that handled it). A case with a survey of its own
    after a merge stays merged (a split is refused once the case it joined is closed), so the column is history."""
    return sa.func.coalesce(Ticket.merged_into_id, Ticket.id)


def leaves_closed(events):
    """Events (`Event` or its table's columns) after which a case is closed: a closing action, or an upheld appeal
    that lifted the rectification a 差评 had reopened (no new answer, so not a closing of its own in 本月办结数)."""
    return sa.or_(events.action.in_(CLOSING_ACTIONS),
                  sa.and_(events.action.in_(LIFTING_ACTIONS), events.to_status == "closed"))


def answers_bad_rating(events):
    """Events that answer a 差评: rework approved, an explanation, or the rectification lifted by an upheld appeal."""
    return sa.or_(events.action.in_(RECLOSING_ACTIONS),
                  sa.and_(events.action.in_(LIFTING_ACTIONS), events.to_status == "closed"))


def step_level():
    """The supervision level an escalation or reminder event stands for (a reminder is level 1)."""
    return sa.case((Event.action == "remind", 1), else_=Event.data["level"].as_integer())


# --- the queries (each returns rows grouped by department) ------------------------------------------

def _latest(column, *where):
    """Per case, the latest `column` among the rows matching `where` (a subquery: ticket_id, at)."""
    table = column.table
    return (sa.select(table.c.ticket_id.label("ticket_id"), sa.func.max(column).label("at"))
            .where(*where).group_by(table.c.ticket_id).subquery())


def cohort(start, end, scope: Scope, *, departments: bool = True):
    """The month's cohort, one row per case: whether it was closed at the month's end, and its department then.

    Set-based rather than one lookup per case: a case accepted in the month can only have been
    transferred, closed or rated badly after its acceptance, so every row that decides these lies in
    the month as well. Closed at the end means its last closing event (or upheld appeal that lifted the
    rectification, `leaves_closed`) comes after its last bad rating (a bad rating is the only way out of
    `closed`); its department is the one leading it at the month's end (`department_at`, set-based here): that of
    its last handling deadline started in the month, unless the department returned the case by then (the window
    leads it: none). Only the cases `scope` holds at the month's end, with their owning office then (`owner_at`) and
    how they came in (`channel`).
    """
    event, deadline = Event.__table__, Deadline.__table__
    accepted = (sa.select(event.c.ticket_id, owner_at(end).label("office_id"), Ticket.channel)
                .select_from(event).join(Ticket, Ticket.id == event.c.ticket_id)
                .where(accepted_in(event.c, start, end), scope.owned(at=end)).subquery())
    closed = _latest(event.c.at, leaves_closed(event.c), between(event.c.at, start, end))
    reopened = _latest(event.c.at, event.c.action.in_(RATING_ACTIONS), event.c.to_status == "rectifying",
                       between(event.c.at, start, end))
    closed_flag = sa.case((sa.and_(closed.c.at.is_not(None),
                                   sa.or_(reopened.c.at.is_(None), reopened.c.at < closed.c.at)), 1), else_=0)
    columns = [accepted.c.ticket_id, accepted.c.office_id, accepted.c.channel, closed_flag.label("closed")]
    query = (sa.select().select_from(accepted)
             .outerjoin(closed, closed.c.ticket_id == accepted.c.ticket_id)
             .outerjoin(reopened, reopened.c.ticket_id == accepted.c.ticket_id))
    if departments:
        in_month = (deadline.c.kind == "handle", between(deadline.c.started_at, start, end))
        sent = _latest(deadline.c.started_at, *in_month)
        lead = deadline.alias("lead")
        query = query.outerjoin(sent, sent.c.ticket_id == accepted.c.ticket_id).outerjoin(
            lead, sa.and_(lead.c.ticket_id == sent.c.ticket_id, lead.c.kind == "handle", lead.c.started_at == sent.c.at,
                          between(lead.c.started_at, start, end)))
        returned = sa.and_(lead.c.outcome == "returned", lead.c.ended_at < end)
        columns.append(sa.case((returned, sa.null()), else_=lead.c.department_id).label("department_id"))
    return query.add_columns(*columns).subquery()


def cohort_rows(session, start, end, scope):
    """Per department, owning office and channel: accepted in the month, and of those closed at the month's end."""
    rows = cohort(start, end, scope)
    return session.execute(
        sa.select(rows.c.department_id, rows.c.office_id, rows.c.channel, sa.func.count(), sa.func.sum(rows.c.closed))
        .group_by(rows.c.department_id, rows.c.office_id, rows.c.channel)
    ).all()


def closed_rows(session, start, end, scope, tz, dialect):
    """Per department and owning office, on-time flag and (filing day, closing day): the cases closed in the month.

    The department is the one leading the case at its last closing of the month (`department_at`): the department
    whose reply was approved or whose case was explained, none when the window settled the case itself (a `resolve`,
    also after a department returned the case). Not the ticket's `department_id`, which a return and a hand-over to
    another window leave set. The office is the owning one at the month's end (`owner_at`).
    """
    closes = (
        sa.select(Event.ticket_id.label("ticket_id"), sa.func.max(Event.at).label("closed_at"))
        .where(Event.action.in_(CLOSING_ACTIONS), between(Event.at, start, end))
        .group_by(Event.ticket_id)
        .subquery()
    )
    missed = (
        sa.select(Deadline.id)
        .where(Deadline.ticket_id == closes.c.ticket_id, Deadline.kind.in_(ON_TIME_DEADLINES),
               Deadline.started_at < closes.c.closed_at,
               sa.func.coalesce(Deadline.ended_at, closes.c.closed_at) > Deadline.due_at)
        .exists()
    )
    rows = sa.select(
        department_at(closes.c.ticket_id, closes.c.closed_at, through=True).label("department_id"),
        owner_at(end).label("office_id"),
        sa.case((missed, 0), else_=1).label("on_time"),
        local_date(Ticket.created_at, tz, dialect).label("from_day"),
        local_date(closes.c.closed_at, tz, dialect).label("to_day"),
    ).select_from(closes).join(Ticket, Ticket.id == closes.c.ticket_id).where(
        scope.owned(at=end)).subquery()
    keys = (rows.c.department_id, rows.c.office_id, rows.c.on_time, rows.c.from_day, rows.c.to_day)
    return session.execute(sa.select(*keys, sa.func.count()).group_by(*keys)).all()


def grouped(session, query, keys=("department_id", "office_id"), *sums):
    """`query`'s rows counted by its columns named `keys`, with the sums of those named `sums`. The query's
    `office_id` is the owner at the month's end (`owner_at`), a lookup per row: made once per row, inside, and
    grouped on outside, where it is a plain column (the same name in the query's own GROUP BY would be read as the
    ticket's column)."""
    rows = query.subquery()
    by = [rows.c[key] for key in keys]
    return session.execute(
        sa.select(*by, sa.func.count(), *(sa.func.sum(rows.c[key]) for key in sums)).group_by(*by)).all()


def deadline_rows(session, start, end, scope):
    """Per department and owning office: cases overdue in the month, handling deadlines ended by the department
    returning the case (退回次数: one per `return`, counted against the department that returned it), approved
    extensions. The office: the owning one at the month's end (`owner_at`)."""
    by = (Deadline.department_id.label("department_id"), owner_at(end).label("office_id"))
    owned = (Ticket, sa.and_(Ticket.id == Deadline.ticket_id, scope.owned(at=end)))
    overdue = grouped(session, (
        sa.select(*by, Deadline.ticket_id).select_from(Deadline).join(*owned)
        .where(Deadline.kind.in_(DEPARTMENT_DEADLINES), between(Deadline.due_at, start, end),
               sa.or_(Deadline.ended_at.is_(None), Deadline.ended_at > Deadline.due_at))
        .distinct()  # a case once per department
    ))
    returned = grouped(session, (
        sa.select(*by).select_from(Deadline).join(*owned)
        .where(Deadline.kind == "handle", Deadline.outcome == "returned", between(Deadline.ended_at, start, end))
    ))
    extended = grouped(session, (
        sa.select(*by)
        .select_from(ExtensionRequest).join(Deadline, Deadline.id == ExtensionRequest.deadline_id).join(*owned)
        .where(ExtensionRequest.approved.is_(True), between(ExtensionRequest.decided_at, start, end))
    ))
    return overdue, returned, extended


def withdrawn_rows(session, start, end, scope):
    """Per owning office (no department: the office never accepted them): cases the citizen withdrew in the month."""
    return grouped(session, (
        sa.select(sa.null().label("department_id"), owner_at(end).label("office_id"), Event.ticket_id)
        .select_from(Event).join(Ticket, sa.and_(Ticket.id == Event.ticket_id, scope.owned(at=end)))
        .where(Event.action == WITHDRAW, between(Event.at, start, end))
        .distinct()  # a case once
    ))


def merged_rows(session, start, end, scope):
    """Per department and owning office of the case joined: reports merged into a case in the month (并单) and still
    joined at its end. They add to 诉求人次 (people), not to the cases (problems) counted once by the case they joined."""
    into = Event.data["into_id"].as_integer()
    target = Ticket.__table__.alias("joined_target")
    latest = (sa.select(Event.ticket_id.label("ticket_id"), sa.func.max(Event.id).label("id"))
              .where(Event.action == MERGE, between(Event.at, start, end), joined_at(Event.ticket_id, end))
              .group_by(Event.ticket_id).subquery())
    owner = owner_at(end, target)
    owned = scope.holds(owner)
    rows = (sa.select(department_at(target.c.id, end).label("department_id"), owner.label("office_id"))
            .select_from(latest).join(Event, Event.id == latest.c.id).join(target, target.c.id == into)
            .where(owned).subquery())
    return session.execute(sa.select(rows.c.department_id, rows.c.office_id, sa.func.count())
                           .group_by(rows.c.department_id, rows.c.office_id)).all()


def contact_rows(session, start, end, scope):
    """Per department (the one asked to make the contact) and owning office: first-contact deadlines decided in the
    month (met in it, or falling due in it while still running), and of those the ones met. Met means contacted by
    the due time, so the two sets never overlap: a deadline counts once, in the month it was decided."""
    met = sa.and_(Deadline.outcome == "met", between(Deadline.ended_at, start, end))
    fell_due = sa.and_(between(Deadline.due_at, start, end),
                       sa.or_(Deadline.ended_at.is_(None), Deadline.ended_at > Deadline.due_at))
    return grouped(session, (
        sa.select(Deadline.department_id.label("department_id"), owner_at(end).label("office_id"),
                  sa.case((met, 1), else_=0).label("met"))
        .select_from(Deadline).join(Ticket, Ticket.id == Deadline.ticket_id)
        .where(Deadline.kind == CONTACT_DEADLINE, sa.or_(met, fell_due), scope.owned(at=end))
    ), ("department_id", "office_id"), "met")


def supervision_rows(session, start, end, scope):
    """Per department, owning office and level: cases escalated (or reminded, level 1) in the month."""
    level = step_level()
    steps = sa.select(
        Event.ticket_id.label("ticket_id"), level.label("level"), owner_at(end).label("office_id"),
        department_at(Event.ticket_id, Event.at).label("department_id"),
    ).select_from(Event).join(Ticket, Ticket.id == Event.ticket_id).where(
        Event.action.in_(SUPERVISION_ACTIONS), between(Event.at, start, end), scope.owned(at=end),
    ).subquery()
    return session.execute(
        sa.select(steps.c.department_id, steps.c.office_id, steps.c.level, sa.func.count(sa.distinct(steps.c.ticket_id)))
        .group_by(steps.c.department_id, steps.c.office_id, steps.c.level)
    ).all()


def rectified_by(end, case=None):
    """Condition on `Survey`: its 差评 was answered (rework approved, or explained) before `end`: a closing event
    that answers a bad rating after the rating, on the case the rating counts for (`case`, by default the survey's
    own; `surveyed_case()` for a merged case's). With `visited_by`, what 差评整改率 and 实名差评回访率 count, and the
    export's `rectification_status` reads."""
    return (
        sa.select(Event.id)
        .where(Event.ticket_id == (Survey.ticket_id if case is None else case), answers_bad_rating(Event),
               Event.at > Survey.rated_at, Event.at < end)
        .exists()
    )


def visited_by(end):
    """Condition on `Survey`: a return visit for this round was recorded before `end`."""
    return sa.select(ReturnVisit.id).where(ReturnVisit.survey_id == Survey.id, ReturnVisit.visited_at < end).exists()


def upheld_by(end):
    """Condition on `Survey`: an appeal against this round's 差评 was upheld (申诉复核) before `end`."""
    return (sa.select(Appeal.id).where(Appeal.survey_id == Survey.id, Appeal.upheld.is_(True), Appeal.decided_at < end)
            .exists())


SURVEY_COUNTS = ("surveys", "rated", "defaulted", "satisfied", "good", "bad", "bad_rectified", "bad_visited",
                 "bad_upheld", "bad_upheld_rectified", "bad_upheld_visited")


def survey_rows(session, start, end, scope, as_of=None):
    """Per department and owning office: surveys closed in the month, their real answers and default ratings, bad
    ratings answered and visited by the end; and of the bad ratings, those whose appeal was upheld before `as_of`
    (when the report is made; default: the end), answered and visited by the end (the columns of SURVEY_COUNTS
    after the first).

    A default rating (`Survey.defaulted`) is counted apart: `rated`, `satisfied`, `good` and `bad` are real answers
    only (`Survey.answered`)."""
    bad = sa.and_(Survey.answered, Survey.bad_rating)
    case = Ticket.__table__.alias("rated_case")  # the case the rating counts for: a merged case's, the one it joined
    rectified, visited = rectified_by(end, case.c.id), visited_by(end)
    set_aside = sa.and_(bad, upheld_by(max(end, as_of or end)))
    # A survey opens when a case closes: the department rated is the one leading the case at that closing
    # (`department_at`: none when the window settled it itself, also after a department returned it), not the
    # ticket's `department_id`, which a return leaves set (a merged case's rating: the case it joined, at its
    # closing). The office: the owning one at the month's end.
    owner = owner_at(end, case)
    surveys = sa.select(
        department_at(case.c.id, Survey.opened_at, through=True).label("department_id"),
        owner.label("office_id"),
        sa.case((Survey.answered, 1), else_=0).label("rated"),
        sa.case((Survey.defaulted, 1), else_=0).label("defaulted"),
        sa.case((sa.and_(Survey.answered, sa.not_(Survey.bad_rating)), 1), else_=0).label("satisfied"),
        sa.case((sa.and_(Survey.answered, Survey.score <= 2), 1), else_=0).label("good"),
        sa.case((bad, 1), else_=0).label("bad"),
        sa.case((sa.and_(bad, rectified), 1), else_=0).label("bad_rectified"),
        sa.case((sa.and_(bad, visited), 1), else_=0).label("bad_visited"),
        sa.case((set_aside, 1), else_=0).label("bad_upheld"),
        sa.case((sa.and_(set_aside, rectified), 1), else_=0).label("bad_upheld_rectified"),
        sa.case((sa.and_(set_aside, visited), 1), else_=0).label("bad_upheld_visited"),
    ).join(Ticket, Ticket.id == Survey.ticket_id).join(case, case.c.id == surveyed_case()).where(
        between(Survey.closes_at, start, end), scope.holds(owner)).subquery()
    c = surveys.c
    return session.execute(
        sa.select(c.department_id, c.office_id, sa.func.count(),
                  *(sa.func.sum(getattr(c, key)) for key in SURVEY_COUNTS[1:]))
        .group_by(c.department_id, c.office_id)
    ).all()




def appeal_rows(session, start, end, scope):
    """Per department (the one that appealed) and owning office: appeals filed in the month; appeals decided in the
    month, upheld or rejected."""
    by = (Appeal.department_id.label("department_id"), owner_at(end).label("office_id"))
    owned = (Ticket, sa.and_(Ticket.id == Appeal.ticket_id, scope.owned(at=end)))
    filed = grouped(session, sa.select(*by).select_from(Appeal).join(*owned)
                    .where(between(Appeal.filed_at, start, end)))
    decided = grouped(session, sa.select(*by, Appeal.upheld.label("upheld")).select_from(Appeal).join(*owned)
                      .where(between(Appeal.decided_at, start, end)), ("department_id", "office_id", "upheld"))
    return filed, decided


# --- putting the figures together -------------------------------------------------------------------

APPEAL_COUNTS = ("appeals", "appeals_upheld", "appeals_rejected")
COUNTS = ("accepted", *CHANNEL_COUNTS, "closed", "closed_in_month", "closed_on_time", "handling_days", "overdue",
          "returned", "extended", "supervised_1", "supervised_2", "supervised_3", *SURVEY_COUNTS, "contacts_due",
          "contacted_on_time", *APPEAL_COUNTS, "withdrawn", "merged")
# What a rating whose appeal was upheld takes out of its department's counts (`department_view`).
SET_ASIDE = (("bad", "bad_upheld"), ("bad_rectified", "bad_upheld_rectified"), ("bad_visited", "bad_upheld_visited"))


def empty_counts() -> dict:
    return dict.fromkeys(COUNTS, 0)


NOT_WORK = (*APPEAL_COUNTS, "withdrawn")  # counted in a month without making it one a unit had cases in


def had_cases(row: dict) -> bool:
    """Whether a department's figures count a case in the month (only those departments are ranked): an appeal
    decided in a month without cases does not rank a department."""
    return any(row.get(key) for key in COUNTS if key not in NOT_WORK)


def department_view(counts: dict) -> dict:
    """A department's own counts: the 差评 whose appeal was upheld by the time the report is made are not its 差评 (nor among
    those rectified or visited). `bad_upheld` stays, so the 满意率 is taken over the answers less those ratings."""
    own = dict(counts)
    for key, upheld in SET_ASIDE:
        own[key] = counts[key] - counts[upheld]
    return own


def with_rates(counts: dict, *, department: bool = False) -> dict:
    """Rates from counts (the formulas of `formulas.FORMULAS`); the raw counts stay alongside. A department's row
    (`department`) leaves out the ratings whose appeal was upheld (`department_view`); office-wide figures keep them."""
    if department:
        counts = department_view(counts)
    figures = {key: value for key, value in counts.items() if key != "handling_days"}
    figures["people"] = counts["accepted"] + counts["merged"]  # 诉求人次: the problems' reports, merged ones too
    figures["closure_rate"] = ratio(counts["closed"], counts["accepted"])
    figures["on_time_rate"] = ratio(counts["closed_on_time"], counts["closed_in_month"])
    figures["avg_handling_days"] = (round(counts["handling_days"] / counts["closed_in_month"], 1)
                                    if counts["closed_in_month"] else None)
    figures["participation_rate"] = ratio(counts["rated"], counts["surveys"])
    set_aside = counts["bad_upheld"] if department else 0
    figures["satisfaction_rate"] = ratio(counts["satisfied"], counts["rated"] - set_aside)
    figures["satisfaction_rate_with_default"] = ratio(counts["satisfied"] + counts["defaulted"],
                                                      counts["rated"] - set_aside + counts["defaulted"])
    figures["good_rate"] = ratio(counts["good"], counts["rated"])
    figures["bad_rectified_rate"] = ratio(counts["bad_rectified"], counts["bad"])
    figures["return_visit_rate"] = ratio(counts["bad_visited"], counts["bad"])
    figures["contact_rate"] = ratio(counts["contacted_on_time"], counts["contacts_due"])
    return figures


class WorkingDays:
    """Working days between two local days, one calendar walk per distinct pair."""

    def __init__(self, calendar: WorkCalendar, tz: ZoneInfo):
        self.calendar, self.tz = calendar, tz
        self.between = lru_cache(maxsize=None)(self._between)

    def _between(self, first: date, last: date) -> int:
        noon = time(12)
        return working_days_between(self.calendar, datetime.combine(first, noon, self.tz),
                                    datetime.combine(last, noon, self.tz), self.tz)


def _day(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def department_counts(session, month: Month, tz: ZoneInfo, working_days: WorkingDays, scope: Scope,
                      as_of: datetime | None = None) -> dict:
    """{(department id or None, owning office id): counts} for the month, over the cases `scope` holds. `as_of`: when
    the report is made; the 差评 whose appeal was upheld by then are set aside (default: by the month's end)."""
    start, end = month.bounds(tz)
    dialect = session.get_bind().dialect.name
    groups: dict = {}

    def add(department_id, owner, key, value):
        groups.setdefault((department_id, owner), empty_counts())[key] += int(value or 0)

    for department_id, owner, channel, accepted, closed in cohort_rows(session, start, end, scope):
        add(department_id, owner, "accepted", accepted)
        add(department_id, owner, "closed", closed)
        if channel in CHANNEL_KEY:
            add(department_id, owner, CHANNEL_KEY[channel], accepted)
    for department_id, owner, on_time, from_day, to_day, count in closed_rows(session, start, end, scope, tz,
                                                                               dialect):
        add(department_id, owner, "closed_in_month", count)
        add(department_id, owner, "closed_on_time", count if on_time else 0)
        if from_day is not None:
            add(department_id, owner, "handling_days", count * working_days.between(_day(from_day), _day(to_day)))
    overdue, returned, extended = deadline_rows(session, start, end, scope)
    for key, rows in (("overdue", overdue), ("returned", returned), ("extended", extended)):
        for department_id, owner, count in rows:
            add(department_id, owner, key, count)
    for department_id, owner, due, on_time in contact_rows(session, start, end, scope):
        add(department_id, owner, "contacts_due", due)
        add(department_id, owner, "contacted_on_time", on_time)
    for department_id, owner, level, count in supervision_rows(session, start, end, scope):
        if level in LEVELS:
            add(department_id, owner, f"supervised_{level}", count)
    for department_id, owner, *values in survey_rows(session, start, end, scope, as_of):
        for key, value in zip(SURVEY_COUNTS, values):
            add(department_id, owner, key, value)
    filed, decided = appeal_rows(session, start, end, scope)
    for department_id, owner, count in filed:
        add(department_id, owner, "appeals", count)
    for department_id, owner, count in withdrawn_rows(session, start, end, scope):
        add(department_id, owner, "withdrawn", count)
    for department_id, owner, count in merged_rows(session, start, end, scope):
        add(department_id, owner, "merged", count)
    for department_id, owner, upheld, count in decided:
        add(department_id, owner, "appeals_upheld" if upheld else "appeals_rejected", count)
    return groups


def summed(groups: dict, key) -> dict:
    """The groups' counts summed by `key(department id, owning office id)`: {key: counts}."""
    sums: dict = {}
    for (department_id, owner), counts in groups.items():
        total = sums.setdefault(key(department_id, owner), empty_counts())
        for name in COUNTS:
            total[name] += counts[name]
    return sums


def office_total(groups: dict) -> dict:
    total = empty_counts()
    for counts in groups.values():
        for key in COUNTS:
            total[key] += counts[key]
    return total


def trend_point(session, month: Month, tz: ZoneInfo, scope: Scope) -> dict:
    """Closure and satisfaction rates of one month (what the trend chart draws).

    The same definitions as `cohort_rows` and `survey_rows`, office-wide only, so without the
    department lookups those need.
    """
    start, end = month.bounds(tz)
    rows = cohort(start, end, scope, departments=False)
    case = Ticket.__table__.alias("rated_case")
    accepted, closed = session.execute(sa.select(sa.func.count(), sa.func.sum(rows.c.closed))).one()
    rated, satisfied = session.execute(
        sa.select(sa.func.count(), _flag(sa.not_(Survey.bad_rating)))
        .join(Ticket, Ticket.id == Survey.ticket_id).join(case, case.c.id == surveyed_case())
        .where(between(Survey.closes_at, start, end), Survey.answered, scope.holds_at(end, case))
    ).one()
    return {"month": str(month), "closure_rate": ratio(int(closed or 0), accepted),
            "satisfaction_rate": ratio(int(satisfied or 0), rated)}


def trend(session, month: Month, tz: ZoneInfo, office: dict, scope: Scope, months: int = TREND_MONTHS) -> list[dict]:
    """The last `months` months' rates, ending with `month` (whose figures are already in `office`).

    An earlier month whose report of this office is kept with the same formula version takes its rates from there
    (the same queries made them); only the others are computed.
    """
    earlier = [month.shift(-back) for back in range(months - 1, 0, -1)]
    kept = dict(session.execute(
        sa.select(Report.month, Report.figures["office"])
        .where(Report.office_id == scope.office_id, Report.month.in_([str(m) for m in earlier]),
               Report.formula_version == FORMULA_VERSION)
    ).all())
    points = []
    for m in earlier:
        stored = kept.get(str(m))
        points.append({"month": str(m), "closure_rate": stored["closure_rate"],
                       "satisfaction_rate": stored["satisfaction_rate"]} if stored else trend_point(session, m, tz, scope))
    return points + [{"month": str(month), "closure_rate": office["closure_rate"],
                      "satisfaction_rate": office["satisfaction_rate"]}]
