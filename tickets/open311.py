"""Open311 GeoReport v2 at /open311/v2/: the services a case can be about and the cases as service requests, for the
12345 platform and any GeoReport client, in JSON or XML (`.json`, `.xml`), errors in the spec's own shape.

Services are the problem types (service_code `too_slow`, ...) and the active service items of the catalogue
(`item-<id>`). A request is filed on behalf of a citizen by an API key of scope `file` (`intake.file_for_caller`, as the
staff API files for a caller; channel 12345) and read back by its tracking number. Citizens' grievances are personal
data: without an API key of scope `read` a request shows only its number, status, service, times and the agency
handling it; with one, the key's owner sees what their role sees (`access.visibility`), description and location too.
What Open311 calls a request's fields and how they map to a case's is `tickets/open311_mapping.py`.
"""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from . import clock
from . import open311_mapping as mapping
from .access import user_for_api_key, visibility
from .api import filing_key, filing_limit, lookup_limit
from .db import db
from .errors import BadRequest, BanjieError, Forbidden, InsufficientScope, NotFound, Unauthorized, ValidationFailed
from .extensions import csrf, public_limit
from .http import DATABASE_ERRORS, HTTP_ERRORS, _seconds_until_reset, database_unavailable, rollback_after_error
from .models import Department, Event, Office, ServiceItem, Ticket, TokenScope
from .workflow import Actor

log = logging.getLogger("banjie.open311")

bp = Blueprint("open311", __name__, url_prefix="/open311")
csrf.exempt(bp)  # a request is authorised by its API key, never by a browser's cookie

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-15T00:00:00+08:00"  # when this endpoint's behaviour last changed (the discovery file says)
MIMETYPES = {"json": "application/json", "xml": "text/xml"}
MAX_REQUESTS = 1000  # the spec's: at most 1000 requests in one answer, the newest first
SPAN = timedelta(days=90)  # the spec's default and longest range of requested_datetime

NO_KEY = _l("The api_key is missing or not valid.")
NO_FORMAT = _l("Ask for .json or .xml.")


class KeyRefused(Unauthorized):
    """No API key, or one that is unknown, revoked or whose user was deactivated: the spec's 403."""

    status = 403
    default_message = NO_KEY


# --- answers in the spec's two formats -----------------------------------------------------------------------

# XML elements whose children repeat under one name; everything else maps a field to an element of its name.
XML_CHILDREN = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
# What XML 1.0 cannot carry at all (a stored text is checked for control characters, but never trust that here)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_element(parent, name: str, value) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, list):
        for item in value:
            _xml_element(element, XML_CHILDREN.get(name, "item"), item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            _xml_element(element, key, inner)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _NOT_XML.sub("", str(value))


def to_xml(root: str, item: str | None, body) -> bytes:
    """`body` (a list of `item` rows, or one dict of fields) as the spec writes it in XML, UTF-8 declared."""
    top = ET.Element(root)
    for key, value in (body.items() if isinstance(body, dict) else ((item, row) for row in body)):
        _xml_element(top, key, value)
    # A carriage return (a textarea sends CRLF) is written as a reference: a parser turns a raw one into a line feed.
    # Only text holds one (ElementTree writes no whitespace of its own between elements).
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="utf-8").replace(b"\r", b"&#13;")


def answer(fmt: str, root: str, item: str | None, body, status: int = 200):
    """A JSON or XML answer, UTF-8 (Chinese as it is) and saying so in its Content-Type, as the spec asks."""
    if fmt == "xml":
        response = current_app.response_class(to_xml(root, item, body), mimetype=MIMETYPES["xml"])
    else:
        response = jsonify(body)
        response.content_type = f"{MIMETYPES['json']}; charset=utf-8"
    response.status_code = status
    return response


def checked_format(fmt: str) -> str:
    if fmt not in MIMETYPES:
        raise NotFound(NO_FORMAT)
    return fmt


def _asked_format() -> str:
    """The format an error is written in: the one the address asks for, else JSON."""
    return "xml" if request.path.endswith(".xml") else "json"


def error_answer(status: int, descriptions, headers=None):
    """The spec's error list, `[{"code", "description"}]`, with the HTTP status itself as each code."""
    rollback_after_error()
    rows = [{"code": status, "description": str(text)} for text in descriptions]
    response = answer(_asked_format(), "errors", "error", rows, status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def describe(error: BanjieError) -> tuple[int, list]:
    """An error of the contract as the spec's status and descriptions: one per bad field, named as Open311 names it."""
    if isinstance(error, ValidationFailed):
        fields = error.fields or {}
        return 400, [_l("%(field)s: %(message)s", field=name, message=str(message))
                     for name, message in fields.items()] or [error.message]
    if isinstance(error, (Unauthorized, Forbidden)):
        return 403, [error.message]
    return error.status, [error.message]


@bp.errorhandler(BanjieError)
def _contract_error(error: BanjieError):
    return error_answer(*describe(error))


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    status = error.code or 500
    headers = {}
    if status == 429:  # as the API says when to come back (tickets/http.py)
        response = error.get_response()
        retry_after = response.headers.get("Retry-After") if response is not None else None
        retry_after = retry_after or getattr(error, "retry_after", None) or _seconds_until_reset()
        if retry_after:
            headers["Retry-After"] = str(retry_after)
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    message = HTTP_ERRORS.get(status, (None, error.description))[1]
    return error_answer(status, [message], headers)


def _database_error(error: Exception):
    status, _code, message, headers = database_unavailable(error)
    return error_answer(status, [message], headers)


for _kind in DATABASE_ERRORS:
    bp.register_error_handler(_kind, _database_error)


@bp.errorhandler(Exception)
def _unexpected(error: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_answer(500, [HTTP_ERRORS[500][1]])


@bp.before_app_request
def _unknown_address():
    """An address under /open311/ that names no route (or not with this method) answers in the spec's shape too: the
    blueprint's handlers only hear of errors in its own routes."""
    failed = request.routing_exception
    if request.path.startswith(bp.url_prefix + "/") and isinstance(failed, HTTPException) \
            and failed.code in (404, 405):
        return _http_error(failed)
    return None


# --- who asks -----------------------------------------------------------------------------------------------

def _raw_key(values) -> str | None:
    """The API key: the spec's `api_key` parameter, or an `Authorization: Bearer` header (kept out of access logs)."""
    key = values.get("api_key")
    header = request.headers.get("Authorization", "")
    if not key and header.startswith("Bearer "):
        key = header[len("Bearer "):]
    return key or None


def key_user(values, scope: TokenScope, *, required: bool):
    """The user of the request's API key when its scope allows `scope`; None without a key unless one is `required`.
    403 for a key that is not valid, or limited to another scope."""
    raw = _raw_key(values)
    if raw is None and not required:
        return None
    try:
        user = user_for_api_key(raw, scope.value) if raw is not None else None
    except InsufficientScope:  # a valid key of another scope: refused in the spec's format, as a bad key is
        user = None
    if user is None:
        raise KeyRefused()
    return user


# --- discovery and services ---------------------------------------------------------------------------------

@bp.get("/discovery.<fmt>")
@public_limit(lookup_limit, "public-read")
def discovery(fmt):
    """The spec's service discovery file: where the GeoReport v2 endpoint is and which formats it speaks."""
    fmt = checked_format(fmt)
    config = current_app.config
    body = {
        "changeset": CHANGESET,
        "contact": config["OFFICE_NAME"],
        "key_service": str(_l("API keys (scope file to file requests, read to read them in full) are issued by the "
                              "office's administrators in the console: Management → API tokens.")),
        "endpoints": [{"specification": SPECIFICATION, "url": config["PUBLIC_BASE_URL"] + bp.url_prefix + "/v2",
                       "changeset": CHANGESET, "type": "production", "formats": [MIMETYPES["xml"], MIMETYPES["json"]]}],
    }
    return answer(fmt, "discovery", None, body)


@bp.get("/v2/services.<fmt>")
@public_limit(lookup_limit, "public-read")
def services(fmt):
    """The services: the problem types, then the active service items of the catalogue."""
    fmt = checked_format(fmt)
    return answer(fmt, "services", "service", mapping.service_list(db.session))


@bp.get("/v2/services/<service_code>.<fmt>")
@public_limit(lookup_limit, "public-read")
def service_definition(service_code, fmt):
    """A service's attributes (the window, and a service item's problem type); 404 for an unknown service or one
    without attributes (`metadata` false)."""
    fmt = checked_format(fmt)
    return answer(fmt, "service_definition", None, mapping.service_definition(db.session, service_code))


# --- requests -----------------------------------------------------------------------------------------------

@bp.post("/v2/requests.<fmt>")
@public_limit(filing_limit, "filing", key_func=filing_key)
def post_request(fmt):
    """File a case on behalf of a citizen (form-encoded, as the spec says): `api_key` of scope file (a window's office
    staff), service_code, description, first_name/last_name, a mainland mobile `phone`, the place and attributes; 201
    and `[{"service_request_id", "service_notice", "account_id"}]`."""
    fmt = checked_format(fmt)
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise BadRequest(_l("Send the request form-encoded (application/x-www-form-urlencoded), as the GeoReport "
                            "v2 specification says."))
    if request.files:
        raise ValidationFailed(fields={"media_url": _l("Send a photo as a link in media_url, not as a file.")})
    actor = Actor.of(key_user(request.form, TokenScope.file, required=True))
    filed, filing = mapping.file_request(db.session, request.form, actor)
    db.session.commit()
    ticket = filed.ticket
    notice = _l("Filed as %(number)s. The window accepts or declines it by %(due)s; the citizen is texted the "
                "tracking number and the query code.", number=ticket.tracking_no, due=clock.local_text(ticket.due_at))
    body = [{"service_request_id": ticket.tracking_no, "service_notice": str(notice), "account_id": filing.account_id}]
    response = answer(fmt, "service_requests", "request", body, 201)
    response.headers["Location"] = url_for(".get_request", service_request_id=ticket.tracking_no, fmt=fmt)
    return response


def _reader() -> Actor | None:
    user = key_user(request.args, TokenScope.read, required=False)
    return Actor.of(user) if user is not None else None


def _requests(reader: Actor | None, condition) -> list[dict]:
    """The requests matching `condition`, newest first (at most MAX_REQUESTS): what anyone may see, or with a reader
    the cases their role sees in full. Personal columns are not even read for an anonymous caller."""
    columns = [Ticket.id, Ticket.tracking_no, Ticket.status, Ticket.problem_type, Ticket.created_at,
               Ticket.updated_at, Ticket.due_at, ServiceItem.id.label("item_id"), ServiceItem.name.label("item_name"),
               Department.name.label("department_name"), Office.name.label("office_name")]
    if reader is not None:
        columns += [Ticket.description, Ticket.public_reply, Ticket.reject_reason]
    query = (sa.select(*columns)
             .join(Office, Office.id == Ticket.office_id)
             .outerjoin(ServiceItem, ServiceItem.name == Ticket.service_item)
             .outerjoin(Department, Department.id == Ticket.department_id)
             .where(condition))
    if reader is not None:
        query = query.where(visibility(reader))
    rows = db.session.execute(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(MAX_REQUESTS)).all()
    places = {}
    if reader is not None and rows:
        places = dict(db.session.execute(sa.select(Event.ticket_id, Event.data).where(
            Event.ticket_id.in_([row.id for row in rows]), Event.action == "file")).all())
    return [mapping.request_row(row, full=reader is not None, filed=places.get(row.id)) for row in rows]


@bp.get("/v2/requests.<fmt>")
@public_limit(lookup_limit, "public-read")
def list_requests(fmt):
    """Requests by the spec's filters: service_request_id (tracking numbers, comma-separated; then nothing else
    counts), service_code, status (open, closed), start_date/end_date (W3C times, at most 90 days; default the last
    90 days); the newest 1000 at most."""
    fmt = checked_format(fmt)
    reader = _reader()
    condition = mapping.request_filter(db.session, request.args, clock.now(), span=SPAN, most=MAX_REQUESTS)
    return answer(fmt, "service_requests", "request", _requests(reader, condition))


@bp.get("/v2/requests/<service_request_id>.<fmt>")
@public_limit(lookup_limit, "public-read")
def get_request(service_request_id, fmt):
    """One request by its tracking number, as a list of one (the spec's); 404 for an unknown number or, with a
    read key, one its owner may not see."""
    fmt = checked_format(fmt)
    reader = _reader()
    number = service_request_id.strip().upper()
    rows = _requests(reader, Ticket.tracking_no == number) if len(number) <= mapping.TRACKING_NO_MAX else []
    if not rows:
        raise NotFound(_l("There is no service request %(number)s.",
                          number=service_request_id[:mapping.TRACKING_NO_MAX]))
    return answer(fmt, "service_requests", "request", rows)
