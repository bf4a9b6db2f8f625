"""The console's bell (通知): what concerns a member of staff, written when it happens, read once they mark it.

One receiver (`react`, registered on every kind of event but the silent ones) writes `Notice` rows in the
transaction of the event it reports, naming the event as its cause:

- `changed`: someone else changed a case the user works (its owner on the window's side, its handler in the
  department: `Ticket.owner_id`, `Ticket.handler_id`), by a staff action, a step of the deadline ladder or the
  citizen withdrawing it; `rated` when the citizen rated it (or the office recorded a rating by phone);
  `citizen_added` when the citizen added information;
- `assigned` to whom an `assign` (我来办, or a supervisor's reassignment) gave the case, `taken_over` to whom it was
  taken from; nobody else (who works the other side is not told that a colleague took the case);
- `instruction` (批示) to the owner, the handler and every active handler of the lead department;
- `appeal` to the supervisors of the owning window, who decide it.

Never to the one who acted, never two for one user and one action (an action that records two events, 受理并转办,
tells each user once), never to an inactive account, and never about a case the user may not see
(`access.visibility`, the rule every list applies: a handler of another department, or of the department a case was
transferred away from, hears nothing more of it). The lists apply the same rule when read, so a notice about a case
the user no longer sees is neither counted nor shown.

Beside the stored notices the bell shows a computed section, never stored: the user's open cases (owner or handler)
whose deadline falls today, local time (`due_today`).
"""
from __future__ import annotations

import functools
import weakref
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from . import clock, validation
from .access import visibility
from .clock import iso
from .db import new_row
from .labels import label
from .lists import worked_by
from .models import Event, Notice, Role, Ticket, User
from .presenters import list_items
from .workflow import KINDS, RECOVER_CODE, SUPPLEMENT, Actor, label_of, reactions
from .workflow.survey import RATE_DEFAULT

CHANGED, RATED, CITIZEN_ADDED = "changed", "rated", "citizen_added"
ASSIGNED, TAKEN_OVER = "assigned", "taken_over"
INSTRUCTION, APPEAL = "instruction", "appeal"

KIND_LABELS = {
    CHANGED: _l("Your case changed"),
    RATED: _l("Rated by the citizen"),
    CITIZEN_ADDED: _l("The citizen added information"),
    ASSIGNED: _l("Assigned to you"),
    TAKEN_OVER: _l("Given to someone else"),
    INSTRUCTION: _l("Leader's instruction"),
    APPEAL: _l("Appeal to decide"),
}

# Events nobody is told of: a filing (nobody works the case yet, and nothing of it is written when the reactions
# run), a new query code (nothing changed) and a default rating (nothing moves: 基本满意 by silence).
SILENT = frozenset({"file", RECOVER_CODE, RATE_DEFAULT})

BELL_CAP = 99        # the badge counts up to this, then says 99+ (a count that stays cheap however many pile up)
UNREAD_LIMIT = 200   # unread notices a list shows (the count says how many there are)
READ_LIMIT = 50      # read notices a list shows after the unread ones
MARK_MAX = 500       # ids one request may mark read
_WRITTEN = "banjie.notices"  # session.info: the notices of each open transaction, so one action tells a user once


def register(app) -> None:
    """Write the bell's notices for every event someone else should hear of (the ticket room's `init_app`)."""
    reactions(app).on(*(kind for kind in KINDS if kind not in SILENT), react)


# --- writing ------------------------------------------------------------------------------------------------

def react(event, *, session, ticket, **_context) -> None:
    """The reaction: a Notice for each user `recipients` names, in the event's transaction (never committed here)."""
    if event.action in SILENT:
        return
    wanted = recipients(session, event, ticket)
    if not wanted:
        return
    if event.id is None:
        session.flush()  # the event's id, which the notices name
    written = _written_in_this_transaction(session)
    for user_id, kind in wanted.items():
        earlier = written.get((user_id, ticket.id))
        if earlier is not None and earlier in session:  # (not when a savepoint that wrote it was rolled back)
            # One action, one notice per user (受理并转办 records two events): the notice names the latest event.
            earlier.event_id = event.id
            earlier.kind = kind if earlier.kind == CHANGED else earlier.kind
            continue
        notice = written[(user_id, ticket.id)] = new_row(Notice, user_id=user_id, ticket_id=ticket.id,
                                                          event_id=event.id, kind=kind, created_at=event.at)
        session.add(notice)


def _written_in_this_transaction(session) -> dict:
    """{(user id, ticket id): Notice} written in the session's current transaction (forgotten with it)."""
    per_transaction = session.info.setdefault(_WRITTEN, weakref.WeakKeyDictionary())
    return per_transaction.setdefault(session.get_transaction(), {})


def recipients(session, event, ticket: Ticket) -> dict[int, str]:
    """{user id: kind of notice} for this event: who should hear of it, each once (the first reason wins)."""
    wanted: dict[int, str] = {}

    def tell(user_id, kind):
        if user_id is not None and user_id != event.actor_id:
            wanted.setdefault(user_id, kind)

    data = event.data or {}
    if event.action == "assign":  # who works which side is news to those two only (not a change of the case)
        tell(data.get("user_id"), ASSIGNED)
        tell(data.get("previous_user_id"), TAKEN_OVER)
        return _visible_only(session, ticket, wanted)
    if event.action == "instruct":
        for user_id in (ticket.owner_id, ticket.handler_id, *_handlers(session, ticket.department_id)):
            tell(user_id, INSTRUCTION)
    elif event.action == "appeal":
        for user_id in _supervisors(session, ticket.office_id):
            tell(user_id, APPEAL)
    kind = KINDS.get(event.action)
    change = (CITIZEN_ADDED if event.action == SUPPLEMENT else
              RATED if kind is not None and kind.rates_survey else CHANGED)
    tell(ticket.owner_id, change)
    tell(ticket.handler_id, change)
    return _visible_only(session, ticket, wanted)


def _visible_only(session, ticket: Ticket, wanted: dict[int, str]) -> dict[int, str]:
    if not wanted:
        return wanted
    allowed = _who_may_see(session, ticket, wanted)
    return {user_id: kind for user_id, kind in wanted.items() if user_id in allowed}


def _handlers(session, department_id) -> list[int]:
    if department_id is None:
        return []
    return list(session.scalars(sa.select(User.id).where(
        User.role == Role.department.value, User.department_id == department_id, User.active.is_(True))))


def _supervisors(session, office_id) -> list[int]:
    return list(session.scalars(sa.select(User.id).where(
        User.role == Role.supervisor.value, User.office_id == office_id, User.active.is_(True))))


def _who_may_see(session, ticket: Ticket, user_ids) -> set[int]:
    """The active users among these who may see the case now: one query for the users, one per kind of reach (the
    handlers of one department share theirs)."""
    users = session.execute(sa.select(User.id, User.role, User.department_id, User.office_id)
                            .where(User.id.in_(list(user_ids)), User.active.is_(True))).all()
    reach: dict[tuple, list[int]] = {}
    for user_id, role, department_id, office_id in users:
        reach.setdefault((role, department_id, office_id), []).append(user_id)
    allowed: set[int] = set()
    for (role, department_id, office_id), ids in reach.items():
        actor = Actor(None, Role(role), department_id, office_id=office_id)
        if session.scalar(sa.select(Ticket.id).where(Ticket.id == ticket.id, visibility(actor))) is not None:
            allowed.update(ids)
    return allowed


# --- reading ------------------------------------------------------------------------------------------------

def _unread(reach: Actor, user_id, kept: bool = False):
    """SELECT of the ids of the user's unread notices about cases this reach may see (`user_id`: a value, or the
    bell's bind parameter)."""
    return (sa.select(Notice.id).join(Ticket, Ticket.id == Notice.ticket_id)
            .where(Notice.user_id == user_id, Notice.read_at.is_(None), visibility(reach, kept=kept)))


def _due_today(reach: Actor, user_id, start, end, kept: bool = False):
    """WHERE clause: the open cases the user works (owner or handler) due within [start, end), today's local bounds
    (`clock.day_bounds`), that this reach may see."""
    return sa.and_(worked_by(user_id), Ticket.due_at >= start, Ticket.due_at < end, visibility(reach, kept=kept))


def bell(session, actor: Actor, now: datetime) -> dict:
    """The bell of every console page, in one query: unread notices (counted up to BELL_CAP + 1) and cases due
    today, with the label a screen reader reads."""
    start, end = clock.day_bounds(now)
    unread, due = session.execute(_bell_statement(actor.role, actor.department_id, actor.office_id),
                                  {"user_id": actor.user_id, "start": start, "end": end}).one()
    more = unread > BELL_CAP
    if more:
        text = _("Notices, more than %(n)d unread", n=BELL_CAP)
    else:
        text = _("Notices, %(n)d unread", n=unread)
    if due:
        text = _("%(notices)s, %(due)d due today", notices=text, due=due)
    return {"unread": min(unread, BELL_CAP), "more": more, "badge": f"{BELL_CAP}+" if more else str(unread),
            "due_today": due, "label": text}


@functools.lru_cache(maxsize=1024)
def _bell_statement(role, department_id, office_id) -> sa.Select:
    """The bell's statement for one reach (role, department, window), built once: it runs on every console page,
    where building it cost several times what SQLite takes to answer it. The user and the day are parameters."""
    reach = Actor(None, role, department_id, office_id=office_id)
    user_id, due_type = sa.bindparam("user_id", type_=sa.Integer), Ticket.__table__.c.due_at.type
    unread = _unread(reach, user_id, kept=True).limit(BELL_CAP + 1).subquery()
    due = _due_today(reach, user_id, sa.bindparam("start", type_=due_type), sa.bindparam("end", type_=due_type),
                     kept=True)
    return sa.select(sa.select(sa.func.count()).select_from(unread).scalar_subquery(),
                     sa.select(sa.func.count()).select_from(Ticket).where(due).scalar_subquery())


def unread_count(session, actor: Actor) -> int:
    """How many unread notices the actor has (exactly: the API's `unread`)."""
    return session.scalar(sa.select(sa.func.count()).select_from(_unread(actor, actor.user_id).subquery()))


def due_today(session, actor: Actor, now: datetime) -> list[Ticket]:
    """The open cases the actor works whose deadline falls today (local time), the earliest first."""
    where = _due_today(actor, actor.user_id, *clock.day_bounds(now))
    return list(session.scalars(sa.select(Ticket).where(where).order_by(Ticket.due_at, Ticket.id)))


def entries(session, actor: Actor) -> dict[str, list[dict]]:
    """The actor's notices as lists show them: `unread` (newest first, up to UNREAD_LIMIT) and `read` (the last
    READ_LIMIT); each {"id", "kind", "kind_label", "tracking_no", "event_label", "note" (an instruction's text),
    "at", "by", "read"} with `at` the moment of the event."""
    actor_user = aliased(User)
    base = (sa.select(Notice.id, Notice.kind, Notice.read_at, Ticket.tracking_no, Event.action, Event.note, Event.at,
                      Event.actor_role, actor_user.display_name, actor_user.username)
            .join(Ticket, Ticket.id == Notice.ticket_id)
            .join(Event, Event.id == Notice.event_id)
            .outerjoin(actor_user, actor_user.id == Event.actor_id)
            .where(Notice.user_id == actor.user_id, visibility(actor)))
    unread = session.execute(base.where(Notice.read_at.is_(None)).order_by(Notice.id.desc()).limit(UNREAD_LIMIT))
    read = session.execute(base.where(Notice.read_at.is_not(None)).order_by(Notice.id.desc()).limit(READ_LIMIT))
    return {"unread": [_entry(row) for row in unread], "read": [_entry(row) for row in read]}


def _entry(row) -> dict:
    who = row.display_name or row.username or (
        _("Citizen") if row.actor_role == "citizen" else _("System") if row.actor_role == "system" else "")
    entry = {"id": row.id, "kind": row.kind, "kind_label": label(KIND_LABELS, row.kind),
             "tracking_no": row.tracking_no, "event_label": label_of(row.action), "at": row.at, "by": who,
             "read": row.read_at is not None}
    if row.action == "instruct":
        entry["note"] = row.note
    return entry


def summary(session, actor: Actor, now: datetime) -> dict:
    """The bell as the API answers it: {"unread", "due_today" (the staff list's items), "items" (unread, newest
    first, then the last read ones)}."""
    listed = entries(session, actor)
    return {"unread": unread_count(session, actor),
            "due_today": list_items(session, due_today(session, actor, now), now),
            "items": [{**entry, "at": iso(entry["at"])} for entry in listed["unread"] + listed["read"]]}


# --- marking read -------------------------------------------------------------------------------------------

def mark_read(session, user_id: int, now: datetime, *, ids=None, every: bool = False, ticket_id=None) -> int:
    """Mark this user's unread notices read: those of `ids`, every one (`every`), or those of one case
    (`ticket_id`: the case page marks what it shows). Other users' notices are never touched: their ids are
    ignored. Writes only when there is something to mark; returns how many were marked."""
    where = [Notice.user_id == user_id, Notice.read_at.is_(None)]
    if ticket_id is not None:
        where.append(Notice.ticket_id == ticket_id)
    elif not every:
        if not ids:
            return 0
        where.append(Notice.id.in_(list(ids)))
    marked = session.scalar(sa.select(sa.func.count()).select_from(Notice).where(*where))
    if marked:
        session.execute(sa.update(Notice).where(*where).values(read_at=now)
                        .execution_options(synchronize_session=False))
    return marked


def parse_marking(payload: dict) -> dict:
    """A request to mark notices read: {"ids": [notice ids]} or {"all": true}; ValidationFailed (422) naming the
    field otherwise."""
    check = validation.Collector()
    ids = check.field("ids", validation.integer_list, payload.get("ids"), max_items=MARK_MAX)
    every = check.field("all", validation.boolean, payload.get("all"), required=False)
    if not check.errors:
        if every and payload.get("ids") is not None:
            check.fail("ids", _l("Give either the notices' ids or all, not both."))
        elif not every and payload.get("ids") is None:
            check.fail("ids", _l("Name the notices to mark read (ids), or send all: true."))
    check.raise_if_errors()
    return {"ids": ids or [], "all": bool(every)}
