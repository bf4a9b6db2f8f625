"""The reports room's actions: compute a month's report, keep it, find it, tell the leaders. Never commits.

Who may do what: every role that sees the whole office (`OFFICE_WIDE_ROLES`) reads a month's report; only
the office and admins (`OFFICE_ROLES`) generate one that is kept, or generate a kept one again. One function,
`get_or_generate`, is how the API, the console, the CLI and the scheduler's actor all make a kept report.
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, lazy_gettext as _l

from notify import send_sms
from tickets import clock, contacts, offices
from tickets.db import upsert
from tickets.errors import NotFound, ValidationFailed
from tickets.models import OFFICE_ROLES, Role

from . import fonts, metrics
from .display import month_label, percent
from .figures import monthly_figures
from .models import Report
from .pdf import build_pdf

AUTO, MANUAL = "auto", "manual"


def may_keep(role) -> bool:
    """Whether `role` may generate a kept report (leaders and supervisors only read)."""
    return Role(role) in OFFICE_ROLES

log = logging.getLogger(__name__)


def ended_month(text: str) -> metrics.Month:
    """A month whose report can be made: well-formed (else 422) and over (else 404: there is no report yet)."""
    try:
        month = metrics.Month.parse(text)
    except metrics.BadMonth:
        raise ValidationFailed(_l("Give the month as YYYY-MM, e.g. 2026-10."), {"month": _l("Not a month.")}) from None
    if month.bounds(clock.local_tz())[1] > clock.now():
        raise NotFound(_l("That month is not over yet, so it has no report."))
    return month


def recent_months(count: int = 24) -> list[str]:
    """The last `count` months that are over, newest first (what the console offers to generate)."""
    current = metrics.Month.containing(clock.now(), clock.local_tz())
    return [str(current.shift(-back)) for back in range(1, count + 1)]


def previous_month(now=None) -> str:
    """The month before the one `now` (default: the clock) falls in, local time."""
    return str(metrics.Month.containing(now or clock.now(), clock.local_tz()).shift(-1))


def find(session, month: str) -> Report | None:
    """The kept report of a month; its PDF is loaded only when read."""
    return session.scalar(sa.select(Report).options(sa.orm.defer(Report.pdf)).where(Report.month == month,
                                                                                     Report.office_id == offices.root_id(session))
                          .execution_options(populate_existing=True))


def exists(session, month: str) -> bool:
    return session.scalar(sa.select(Report.id).where(Report.month == month,
                                                     Report.office_id == offices.root_id(session))) is not None


def compute(session, month: metrics.Month, *, progress=lambda step: None) -> Report:
    """The month's figures and PDF computed now, as a Report that is not kept (not added to the session)."""
    config = current_app.config
    figures = monthly_figures(session, month, progress=progress)
    now = clock.now()
    figures["generated_at"] = now.isoformat()
    pdf = build_pdf(figures, office=config["OFFICE_NAME"], generated_at=now, tz=clock.local_tz(),
                    font=fonts.register(config["REPORT_FONT"]))
    progress("pdf")
    return Report(office_id=offices.root_id(session), month=str(month), figures=figures, pdf=pdf, formula_version=figures["formula_version"],
                  trigger=None, generated_at=now)


def get_or_generate(session, month: metrics.Month, *, trigger: str, user_id: int | None = None,
                    regenerate: bool = False, progress=lambda step: None) -> Report:
    """The month's kept report: the one there is, or (when there is none, or `regenerate`) computed now and kept.

    Two may generate a month at once (two people in the console, the office's API call and the scheduler
    on the 1st). The month is unique and the row is written with one upsert, so neither fails: without
    `regenerate` the report the other kept meanwhile stands and is returned (on PostgreSQL the upsert
    waits for the other's commit); with `regenerate` the last one written stands (both were computed
    from the same history). The leaders are told (`trigger` AUTO) only by the call that kept the month's
    first report.
    """
    if not regenerate:
        kept = find(session, str(month))
        if kept is not None:
            return kept
    report = compute(session, month, progress=progress)
    values = {"office_id": report.office_id, "month": report.month, "figures": report.figures, "pdf": report.pdf,
              "formula_version": report.formula_version, "trigger": trigger, "generated_at": report.generated_at,
              "generated_by": user_id}
    written = _upsert(session, values, replace=regenerate)
    kept = find(session, str(month))
    if trigger == AUTO and written and not regenerate:
        tell_leaders(session, kept)
    return kept


def _upsert(session, values: dict, *, replace: bool) -> bool:
    """Insert the month's row; on a conflict with another's, overwrite it (`replace`) or leave it. True if written."""
    statement = upsert(session.get_bind().dialect.name, Report, values, ["office_id", "month"],
                       replace=replace)
    return session.execute(statement.returning(Report.id)).first() is not None


def for_reader(session, month: metrics.Month, *, role, user_id: int) -> Report:
    """What a reader asking for a month's report gets: the kept report; when there is none, the office and
    admins generate and keep it now, and the others get it computed now and not kept (`report.id` is None):
    a leader's or supervisor's reading creates nothing."""
    if may_keep(role):
        return get_or_generate(session, month, trigger=MANUAL, user_id=user_id)
    return find(session, str(month)) or compute(session, month)


def tell_leaders(session, report: Report) -> int:
    """An SMS to every active leader with a phone number: the report is ready.

    With no such leader nobody is told; the log says so, and the console's department list warns beforehand.
    """
    phones = contacts.leader_account_phones(session)
    if not phones:
        log.warning("monthly report %s: no active leader has a mobile number on record; nobody was texted",
                    report.month)
    with force_locale("zh_CN"):  # texts to leaders are Chinese, like the report
        context = {"month": month_label(report.month), "closure_rate": percent(report.figures["office"]["closure_rate"])}
    for phone in phones:
        send_sms(phone, "report_ready", context, audience="leader", session=session)
    return len(phones)


def listing(session) -> list[Report]:
    """Generated reports, newest month first, without loading their PDFs."""
    return list(session.scalars(
        sa.select(Report).options(sa.orm.defer(Report.pdf)).order_by(Report.month.desc())
    ))
