"""Open311 GeoReport v2 in Banjie's terms: which services there are, how a posted request becomes a filing, how the
spec's filters select cases and what a case shows as a service request. No HTTP here (tickets/open311.py serves it).

| Open311 | Banjie |
|---|---|
| service_code `cannot_handle`, `too_slow`, `too_hard`, `other` | the problem type |
| service_code `item-<id>` | a service item of the catalogue (its name); the problem type from `attribute[problem_type]` (default other) |
| first_name, last_name | the name (姓 then 名 when either is Chinese, else "first last") |
| phone | the mobile number (a mainland mobile only: the receipt and query code are texted) |
| description | the description, with the place and the media link on lines of their own |
| address_string, address_id, lat, long, media_url | also kept with the filing event (`data.open311`) for the read answer |
| attribute[office_code] | the window (default: the API key's owner's) |
| email, device_id | not kept (nothing in Banjie needs them) |
| account_id | not kept; echoed in the answer |
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from . import clock, intake, offices, validation
from .errors import Forbidden, NotFound, ValidationFailed
from .labels import PROBLEM_TYPE_LABELS, STATUS_LABELS, label
from .models import (FINAL_STATUSES, OFFICE_ROLES, OPEN_STATUS_VALUES, Department, ProblemType, ServiceItem,
                     Status, Ticket)
from .phones import normalise_mobile
from .presenters import ANSWER_SHOWN
from .validation import Collector, FieldError, ID_MAX

ITEM_PREFIX = "item-"
_ITEM_CODE = re.compile(r"item-([1-9][0-9]{0,9})")
SOURCE = "open311"  # the case's `source`: handed over through this endpoint
ADDRESS_MAX = 200
REF_MAX = 64
MAX_SERVICE_CODES = 100  # in one filter
TRACKING_NO_MAX = 24  # Ticket.tracking_no's length: a longer service_request_id names nothing
URL_MAX = 500
FINAL_STATUS_VALUES = tuple(sorted(s.value for s in FINAL_STATUSES))

PROBLEM_TYPE_DESCRIPTIONS = {
    "cannot_handle": _l("A matter that should be done but could not be done."),
    "too_slow": _l("A matter that took too long, or has had no result for a long time."),
    "too_hard": _l("A matter that needed too many papers, steps or trips."),
    "other": _l("Any other problem in getting a government matter done."),
}


# --- services ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    code: str
    problem_type: str | None = None  # a problem type's service
    item: ServiceItem | None = None  # a service item's


def service_by_code(session, code, *, active_only: bool = True) -> Service | None:
    """The service of a service_code: a problem type's, or a service item's (`item-<id>`; an inactive item's only
    when not `active_only`, for reading old cases)."""
    if not isinstance(code, str):
        return None
    if code in ProblemType.__members__:
        return Service(code, problem_type=code)
    match = _ITEM_CODE.fullmatch(code)
    if match is None or int(match.group(1)) > ID_MAX:
        return None
    item = session.get(ServiceItem, int(match.group(1)))
    if item is None or (active_only and not item.active):
        return None
    return Service(code, item=item)


def _windows(session) -> list:
    return offices.tree(session, active_only=True)


def _attributes(session, service: Service) -> list[dict]:
    """The attributes a service takes: the window when there is more than one, a service item's problem type."""
    attributes = []
    windows = _windows(session)
    if len(windows) > 1:
        attributes.append(_choice("office_code", _l("The window the case is filed at (default: the window of the API "
                                                    "key's owner)."), [(o.code, o.name) for o in windows]))
    if service.item is not None:
        attributes.append(_choice("problem_type", _l("What went wrong (default: other)."),
                                  [(p.value, label(PROBLEM_TYPE_LABELS, p.value)) for p in ProblemType]))
    for order, attribute in enumerate(attributes, start=1):
        attribute["order"] = order
    return attributes


def _choice(code: str, description, values) -> dict:
    return {"variable": True, "code": code, "datatype": "singlevaluelist", "required": False,
            "datatype_description": None, "order": 0, "description": str(description),
            "values": [{"key": key, "name": name} for key, name in values]}


def service_list(session) -> list[dict]:
    """GET services: the problem types, then the active service items by name."""
    several_windows = len(_windows(session)) > 1
    rows = [{"service_code": p.value, "service_name": label(PROBLEM_TYPE_LABELS, p.value),
             "description": str(PROBLEM_TYPE_DESCRIPTIONS[p.value]), "metadata": several_windows, "type": "realtime",
             "keywords": "", "group": str(_l("Problem types"))} for p in ProblemType]
    departments = dict(session.execute(sa.select(Department.id, Department.name)).all())
    for item in session.scalars(sa.select(ServiceItem).where(ServiceItem.active.is_(True)).order_by(ServiceItem.name)):
        department = departments.get(item.department_id)
        rows.append({"service_code": f"{ITEM_PREFIX}{item.id}", "service_name": item.name,
                     "description": str(_l("Usually handled by %(department)s.", department=department))
                     if department else "", "metadata": True, "type": "realtime", "keywords": item.code or "",
                     "group": str(_l("Service items"))})
    return rows


def service_definition(session, code: str) -> dict:
    """GET a service definition; NotFound for an unknown service or one without attributes (metadata false)."""
    service = service_by_code(session, code)
    shown = code[:64]
    if service is None:
        raise NotFound(_l("There is no service %(code)s.", code=shown))
    attributes = _attributes(session, service)
    if not attributes:
        raise NotFound(_l("The service %(code)s takes no attributes (its metadata is false).", code=shown))
    return {"service_code": service.code, "attributes": attributes}


# --- POST requests: a filing on behalf of a citizen ------------------------------------------------------------

_ATTRIBUTE = re.compile(r"attribute\[([^\]]*)\]")
_COORDINATE = re.compile(r"[+-]?[0-9]{1,3}(\.[0-9]{1,15})?")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Intake's fields as Open311 names them, for its messages.
_OPEN311_NAMES = {"name": "first_name, last_name", "service_item": "service_code", "office_code": "attribute[office_code]",
                  "channel": "service_code", "department_id": "service_code", "files": "media_url"}


@dataclass
class Filing:
    data: dict  # intake's fields (`intake.file_for_caller`)
    place: dict = field(default_factory=dict)  # what Open311 says about where: kept with the filing event
    account_id: str | None = None  # echoed in the answer


def _coordinate(value, *, limit: int) -> float | None:
    if value is None or not value.strip():
        return None
    if not _COORDINATE.fullmatch(value.strip()) or abs(float(value)) > limit:
        raise FieldError(_l("Must be a number from -%(n)d to %(n)d.", n=limit))
    return float(value)


def _url(value) -> str | None:
    url = validation.text(value, required=False, max_len=URL_MAX, single_line=True)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise FieldError(_l("Must be an http:// or https:// address."))
    return url


def full_name(first: str | None, last: str | None) -> str | None:
    """One name from Open311's two: family name then given name, unspaced, when either is Chinese; else "first last"."""
    if first and last and (_CJK.search(first) or _CJK.search(last)):
        return last + first
    return " ".join(part for part in (first, last) if part) or None


def _description(text, place: dict) -> str | None:
    """The citizen's text, and then, on lines of their own in the office's language, where and the media link: what
    the window reads. Nothing is added to an empty text, which intake refuses as it is."""
    if not isinstance(text, str) or not text.strip():
        return text
    lines = [text.strip()]
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        if place.get("address_string"):
            lines.append(str(_l("Place: %(place)s", place=place["address_string"])))
        if place.get("lat") is not None and place.get("long") is not None:  # one without the other is refused
            lines.append(str(_l("Coordinates: %(lat)s, %(long)s", lat=place["lat"], long=place["long"])))
        if place.get("media_url"):
            lines.append(str(_l("Photo or other media: %(url)s", url=place["media_url"])))
    return "\n".join(lines)


def filing(session, form) -> tuple[Filing, dict]:
    """The intake fields of a posted request (form parameters as Open311 names them) and the problems found, by
    parameter. The service, attributes, phone and place are checked here; the rest (name, description, window) by
    intake, whose messages `file_request` renames."""
    check = Collector()
    code = form.get("service_code")
    service = service_by_code(session, code) if code else None
    if not code:
        check.fail("service_code", _l("This field is required."))
    elif service is None:
        check.fail("service_code", _l("There is no service %(code)s.", code=code[:64]))
    attributes = {}
    for key in form.keys():
        match = _ATTRIBUTE.fullmatch(key)
        if match is None:
            continue
        name = match.group(1)
        if name == "office_code" or (name == "problem_type" and service is not None and service.item is not None):
            attributes[name] = form.get(key)
        else:
            check.fail(f"attribute[{name[:64]}]", _l("This service has no such attribute."))
    phone = form.get("phone")
    if not phone or not phone.strip():
        check.fail("phone", _l("This field is required."))
    elif len(phone) > 40 or normalise_mobile(phone) is None:
        check.fail("phone", _l("Give the citizen's mainland mobile number: the tracking number and the query code are "
                               "texted to it."))
    first = check.field("first_name", validation.text, form.get("first_name"), required=False,
                        max_len=intake.NAME_MAX, single_line=True)
    last = check.field("last_name", validation.text, form.get("last_name"), required=False,
                       max_len=intake.NAME_MAX, single_line=True)
    place = {
        "address_string": check.field("address_string", validation.text, form.get("address_string"), required=False,
                                      max_len=ADDRESS_MAX, single_line=True),
        "address_id": check.field("address_id", validation.text, form.get("address_id"), required=False,
                                  max_len=REF_MAX, single_line=True),
        "lat": check.field("lat", _coordinate, form.get("lat"), limit=90),
        "long": check.field("long", _coordinate, form.get("long"), limit=180),
        "media_url": check.field("media_url", _url, form.get("media_url")),
    }
    if (place["lat"] is None) != (place["long"] is None) and "lat" not in check.errors and "long" not in check.errors:
        check.fail("lat" if place["lat"] is None else "long", _l("Give lat and long together."))
    account_id = check.field("account_id", validation.text, form.get("account_id"), required=False,
                             max_len=REF_MAX, single_line=True)
    place = {key: value for key, value in place.items() if value is not None}
    problem_type = service.problem_type if service is not None and service.problem_type else \
        (attributes.get("problem_type") or ProblemType.other.value)
    data = {"name": full_name(first, last), "phone": phone, "problem_type": problem_type,
            "service_item": service.item.name if service is not None and service.item is not None else None,
            "description": _description(form.get("description"), place), "office_code": attributes.get("office_code"),
            "source": SOURCE}  # a source without a channel: intake.INTEGRATION_CHANNEL (12345)
    return Filing(data, place, account_id), check.errors


def file_request(session, form, actor) -> tuple[intake.Filed, Filing]:
    """POST requests: file the case on behalf of the citizen (no commit), as a window's office staff (else Forbidden),
    or ValidationFailed naming each bad Open311 parameter at once."""
    if actor.role not in OFFICE_ROLES:
        raise Forbidden(_l("Only a window's office staff file cases on behalf of citizens."))
    request_filing, errors = filing(session, form)
    from_item = request_filing.data["service_item"] is not None  # the problem type is then an attribute
    try:
        if errors:  # intake's rules too, so that the caller hears about every bad parameter at once
            intake.validate_staff_intake(session, request_filing.data, actor)
        else:
            return intake.file_for_caller(session, request_filing.data, actor,
                                          filing_data={"open311": request_filing.place} if request_filing.place
                                          else None), request_filing
    except ValidationFailed as error:
        names = {**_OPEN311_NAMES,
                 "problem_type": "attribute[problem_type]" if from_item else "service_code"}
        errors = {**{names.get(key, key): message for key, message in error.fields.items()}, **errors}
    raise ValidationFailed(fields=errors)


# --- GET requests --------------------------------------------------------------------------------------------

def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def request_filter(session, args, now: datetime, *, span: timedelta, most: int):
    """The SQL condition of the spec's filters (the query joins ServiceItem by name), or ValidationFailed."""
    check = Collector()
    numbers = args.get("service_request_id")
    if numbers:  # the spec: "this overrides all other arguments"
        numbers = [number.upper() for number in _split(numbers)]
        if len(numbers) > most or any(len(number) > TRACKING_NO_MAX for number in numbers):
            check.fail("service_request_id", _l("Give at most %(n)d tracking numbers, separated by commas.", n=most))
        check.raise_if_errors()
        return Ticket.tracking_no.in_(numbers)
    conditions = []
    codes = _split(args.get("service_code") or "")
    if len(codes) > MAX_SERVICE_CODES:
        check.fail("service_code", _l("Give at most %(n)d service codes, separated by commas.", n=MAX_SERVICE_CODES))
    elif codes:
        services = [(code, service_by_code(session, code, active_only=False)) for code in codes]
        unknown = [code for code, service in services if service is None]
        if unknown:
            check.fail("service_code", _l("There is no service %(code)s.", code=unknown[0][:64]))
        else:
            types = [s.problem_type for _, s in services if s.problem_type]
            items = [s.item.id for _, s in services if s.item is not None]
            conditions.append(sa.or_(ServiceItem.id.in_(items),
                                     sa.and_(ServiceItem.id.is_(None), Ticket.problem_type.in_(types))))
    statuses = args.get("status")
    if statuses:
        wanted = set(_split(statuses))
        if not wanted or not wanted <= {"open", "closed"}:
            check.fail("status", _l("Must be open or closed (or both, separated by a comma)."))
        elif wanted == {"open"}:
            conditions.append(Ticket.status.in_(OPEN_STATUS_VALUES))
        elif wanted == {"closed"}:
            conditions.append(Ticket.status.in_(FINAL_STATUS_VALUES))
    start = check.field("start_date", validation.moment, args.get("start_date"), required=False, tz=clock.local_tz())
    end = check.field("end_date", validation.moment, args.get("end_date"), required=False, tz=clock.local_tz())
    if start is not None and end is not None:
        if end < start:
            check.fail("end_date", _l("Must not be before start_date."))
        elif end - start > span:
            check.fail("end_date", _l("The range may span at most %(days)d days.", days=span.days))
    check.raise_if_errors()
    if start is None:  # the last 90 days, or the 90 days up to end_date
        start = (end or now) - span
    elif end is None:  # the 90 days from start_date
        end = start + span
    conditions.append(Ticket.created_at >= start)
    if end is not None:
        conditions.append(Ticket.created_at <= end)
    return sa.and_(*conditions)


def w3c(value: datetime | None) -> str | None:
    """A time as the spec writes it (W3C, with the office's offset), to the second."""
    return clock.iso(value.replace(microsecond=0)) if value is not None else None


def request_row(row, *, full: bool, filed: dict | None) -> dict:
    """A case as a service request. Anyone: the number, status, service, agency and times (nothing a citizen wrote);
    `full` (a read key's owner who may see the case): the description, place and the answer given too."""
    final = row.status in FINAL_STATUS_VALUES
    if row.item_id is not None:
        code, name = f"{ITEM_PREFIX}{row.item_id}", row.item_name
    else:
        code, name = row.problem_type, label(PROBLEM_TYPE_LABELS, row.problem_type)
    notes = label(STATUS_LABELS, row.status)
    if full:
        answer = row.public_reply if row.status in ANSWER_SHOWN else \
            row.reject_reason if row.status == Status.rejected.value else None
        if answer:
            notes = str(_l("%(field)s: %(message)s", field=notes, message=answer))
    body = {"service_request_id": row.tracking_no, "status": "closed" if final else "open", "status_notes": notes,
            "service_name": name, "service_code": code, "agency_responsible": row.department_name or row.office_name,
            "service_notice": None, "requested_datetime": w3c(row.created_at), "updated_datetime": w3c(row.updated_at),
            "expected_datetime": None if final else w3c(row.due_at)}
    if full:
        place = ((filed or {}).get("open311") or {})
        body.update({"description": row.description, "address": place.get("address_string"),
                     "address_id": place.get("address_id"), "lat": place.get("lat"), "long": place.get("long"),
                     "media_url": place.get("media_url")})
    return body
