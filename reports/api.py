"""The reports endpoints of API.md: a month's figures as JSON, and its PDF, of an office (`?office=<code>`, default:
the caller's own office; admins and users without an office: the root)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from tickets import offices
from tickets.access import current_staff
from tickets.db import db
from tickets.errors import Forbidden
from tickets.extensions import csrf
from tickets.models import OFFICE_WIDE_ROLES, Role

from . import operations
from .formulas import FORMULAS
from .models import Report

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1/reports")
csrf.exempt(bp)  # GET only; an office reading may keep the month's report, which is idempotent


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
                    "kept": kept(report),
                    "formulas": [{"key": f.key, "label": str(f.label), "definition": str(f.definition)}
                                 for f in FORMULAS]})
