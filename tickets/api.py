"""The JSON API of API.md: public filing and lookup, and the staff queue and actions."""
from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request, url_for
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address

from . import (attachments, bulk, clock, duplicates, idempotency, intake, knowledge, lists, notices, offices, phones,
               workflow)
from .access import current_staff, filing_token, ticket_for, visible_tickets
from .db import db
from .errors import Forbidden, NotFound, ValidationFailed
from .extensions import csrf, public_limit, public_limits_off
from .http import body_and_files, json_body
from .labels import PROBLEM_TYPE_LABELS
from .models import OFFICE_ROLES, OPEN_STATUS_VALUES, Department, ProblemType, Role, Status, Ticket, TokenScope
from .clock import iso
from .presenters import list_items, possible_duplicates, public_offices, public_view, staff_phone, staff_view
from .privacy import access as privacy_access
from .validation import Collector, integer, text
from .workflow import Actor

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # the public endpoints carry no ambient authority; staff writes check CSRF in current_staff()

MAX_PER_PAGE = 100


# With RATELIMIT_PUBLIC=off the routes are exempt; the limiter still parses the string, so give it a valid one.
UNUSED_LIMIT = "1000/second"


def filing_limit() -> str:
    """The public's per-client limit, or, for a request filing with a live API token, that token's own budget."""
    if public_limits_off():
        return UNUSED_LIMIT
    return current_app.config["RATELIMIT_INTEGRATION" if filing_token() else "RATELIMIT_PUBLIC"]


def filing_key() -> str:
    """Who a filing counts against: its API token (a 12345 platform files for a whole city from one address), else
    the client's address."""
    token = filing_token()
    return f"token:{token.id}" if token is not None else get_remote_address()


def lookup_limit() -> str:
    return UNUSED_LIMIT if public_limits_off() else current_app.config["RATELIMIT_LOOKUP"]


# --- public ------------------------------------------------------------------------------------------

@bp.get("/departments")
@public_limit(lookup_limit, "public-read")
def departments():
    """The departments a citizen may name when filing; with `office_code`, those that window can transfer to."""
    code = request.args.get("office_code")
    if code is None:
        query = sa.select(Department).where(Department.active.is_(True)).order_by(Department.code)
    else:
        office = offices.by_code(db.session, code, active_only=True)
        if office is None:
            raise ValidationFailed(fields={"office_code": _l("No such window.")})
        query = offices.transfer_departments(db.session, office)
    return jsonify([{"id": d.id, "code": d.code, "name": d.name} for d in db.session.scalars(query)])


@bp.get("/offices")
@public_limit(lookup_limit, "public-read")
def office_list():
    """The active windows, parents before their children (the public form's area picker)."""
    return jsonify(public_offices(db.session))


@bp.get("/problem-types")
@public_limit(lookup_limit, "public-read")
def problem_types():
    """The problem types of the contract with their labels."""
    return jsonify([{"code": p.value, "label": str(PROBLEM_TYPE_LABELS[p.value])} for p in ProblemType])


@bp.post("/tickets")
@public_limit(filing_limit, "filing", key_func=filing_key)
def file_ticket():
    """File a new grievance; answers the tracking number and the query code (shown only this once). JSON, or
    multipart/form-data with the same fields and up to five `files[]` parts. With a staff token (office staff),
    a filing on behalf of a walk-in or a caller (帮办代办): `channel` (window, phone, hotline, web) is then required and
    the window must be the staff member's own or one below it (`intake.file_for_caller`); without one the case's
    channel is `api`, whatever the body says. A staff token's filing may name the system that hands the case over
    and its number for it (`source`, `external_ref`: the channel is then `hotline` unless given; a number filed
    before is 409 `duplicate_external_ref`) and carry an `Idempotency-Key` (tickets/idempotency.py)."""
    data, files = body_and_files()
    if request.headers.get("Authorization"):
        return _file_on_behalf(data, files)
    values, checked = intake.validate_filing(db.session, data, files)
    filed = intake.file_ticket(db.session, values, channel="api", files=checked, commit=True)
    response = jsonify(_filing_answer(filed.ticket, filed.query_code))
    response.status_code = 201
    response.headers["Location"] = url_for(".public_ticket", tracking_no=filed.ticket.tracking_no)
    return response


def _filing_answer(ticket: Ticket, query_code: str | None) -> dict:
    """API.md's answer to a filing, exactly (without the query code only when it can no longer be known)."""
    body = {"tracking_no": ticket.tracking_no, "query_code": query_code, "status": ticket.status,
            "created_at": iso(ticket.created_at)}
    if query_code is None:
        del body["query_code"]
    return body


def _file_on_behalf(data: dict, files: list):
    """帮办代办 and integrations: a member of the office's staff files with a token whose scope allows filing."""
    actor = Actor.of(current_staff(scope=TokenScope.file.value))
    if actor.role not in OFFICE_ROLES:
        raise Forbidden(_l("Only a window's office staff file cases on behalf of citizens."))

    def staff_answer(ticket: Ticket, query_code: str | None, duplicates_of: list) -> dict:
        return {**_filing_answer(ticket, query_code), "channel": ticket.channel, "source": ticket.source,
                "external_ref": ticket.external_ref, "possible_duplicates": duplicates_of}

    def perform() -> idempotency.Answer:
        filed = intake.file_for_caller(db.session, data, actor, files)
        ticket = filed.ticket
        # 可能重复: for the staff member filing, the cases that are probably the same problem (never for a citizen)
        found = possible_duplicates(db.session, duplicates.possible_duplicates(db.session, ticket, actor, clock.now()))
        return idempotency.Answer(201, staff_answer(ticket, filed.query_code, found), ticket.id,
                                  {"Location": url_for(".public_ticket", tracking_no=ticket.tracking_no)})

    def rebuild(ticket_id: int) -> dict:  # a kept answer that no longer opens: the case without its query code
        return staff_answer(db.session.get(Ticket, ticket_id), None, [])

    return idempotency.run(db.session, actor.user_id, data, files, perform, rebuild)


def _citizen_ticket(tracking_no: str) -> Ticket:
    ticket = intake.find_for_citizen(db.session, tracking_no, request.args.get("code", ""))
    if ticket is None:
        raise NotFound(_l("No case matches this tracking number and query code."))
    return ticket


RECOVERY_ANSWER = _l("If this tracking number was filed with this mobile number, a new query code is on its way to it "
                     "by SMS; the old code no longer works.")


@bp.post("/tickets/recover-code")
@public_limit(lookup_limit, "lookup")
def recover_code():
    """找回查询码: {"tracking_no", "phone"} → 202 and the same answer whether or not they match (see
    `intake.recover_query_code`); 422 for a malformed number."""
    data = json_body()
    intake.recover_query_code(db.session, data.get("tracking_no"), data.get("phone"))
    db.session.commit()
    return jsonify({"message": str(RECOVERY_ANSWER)}), 202


@bp.get("/tickets/<tracking_no>")
@public_limit(lookup_limit, "lookup")
def public_ticket(tracking_no):
    """A citizen's view of their case: status, public timeline, reply and rating."""
    ticket = _citizen_ticket(tracking_no)
    survey = workflow.open_survey_for(db.session, ticket, clock.now())
    return jsonify(public_view(db.session, ticket, survey_open=survey is not None))


@bp.post("/tickets/<tracking_no>/rating")
@public_limit(lookup_limit, "lookup")
def rate_ticket(tracking_no):
    """Rate the open satisfaction survey of a closed case (1 very satisfied … 5 very dissatisfied)."""
    ticket = _citizen_ticket(tracking_no)
    data = json_body()
    workflow.rate(db.session, ticket, data.get("score"), data.get("comment"), channel="web")
    db.session.commit()
    return jsonify(public_view(db.session, ticket))


@bp.post("/tickets/<tracking_no>/supplements")
@bp.post("/tickets/<tracking_no>/supplement")  # the first name it had, kept for clients written against it
@public_limit(lookup_limit, "lookup")
def supplement_ticket(tracking_no):
    """补充材料: the citizen adds information to an open case ({"content"}, or multipart/form-data with `content` and up
    to five `attachments` files); 409 once it is closed."""
    ticket = _citizen_ticket(tracking_no)
    data, files = body_and_files()
    workflow.supplement(db.session, ticket, data.get("content"), files)
    db.session.commit()
    return jsonify(public_view(db.session, ticket))


@bp.post("/tickets/<tracking_no>/withdraw")
@public_limit(lookup_limit, "lookup")
def withdraw_ticket(tracking_no):
    """撤回: the citizen withdraws a case not yet accepted ({"reason"?}); 409 once accepted."""
    ticket = _citizen_ticket(tracking_no)
    data = json_body()
    workflow.withdraw(db.session, ticket, data.get("reason"))
    db.session.commit()
    return jsonify(public_view(db.session, ticket))


@bp.post("/tickets/<tracking_no>/deletion-request")
@public_limit(lookup_limit, "lookup")
def request_deletion(tracking_no):
    """删除个人信息: the citizen asks for their name and number in this case to be deleted ({"reason"?}) → 202: the
    case is anonymised by the scheduler once it has ended for good (`workflow.request_deletion`); 409 once
    anonymised or already requested."""
    ticket = _citizen_ticket(tracking_no)
    data = json_body()
    workflow.request_deletion(db.session, ticket, data.get("reason"))
    db.session.commit()
    return jsonify(public_view(db.session, ticket)), 202


@bp.delete("/tickets/<tracking_no>/deletion-request")
@public_limit(lookup_limit, "lookup")
def withdraw_deletion_request(tracking_no):
    """The citizen takes back a deletion request before it is carried out → 200 and the view; 409 once the case is
    anonymised or when none waits (`workflow.withdraw_deletion_request`)."""
    ticket = _citizen_ticket(tracking_no)
    workflow.withdraw_deletion_request(db.session, ticket)
    db.session.commit()
    return jsonify(public_view(db.session, ticket))


@bp.get("/tickets/<tracking_no>/attachments/<int:attachment_id>")
@public_limit(lookup_limit, "lookup")
def public_attachment(tracking_no, attachment_id):
    """A file of the case the citizen may see (`?code=` the query code; `&thumbnail=1` an image's thumbnail)."""
    return attachments.download(db.session, _citizen_ticket(tracking_no).id, attachment_id, citizen=True)


# --- staff -------------------------------------------------------------------------------------------

def _list_filters() -> dict:
    args = request.args
    check = Collector()
    status = args.get("status") or None
    if status is not None and status not in Status.__members__:
        check.fail("status", _l("Unknown status."))
    check.values["status"] = status
    check.field("department_id", integer, args.get("department_id"), required=False, minimum=1)
    office_code = args.get("office_code") or None
    check.values["office_id"] = None
    if office_code is not None:
        office = offices.by_code(db.session, office_code)
        if office is None:
            check.fail("office_code", _l("No such window."))
        else:
            check.values["office_id"] = office.id
    overdue = (args.get("overdue") or "").lower()
    if overdue not in ("", "true", "false", "1", "0"):
        check.fail("overdue", _l("Must be true or false."))
    check.values["overdue"] = overdue in ("true", "1")
    assignee = args.get("assignee") or None
    if assignee not in (None, "me", "none"):
        check.fail("assignee", _l("Must be me or none."))
    check.values["assignee"] = assignee
    check.values["q"] = lists.search_condition(args.get("q", "")[:200])
    # Integration API: the cases a system handed over (`source`), one of them by its own number (`external_ref`)
    source = args.get("source") or None
    if source is not None and not intake.SOURCE.fullmatch(source):
        check.fail("source", _l("Use up to 32 lowercase letters, digits, “-” or “_”, e.g. 12345."))
    check.values["source"] = source
    check.field("external_ref", text, args.get("external_ref"), required=False, max_len=intake.EXTERNAL_REF_MAX,
                single_line=True)
    check.field("page", integer, args.get("page"), required=False, minimum=1, maximum=1_000_000)
    check.field("per_page", integer, args.get("per_page"), required=False, minimum=1, maximum=MAX_PER_PAGE)
    return check.raise_if_errors()


@bp.get("/staff/tickets")
def staff_tickets():
    """The tickets this staff member may see, filtered and paged; phone numbers masked."""
    actor = Actor.of(current_staff())
    filters = _list_filters()
    page, per_page = filters["page"] or 1, filters["per_page"] or 20
    now = clock.now()
    query = visible_tickets(actor)
    if filters["status"]:
        query = query.where(Ticket.status == filters["status"])
    if filters["department_id"]:
        query = query.where(Ticket.department_id == filters["department_id"])
    if filters["office_id"]:  # that window's subtree, within what the caller may see (outside it: an empty list)
        query = query.where(offices.ticket_in_subtree(filters["office_id"]))
    if filters["overdue"]:
        query = query.where(Ticket.overdue(now))
    if filters["assignee"] == "me":  # 我的案件: the open cases the caller works (owner or handler)
        query = query.where(lists.worked_by(actor.user_id))
    elif filters["assignee"] == "none":  # open cases nobody on the caller's side works yet
        side = Ticket.handler_id if actor.role == Role.department else Ticket.owner_id
        query = query.where(side.is_(None), Ticket.status.in_(OPEN_STATUS_VALUES))
    if filters["q"] is not None:
        query = query.where(filters["q"])
    if filters["source"]:
        query = query.where(Ticket.source == filters["source"])
    if filters["external_ref"]:
        query = query.where(Ticket.external_ref == filters["external_ref"])
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    rows = list(db.session.scalars(
        query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ))
    return jsonify({"items": list_items(db.session, rows, now), "total": total, "page": page, "per_page": per_page})


@bp.get("/staff/tickets/<tracking_no>")
def staff_ticket(tracking_no):
    """The full ticket with deadlines, every event and the actions this caller may take."""
    actor = Actor.of(current_staff())
    ticket = ticket_for(actor, tracking_no)
    view = staff_view(db.session, ticket, actor, clock.now(),
                      full_phone=privacy_access.api_shows_phone(db.session, actor, ticket))
    db.session.commit()  # the access log's line for the whole number, if shown
    return jsonify(view)


@bp.get("/staff/tickets/<tracking_no>/attachments/<int:attachment_id>")
def staff_attachment(tracking_no, attachment_id):
    """A file of a case this staff member may see (`?thumbnail=1`: an image's thumbnail)."""
    actor = Actor.of(current_staff())
    return attachments.download(db.session, ticket_for(actor, tracking_no).id, attachment_id, citizen=False)


@bp.post("/staff/tickets/bulk/<action>")
def staff_bulk(action):
    """One action on many cases: {"tickets": ["BJ…", {"tracking_no": "BJ…", "version": 3}, …], …the action's body};
    each case through the workflow with its own version and transaction; 200 with one result per tracking number."""
    actor = Actor.of(current_staff())
    bulk.check_action(action)
    data = json_body()
    items = bulk.parse_items(data.get("tickets"))
    payload = {key: value for key, value in data.items() if key not in ("tickets", "version")}
    return jsonify(bulk.summary(action, bulk.run(db.session, actor, action, items, payload)))


@bp.post("/staff/tickets/<tracking_no>/<action>")
def staff_action(tracking_no, action):
    """Take one workflow action on a ticket; `version` in the body, when given, must match. JSON, or
    multipart/form-data for an action that takes files (reply, resolve: `attachments` parts)."""
    actor = Actor.of(current_staff())
    data, files = body_and_files()
    if action not in workflow.ACTIONS:
        raise NotFound(_l("Unknown action."))
    # A repeat of a request with an Idempotency-Key gets its kept answer even when the action took the case out of the
    # caller's sight (refer_up, return): the case is looked up when the action is done, not before the key is read.
    ticket = ticket_for(actor, tracking_no) if idempotency.requested_key() is None else None
    check = Collector()
    version = check.field("version", integer, data.get("version"), required=False, minimum=1)
    check.raise_if_errors()
    payload = {key: value for key, value in data.items() if key != "version"}
    if files:
        payload[attachments.FIELD] = files

    def perform() -> idempotency.Answer:
        case = ticket or ticket_for(actor, tracking_no)
        workflow.perform(db.session, case, actor, action, payload, expected_version=version)
        full = privacy_access.api_shows_phone(db.session, actor, case)  # logged in the action's transaction
        return idempotency.Answer(200, staff_view(db.session, case, actor, clock.now(), full_phone=full), case.id)

    def rebuild(_ticket_id) -> dict:  # a kept answer that no longer opens: the ticket as it is now, if still the caller's
        return staff_view(db.session, ticket_for(actor, tracking_no), actor, clock.now())

    def replayed(answer: idempotency.Answer) -> idempotency.Answer:
        # The number as the caller may see it now (the case's lead or its number may have changed since the answer
        # was kept), each whole showing logged as the first answer's was; masked once the case has left the caller.
        case = db.session.scalar(visible_tickets(actor).where(Ticket.tracking_no == tracking_no))
        if case is None:
            gone = db.session.get(Ticket, answer.ticket_id) if answer.ticket_id is not None else None
            return dataclasses.replace(answer, body={**answer.body, "phone": phones.mask(gone.phone) if gone else None})
        full = privacy_access.api_shows_phone(db.session, actor, case)
        phone = staff_phone(case, actor, full_phone=full)
        return dataclasses.replace(answer, body={**answer.body, "phone": phone})

    return idempotency.run(db.session, actor.user_id, data, files, perform, rebuild, replayed)


@bp.get("/staff/tickets/<tracking_no>/knowledge")
def staff_knowledge(tracking_no):
    """知识库: the entries this caller may start the case's answer from, best first (`knowledge.suggest`); 404 for a
    case the caller cannot see."""
    actor = Actor.of(current_staff())
    ticket = ticket_for(actor, tracking_no)
    return jsonify(knowledge.describe(db.session, knowledge.suggest(db.session, ticket, actor)))


# --- the bell (通知) -------------------------------------------------------------------------------------

@bp.get("/staff/notices")
def staff_notices():
    """The caller's bell: unread count, their open cases due today, unread notices (newest first), then the last read."""
    actor = Actor.of(current_staff())
    return jsonify(notices.summary(db.session, actor, clock.now()))


@bp.post("/staff/notices/read")
def read_notices():
    """Mark the caller's notices read: {"ids": [...]} or {"all": true} → {"unread"}; ids of notices that are not the
    caller's are ignored (nothing says whether they exist)."""
    actor = Actor.of(current_staff())
    marking = notices.parse_marking(json_body())
    notices.mark_read(db.session, actor.user_id, clock.now(), ids=marking["ids"], every=marking["all"])
    db.session.commit()
    return jsonify({"unread": notices.unread_count(db.session, actor)})


# --- 一类事 and 主动治理 (tickets/clusters.py) --------------------------------------------------------------------------

@bp.get("/staff/clusters")
def staff_clusters():
    """一类事: the recurring problems this caller sees, the largest first (`clusters.listing`); `?office=<code>`: of that
    window and those below it. 403 for a department's handlers, 422 for an unknown window."""
    from . import clusters

    actor = Actor.of(current_staff())
    if not clusters.may_list(actor):
        raise Forbidden()
    office_id, code = None, request.args.get("office")
    if code not in (None, ""):
        office = offices.by_code(db.session, code)
        if office is None:
            raise ValidationFailed(fields={"office": _l("No such window.")})
        office_id = office.id
    return jsonify(clusters.to_json(clusters.listing(db.session, actor, office_id=office_id, now=clock.now())))


@bp.post("/staff/clusters/<int:cluster_id>/governance")
def open_governance(cluster_id):
    """主动治理: open the office's own task from a 一类事: {"department_id", "working_days"?, "content"} → 201 and the task
    as the staff ticket view shows it (`clusters.open_governance`: 403, 404, 409, 422)."""
    from . import clusters

    actor = Actor.of(current_staff())
    data = json_body()
    ticket = clusters.open_governance(db.session, actor, cluster_id, data.get("department_id"),
                                      data.get("working_days"), data.get("content"))
    db.session.commit()
    response = jsonify(staff_view(db.session, ticket, actor, clock.now()))
    response.status_code = 201
    response.headers["Location"] = url_for(".staff_ticket", tracking_no=ticket.tracking_no)
    return response
