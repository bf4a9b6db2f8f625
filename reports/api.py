"""The reports endpoints of API.md: a month's figures as JSON, and its PDF, of an office (`?office=<code>`, default:
the caller's own office; admins and users without an office: the root); the office's writes: publish a month's
report, write its draft's 下步工作, set the office's thresholds of 主要问题; and a case's 交办单 (PDF) for the staff."""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request
from flask_babel import lazy_gettext as _l

from tickets import offices
from tickets.access import current_staff, ticket_for
from tickets.db import db
from tickets.errors import BadRequest, Forbidden, ValidationFailed
from tickets.extensions import csrf
from tickets.http import json_body
from tickets.models import OFFICE_WIDE_ROLES, Office, Role, User
from tickets.workflow import Actor

from . import operations, scores, slip
from .formulas import FORMULAS
from .models import Report

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1/reports")
# Token callers need no CSRF token; a console session's write is checked by `current_staff` (tickets/access.py).
csrf.exempt(bp)
# The 交办单 (slip.py) sits with the staff's tickets in the API, served from here: tickets imports no other room.
staff_bp = Blueprint("reports_staff_api", __name__, url_prefix="/api/v1/staff")
csrf.exempt(staff_bp)


def report_for(month_text: str) -> Report:
    """The month's report of the office asked for (`office_for_reader`: outside the caller's subtree, 404) for the
    caller (see `operations.for_reader`); 403 for roles that do not read reports."""
    user = current_staff()
    if Role(user.role) not in OFFICE_WIDE_ROLES:
        raise Forbidden()
    office = operations.office_for_reader(db.session, user, request.args.get("office"))
    month = operations.ended_month(month_text)
    report = operations.for_reader(db.session, month, office.id, role=user.role, user_id=user.id)
    db.session.commit()
    return report


def kept(report: Report) -> bool:
    """Whether the report is the month's kept one (else it was computed for this reading only)."""
    return report.id is not None


def pdf_response(report: Report) -> Response:
    # The root's file keeps its old name; another office's names its code (letters, digits, '.', '_', '-' only).
    code = report.figures["office"].get("code")
    suffix = f"-{code}" if code and not _is_root(report) else ""
    return Response(report.pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="banjie-report-{report.month}{suffix}.pdf"',
        "X-Report-Kept": "true" if kept(report) else "false"})


def _is_root(report: Report) -> bool:
    return report.office_id == offices.root_id(db.session)


@bp.get("/monthly/<string:month>")
def monthly(month: str):
    """The month's figures (JSON), or with a `.pdf` suffix the month's PDF."""
    if month.endswith(".pdf"):
        return pdf_response(report_for(month[:-4]))
    report = report_for(month)
    return jsonify({**report.figures, "generated_at": report.generated_at.isoformat(), "trigger": report.trigger,
                    "kept": kept(report), "status": report.status,
                    "published_at": report.published_at.isoformat() if report.published_at else None,
                    "next_steps": report.next_steps,
                    "formulas": [{"key": f.key, "label": str(f.label), "definition": str(f.definition)}
                                 for f in FORMULAS]})


def summary(report: Report, office: Office) -> dict:
    """Where a kept report stands: draft or published, and the office's 下步工作."""
    return {"month": report.month, "office_code": office.code, "status": report.status,
            "published_at": report.published_at.isoformat() if report.published_at else None,
            "next_steps": report.next_steps, "generated_at": report.generated_at.isoformat()}


def keeper() -> User:
    """The caller, who must be one who keeps reports (`operations.may_keep`: the office and admins); 403 otherwise."""
    user = current_staff()
    if not operations.may_keep(user.role):
        raise Forbidden()
    return user


def body_object(*, required: bool) -> dict:
    """The request's JSON object, read as every endpoint reads it (`json_body`: 415, 400 for malformed JSON); a body
    that is JSON but not an object is 422, as is no body when one is `required`."""
    if required and not request.content_length and not request.data:
        raise ValidationFailed(_l("The body must be a JSON object."), {"body": _l("This field is required.")})
    try:
        return json_body()
    except BadRequest:
        try:
            json.loads(request.get_data(cache=True))
        except (ValueError, RecursionError):
            raise BadRequest(_l("The body is not valid JSON.")) from None
        raise ValidationFailed(_l("The body must be a JSON object.")) from None


def _kept_month(month_text: str):
    """The keeper, the office asked for (`?office=`, 404 outside their subtree) and the month (422 or 404)."""
    user = keeper()
    office = operations.office_for_reader(db.session, user, request.args.get("office"))
    return user, office, operations.ended_month(month_text)


@bp.post("/monthly/<string:month>/publish")
def publish(month: str):
    """Publish the month's report of the office (its draft, generated first if there is none): figures frozen, the
    office's leaders texted. Body (optional): {"next_steps": "..."} written into the draft first. 409 once published."""
    user, office, parsed = _kept_month(month)
    body = body_object(required=False)
    report, texted = operations.publish(db.session, parsed, office.id, user_id=user.id,
                                        next_steps=body.get("next_steps"))
    db.session.commit()
    return jsonify({**summary(report, office), "texted": texted})


@bp.put("/monthly/<string:month>/next-steps")
def next_steps(month: str):
    """Write the draft's 下步工作 ({"next_steps": "..."}; null or blank: none); the draft is regenerated with them.
    409 once published."""
    user, office, parsed = _kept_month(month)
    body = body_object(required=True)
    if "next_steps" not in body:
        raise ValidationFailed(fields={"next_steps": _l("This field is required.")})
    report = operations.save_next_steps(db.session, parsed, office.id, body["next_steps"], user_id=user.id)
    db.session.commit()
    return jsonify(summary(report, office))


def thresholds_view(office: Office) -> dict:
    """The office's thresholds of 主要问题 in percent: its own, or the deployment's default (`"default": true`)."""
    own = office.report_thresholds
    fractions = own or scores.thresholds_from(current_app.config["REPORT_THRESHOLDS"])
    return {"office_code": office.code, "default": not own,
            "thresholds": {key: as_percent(value) for key, value in fractions.items()}}


def as_percent(fraction: float) -> int | float:
    value = round(fraction * 100, 4)
    return int(value) if value == int(value) else value


@bp.put("/thresholds")
def thresholds():
    """Set the office's own thresholds of 主要问题: {"on_time_rate": 90, ...} in percent (keys among
    `scores.SCORED_RATES`); {} goes back to the deployment's default. Reports made from now on use them."""
    user = keeper()
    office = operations.office_for_reader(db.session, user, request.args.get("office"))
    operations.set_thresholds(db.session, office, body_object(required=True))
    db.session.commit()
    return jsonify(thresholds_view(office))


@staff_bp.get("/tickets/<tracking_no>/slip.pdf")
def transfer_slip(tracking_no: str):
    """The 交办单 of a case this staff member may see, as PDF (the console's /admin/case/<tracking_no>/slip.pdf)."""
    actor = Actor.of(current_staff())
    return slip.pdf_response(db.session, ticket_for(actor, tracking_no), actor)
