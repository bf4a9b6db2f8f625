"""Retention: a case that ended long ago keeps its history and its figures, not the citizen's name and number.

Archive rules keep case records for years, so nothing is deleted but what identifies the citizen. Anonymising a case
(`anonymise`, which never commits):

- replaces `ticket.citizen_name` and `ticket.phone`, and the number on the case's surveys, on its texts to the citizen
  and on the citizen's SMS replies to its surveys, by irreversible tokens (`tickets.personal.new_token`: random, never
  derived from the value), clears their blind indexes, and sets `ticket.anonymised_at`;
- masks the phone and ID card numbers found in the case's own free text (`tickets.personal.mask_value`): the
  description, the answers, the reasons, the typical-case summary, every event's note and data, survey comments,
  return visits, appeals, extension requests, the SMS bodies, webhook bodies and attachment names;
- deletes the case's files (rows and bytes, in the database and in ATTACHMENT_DIR) unless RETENTION_ATTACHMENTS=keep;
- keeps every status, date, department, office, problem type, rating, deadline and event row: every report figure
  stays what it was.

Which cases (`eligible`): a final status (`FINAL_STATUSES`) reached before the cut-off (`tickets.models.ended_before`:
its last change and its closing), not anonymised yet, not merged into a case still open (its citizen waits for that
answer), without a survey round still open on it or on a case merged into it (a 差评 would reopen it), without an
appeal waiting for a decision, and not a 差评 still within its appeal window (`tickets.workflow.appeals`): a case
whose citizen was anonymised is never open again. A deletion request (`refusal`) asks the same, the cut-off aside.
`batches` walks them in the order of `ix_ticket_retention`, one batch at a time (the caller commits each: interrupted
and started again, it takes what is left); the dry run walks the same way and writes nothing, so its counts are what
the real run changes.

Three ways in: `flask privacy anonymise --closed-before YYYY-MM-DD [--dry-run] [--batch N]`, the scheduler's
`retention` job (RETENTION_DAYS after the end, a batch per tick), and the office's `anonymise` action on a citizen's
deletion request (tickets/workflow/actions.py, `anonymise_on_request`). Each real run writes the access log.

Other rooms hold rows of a case too (the SMS room's texts): they add their part with `holds(app, part)`.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from typing import Callable

import click
import dramatiq
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import clock, storage
from ..db import UTCDateTime, commit_counted, db
from ..errors import InvalidTransition, StorageUnavailable
from ..models import (
    FINAL_STATUSES, OPEN_STATUS_VALUES, Appeal, Attachment, Event, ExtensionRequest, IdempotencyKey, ReturnVisit,
    Survey, Ticket, User, ended_before,
)
from ..personal import mask_value, new_token
from ..slots import AppSlot
from ..validation import FIRST_YEAR
from . import access, privacy_cli

ATTACHMENT_CHOICES = ("delete", "keep")
DEFAULT_BATCH = 1000
FINAL_VALUES = tuple(sorted(s.value for s in FINAL_STATUSES))
BLIND_INDEXES = ("phone_index", "name_index")  # cleared with the values they index (tickets/privacy/crypto.py)
# A 差评 may be appealed for APPEAL_WORKING_DAYS working days: never more than this many natural days (the longest
# holidays included). Only a case rated badly since is asked `appealable_rating`, which counts the days exactly.
APPEAL_NATURAL_DAYS_AT_MOST = 31


@dataclass
class Counts:
    """What anonymising changes (or, in a dry run, would change)."""

    cases: int = 0
    surveys: int = 0             # survey rounds whose number was replaced
    texts: int = 0               # texts to the citizen and their SMS replies whose number was replaced
    attachments: int = 0         # files deleted (0 with RETENTION_ATTACHMENTS=keep)
    attachment_bytes: int = 0
    fields: int = 0              # free-text values in which a number was masked

    def __iadd__(self, other: "Counts") -> "Counts":
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Batch:
    """One batch of cases being anonymised: what each part of the work reads and adds to."""

    session: object
    ids: list[int]
    now: datetime
    write: bool
    keep_files: bool
    counts: Counts = field(default_factory=Counts)
    phone_tokens: dict[int, str] = field(default_factory=dict)   # ticket id -> the token of the case's number
    survey_tokens: dict[int, str] = field(default_factory=dict)  # survey id -> the token of its case's number


Part = Callable[[Batch], None]
PARTS: AppSlot[list[Part]] = AppSlot("banjie.retention_parts", "what other rooms anonymise of a case",
                                     default=lambda app: [])


def holds(app, part: Part) -> None:
    """A room that keeps rows of a case (texts, deliveries) anonymises them in `part(batch)`, after the case's own."""
    PARTS.get(app).append(part)


# --- the work, shared by every part -----------------------------------------------------------------------------------

def mask_columns(batch: Batch, table: sa.Table, columns: tuple[str, ...], where) -> int:
    """Mask the numbers in these text (or JSON) columns of the rows `where` selects; count, and write, those changed."""
    rows = batch.session.execute(sa.select(table.c.id, *(table.c[name] for name in columns)).where(where)).all()
    changed = []
    for row in rows:
        values = {name: mask_value(row[n]) for n, name in enumerate(columns, start=1)}
        differing = sum(1 for n, name in enumerate(columns, start=1) if values[name] != row[n])
        if differing:
            batch.counts.fields += differing
            changed.append({"k_id": row[0], **{f"v_{name}": value for name, value in values.items()}})
    if batch.write and changed:
        batch.session.execute(sa.update(table).where(table.c.id == sa.bindparam("k_id"))
                              .values({name: sa.bindparam(f"v_{name}") for name in columns}), changed)
    return len(changed)


def replace_numbers(batch: Batch, table: sa.Table, tokens: dict[int, str], column: str = "phone",
                    **also) -> None:
    """Write each row's token (`tokens`: row id -> token) into `column`, its blind index cleared, and `also`."""
    if not batch.write or not tokens:
        return
    values = {column: sa.bindparam("v_token"), **also}
    values.update({name: None for name in BLIND_INDEXES if name in table.c})
    batch.session.execute(sa.update(table).where(table.c.id == sa.bindparam("k_id")).values(values),
                          [{"k_id": key, "v_token": token} for key, token in tokens.items()])


def _cases(batch: Batch) -> None:
    """The case itself: its name and number, its texts and everything else the ticket room keeps of it."""
    session, ids, ticket = batch.session, batch.ids, Ticket.__table__
    batch.counts.cases += len(ids)
    batch.phone_tokens = {i: new_token() for i in ids}
    if batch.write:
        values = {"citizen_name": sa.bindparam("v_name"), "phone": sa.bindparam("v_phone"), "anonymised_at": batch.now}
        values.update({name: None for name in BLIND_INDEXES if name in ticket.c})
        session.execute(sa.update(ticket).where(ticket.c.id == sa.bindparam("k_id")).values(values),
                        [{"k_id": i, "v_name": new_token(), "v_phone": token}
                         for i, token in batch.phone_tokens.items()])
    mask_columns(batch, ticket, ("description", "public_reply", "reply_content", "reject_reason", "typical_summary",
                                 "match_text"), ticket.c.id.in_(ids))
    survey = Survey.__table__
    batch.survey_tokens = {survey_id: batch.phone_tokens[ticket_id] for survey_id, ticket_id in session.execute(
        sa.select(survey.c.id, survey.c.ticket_id).where(survey.c.ticket_id.in_(ids)))}
    batch.counts.surveys += len(batch.survey_tokens)
    replace_numbers(batch, survey, batch.survey_tokens)
    mask_columns(batch, survey, ("comment",), survey.c.ticket_id.in_(ids))
    event = Event.__table__
    mask_columns(batch, event, ("note", "public_note", "data"), event.c.ticket_id.in_(ids))
    for model, columns in ((ReturnVisit, ("outcome",)), (Appeal, ("reason", "evidence", "decision_reason")),
                           (ExtensionRequest, ("reason", "decision_note"))):
        table = model.__table__
        mask_columns(batch, table, columns, table.c.ticket_id.in_(ids))
    if batch.write:
        # A staff request's kept answer (tickets/idempotency.py, kept IDEMPOTENCY_KEY_HOURS) holds the name and number
        # as they were: without it, a repeat of the request is answered from the anonymised case.
        idempotent = IdempotencyKey.__table__
        session.execute(sa.update(idempotent).where(idempotent.c.ticket_id.in_(ids), idempotent.c.response.is_not(None))
                        .values(response=None))
    _files(batch)


def _files(batch: Batch) -> None:
    """The case's files: deleted, rows and bytes (RETENTION_ATTACHMENTS=delete), or kept with their names masked."""
    table = Attachment.__table__
    where = table.c.ticket_id.in_(batch.ids)
    if batch.keep_files:
        mask_columns(batch, table, ("name",), where)
        return
    rows = batch.session.execute(sa.select(table.c.id, table.c.size, table.c.blob_key, table.c.thumb_key)
                                 .where(where)).all()
    batch.counts.attachments += len(rows)
    batch.counts.attachment_bytes += sum(row.size or 0 for row in rows)
    if batch.write and rows:
        storage.delete_everywhere(batch.session, [key for row in rows for key in (row.blob_key, row.thumb_key) if key])
        batch.session.execute(sa.delete(table).where(table.c.id.in_([row.id for row in rows])))


def anonymise(session, ids: list[int], *, now: datetime, write: bool = True, keep_files: bool | None = None) -> Counts:
    """Anonymise these cases (the caller chose them: `batches`, `anonymise_on_request`) and return what changed; with
    `write=False`, change nothing and return what would. Never commits. Rows already loaded in `session` are not
    refreshed: expire them (`anonymise_on_request` does)."""
    if keep_files is None:
        keep_files = current_app.config["RETENTION_ATTACHMENTS"] == "keep"
    batch = Batch(session, list(ids), now, write, keep_files)
    if not batch.ids:
        return batch.counts
    _cases(batch)
    for part in PARTS.get():
        part(batch)
    return batch.counts


# --- which cases ------------------------------------------------------------------------------------------------------

# What keeps a case in a final status from having ended for good: each an SQL condition on `Ticket`, shared by the
# scheduled path (`eligible`) and a deletion request (`refusal`), so both mean the same. A case with an anonymised
# citizen is never open again: none of these may reopen it afterwards.

def waiting_for_answer():
    """Merged into a case still open: its citizen waits for that answer (and `split` would reopen it)."""
    target = Ticket.__table__.alias("merged_target")
    return sa.exists().where(target.c.id == Ticket.merged_into_id, target.c.status.in_(OPEN_STATUS_VALUES))


def survey_open(now: datetime):
    """A survey round of the case, or of a case merged into it, may still be rated: a 差评 would reopen the case (or,
    for a merged case, the case it joined: its own survey is the answer it rates)."""
    joined = Ticket.__table__.alias("joined_case")
    rateable = sa.and_(Survey.rated_at.is_(None), Survey.swept_at.is_(None), Survey.closes_at > now)
    return sa.or_(sa.exists().where(Survey.ticket_id == Ticket.id, rateable),
                  sa.exists().where(Survey.ticket_id == joined.c.id, joined.c.merged_into_id == Ticket.id, rateable))


def appeal_pending():
    """An appeal of one of its 差评 waits for the supervisor's decision."""
    return sa.exists().where(Appeal.ticket_id == Ticket.id, Appeal.decided_at.is_(None))


def ended_for_good(now: datetime):
    """A case not anonymised yet that nothing can open again (the appeal window aside: `_appealable`, exact)."""
    return sa.and_(Ticket.anonymised_at.is_(None), Ticket.status.in_(FINAL_VALUES), ~waiting_for_answer(),
                   ~survey_open(now), ~appeal_pending())


def eligible(cutoff: datetime, now: datetime):
    """The SQL condition of a case the retention may anonymise, except the appeal window (`_appealable`, exact)."""
    return sa.and_(ended_before(cutoff), ended_for_good(now))


def request_waits():
    """A case whose citizen's deletion request (`anonymise_requested_at`) is not carried out yet."""
    return sa.and_(Ticket.anonymise_requested_at.isnot(None), Ticket.anonymised_at.is_(None))


def requested_due(now: datetime):
    """A case whose citizen's deletion request waits and that has now ended for good."""
    return sa.and_(request_waits(), ended_for_good(now))


def _recently_rated_badly(now: datetime):
    return sa.exists().where(Survey.ticket_id == Ticket.id, Survey.bad_rating,
                             Survey.rated_at >= now - timedelta(days=APPEAL_NATURAL_DAYS_AT_MOST))


def _appealable(session, ticket: Ticket, now: datetime) -> bool:
    from ..workflow.appeals import appealable_rating

    return appealable_rating(session, ticket, now)[0] is not None


def count(session, cutoff: datetime, now: datetime) -> int:
    """How many cases `batches` would look at (those within an appeal window included)."""
    return session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(eligible(cutoff, now)))


def next_batch(session, cutoff: datetime | None, now: datetime, size: int, after=None, *, lock: bool = False):
    """(ids of up to `size` cases to anonymise, the position to go on from), by last change then id after `after`;
    (…, None) when none is left. `cutoff` None: the cases whose deletion request is due (`requested_due`) instead of
    those that ended before it. With `lock` on PostgreSQL the rows are locked for this transaction and those another
    run holds are skipped (two runs at once share the work)."""
    query = sa.select(Ticket.id, Ticket.updated_at, _recently_rated_badly(now).label("rated_badly")).where(
        requested_due(now) if cutoff is None else eligible(cutoff, now))
    if after is not None:
        query = query.where(sa.tuple_(Ticket.updated_at, Ticket.id)
                            > sa.tuple_(sa.literal(after[0], UTCDateTime), sa.literal(after[1], sa.Integer)))
    query = query.order_by(Ticket.updated_at, Ticket.id).limit(size)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Ticket, skip_locked=True)
    rows = session.execute(query).all()
    if not rows:
        return [], None
    ids = [row.id for row in rows if not row.rated_badly or not _appealable(session, session.get(Ticket, row.id), now)]
    return ids, (rows[-1].updated_at, rows[-1].id)


def batches(session, cutoff: datetime, *, now: datetime, size: int = DEFAULT_BATCH, write: bool = True,
            keep_files: bool | None = None):
    """Anonymise (or, `write=False`, count) every eligible case ended before `cutoff`, a batch at a time: yields each
    batch's Counts; the caller commits (or rolls back) between batches. Never commits."""
    after = None
    while True:
        ids, after = next_batch(session, cutoff, now, size, after, lock=write)
        if after is None:
            return
        yield anonymise(session, ids, now=now, write=write, keep_files=keep_files)


# --- a citizen's deletion request -------------------------------------------------------------------------------------

ALREADY = _l("This case's personal information has already been anonymised.")
STILL_OPEN = _l("This case is still open: close it, or have the citizen withdraw it, before anonymising it. Or "
                "record the deletion request: the case is then anonymised by itself once it has ended for good.")
APPEALABLE = _l("A bad rating of this case may still be appealed, or an appeal waits for a decision: anonymise the "
                "case once that is settled. Or record the deletion request: the case is then anonymised by itself once "
                "it has ended for good.")
WAITING = _l("This case is merged into a case still open: its citizen waits for that answer, and the merge may still "
             "be split. Anonymise it once that case is closed. Or record the deletion request: the case is then "
             "anonymised by itself once it has ended for good.")
SURVEY_OPEN = _l("The satisfaction survey of this case (or of a case merged into it) is still open, and a bad rating "
                 "would reopen the case: anonymise it once the survey has closed. Or record the deletion request: the "
                 "case is then anonymised by itself once it has ended for good.")


def _holds(session, ticket: Ticket, condition) -> bool:
    return session.scalar(sa.select(Ticket.id).where(Ticket.id == ticket.id, condition)) is not None


def refusal(session, ticket: Ticket, now: datetime):
    """Why this case may not be anonymised on request now (None: it may): the `anonymise` action's precondition. The
    conditions are `eligible`'s (the cut-off aside): a case is anonymised once it has ended for good."""
    if ticket.anonymised_at is not None:
        return ALREADY
    if ticket.status not in FINAL_VALUES:
        return STILL_OPEN
    if _holds(session, ticket, waiting_for_answer()):
        return WAITING
    if _holds(session, ticket, survey_open(now)):
        return SURVEY_OPEN
    if _holds(session, ticket, appeal_pending()) or _appealable(session, ticket, now):
        return APPEALABLE
    return None


NOW = _l("This case has ended for good and can be anonymised now: use “Anonymise personal information”.")
REQUESTED = _l("A deletion request is already recorded for this case: it is anonymised as soon as the case has ended "
               "for good.")


def request_refusal(session, ticket: Ticket, now: datetime):
    """Why the office may not record a deletion request for this case now (None: it may): the `request_anonymise`
    action's precondition. A request is recorded only when the case cannot be anonymised at once (`refusal`)."""
    asking = asking_refusal(ticket.anonymised_at, ticket.anonymise_requested_at)
    if asking is not None:
        return asking
    if refusal(session, ticket, now) is None:
        return NOW
    return None


NOT_REQUESTED = _l("No deletion request waits for this case.")


def request_state(session, ticket: Ticket) -> tuple[datetime | None, datetime | None]:
    """(anonymised_at, anonymise_requested_at) of the case as committed, its row locked for this transaction on
    PostgreSQL: the scheduler takes the cases it anonymises with FOR UPDATE SKIP LOCKED (`carry_out_requests`,
    `next_batch`), so a request recorded or taken back under this lock is never one it is carrying out at that moment
    (it waits for the next tick, or this waits for its commit and sees the case anonymised)."""
    query = sa.select(Ticket.anonymised_at, Ticket.anonymise_requested_at).where(Ticket.id == ticket.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Ticket)
    anonymised_at, requested_at = session.execute(query).one()
    return anonymised_at, requested_at


def asking_refusal(anonymised_at, requested_at):
    """Why a deletion request may not be recorded for a case in this state (None: it may): anonymised already, or one
    waits already. Read on the loaded case to offer the step, on the committed row (`request_state`) to take it."""
    if anonymised_at is not None:
        return ALREADY
    return REQUESTED if requested_at is not None else None


def taking_back_refusal(anonymised_at, requested_at):
    """Why a case's deletion request may not be taken back in this state (None: it may): anonymised, or none waits."""
    if anonymised_at is not None:
        return ALREADY
    return NOT_REQUESTED if requested_at is None else None


def record_request(session, ticket: Ticket, now: datetime) -> None:
    """Record a deletion request for the case (the office's `request_anonymise`, the citizen's
    `workflow.request_deletion`): InvalidTransition (`asking_refusal`) read as committed (`request_state`), so not for
    a case the scheduler or someone else took care of meanwhile."""
    refused = asking_refusal(*request_state(session, ticket))
    if refused is not None:
        raise InvalidTransition(refused)
    ticket.anonymise_requested_at = now


def take_back_request(session, ticket: Ticket) -> None:
    """Withdraw the case's waiting deletion request (the citizen's `workflow.withdraw_deletion_request`, the office's
    `cancel_anonymise_request`): InvalidTransition (`taking_back_refusal`) read as committed. The case's name and number
    then stay until its retention period ends; the citizen may ask again."""
    refused = taking_back_refusal(*request_state(session, ticket))
    if refused is not None:
        raise InvalidTransition(refused)
    ticket.anonymise_requested_at = None


def anonymise_on_request(session, ticket: Ticket, actor, reason: str, now: datetime) -> Counts:
    """The office anonymises one case at the citizen's request (the `anonymise` action's work; it records the event):
    the case at once, and a line of the access log with the member of staff, the case and the reason."""
    session.flush()
    counts = anonymise(session, [ticket.id], now=now)
    session.expire_all()  # the ticket, its surveys and files as they now are
    user = session.get(User, actor.user_id) if actor.user_id else None
    access.record(session, "anonymise", user=user, ticket_id=ticket.id, reason=mask_value(reason), count=1,
                  detail={"request": True, **counts.as_dict()})
    return counts


def carry_out_requests(session, now: datetime, size: int) -> int:
    """Anonymise up to `size` cases whose recorded deletion request is due (`requested_due`: the case has ended for
    good; one that may still be appealed waits), each as the office's `anonymise` action would: its history gets the
    public `anonymise` event (by the system, the request's reason as its note) and the access log a line (actor
    `scheduler`, the case, the reason, who recorded the request and when, or that the citizen sent it from the case
    page or the API: `workflow.request_deletion`). Returns how many; never commits."""
    from ..workflow import CITIZEN, REQUEST_ANONYMISE, SYSTEM, record

    done, after = 0, None
    while done < size:
        ids, after = next_batch(session, None, now, size - done, after, lock=True)
        if after is None:
            return done
        for ticket_id in ids:
            request = session.scalar(sa.select(Event).where(Event.ticket_id == ticket_id,
                                                            Event.action == REQUEST_ANONYMISE)
                                     .order_by(Event.id.desc()).limit(1))
            counts = anonymise(session, [ticket_id], now=now)
            session.expire_all()  # the ticket, its surveys and files as they now are
            ticket = session.get(Ticket, ticket_id)
            asked = {"requested_at": ticket.anonymise_requested_at.isoformat(),
                     "requested_by": request.actor_id if request is not None else None}
            if request is not None and request.actor_role == CITIZEN.role_name:
                asked["by_citizen"] = True  # sent by the citizen (case page or API), not recorded by the office
            reason = request.note if request is not None else None
            record(session, ticket, SYSTEM, "anonymise", now, from_status=ticket.status, note=reason, public=True,
                   data={**counts.as_dict(), **asked})
            access.record(session, "anonymise", actor="scheduler", ticket_id=ticket_id, reason=reason, count=1,
                          detail={"request": True, **asked, **counts.as_dict()})
            session.flush()
            done += 1
    return done


# --- the scheduled job ------------------------------------------------------------------------------------------------

def cutoff_of(days: int, now: datetime) -> datetime:
    return now - timedelta(days=days)


@dramatiq.actor(queue_name="tickets", max_retries=0)
def anonymise_expired() -> None:
    """One batch of the cases that ended RETENTION_DAYS ago, anonymised and committed with one access-log line
    (actor `scheduler`) when it changed anything; the next tick takes the next batch. A batch of cases that may all
    still be appealed (left for later) is passed over within the tick, not taken as the end of the work."""
    config = current_app.config
    days = config["RETENTION_DAYS"]
    now = clock.now()
    try:  # the citizens' deletion requests that are due first, whatever RETENTION_DAYS says
        requested = carry_out_requests(db.session, now, config["RETENTION_BATCH_SIZE"])
    except StorageUnavailable:
        requested = 0
    if requested:
        db.session.commit()
    else:
        db.session.rollback()
    if days <= 0:
        return
    cutoff = cutoff_of(days, now)
    try:
        counts = next((done for done in batches(db.session, cutoff, now=now, size=config["RETENTION_BATCH_SIZE"])
                       if done.cases), None)
    except StorageUnavailable:  # the volume of files away (tickets.storage logged why): the next tick tries again
        counts = None
    if counts is None or not counts.cases:
        db.session.rollback()
        return
    access.record(db.session, "anonymise", actor="scheduler", count=counts.cases,
                  detail={"closed_before": cutoff.isoformat(), "retention_days": days, **counts.as_dict()})
    db.session.commit()


def schedule_anonymise(now) -> None:
    """The scheduler's job: enqueue a batch when retention is on (RETENTION_DAYS > 0) or a deletion request waits."""
    if current_app.config["RETENTION_DAYS"] > 0 or db.session.scalar(
            sa.select(Ticket.id).where(request_waits()).limit(1)) is not None:
        anonymise_expired.send()


def check_settings(config) -> None:
    if config["RETENTION_ATTACHMENTS"] not in ATTACHMENT_CHOICES:
        raise ValueError(f"RETENTION_ATTACHMENTS={config['RETENTION_ATTACHMENTS']!r}: must be delete or keep")
    if config["RETENTION_DAYS"] < 0 or config["RETENTION_BATCH_SIZE"] < 1:
        raise ValueError("RETENTION_DAYS must be 0 (off) or more, RETENTION_BATCH_SIZE 1 or more")


def register(app) -> None:
    """The settings checked, the job scheduled, its actor bound (called by `tickets.privacy.init_app`)."""
    from ..broker import bind_actors, broker
    from ..schedule import schedule

    check_settings(app.config)
    bind_actors(broker(app), (anonymise_expired,))
    schedule(app, "retention", schedule_anonymise)


# --- flask privacy anonymise ------------------------------------------------------------------------------------------

def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.1f} kB" if n >= 1000 else f"{n} B"


def summary(counts: Counts, keep_files: bool) -> str:
    files = (_("files kept (RETENTION_ATTACHMENTS=keep)") if keep_files else
             _("%(files)d files (%(bytes)d bytes, %(size)s)", files=counts.attachments, bytes=counts.attachment_bytes,
               size=_size(counts.attachment_bytes)))
    return _("%(cases)d cases, %(surveys)d surveys, %(texts)d texts, %(files)s, %(fields)d text fields with numbers "
             "masked", cases=counts.cases, surveys=counts.surveys, texts=counts.texts, files=files,
             fields=counts.fields)


@privacy_cli.command("anonymise")
@click.option("--closed-before", "closed_before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              metavar="YYYY-MM-DD",
              help="Anonymise the cases that ended (closed, refused, withdrawn or merged) before this local date.")
@click.option("--dry-run", is_flag=True, help="Print what would change and change nothing.")
@click.option("--batch", "size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH, show_default=True,
              help="Cases per committed batch.")
@with_appcontext
def anonymise_command(closed_before: datetime, dry_run: bool, size: int) -> None:
    """Replace the citizen's name and number of old cases by irreversible tokens, mask the numbers in their texts and
    delete their files (RETENTION_ATTACHMENTS); the cases, their history and every report figure stay. Resumable:
    run it again after an interruption and it takes what is left."""
    closed_before = closed_before.date()
    if closed_before > clock.today():
        raise click.BadParameter(_("the date must not be after today"), param_hint="'--closed-before'")
    if closed_before.year < FIRST_YEAR:
        raise click.BadParameter(_("the date must not be before %(year)d-01-01", year=FIRST_YEAR),
                                 param_hint="'--closed-before'")
    session = db.session
    now = clock.now()
    cutoff = datetime.combine(closed_before, time.min, tzinfo=clock.local_tz())
    keep_files = current_app.config["RETENTION_ATTACHMENTS"] == "keep"
    total = Counts()
    done = interrupted = volume_away = False
    label = _("checking") if dry_run else _("anonymising")
    eligible = count(session, cutoff, now)
    if not dry_run and eligible:
        access.record_run_start(session, "anonymise", actor="cli",
                                detail={"closed_before": closed_before.isoformat(), "eligible": eligible})
    try:
        with click.progressbar(length=eligible, label=label, show_pos=True, file=sys.stderr) as bar:
            def tally(counts: Counts) -> None:
                nonlocal total
                total += counts
                bar.update(counts.cases)

            for counts in batches(session, cutoff, now=now, size=size, write=not dry_run, keep_files=keep_files):
                if dry_run:
                    session.rollback()
                    tally(counts)
                else:  # the batch and its count in the end line both or neither, whenever Ctrl-C comes
                    commit_counted(session, lambda: tally(counts))
        done = True
    except KeyboardInterrupt:
        if dry_run:
            raise
        interrupted = True  # Ctrl-C: what the committed batches did stays done, and is said below
    except StorageUnavailable:  # the volume of files failed (logged): the batches before stay done, this one not
        volume_away = True
    finally:
        session.rollback()
        if not dry_run and (eligible or total.cases):
            # the run's end line, also for a run interrupted after some batches (what they did stays done)
            access.record(session, "anonymise", actor="cli", count=total.cases,
                          detail={"closed_before": closed_before.isoformat(), "finished": done, **total.as_dict()})
            session.commit()
    if interrupted or volume_away:
        click.echo(_("Interrupted. Anonymised before the interruption, the cases that ended before %(date)s:",
                     date=closed_before.isoformat()) if interrupted else
                   _("The volume of files (ATTACHMENT_DIR) cannot be reached: stopped. Anonymised before, the cases "
                     "that ended before %(date)s:", date=closed_before.isoformat()), err=True)
        click.echo(summary(total, keep_files), err=True)
        click.echo(_("Run the same command again to anonymise what is left."), err=True)
        raise click.exceptions.Exit(130 if interrupted else 1)  # 130: the shell's code for a command ended by Ctrl-C
    if dry_run:
        click.echo(_("Dry run, nothing was changed. Anonymising the cases that ended before %(date)s would change:",
                     date=closed_before.isoformat()))
    else:
        click.echo(_("Anonymised the cases that ended before %(date)s:", date=closed_before.isoformat()))
    click.echo(summary(total, keep_files))
