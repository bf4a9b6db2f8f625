"""知识库 (the knowledge base of GB/T 44191): answers worth reusing, offered beside a reply, an explanation or an
answer the office gives itself, and inserted there for the clerk to edit.

Operations only (nothing here commits): the console (admin/knowledge.py), the API and the workflow call them and
commit. Every refusal is a `ValidationFailed` with field errors, a `Forbidden` or a `NotFound`.

Who keeps which entries (`kept_by`): an administrator every entry; a window's office staff their window's entries,
its own (no department) and those of the departments of that window; a department handler their department's.
Supervisors and leaders read their window's entries and change none.

Who may use an entry on a case (`suggest`, and the `knowledge_entry_id` of reply, explain and resolve): an active
entry whose review date has not passed (the office's local date), of the case's window or of a window above it (the
windows whose departments the case may go to); of those, a department handler only the windows' own entries and
their own department's, everyone else all of them.

Versions: `version` names the text an answer started from, and the answer's event keeps it with the entry's id
(`used`). An update that changes what an answer may quote (title, text, service items, owner) raises it; an update
of only the review date or the active switch does not, and neither does a review (已复核), which moves the review
date (by default a year from today) and records who vouched for the text: the text itself did not change.

Expiry: an entry is due for review (待复核) from the day after its review date. It is then no longer suggested nor
accepted in an answer, and `expired_for` lists it for those who keep it until one of them reviews or edits it.
"""
from __future__ import annotations

import math
import re
from datetime import date

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from . import clock, offices, validation
from .errors import Forbidden, NotFound, ValidationFailed
from .models import Department, KnowledgeEntry, Office, Role, Ticket

FIELD = "knowledge_entry_id"  # the payload field of the answers that may start from an entry
TITLE_MAX = 100               # KnowledgeEntry.title
CONTENT_MAX = 4000            # the workflow's TEXT_MAX: an inserted entry always fits the answer's box
ITEM_MAX = 100                # a service item's name (ServiceItem.name, Ticket.service_item)
ITEMS_MAX = 20                # service items of one entry
REVIEW_YEARS = 1              # a new or reviewed entry is due for review again this long after today
SUGGESTIONS = 5
CANDIDATES = 1000             # entries scored for one case: the most recently changed usable ones
# Text in common that makes an entry worth offering on its own: this many of the case's bigrams, and this share of
# them (two common pairs such as 办理 and 申请 say nothing about the matter).
MIN_SHARED_BIGRAMS = 3
MIN_SHARED_FRACTION = 0.1
EXCERPT = 60                  # characters of an entry shown before it is opened
READERS = frozenset({Role.supervisor, Role.leader})  # read their window's entries, keep none

NO_SUCH_ENTRY = _l("There is no such knowledge base entry for this case.")
STALE_ENTRY = _l("This knowledge base entry is past its review date or withdrawn; it cannot be used until its owner "
                 "reviews it.")
ITEM_SEPARATORS = re.compile(r"[\n\r;；,，、]+")
CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"  # Chinese characters and full-width punctuation
SPACE_IN_CHINESE = re.compile(f"(?<=[{CJK}]) (?=[{CJK}])")


# --- who keeps, reads and uses which entries ------------------------------------------------------------------

def kept_by(actor):
    """WHERE clause of the entries this actor keeps (creates, edits, reviews)."""
    if actor.role == Role.admin:
        return sa.true()
    if actor.role == Role.office and actor.office_id is not None:
        return KnowledgeEntry.office_id == actor.office_id
    if actor.role == Role.department and actor.department_id is not None:
        return KnowledgeEntry.department_id == actor.department_id
    return sa.false()


def listed_for(actor):
    """WHERE clause of the entries the console lists for this actor: those they keep; a supervisor's or a leader's
    window's entries, to read."""
    if actor.role in READERS and actor.office_id is not None:
        return KnowledgeEntry.office_id == actor.office_id
    return kept_by(actor)


def keeps(actor, entry: KnowledgeEntry) -> bool:
    if actor.role == Role.admin:
        return True
    if actor.role == Role.office:
        return actor.office_id is not None and entry.office_id == actor.office_id
    if actor.role == Role.department:
        return actor.department_id is not None and entry.department_id == actor.department_id
    return False


def expired_condition(today: date):
    """WHERE clause of the entries due for review on `today`: active, and their review date passed."""
    return sa.and_(KnowledgeEntry.active.is_(True), KnowledgeEntry.review_by < today)


def is_expired(entry: KnowledgeEntry, today: date | None = None) -> bool:
    return bool(entry.active) and entry.review_by < (today or clock.today())


def _visible_on_case(session, ticket: Ticket, actor):
    """WHERE clause of the entries of the case's windows this actor may use, fresh or not."""
    office = session.get(Office, ticket.office_id)
    condition = KnowledgeEntry.office_id.in_(offices.ancestor_ids(office)) if office is not None else sa.false()
    if actor.role == Role.department:
        own = (KnowledgeEntry.department_id == actor.department_id) if actor.department_id is not None else sa.false()
        condition = sa.and_(condition, sa.or_(KnowledgeEntry.department_id.is_(None), own))
    return condition


def usable_condition(session, ticket: Ticket, actor, today: date):
    """WHERE clause of the entries this actor may use on this case today."""
    return sa.and_(_visible_on_case(session, ticket, actor), KnowledgeEntry.active.is_(True),
                   KnowledgeEntry.review_by >= today)


# --- suggestions ----------------------------------------------------------------------------------------------

def bigrams(text: str | None) -> set[str]:
    """The pairs of neighbouring characters of a text, letters and digits only (spaces and punctuation dropped,
    Latin letters lower-cased): Chinese has no spaces to split words on, and two characters are most of a word."""
    kept = "".join(ch for ch in (text or "").lower() if ch.isalnum())
    return {kept[i:i + 2] for i in range(len(kept) - 1)}


def overlap(query: set[str], title: str, content: str) -> tuple[int, int]:
    """(how many of the query's bigrams an entry contains, its score: those in its title count twice)."""
    in_title = query & bigrams(title)
    shared = len(query & bigrams(content) | in_title)
    return shared, shared + len(in_title)


def _same_item(entry: KnowledgeEntry, item: str | None) -> bool:
    return bool(item) and item.strip() in (entry.service_items or [])


def rank(entries, ticket: Ticket, limit: int = SUGGESTIONS) -> list[KnowledgeEntry]:
    """The entries worth offering for this case, best first: those about the case's service item, then those of the
    case's department, then by text overlap with what the citizen wrote (and the service item they named), then
    the most recently changed. An entry with none of these in common is not offered."""
    query = bigrams(ticket.description) | bigrams(ticket.service_item)
    enough = max(MIN_SHARED_BIGRAMS, math.ceil(len(query) * MIN_SHARED_FRACTION))
    scored = []
    for entry in entries:
        same_item = _same_item(entry, ticket.service_item)
        same_department = entry.department_id is not None and entry.department_id == ticket.department_id
        shared, score = overlap(query, entry.title, entry.content)
        if same_item or same_department or shared >= enough:
            scored.append(((same_item, same_department, score, entry.updated_at, entry.id), entry))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    return [entry for _key, entry in scored[:limit]]


def suggest(session, ticket: Ticket, actor, limit: int = SUGGESTIONS) -> list[KnowledgeEntry]:
    """The entries to offer beside this case's answer, best first (`rank`), among those this actor may use on it."""
    today = clock.today()
    candidates = session.scalars(
        sa.select(KnowledgeEntry).where(usable_condition(session, ticket, actor, today))
        .order_by(KnowledgeEntry.updated_at.desc(), KnowledgeEntry.id.desc()).limit(CANDIDATES))
    return rank(candidates, ticket, limit)


def describe(session, entries) -> list[dict]:
    """Entries as the API gives them (and the case page shows them)."""
    wanted = {e.department_id for e in entries if e.department_id is not None}
    names = dict(session.execute(sa.select(Department.id, Department.name).where(Department.id.in_(wanted))).all()) \
        if wanted else {}
    return [{"id": e.id, "title": e.title, "content": e.content, "version": e.version,
             "service_items": list(e.service_items or []), "department_name": names.get(e.department_id),
             "review_by": e.review_by.isoformat()} for e in entries]


def excerpt(text: str, length: int = EXCERPT) -> str:
    """The first `length` characters of a text on one line (its lines joined by a space, but none between Chinese)."""
    flat = SPACE_IN_CHINESE.sub("", " ".join((text or "").split()))
    return flat if len(flat) <= length else flat[:length] + "…"


def used(session, ticket: Ticket, actor, entry_id: int | None) -> dict:
    """What an answer's event keeps of the entry it started from, `{"knowledge": {"id", "version", "title"}}` (empty
    without one); a field error when this actor may not use that entry on this case now."""
    if entry_id is None:
        return {}
    entry = session.scalar(sa.select(KnowledgeEntry).where(KnowledgeEntry.id == entry_id,
                                                            _visible_on_case(session, ticket, actor)))
    if entry is None:
        raise ValidationFailed(fields={FIELD: NO_SUCH_ENTRY})
    if not entry.active or entry.review_by < clock.today():
        raise ValidationFailed(fields={FIELD: STALE_ENTRY})
    return {"knowledge": {"id": entry.id, "version": entry.version, "title": entry.title}}


# --- the owner's list -----------------------------------------------------------------------------------------

def expired_for(session, actor) -> list[KnowledgeEntry]:
    """The entries due for review that this actor keeps, longest due first: listed for them to review."""
    return list(session.scalars(
        sa.select(KnowledgeEntry).where(kept_by(actor), expired_condition(clock.today()))
        .order_by(KnowledgeEntry.review_by, KnowledgeEntry.id)))


def expired_count(session, actor) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(KnowledgeEntry)
                          .where(kept_by(actor), expired_condition(clock.today())))


# --- keeping entries ------------------------------------------------------------------------------------------

def default_review_date(today: date | None = None) -> date:
    """A year from today (29 February: the 28th)."""
    today = today or clock.today()
    try:
        return today.replace(year=today.year + REVIEW_YEARS)
    except ValueError:
        return today.replace(year=today.year + REVIEW_YEARS, day=28)


def service_item_names(value) -> list[str]:
    """A list of names, or text with one per line (or separated by 、 , ;), as the list the entry keeps: stripped,
    blanks dropped, each once, in the order given."""
    if value is None:
        return []
    parts = ITEM_SEPARATORS.split(value) if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)):
        raise validation.FieldError(_l("Must be a list of service item names."))
    names = []
    for part in parts:
        if not isinstance(part, str):
            raise validation.FieldError(_l("Must be a list of service item names."))
        name = validation.text(part, required=False, max_len=ITEM_MAX, single_line=True)
        if name and name not in names:
            names.append(name)
    if len(names) > ITEMS_MAX:
        raise validation.FieldError(_l("At most %(n)d service items.", n=ITEMS_MAX))
    return names


def _review_date(value, today: date, kept: date | None = None):
    """A review date (a date, or text YYYY-MM-DD); a new one may not be in the past, the date an entry has may stay."""
    day = value if isinstance(value, date) else validation.calendar_date(value, required=False)
    if day is not None and day < today and day != kept:
        raise validation.FieldError(_l("The review date cannot be in the past."))
    return day


def _check(session, actor, values: dict, entry: KnowledgeEntry | None) -> dict:
    """The fields of an entry as this actor may write them, with its owner (office_id, department_id) settled by
    their role: a handler's entries are their department's, office staff's their window's."""
    if actor.role not in (Role.admin, Role.office, Role.department):
        raise Forbidden(_l("Supervisors and leaders read the knowledge base; office staff and departments keep it."))
    check = validation.Collector()
    check.field("title", validation.text, values.get("title"), required=True, max_len=TITLE_MAX, single_line=True)
    check.field("content", validation.text, values.get("content"), required=True, max_len=CONTENT_MAX)
    check.field("service_items", service_item_names, values.get("service_items"))
    check.field("review_by", _review_date, values.get("review_by"), clock.today(),
                entry.review_by if entry is not None else None)
    active = values.get("active", True if entry is None else entry.active)
    check.field("active", validation.boolean, active, required=True)
    department_id = check.field("department_id", validation.identifier, values.get("department_id"), required=False)
    office_id = check.field("office_id", validation.identifier, values.get("office_id"), required=False)
    if actor.role == Role.department:
        if department_id not in (None, actor.department_id):
            check.fail("department_id", _l("A department handler keeps only their own department's entries."))
        department_id = actor.department_id
    department = session.get(Department, department_id) if department_id else None
    if department_id and department is None:
        check.fail("department_id", _l("No such department."))
    if actor.role == Role.department:
        office_id = department.office_id if department is not None else None
    elif actor.role == Role.office:
        office_id = actor.office_id
    elif office_id is None:  # an administrator: the window chosen, else the department's, else the entry's
        office_id = department.office_id if department is not None else entry.office_id if entry is not None else None
    if office_id is None or session.get(Office, office_id) is None:
        check.fail("office_id", _l("Choose a window."))
    elif department is not None and department.office_id != office_id:
        check.fail("department_id", _l("Choose a department of the entry's window, or none for the window's own "
                                       "entry."))
    check.values["office_id"], check.values["department_id"] = office_id, department_id
    return check.raise_if_errors()


QUOTED = ("title", "content", "service_items", "office_id", "department_id")  # what an answer may quote


def create_entry(session, actor, **values) -> KnowledgeEntry:
    """A new entry (version 1), due for review on `review_by` (default: a year from today)."""
    clean = _check(session, actor, values, None)
    now = clock.now()
    entry = KnowledgeEntry(**{key: clean[key] for key in QUOTED}, active=clean["active"],
                           review_by=clean["review_by"] or default_review_date(), version=1,
                           updated_by=actor.user_id, created_at=now, updated_at=now)
    session.add(entry)
    session.flush()
    return entry


def update_entry(session, actor, entry: KnowledgeEntry, **values) -> KnowledgeEntry:
    """Change an entry this actor keeps; a change to what an answer may quote raises its version. Fields not given
    keep their values (the review date too)."""
    if not keeps(actor, entry):
        raise NotFound()
    current = {key: getattr(entry, key) for key in (*QUOTED, "active", "review_by")}
    clean = _check(session, actor, {**current, **{k: v for k, v in values.items() if k in current}}, entry)
    clean["review_by"] = clean["review_by"] or entry.review_by
    changed = {key for key, value in clean.items() if key in current and value != current[key]}
    if not changed:
        return entry
    for key in changed:
        setattr(entry, key, clean[key])
    if changed & set(QUOTED):
        entry.version += 1
    entry.updated_at, entry.updated_by = clock.now(), actor.user_id
    session.flush()
    return entry


def review(session, actor, entry: KnowledgeEntry, review_by=None) -> KnowledgeEntry:
    """已复核: the owner vouches for the text as it is; due again on `review_by` (default: a year from today). The
    version stays: the text answers quoted has not changed."""
    if not keeps(actor, entry):
        raise NotFound()
    check = validation.Collector()
    day = check.field("review_by", _review_date, review_by, clock.today())
    check.raise_if_errors()
    entry.review_by = day or default_review_date()
    entry.updated_at, entry.updated_by = clock.now(), actor.user_id
    session.flush()
    return entry


def entry_kept_by(session, actor, entry_id) -> KnowledgeEntry:
    """The entry with this id if this actor keeps it; the same 404 otherwise (an id that cannot be one too)."""
    try:
        key = validation.identifier(entry_id, required=True)
    except validation.FieldError:
        raise NotFound() from None
    entry = session.scalar(sa.select(KnowledgeEntry).where(KnowledgeEntry.id == key, kept_by(actor)))
    if entry is None:
        raise NotFound()
    return entry


__all__ = ["FIELD", "bigrams", "create_entry", "default_review_date", "describe", "entry_kept_by", "excerpt",
           "expired_condition", "expired_count", "expired_for", "is_expired", "keeps", "kept_by", "listed_for",
           "overlap", "rank", "review", "service_item_names", "suggest", "update_entry", "usable_condition", "used"]
