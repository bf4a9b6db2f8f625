"""The reports room's actions: generate a month's report and keep it, find it, tell the leaders. Never commits."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from notify import send_sms
from tickets import clock, contacts
from tickets.errors import NotFound, ValidationFailed

from . import fonts, metrics
from .figures import monthly_figures
from .models import Report
from .pdf import build_pdf, percent

AUTO, MANUAL = "auto", "manual"

log = logging.getLogger(__name__)


def policy_tz():
    return current_app.extensions["banjie.deadline_policy"].tz


def ended_month(text: str) -> metrics.Month:
    """A month whose report can be made: well-formed (else 422) and over (else 404: there is no report yet)."""
    try:
        month = metrics.Month.parse(text)
    except metrics.BadMonth:
        raise ValidationFailed(_l("Give the month as YYYY-MM, e.g. 2026-10."), {"month": _l("Not a month.")}) from None
    if month.bounds(policy_tz())[1] > clock.now():
        raise NotFound(_l("That month is not over yet, so it has no report."))
    return month


def recent_months(count: int = 24) -> list[str]:
    """The last `count` months that are over, newest first (what the console offers to generate)."""
    current = metrics.Month.containing(clock.now(), policy_tz())
    return [str(current.shift(-back)) for back in range(1, count + 1)]


def previous_month(now=None) -> str:
    """The month before the one `now` (default: the clock) falls in, local time."""
    return str(metrics.Month.containing(now or clock.now(), policy_tz()).shift(-1))


def find(session, month: str) -> Report | None:
    """The kept report of a month; its PDF is loaded only when read."""
    return session.scalar(sa.select(Report).options(sa.orm.defer(Report.pdf)).where(Report.month == month))


def exists(session, month: str) -> bool:
    return session.scalar(sa.select(Report.id).where(Report.month == month)) is not None


def generate(session, month: metrics.Month, *, trigger: str, user_id: int | None = None,
             progress=lambda step: None) -> Report:
    """Compute the month's figures and PDF and keep them (replacing an earlier report of the month)."""
    config = current_app.config
    figures = monthly_figures(session, month, progress=progress)
    now = clock.now()
    figures["generated_at"] = now.isoformat()
    pdf = build_pdf(figures, office=config["OFFICE_NAME"], generated_at=now, tz=policy_tz(),
                    font=fonts.register(config.get("REPORT_FONT", "")))
    progress("pdf")
    report = find(session, str(month)) or Report(month=str(month))
    report.figures, report.pdf, report.formula_version = figures, pdf, figures["formula_version"]
    report.trigger, report.generated_at, report.generated_by = trigger, now, user_id
    session.add(report)
    session.flush()
    if trigger == AUTO:
        tell_leaders(session, report)
    return report


def find_or_generate(session, month: metrics.Month, *, user_id: int | None = None) -> Report:
    return find(session, str(month)) or generate(session, month, trigger=MANUAL, user_id=user_id)


def tell_leaders(session, report: Report) -> int:
    """An SMS to every active leader with a phone number: the report is ready.

    With no such leader nobody is told; the log says so, and the console's department list warns beforehand.
    """
    phones = contacts.leader_account_phones(session)
    if not phones:
        log.warning("monthly report %s: no active leader has a mobile number on record; nobody was texted",
                    report.month)
    context = {"month": report.month, "closure_rate": percent(report.figures["office"]["closure_rate"])}
    for phone in phones:
        send_sms(phone, "report_ready", context, audience="leader", session=session)
    return len(phones)


def listing(session) -> list[Report]:
    """Generated reports, newest month first, without loading their PDFs."""
    return list(session.scalars(
        sa.select(Report).options(sa.orm.defer(Report.pdf)).order_by(Report.month.desc())
    ))
