"""The reports room's actions: compute a month's report, keep it, find it, tell the leaders. Never commits.

Who may do what: every role that sees the whole office (`OFFICE_WIDE_ROLES`) reads a month's report; only
the office and admins (`OFFICE_ROLES`) generate one that is kept, or generate a kept one again. One function,
`get_or_generate`, is how the API, the console, the CLI and the scheduler's actor all make a kept report.

A report is of one office (its whole subtree) and kept per (office, month); `office_id` None means the root.
Which office a reader may ask for: `office_for_reader`.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, lazy_gettext as _l
from prometheus_client import Histogram

from notify import send_sms
from tickets import clock, contacts, offices, telemetry, validation
from tickets.db import upsert
from tickets.errors import Conflict, NotFound, ValidationFailed
from tickets.models import OFFICE_MEMBER_ROLES, OFFICE_ROLES, Office, Role

from . import fonts, metrics
from .display import month_label, percent
from .figures import monthly_figures, report_office
from .models import Report
from .pdf import build_pdf

AUTO, MANUAL = "auto", "manual"
GENERATION_SECONDS = Histogram("banjie_report_generation_duration_seconds", "Time to compute a month's report and "
                               "draw its PDF", buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
NEXT_STEPS_MAX = 2000


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


# How far back the scheduler's job catches up after an outage over a month's first days: a year of monthly reports.
CATCH_UP_MONTHS = 12


def month_to_generate(session, now) -> str | None:
    """The month whose city report (the root's) the scheduler's job should generate at `now`: last month when none
    is kept yet; after a scheduler outage over one or more months' first days, the first month after the latest kept
    report (oldest first, at most CATCH_UP_MONTHS back), so no month is skipped. None when last month is kept. Months
    before the first report ever kept are not the job's (a new deployment starts with last month)."""
    last = metrics.Month.parse(previous_month(now))
    latest = session.scalar(sa.select(sa.func.max(Report.month)).where(Report.office_id == _office_id(session, None)))
    if latest is None:
        return str(last)
    month = max(metrics.Month.parse(latest).shift(1), last.shift(1 - CATCH_UP_MONTHS))
    return str(month) if month <= last else None


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


DRAFT, PUBLISHED = "draft", "published"
KEPT = object()  # get_or_generate's default `next_steps`: those of the draft kept, if any


def compute(session, month: metrics.Month, office_id: int | None = None, *, next_steps: str | None = None,
            progress=lambda step: None) -> Report:
    """The office's (default: the root's) figures and PDF for the month computed now, as a draft Report that is not
    kept (not added to the session). `next_steps`: the office's 下步工作, printed in the narrative."""
    office = report_office(session, office_id)
    with telemetry.timed(GENERATION_SECONDS):
        figures = monthly_figures(session, month, office.id, progress=progress)
        now = clock.now()
        figures["generated_at"] = now.isoformat()
        figures["next_steps"] = next_steps
        pdf = render(session, office, figures, draft=True)
    progress("pdf")
    return Report(office_id=office.id, month=str(month), figures=figures, pdf=pdf,
                  formula_version=figures["formula_version"], trigger=None, generated_at=now, status=DRAFT,
                  next_steps=next_steps)


def render(session, office: Office, figures: dict, *, draft: bool) -> bytes:
    """The report's PDF from its figures: a draft is marked 草稿 on every page."""
    config = current_app.config
    # The root's PDF is headed with the deployment's name (OFFICE_NAME), as with one window; any other office's
    # with its own name.
    heading = config["OFFICE_NAME"] if office.parent_id is None else office.name
    return build_pdf(figures, office=heading, generated_at=datetime.fromisoformat(figures["generated_at"]),
                     tz=clock.local_tz(), font=fonts.register(config["REPORT_FONT"]), draft=draft)


def get_or_generate(session, month: metrics.Month, office_id: int | None = None, *, trigger: str,
                    user_id: int | None = None, regenerate: bool = False, next_steps=KEPT,
                    progress=lambda step: None) -> Report:
    """The office's (default: the root's) kept report of the month: the one there is, or (when there is none, or
    `regenerate`) computed now and kept as a draft, with `next_steps` (default: the kept draft's). A published report
    is frozen: regenerating it is 409.

    Two may generate a month at once (two people in the console, the office's API call and the scheduler
    on the 1st). (office, month) is unique and the row is written with one upsert, so neither fails: without
    `regenerate` the report the other kept meanwhile stands and is returned (on PostgreSQL the upsert
    waits for the other's commit); with `regenerate` the last one written stands (both were computed from the same
    history), unless the other published it meanwhile: the upsert never overwrites a published report. Nobody is
    texted: the leaders hear of a report when the office publishes it (`publish`).
    """
    office_id = _office_id(session, office_id)
    kept = find(session, str(month), office_id)
    if kept is not None and (not regenerate or kept.status == PUBLISHED):
        if regenerate:
            raise Conflict(_l("The report for %(month)s was published: its figures are frozen.",
                              month=month_label(month)))
        return kept
    if next_steps is KEPT:
        next_steps = kept.next_steps if kept is not None else None
    report = compute(session, month, office_id, next_steps=next_steps, progress=progress)
    values = {"office_id": report.office_id, "month": report.month, "figures": report.figures, "pdf": report.pdf,
              "formula_version": report.formula_version, "trigger": trigger, "generated_at": report.generated_at,
              "generated_by": user_id, "status": DRAFT, "next_steps": next_steps}
    written = _upsert(session, values, replace=regenerate)
    kept = find(session, str(month), office_id)
    if regenerate and not written:
        raise Conflict(_l("The report for %(month)s was published: its figures are frozen.",
                          month=month_label(month)))
    return kept


def _upsert(session, values: dict, *, replace: bool) -> bool:
    """Insert the month's row; on a conflict with another's, overwrite it if it is a draft (`replace`) or leave it.
    True if written."""
    statement = upsert(session.get_bind().dialect.name, Report, values, ["office_id", "month"],
                       replace=replace, where=Report.status == DRAFT if replace else None)
    return session.execute(statement.returning(Report.id)).first() is not None


def save_next_steps(session, month: metrics.Month, office_id: int | None, text: str | None, *,
                    user_id: int | None) -> Report:
    """The office writes the draft's 下步工作 (None or blank: none); the draft is regenerated with it (409 once
    published)."""
    office_id = _office_id(session, office_id)
    try:
        text = validation.text(text, required=False, max_len=NEXT_STEPS_MAX)
    except validation.FieldError as error:
        raise ValidationFailed(fields={"next_steps": error.message}) from None
    return get_or_generate(session, month, office_id, trigger=MANUAL, user_id=user_id, regenerate=True,
                           next_steps=text)


class Published(NamedTuple):
    report: Report
    texted: int  # how many leaders were texted


def publish(session, month: metrics.Month, office_id: int | None = None, *, user_id: int | None,
            next_steps: str | None = None) -> Published:
    """Publish the month's report of the office: the draft as the office last saw it (generated first when there is
    none; with `next_steps`, those written in first), its figures frozen from now on, its PDF without the draft
    mark; the leaders are texted. 409 if it is published already (also when another published it meanwhile)."""
    office_id = _office_id(session, office_id)
    if next_steps is not None:
        report = save_next_steps(session, month, office_id, next_steps, user_id=user_id)
    else:
        report = get_or_generate(session, month, office_id, trigger=MANUAL, user_id=user_id)
    if report.status == PUBLISHED:
        raise Conflict(_l("The report for %(month)s is already published.", month=month_label(month)))
    now = clock.now()
    pdf = render(session, session.get(Office, office_id), report.figures, draft=False)
    done = session.execute(
        sa.update(Report).where(Report.id == report.id, Report.status == DRAFT)
        .values(status=PUBLISHED, published_at=now, published_by=user_id, pdf=pdf).returning(Report.id)
    ).first()
    if done is None:
        raise Conflict(_l("The report for %(month)s is already published.", month=month_label(month)))
    report = find(session, str(month), office_id)
    return Published(report, tell_leaders(session, report))


def for_reader(session, month: metrics.Month, office_id: int | None = None, *, role, user_id: int) -> Report:
    """What a reader asking for a month's report gets: the kept report; when there is none, the office and
    admins generate and keep it now, and the others get it computed now and not kept (`report.id` is None):
    a leader's or supervisor's reading creates nothing."""
    if may_keep(role):
        return get_or_generate(session, month, office_id, trigger=MANUAL, user_id=user_id)
    return find(session, str(month), office_id) or compute(session, month, office_id)


def tell_leaders(session, report: Report) -> int:
    """An SMS to every active leader of the report's office (the root's: also those of no office) with a phone
    number: the report is published.

    With no such leader nobody is told; the log says so, and the console's department list warns beforehand.
    """
    phones = contacts.leader_account_phones(session, report.office_id)
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


def set_thresholds(session, office: Office, values: dict | None) -> Office:
    """The office's own thresholds of 主要问题, given in percent ({"on_time_rate": 90, ...}: keys among
    `scores.SCORED_RATES`, each a number from 0 to 100) and kept as fractions in `office.report_thresholds`. None or
    {} goes back to the deployment's default (REPORT_THRESHOLDS). Anything else is 422, with what is wrong per key;
    nothing is changed then. Reports made from now on use them; a kept report keeps the thresholds it was made with."""
    from . import scores

    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValidationFailed(fields={"thresholds": _l("Give the thresholds as rates and percentages, like "
                                                        "on_time_rate: 90.")})
    fractions, errors = {}, {}
    for key, value in values.items():
        if key not in scores.SCORED_RATES:
            errors[str(key)] = _l("Not a rate the report scores.")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:  # NaN too
            errors[key] = _l("Must be a number from 0 to 100.")
        else:
            fractions[key] = round(value / 100, 6)
    if errors:
        raise ValidationFailed(fields=errors)
    # SQL NULL (not a JSON null) when the default applies, as the migration leaves every office.
    office.report_thresholds = fractions or sa.null()
    session.flush()
    session.expire(office, ["report_thresholds"])
    return office
