"""Filing: validate what a citizen sends, give the ticket a tracking number and a query code, start the clock."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from . import attachments, clock, deadlines, duplicates, offices, secrets, validation
from .db import autocommit_row, insert_pending, new_row, nothing_begun, upsert
from .errors import DuplicateExternalRef, ValidationFailed
from .models import (STAFF_CHANNELS, AttachmentSource, Channel, DeadlineKind, Department, Event, Office, ProblemType,
                     Role, Ticket, TrackingCounter)
from .phones import normalise_mobile, normalise_phone
from .privacy import crypto
from .workflow import CITIZEN, RECOVER_CODE, record

NAME_MAX = 50
DESCRIPTION_MIN = 5
DESCRIPTION_MAX = 2000
SERVICE_ITEM_MAX = 100
INTAKE_FIELDS = ("name", "phone", "problem_type", "description", "department_id", "service_item", "office_code")


def validate_intake(session, data) -> dict:
    """Clean values for every intake field, or ValidationFailed naming each bad field."""
    check = validation.Collector()
    check.field("name", validation.text, data.get("name"), required=True, max_len=NAME_MAX, single_line=True)
    raw_phone = check.field("phone", validation.text, data.get("phone"), required=True, max_len=40, single_line=True)
    if raw_phone is not None:
        phone = normalise_phone(raw_phone)  # a mobile number or a fixed line (which gets no texts: phones.is_mobile)
        if phone is None:
            check.fail("phone", _l("Enter a valid mobile number, or a landline number with its area code, "
                                   "e.g. 138 0013 8000 or 010-6512 3456."))
        check.values["phone"] = phone
    problem_type = data.get("problem_type")
    if problem_type in (None, ""):
        check.fail("problem_type", _l("This field is required."))
    elif not isinstance(problem_type, str) or problem_type not in ProblemType.__members__:
        check.fail("problem_type", _l("Choose one of the listed problem types."))
    check.values["problem_type"] = problem_type
    check.field("description", validation.text, data.get("description"), required=True,
                min_len=DESCRIPTION_MIN, max_len=DESCRIPTION_MAX)
    department_id = check.field("department_id", validation.identifier, data.get("department_id"), required=False)
    if department_id is not None:
        department = session.get(Department, department_id)
        if department is None or not department.active:
            check.fail("department_id", _l("No such department."))
    check.field("service_item", validation.text, data.get("service_item"), required=False,
                max_len=SERVICE_ITEM_MAX, single_line=True)
    office_code = data.get("office_code")
    if office_code in (None, ""):
        # The root office: `file_ticket` reads its id with the tracking number (no round trip of its own here,
        # which would also begin the session's transaction before the counter's statement).
        check.values["office_id"] = None
    else:
        office = offices.by_code(session, office_code, active_only=True)
        if office is None:
            check.fail("office_code", _l("No such window."))
        check.values["office_id"] = office.id if office is not None else None
    return check.raise_if_errors()


def validate_filing(session, data, files, *, validate=None) -> tuple[dict, list]:
    """The intake fields (`validate` of them: `validate_intake` by default) and the files together: clean values and
    checked files, or one ValidationFailed naming every bad field, `attachments` among them."""
    fields: dict = {}
    try:
        values = (validate or (lambda raw: validate_intake(session, raw)))(data)
    except ValidationFailed as error:
        values, fields = {}, dict(error.fields or {})
    try:
        checked = attachments.checked_or_refused(files)
    except ValidationFailed as error:
        checked = []
        fields.update(error.fields)
    if fields:
        raise ValidationFailed(fields=fields)
    return values, checked


@functools.lru_cache(maxsize=None)
def _number_statement(dialect: str, cluster: bool | None = None):
    """Bump the day's counter by one (creating it at 1); on PostgreSQL also take the new ticket's id and its
    filing event's id from their sequences, in the same statement, and (`cluster` not None: with a service item or
    without) the earlier cases the new one may join the cluster of (`duplicates.cluster_candidates`). Built once per
    dialect and kind."""
    bump = upsert(dialect, TrackingCounter, {"day": sa.bindparam("day"), "value": 1}, ["day"],
                  update={"value": TrackingCounter.value + 1}).returning(TrackingCounter.value)
    if dialect != "postgresql":
        return bump
    bumped = bump.cte("bumped")
    root = offices.root_id_query().scalar_subquery()  # the root office, for a filing that names none
    # The counter's own transaction need not wait for its commit to reach the disk (synchronous_commit off, for
    # this transaction only): the ticket's transaction commits after it, and PostgreSQL flushes its log in
    # order, so no ticket with this number is durable unless the bump is. A crash can lose only bumps whose
    # numbers no committed ticket carries. Filing then waits for one flush, not two.
    columns = [bumped.c.value, sa.func.nextval(sa.func.pg_get_serial_sequence(Ticket.__tablename__, "id")),
               sa.func.nextval(sa.func.pg_get_serial_sequence(Event.__tablename__, "id")),
               sa.literal_column("set_config('synchronous_commit', 'off', true)"), root]
    if cluster is not None:  # 一类事: the cluster read, with no round trip of its own
        columns.append(duplicates.cluster_candidates(
            cluster, sa.func.coalesce(sa.bindparam("office_id", type_=sa.Integer), root)))
    return sa.select(*columns)


def take_number(session, at: datetime, cluster: dict | None = None) -> tuple[str, int, int, int, list | None]:
    """A new ticket's tracking number, BJ20261122-0001 (the local date and that day's sequence, unique under
    concurrent filing), the id it will have and the id of its filing event (known beforehand, so the rows the
    filing's reactions write can name it as their cause).

    The counter row is bumped with one atomic upsert. On PostgreSQL that happens in its own autocommit
    statement, which also takes the id from the table's sequence, so the row lock is not held while the
    rest of the filing is written; the number may then skip if the filing fails, which is harmless. SQLite
    has a single writer anyway, so there it joins the caller's transaction, whose write lock also makes the
    next id safe to take. Also the root office's id (read in the same statement on PostgreSQL) and, on PostgreSQL
    when `cluster` gives the cluster read's parameters (`duplicates.cluster_params` and `office_id`) and the statement
    runs on the session's own connection (nothing of this transaction unseen), its rows; None otherwise: the caller
    reads them itself.
    """
    day = clock.local(at).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    candidates = None
    if dialect == "postgresql":
        if cluster is not None and not nothing_begun(session.connection()):
            # The counter's statement would run on a connection of its own, which cannot see what this transaction
            # wrote (the demo files many cases in one): the caller reads the cluster's rows in the session instead.
            cluster = None
        statement = _number_statement(dialect, None if cluster is None else "item" in cluster)
        row = autocommit_row(session, statement, {"day": day, **(cluster or {})})
        value, ticket_id, event_id, _, root_id = row[:5]
        if cluster is not None:
            candidates = row[5]
    else:
        value = session.execute(_number_statement(dialect), {"day": day}).scalar_one()
        ticket_id = session.scalar(sa.select(sa.func.coalesce(sa.func.max(Ticket.id), 0) + 1))
        event_id = session.scalar(sa.select(sa.func.coalesce(sa.func.max(Event.id), 0) + 1))
        root_id = offices.root_id(session)
    return f"BJ{day}-{value:04d}", ticket_id, event_id, root_id, candidates


@dataclass(frozen=True)
class Filed:
    ticket: Ticket
    query_code: str  # shown to the citizen once; only its hash is stored


def file_ticket(session, data: dict, *, channel: str = "web", actor=None, files=(), held=(),
                privacy_notice: str | None = None, filing_data: dict | None = None, commit: bool = False) -> Filed:
    """Create a submitted ticket from validated intake data (see `validate_intake`); `actor` is the member of
    staff filing for a walk-in or a caller (None: the citizen). `files`: checked attachments
    (`attachments.check`); `held`: attachments the public form kept for this filing (`attachments.hold`);
    `privacy_notice`: the version of the 个人信息告知 the citizen agreed to on the form, kept in the filing event;
    `filing_data`: what else the filing event keeps (Open311's place: tickets/open311_mapping.py); `commit`: commit
    the session with the filing (a citizen's filing, which writes nothing else: on PostgreSQL its rows are then
    a transaction of their own, `insert_pending(commit=True)`)."""
    now = clock.now()
    code = secrets.new_query_code()
    # 一类事 and 可能重复 (tickets/duplicates.py): the text as the similarity reads it, and the cluster of the most similar
    # earlier case at this window about this service item, read with the number on PostgreSQL (elsewhere just
    # after it), before any of the filing's rows is added.
    match_text = duplicates.match_text_of(data["description"], data.get("service_item"))
    cluster = {"office_id": data.get("office_id"), **duplicates.cluster_params(
        data.get("service_item"), data["problem_type"], now)} if match_text else None
    tracking_no, ticket_id, event_id, root_id, candidates = take_number(session, now, cluster)
    office_id = data.get("office_id") or root_id
    if cluster is None:
        cluster_id = None
    elif candidates is not None:
        cluster_id = duplicates.cluster_of(candidates, match_text)
    else:
        cluster_id = duplicates.cluster_for(session, office_id=office_id, service_item=data.get("service_item"),
                                            problem_type=data["problem_type"], match_text=match_text, now=now)
    ticket = new_row(
        Ticket, id=ticket_id, tracking_no=tracking_no, query_code_hash=secrets.hash_query_code(code),
        citizen_name=data["name"], phone=data["phone"], problem_type=data["problem_type"],
        service_item=data.get("service_item"), description=data["description"], channel=channel,
        office_id=office_id, suggested_department_id=data.get("department_id"),
        created_at=now, updated_at=now, match_text=match_text, cluster_id=cluster_id or ticket_id,
        source=data.get("source"), external_ref=data.get("external_ref"),
    )
    # Filing reads nothing else and, on PostgreSQL, writes its rows in one statement (it is the hot path: issue 11,
    # item 20): the first deadline is planned before the ticket is written, the ticket's id is known
    # beforehand, and the reactions to the filing event add their rows (the receipt SMS, the escalation
    # steps) before anything is written, so nothing may flush while they do.
    accept = deadlines.planned(ticket, DeadlineKind.accept, now)
    accept.ticket_id, accept.round = ticket.id, 1
    ticket.due_at, ticket.due_kind, ticket.due_provisional = accept.due_at, accept.kind, accept.provisional
    session.add_all((ticket, accept))
    with session.no_autoflush:
        filing = {**(filing_data or {}), "channel": channel}
        if files or held:
            filing["attachments"] = len(files) + len(held)
        if privacy_notice:
            filing["privacy_notice"] = privacy_notice
        record(session, ticket, actor or CITIZEN, "file", now, public=True, data=filing,
               event_id=event_id, query_code=code)
    last = commit and not files and not held and ticket.external_ref is None  # the rows are all the filing writes
    if ticket.external_ref is None:
        # the caller may act on the ticket; queries find its other rows
        insert_pending(session, keep=(ticket,), commit=last)
    else:
        _insert_once(session, ticket)
    if files:
        attachments.keep(session, list(files), ticket_id=ticket.id, event_id=event_id,
                         source=AttachmentSource.citizen, visible=True, uploaded_by=actor.user_id if actor else None)
    attachments.attach_held(session, list(held), ticket.id, event_id)
    if commit and not last:
        session.commit()
    return Filed(ticket, code)


def _insert_once(session, ticket: Ticket) -> None:
    """`insert_pending` for a case another system handed over: when the same system's filing of the same number
    committed meanwhile (the unique index waited for it), 409 naming that case rather than a database error."""
    savepoint = session.connection().begin_nested()  # the connection's own: the session's would flush first
    try:
        insert_pending(session, keep=(ticket,))
    except sa.exc.IntegrityError:
        savepoint.rollback()
        with session.no_autoflush:  # the filing's rows are still pending: the view's rollback drops them
            existing = filed_as(session, ticket.source, ticket.external_ref)
        if existing is None:
            raise
        raise DuplicateExternalRef(existing) from None
    savepoint.commit()


def find_for_citizen(session, tracking_no, code) -> Ticket | None:
    """The ticket only when the number and the query code both match; otherwise None, whichever was wrong."""
    if not isinstance(tracking_no, str) or not isinstance(code, str) or len(tracking_no) > 24 or len(code) > 40:
        return None
    ticket = session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no.strip().upper()))
    if ticket is None or not secrets.check_query_code(ticket.query_code_hash, code):
        return None
    return ticket


# --- 找回查询码: a new query code by SMS to the number the case was filed with --------------------------------------

# A number gets at most this many new codes a day, whatever client asks: the text costs money and must not become
# a way to pester someone (the per-client limit is the lookup's, `tickets.api.lookup_limit`).
RECOVERIES_PER_NUMBER_PER_DAY = 3


def recover_query_code(session, tracking_no, phone) -> None:
    """找回查询码: when `tracking_no` names a case filed with the mobile number `phone`, give it a new query code (the
    old one stops working) and text it to that number at once (quiet hours do not hold it: the citizen just asked).
    Otherwise nothing happens; the caller answers the same either way, so nobody learns which cases exist or whose
    number filed them. A malformed number or tracking number is a 422 (that says nothing about any case).

    At most RECOVERIES_PER_NUMBER_PER_DAY codes a day go to one number; more requests are answered the same and
    change nothing."""
    check = validation.Collector()
    number = check.field("tracking_no", validation.text, tracking_no, required=True, max_len=24, single_line=True)
    mobile = normalise_mobile(phone) if isinstance(phone, str) else None
    if mobile is None:
        # The new code is texted, so only to a mobile number: a case filed with a landline has no way here.
        check.fail("phone", _l("A new code is sent by SMS, so only to a mobile number. If the case was filed with "
                               "a landline, contact the window with the tracking number.")
                   if normalise_phone(phone) is not None
                   else _l("Enter the mainland mobile number the case was filed with."))
    check.raise_if_errors()
    ticket = session.scalar(sa.select(Ticket).where(Ticket.tracking_no == number.strip().upper()).with_for_update())
    if ticket is None or ticket.phone != mobile:
        return
    now = clock.now()
    since = now - timedelta(days=1)
    recent = session.scalar(sa.select(sa.func.count()).select_from(Event).join(Ticket, Ticket.id == Event.ticket_id)
                            .where(Event.action == RECOVER_CODE, Event.at >= since,
                                   Ticket.phone_index == crypto.phone_index(mobile)))
    if recent >= RECOVERIES_PER_NUMBER_PER_DAY:
        return
    code = secrets.new_query_code()
    ticket.query_code_hash = secrets.hash_query_code(code)
    record(session, ticket, CITIZEN, RECOVER_CODE, now, from_status=ticket.status, query_code=code)


# --- filing by staff, for a walk-in or a caller -------------------------------------------------------------------

STAFF_INTAKE_FIELDS = INTAKE_FIELDS + ("channel",)

# Integration API: a system that hands cases over (a 12345 hotline platform) names itself with a short code and
# gives its own number for the case.
SOURCE = re.compile(r"[a-z0-9_-]{1,32}")
EXTERNAL_REF_MAX = 64
INTEGRATION_CHANNEL = Channel.hotline  # the channel of a case another system hands over, unless it names one


def validate_reference(data) -> tuple[dict, dict]:
    """`source` (lowercase letters, digits, `-` and `_`, at most 32) and `external_ref` (at most 64 printable
    characters on one line, only with a source), both optional: their clean values and the messages of the bad ones."""
    values, fields = {"source": None, "external_ref": None}, {}
    source = data.get("source")
    if source not in (None, ""):
        if not isinstance(source, str) or not SOURCE.fullmatch(source):
            fields["source"] = _l("Use up to 32 lowercase letters, digits, “-” or “_”, e.g. 12345.")
        else:
            values["source"] = source
    try:
        reference = validation.text(data.get("external_ref"), required=False, max_len=EXTERNAL_REF_MAX,
                                    single_line=True)
    except validation.FieldError as error:
        fields["external_ref"] = error.message
    else:
        if reference is not None and not reference.isprintable():
            fields["external_ref"] = _l("Use printable characters only.")
        elif reference is not None and source in (None, ""):
            fields["source"] = _l("Name the system whose case number this is.")
        values["external_ref"] = reference
    return values, fields


def filed_as(session, source: str | None, external_ref: str | None) -> str | None:
    """The tracking number of the case `source` already filed with its number `external_ref`, if any."""
    if source is None or external_ref is None:
        return None
    return session.scalar(sa.select(Ticket.tracking_no).where(Ticket.external_ref == external_ref,
                                                              Ticket.source == source))


def staff_windows(session, actor) -> list[Office]:
    """The active windows a member of staff may file at, depth first: an office member's own window and those
    below it (`offices.subtree`), an administrator's every window."""
    rows = offices.tree(session, active_only=True)
    if actor.role == Role.admin:
        return rows
    top = session.get(Office, actor.office_id) if actor.office_id is not None else None
    return [o for o in rows if top is not None and o.path.startswith(top.path)]


def validate_staff_intake(session, data, actor) -> dict:
    """`validate_intake` plus the channel (one of STAFF_CHANNELS) and the window, which must be one of
    `staff_windows(actor)` (default: the actor's own window, else the root). Every bad field in one
    ValidationFailed."""
    fields: dict = {}
    raw = dict(data)
    if raw.get("office_code") in (None, "") and actor.office_id is not None:
        raw["office_code"] = session.scalar(sa.select(Office.code).where(Office.id == actor.office_id))
    try:
        values = validate_intake(session, raw)
    except ValidationFailed as error:
        values, fields = {}, dict(error.fields or {})
    if "office_code" not in fields:
        allowed = {o.id for o in staff_windows(session, actor)}
        office_id = values.get("office_id") if values else _office_id(session, raw.get("office_code"))
        if office_id is not None and office_id not in allowed:
            fields["office_code"] = _l("You may file only at your own window or one below it.")
    reference, reference_errors = validate_reference(data)
    fields.update(reference_errors)
    channel = data.get("channel")
    if channel in (None, "") and reference["source"] is not None:
        channel = INTEGRATION_CHANNEL.value
    if channel in (None, ""):
        fields["channel"] = _l("This field is required.")
    elif not isinstance(channel, str) or channel not in {c.value for c in STAFF_CHANNELS}:
        fields["channel"] = _l("Choose one of the listed channels.")
    if fields:
        raise ValidationFailed(fields=fields)
    return {**values, **reference, "channel": channel}


def _office_id(session, code) -> int | None:
    if code in (None, ""):
        return offices.root_id(session)
    office = offices.by_code(session, code, active_only=True)
    return office.id if office is not None else None


def file_for_caller(session, data, actor, files=(), *, filing_data: dict | None = None) -> Filed:
    """File a case on behalf of a walk-in or a caller (no commit): checked by `validate_staff_intake`, recorded
    with the staff member as the filing event's actor and the channel they chose; `files` (`attachments.Incoming`)
    are what the citizen brought, scanned or photographed; `filing_data` goes with the filing event (`file_ticket`)."""
    values, checked = validate_filing(session, data, files, validate=lambda raw: validate_staff_intake(session, raw, actor))
    existing = filed_as(session, values["source"], values["external_ref"])
    if existing is not None:
        raise DuplicateExternalRef(existing)
    return file_ticket(session, values, channel=values["channel"], actor=actor, files=checked, filing_data=filing_data)
