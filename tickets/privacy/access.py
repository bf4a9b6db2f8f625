"""The access log: each showing of a full number or name, each export with them, each anonymisation and rotation.

`record` is the one way to write a line; it never commits (the caller's transaction carries it with what it
records, so a showing that failed leaves no line and a line is never lost from a showing that happened). A run over
many cases in committed batches also writes, before its first batch, a line saying it began (`record_run_start`).

Who sees a citizen's whole number is `tickets.access.sees_full_phone` (the office and the lead department, as
before); here is when and how it is shown:

- `is_handler`: the one definition of the case's handler, who sees the number without giving a reason;
- `reason_given` / `clean_reason`: anyone else allowed gives a short reason once per case and console session
  (the log itself remembers it: a line of that user, case and sign-in with a reason);
- `show_phone`: the line for one showing (console or API); `record_export`: the line for an export with whole
  numbers (its row count and filters, never a number or a search term);
- `Search` / `search`: the administrators' search of the log (管理 → 访问日志).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Optional

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from .. import clock
from ..access import sees_full_phone
from ..errors import ValidationFailed
from ..models import OFFICE_ROLES, AccessKind, AccessLog, Role, Ticket, User
from ..personal import is_token, mask_text, mask_value
from ..validation import FIRST_YEAR, LAST_YEAR, UNSTORABLE, storable

REASON_MIN, REASON_MAX = 2, 200
REASON_FIELD = "reason"
REASON_REQUIRED = _l("Please say why you need the whole number (for example: to call the citizen back).")
REASON_LENGTH = _l("The reason must be 2 to 200 characters long.")
# How far back a console session's earlier reasons for one case are looked for (lines of that user and case).
REASON_LOOKBACK = 50


def _user_id(user) -> Optional[int]:
    """The id of a User, or of an Actor (`user_id`), or None."""
    value = getattr(user, "user_id", None)
    return value if value is not None else getattr(user, "id", None)


def record(session, kind: AccessKind | str, *, user=None, actor: Optional[str] = None, ticket_id: Optional[int] = None,
           reason: Optional[str] = None, count: Optional[int] = None, detail: Optional[dict] = None,
           at=None) -> AccessLog:
    """Add one line to the access log in `session` (not committed). `user` is a User or an Actor (or None with
    `actor`); `at` defaults to the app's clock (the same clock as the sign-ins and the cases). The log holds no
    number: one typed into a reason ("回拨13912345678核实") or carried in `detail` (a list's filter) is masked here, for
    every kind of line, as anonymisation masks a case's texts (`personal.mask_text`)."""
    kind = AccessKind(kind)
    line = AccessLog(kind=kind.value, user_id=_user_id(user), actor=actor, ticket_id=ticket_id,
                     reason=(reason or None) and mask_text(reason.strip())[:REASON_MAX], count=count,
                     detail=mask_value(detail))
    line.at = at if at is not None else clock.now()
    session.add(line)
    return line


def record_run_start(session, kind: AccessKind | str, *, actor: str, detail: dict) -> None:
    """The first of the two lines of a run over many cases (`flask privacy anonymise`, `rotate-key`), committed on its
    own before the first batch (`detail` with `started`): a run killed outright (`kill -9`, the machine lost) still
    leaves a trace that it began. Its end line, written when it ends or is stopped, says how far it came
    (`finished`, what its committed batches changed)."""
    record(session, kind, actor=actor, detail={**detail, "started": True})
    session.commit()


# --- showing a whole number ------------------------------------------------------------------------------------

def is_handler(actor, ticket: Ticket) -> bool:
    """The case's handler: the lead department's handler who has it (`handler_id`, 我来办 or the assignment), or the
    window's member of staff who works it (`owner_id`: who accepted it or took it over). The one who calls the
    citizen back; everyone else allowed to see the whole number gives a reason first."""
    user_id = _user_id(actor)
    if user_id is None:
        return False
    if actor.role == Role.department:
        return ticket.department_id == actor.department_id and ticket.handler_id == user_id
    if actor.role in OFFICE_ROLES:
        return ticket.owner_id == user_id
    return False


def may_see_full_phone(actor, ticket: Ticket) -> bool:
    """Whether this member of staff may see the case's whole number at all (`tickets.access.sees_full_phone`), and
    there is one to see (none, or an anonymised case's token, is nothing to show and no showing to log)."""
    return bool(ticket.phone) and not is_token(ticket.phone) and sees_full_phone(actor, ticket)


def clean_reason(raw) -> str:
    """A reason as kept: trimmed, 2 to 200 characters, none `validation.text` refuses; ValidationFailed on the
    `reason` field otherwise."""
    text = " ".join(str(raw or "").split())
    if not storable(text):
        raise ValidationFailed(fields={REASON_FIELD: UNSTORABLE})
    if not text:
        raise ValidationFailed(fields={REASON_FIELD: REASON_REQUIRED})
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise ValidationFailed(fields={REASON_FIELD: REASON_LENGTH})
    return text


def reason_given(session, actor, ticket: Ticket, console_session: Optional[int]) -> Optional[str]:
    """The reason this user gave for this case in this console sign-in, or None (asked again after signing in)."""
    if console_session is None:
        return None
    rows = session.execute(
        sa.select(AccessLog.reason, AccessLog.detail)
        .where(AccessLog.user_id == _user_id(actor), AccessLog.ticket_id == ticket.id,
               AccessLog.kind == AccessKind.view_phone.value, AccessLog.reason.is_not(None))
        .order_by(AccessLog.id.desc()).limit(REASON_LOOKBACK))
    return next((reason for reason, detail in rows if (detail or {}).get("session") == console_session), None)


def show_phone(session, actor, ticket: Ticket, *, via: str, reason: Optional[str] = None,
               console_session: Optional[int] = None) -> AccessLog:
    """The line for one showing of the case's whole number to `actor` (not committed). `via`: "console" or "api";
    `detail` says how, whether as the handler, and the console sign-in it was given in."""
    detail: dict = {"via": via}
    if is_handler(actor, ticket):
        detail["handler"] = True
    if console_session is not None:
        detail["session"] = console_session
    return record(session, AccessKind.view_phone, user=actor, ticket_id=ticket.id, reason=reason, detail=detail)


def api_shows_phone(session, actor, ticket: Ticket) -> bool:
    """The staff API's ticket view: whole for who may see it (an integration cannot be asked a reason), each answer
    that carries it logged with the token's (or the session's) user. False: the view masks it, and nothing is
    logged."""
    if not may_see_full_phone(actor, ticket):
        return False
    show_phone(session, actor, ticket, via="api")
    return True


# --- exports -----------------------------------------------------------------------------------------------------

FILTER_VALUE_MAX = 64


def export_filters(args) -> dict:
    """What an export's line keeps of the list's arguments: the filters (`flt…`: statuses, departments, windows,
    shortcuts, never a name or a number) and the order; of a search only that there was one (a search term may be
    a phone number or a name)."""
    kept = {name: str(value)[:FILTER_VALUE_MAX] for name, value in args.items()
            if name.startswith("flt") or name in ("sort", "desc")}
    if args.get("search"):
        kept["search"] = True
    return kept


def record_export(session, *, user=None, actor: Optional[str] = None, what: str, count: int, filters: dict,
                  reason: Optional[str] = None) -> AccessLog:
    """The line for one export with whole numbers (or names): what was exported (a list's endpoint, "evaluation"),
    how many rows, with which filters. Not committed."""
    return record(session, AccessKind.export, user=user, actor=actor, reason=reason, count=count,
                  detail={"what": what, "filters": filters})


# --- the administrators' search ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Search:
    """The search form of 访问日志; every field optional. Dates are the office's local days, both included."""

    user_id: Optional[int] = None
    tracking_no: Optional[str] = None
    kind: Optional[str] = None
    since: Optional[date] = None
    until: Optional[date] = None


def parse_search(args) -> tuple[Search, dict]:
    """A Search from the page's arguments, and the messages for those that cannot be read (then left out)."""
    errors: dict = {}

    def day(name):
        raw = (args.get(name) or "").strip()
        if not raw:
            return None
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            day = None
        if day is None or not FIRST_YEAR <= day.year <= LAST_YEAR:
            errors[name] = _l("Enter a date as YYYY-MM-DD.")
            return None
        return day

    raw_user = (args.get("user") or "").strip()
    user_id = int(raw_user) if raw_user.isascii() and raw_user.isdigit() and len(raw_user) < 10 else None
    if raw_user and user_id is None:
        errors["user"] = _l("Choose a user from the list.")
    kind = (args.get("kind") or "").strip() or None
    if kind is not None and kind not in AccessKind.__members__:
        errors["kind"] = _l("Choose a kind from the list.")
        kind = None
    number = (args.get("case") or "").strip().upper()[:24] or None
    return Search(user_id=user_id, tracking_no=number, kind=kind, since=day("since"), until=day("until")), errors


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=clock.local_tz())


def search(search: Search) -> sa.Select:
    """(AccessLog, tracking number, username, display name) rows, newest first; the caller pages it."""
    query = (sa.select(AccessLog, Ticket.tracking_no, User.username, User.display_name)
             .outerjoin(Ticket, Ticket.id == AccessLog.ticket_id)
             .outerjoin(User, User.id == AccessLog.user_id))
    if search.user_id is not None:
        query = query.where(AccessLog.user_id == search.user_id)
    if search.tracking_no:
        query = query.where(Ticket.tracking_no == search.tracking_no)
    if search.kind:
        query = query.where(AccessLog.kind == search.kind)
    if search.since:
        query = query.where(AccessLog.at >= _start_of(search.since))
    if search.until:
        query = query.where(AccessLog.at < _start_of(search.until + timedelta(days=1)))
    return query.order_by(AccessLog.at.desc(), AccessLog.id.desc())


def register(app) -> None:
    """Nothing to wire beyond the table: views and commands call `record`; the console's page is admin/access_log.py."""
