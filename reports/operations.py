"""The reports room's actions: compute a month's report, keep it, find it, tell the leaders. Never commits.

Who may do what: every role that sees the whole office (`OFFICE_WIDE_ROLES`) reads a month's report; only
the office and admins (`OFFICE_ROLES`) generate one that is kept, or generate a kept one again. One function,
`get_or_generate`, is how the API, the console, the CLI and the scheduler's actor all make a kept report.

A report is of one office (its whole subtree) and kept per (office, month); `office_id` None means the root.
Which office a reader may ask for: `office_for_reader`.
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
from tickets.models import OFFICE_MEMBER_ROLES, OFFICE_ROLES, Office, Role

from . import fonts, metrics
from .display import month_label, percent
from .figures import monthly_figures, report_office
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


def own_office_id(session, user) -> int:
    """The office a staff user's reports default to: their own office; admins and users without one: the root."""
    if Role(user.role) in OFFICE_MEMBER_ROLES and user.office_id is not None:
        return user.office_id
    return offices.root_id(session)


def office_for_reader(session, user, code: str | None) -> Office:
    """The office whose report `user` asks for: `code` (default: their own office). An unknown office, or one
    outside what the user sees (their office's subtree; admins and users without an office see every office),
    is 404, the same answer, so a report says nothing about a window one may not see."""
    own = own_office_id(session, user)
    if code is None or code == "":
        return session.get(Office, own)
    office = offices.by_code(session, code)
    if office is None or not offices.in_subtree(session, office.id, own):
        raise NotFound(_l("There is no such office, or its reports are not yours to see."))
    return office


def visible_offices(session, user) -> list[Office]:
    """The offices whose reports `user` may read, depth first: their own and every one below it."""
    top = session.get(Office, own_office_id(session, user))
    return [office for office in offices.tree(session) if office.path.startswith(top.path)]


def _office_id(session, office_id: int | None) -> int:
    return office_id if office_id is not None else offices.root_id(session)


def find(session, month: str, office_id: int | None = None) -> Report | None:
    """The kept report of an office (default: the root) for a month; its PDF is loaded only when read."""
    return session.scalar(sa.select(Report).options(sa.orm.defer(Report.pdf))
                          .where(Report.month == month, Report.office_id == _office_id(session, office_id))
                          .execution_options(populate_existing=True))


def exists(session, month: str, office_id: int | None = None) -> bool:
    return session.scalar(sa.select(Report.id).where(Report.month == month,
                                                     Report.office_id == _office_id(session, office_id))) is not None


def compute(session, month: metrics.Month, office_id: int | None = None, *, progress=lambda step: None) -> Report:
    """The office's (default: the root's) figures and PDF for the month computed now, as a Report that is not
    kept (not added to the session)."""
    config = current_app.config
    office = report_office(session, office_id)
    figures = monthly_figures(session, month, office.id, progress=progress)
    now = clock.now()
    figures["generated_at"] = now.isoformat()
    # The root's PDF is headed with the deployment's name (OFFICE_NAME), as with one window; any other office's
    # with its own name.
    heading = config["OFFICE_NAME"] if office.parent_id is None else office.name
    pdf = build_pdf(figures, office=heading, generated_at=now, tz=clock.local_tz(),
                    font=fonts.register(config["REPORT_FONT"]))
    progress("pdf")
    return Report(office_id=office.id, month=str(month), figures=figures, pdf=pdf,
                  formula_version=figures["formula_version"], trigger=None, generated_at=now)


def get_or_generate(session, month: metrics.Month, office_id: int | None = None, *, trigger: str,
                    user_id: int | None = None, regenerate: bool = False, progress=lambda step: None) -> Report:
    """The office's (default: the root's) kept report of the month: the one there is, or (when there is none, or
    `regenerate`) computed now and kept.

    Two may generate a month at once (two people in the console, the office's API call and the scheduler
    on the 1st). The month is unique and the row is written with one upsert, so neither fails: without
    `regenerate` the report the other kept meanwhile stands and is returned (on PostgreSQL the upsert
    waits for the other's commit); (office, month) is unique; with `regenerate` the last one written stands (both were computed
    from the same history). The leaders are told (`trigger` AUTO) only by the call that kept the month's
    first report.
    """
    office_id = _office_id(session, office_id)
    if not regenerate:
        kept = find(session, str(month), office_id)
        if kept is not None:
            return kept
    report = compute(session, month, office_id, progress=progress)
    values = {"office_id": report.office_id, "month": report.month, "figures": report.figures, "pdf": report.pdf,
              "formula_version": report.formula_version, "trigger": trigger, "generated_at": report.generated_at,
              "generated_by": user_id}
    written = _upsert(session, values, replace=regenerate)
    kept = find(session, str(month), office_id)
    if trigger == AUTO and written and not regenerate:
        tell_leaders(session, kept)
    return kept


def _upsert(session, values: dict, *, replace: bool) -> bool:
    """Insert the month's row; on a conflict with another's, overwrite it (`replace`) or leave it. True if written."""
    statement = upsert(session.get_bind().dialect.name, Report, values, ["office_id", "month"],
                       replace=replace)
    return session.execute(statement.returning(Report.id)).first() is not None


def for_reader(session, month: metrics.Month, office_id: int | None = None, *, role, user_id: int) -> Report:
    """What a reader asking for a month's report gets: the kept report; when there is none, the office and
    admins generate and keep it now, and the others get it computed now and not kept (`report.id` is None):
    a leader's or supervisor's reading creates nothing."""
    if may_keep(role):
        return get_or_generate(session, month, office_id, trigger=MANUAL, user_id=user_id)
    return find(session, str(month), office_id) or compute(session, month, office_id)


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


def listing(session, office_id: int | None = None) -> list[Report]:
    """An office's (default: the root's) kept reports, newest month first, without loading their PDFs."""
    return list(session.scalars(
        sa.select(Report).options(sa.orm.defer(Report.pdf))
        .where(Report.office_id == _office_id(session, office_id)).order_by(Report.month.desc())
    ))
