"""The console dashboard's report charts: last month's trend and department charts as SVG, from its kept report."""
from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from flask_login import current_user

from tickets.db import db
from tickets.models import OFFICE_WIDE_ROLES

from . import charts, fonts, operations


def charts_for(figures: dict) -> dict:
    """The two charts of a month's figures as inline SVG: the PDF's drawings, with text sized for the screen."""
    font = fonts.register(current_app.config["REPORT_FONT"])
    trend_title = _("Closure and satisfaction rates, last 12 months")
    return {
        "trend": charts.to_svg(charts.trend_chart(figures["trend"], trend_title, font, charts.SCREEN), "trend-chart"),
        "departments": charts.to_svg(charts.department_chart(figures["departments"], _("Departments"), font,
                                                             charts.SCREEN), "department-chart"),
    }


def last_month() -> dict | None:
    """What the dashboard shows: the kept report of the user's own office (admins: the root's); None for department
    handlers (office-wide figures are not theirs to see)."""
    if not current_user.is_authenticated or current_user.role not in OFFICE_WIDE_ROLES:
        return None
    month = operations.previous_month()
    report = operations.find(db.session, month, operations.own_office_id(db.session, current_user))
    if report is None:
        return {"month": month, "figures": None}
    return {"month": month, "figures": report.figures["office"], **charts_for(report.figures)}
