"""The reports endpoints of API.md: a month's figures as JSON, and its PDF."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify

from tickets.access import current_staff
from tickets.db import db
from tickets.errors import Forbidden
from tickets.extensions import csrf
from tickets.models import Role

from . import operations
from .formulas import FORMULAS
from .models import Report

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1/reports")
csrf.exempt(bp)  # read-only endpoints

READERS = frozenset({Role.admin, Role.office, Role.supervisor, Role.leader})


def report_for(month_text: str) -> Report:
    """The month's kept report, generated and kept now if it was never made; 403 for other roles."""
    user = current_staff()
    if Role(user.role) not in READERS:
        raise Forbidden()
    month = operations.ended_month(month_text)
    report = operations.find(db.session, str(month))
    if report is None:
        try:
            report = operations.generate(db.session, month, trigger=operations.MANUAL, user_id=user.id)
            db.session.commit()
        except sa.exc.IntegrityError:  # generated concurrently by someone else: theirs is as good
            db.session.rollback()
            report = operations.find(db.session, str(month))
    return report


def pdf_response(report: Report) -> Response:
    return Response(report.pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="banjie-report-{report.month}.pdf"'})


@bp.get("/monthly/<string:month>")
def monthly(month: str):
    """The month's figures (JSON), or with a `.pdf` suffix the month's PDF."""
    if month.endswith(".pdf"):
        return pdf_response(report_for(month[:-4]))
    report = report_for(month)
    return jsonify({**report.figures, "generated_at": report.generated_at.isoformat(), "trigger": report.trigger,
                    "formulas": [{"key": f.key, "label": str(f.label), "definition": str(f.definition)}
                                 for f in FORMULAS]})
