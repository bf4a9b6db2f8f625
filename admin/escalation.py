"""The escalation room in the console: overdue and due-soon cases, the working-day calendar editor, the
deadline policies, and the banners every console page shows (a stale scheduler, an unpublished year).
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from escalation import store, sweeper
from escalation.models import CalendarYear, EscalationStep, PolicyOverride
from escalation.policies import DEFAULT_WORKING_DAYS, DEFAULT_WORKING_HOURS, MAX_WORKING_HOURS
from tickets import clock, deadlines, offices
from tickets.clock import local_text
from tickets.access import visibility
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.validation import FieldError
from tickets.labels import DEADLINE_LABELS, PROBLEM_TYPE_LABELS, STATUS_LABELS, label, supervision_text
from tickets.models import ALL_ROLES, OFFICE_ROLES, OPEN_STATUS_VALUES, Department, ProblemType, Ticket
from tickets.workflow import MAX_WORKING_DAYS

from .base import RoleGuard, current_actor, storable_text
from .queues import department_names, soon_threshold
from .scope import keeps_city_wide_settings, office_names

CATEGORY = _l("Deadlines")
LIST_LIMIT = 200

STEP_LABELS = {
    "warning": _l("Warning to the handler"),
    "supervisor": _l("Supervisor told (督办)"),
    "leader": _l("Leader told (挂牌督办)"),
    "office_reminder": _l("Reminder to the office"),
    "contact_warning": _l("First contact due soon: handler told"),
    "contact_supervisor": _l("First contact missed: supervisor told"),
}
# Where a published year came from (calendar_year.source), in words a clerk reads.
CALENDAR_SOURCE_LABELS = {
    "chinese_calendar": _l("Built in"),
    "admin": _l("Entered in the console"),
    "import": _l("Imported from a file"),
}


CANCEL_LABELS = {
    "deadline_ended": _l("the deadline ended first"),
    "case_closed": _l("the case was closed"),
    "moment_passed": _l("its moment had passed (the deadline was already over)"),
    "not_planned": _l("no longer planned (the ladder or the deadline changed)"),
}

# What a case's history says when a text had nobody to go to (see tickets.contacts for who counts).
NOBODY_LABELS = {
    "handler": _l("Not sent: the department has no handler with a mobile number on record."),
    "supervisor": _l("Not sent: the department has no supervisor's mobile number on record."),
    "leader": _l("Not sent: the department has no leader's mobile number on record."),
    "office": _l("Not sent: no office staff member has a mobile number on record."),
    "parent_office": _l("Not sent up: the parent office has no supervisor with a mobile number on record."),
}
for _audience in ("handler", "supervisor", "leader", "office"):  # a 挂牌督办 below the root tells the parent too
    NOBODY_LABELS[f"{_audience}+parent"] = _l("Not sent: nobody to text, here or at the parent office.")


def nobody_text(audience: str | None) -> str:
    return label(NOBODY_LABELS, audience) if audience in NOBODY_LABELS else _("Not sent: nobody to text.")


def step_history(session, ticket_id: int) -> list[dict]:
    """The ladder of one case, for its page: what fired (and whom it reached), what waits, what was called off
    and why."""
    rows = session.scalars(sa.select(EscalationStep).where(EscalationStep.ticket_id == ticket_id)
                           .order_by(EscalationStep.due_at, EscalationStep.id))
    return [step_row(s) for s in rows]


def step_row(s: EscalationStep) -> dict:
    """One ladder step as the case page shows it."""
    return {"id": s.id, "event_id": s.event_id, "deadline": label(DEADLINE_LABELS, s.kind), "round": s.round,
            "step": label(STEP_LABELS, s.step),
            "level": s.level, "due_at": s.due_at, "fired_at": s.fired_at, "cancelled_at": s.cancelled_at,
            "cancel_reason": label(CANCEL_LABELS, s.cancel_reason) if s.cancel_reason else None,
            "sms_count": s.sms_count,
            "nobody": nobody_text(s.audience) if s.fired_at and s.recipients == 0 else None}


def event_lines(event: dict) -> list[tuple[str, bool]]:
    """What the system adds to a history line, from the event's data: (text, is_a_warning) pairs.

    An `escalate` event says where supervision now stands, which ladder steps it fired (and how many texts
    each wrote) and which it called off; `remind` and `rate` events say when their texts had nobody to go to.
    """
    data = event.get("data") or {}
    lines: list[tuple[str, bool]] = []
    if event.get("action") == "escalate":
        level = data.get("supervision_level", data.get("level", 0))
        lines.append((_("Supervision now: %(level)s.", level=supervision_text(level)), False))
        for step in data.get("steps", ()):
            if step.get("recipients") == 0:
                lines.append((_("%(step)s: %(outcome)s", step=label(STEP_LABELS, step["step"]),
                                 outcome=nobody_text(step.get("audience"))), True))
            else:
                lines.append((_("%(step)s: %(n)d SMS", step=label(STEP_LABELS, step["step"]), n=step.get("sms", 0)),
                              False))
            above = step.get("parent_office")
            if above is not None and step.get("recipients") != 0:
                lines.append((nobody_text("parent_office"), True) if not above.get("recipients") else
                             (_("Parent office's supervisors told: %(n)d SMS", n=above.get("sms", 0)), False))
        for step in data.get("cancelled", ()):
            lines.append((_("%(step)s called off: %(reason)s", step=label(STEP_LABELS, step["step"]),
                            reason=label(CANCEL_LABELS, step.get("reason"))), False))
        return lines
    if event.get("action") == "decide_appeal":
        lines.append((_("Appeal upheld.") if data.get("upheld") else _("Appeal rejected."), False))
        if data.get("lifted_rectification"):
            lines.append((_("The rectification was lifted; the case is closed again with its earlier answer."),
                          False))
    if event.get("action") in ("transfer", "arbitrate") and data.get("department_name"):
        lines.append((_("To %(department)s; reply due by %(due)s (%(days)s working days).",
                        department=data["department_name"], due=local_text(datetime.fromisoformat(data["due_at"])),
                        days=data.get("working_days", "")), False))
    if (data.get("knowledge") or {}).get("title"):
        lines.append((_("From the knowledge base: %(title)s (version %(version)s).", title=data["knowledge"]["title"],
                        version=data["knowledge"].get("version", "")), False))
    for audience, sent in (data.get("notified") or {}).items():
        if not sent:
            lines.append((nobody_text(audience), True))
    return lines


class DeadlinesView(RoleGuard, BaseView):
    """Overdue cases (most overdue first) and cases due before the end of the next working day."""

    roles = ALL_ROLES

    @expose("/")
    def index(self):
        return self._list("overdue")

    @expose("/soon")
    def soon(self):
        return self._list("soon")

    def _list(self, which: str):
        now = clock.now()
        if which == "overdue":
            where = [visibility(current_actor()), Ticket.overdue(now)]
        else:
            where = [visibility(current_actor()), Ticket.status.in_(OPEN_STATUS_VALUES), Ticket.due_at >= now,
                     Ticket.due_at < soon_threshold(now)]
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(*where))
        cases = db.session.scalars(sa.select(Ticket).where(*where).order_by(Ticket.due_at, Ticket.id)
                                   .limit(LIST_LIMIT)).all()
        policy = deadlines.policy()
        rows = [{"ticket": t, "status": label(STATUS_LABELS, t.status), "deadline": label(DEADLINE_LABELS, t.due_kind),
                 "late_days": policy.days_overdue(t.due_at, now) if t.overdue(now) else None,
                 "supervision": supervision_text(t.supervision_level)} for t in cases]
        return self.render("admin/escalation/deadlines.html", which=which, rows=rows, total=total,
                           limit=LIST_LIMIT, departments=department_names(), office_names=office_names())


NOTICE_MAX = 200  # the State Council notice's reference (CalendarYear.notice)


class CalendarView(RoleGuard, BaseView):
    """The working-day calendar: each year published from the State Council notice, or provisional. Every window's
    office staff read it; the city publishes it (`keeps_city_wide_settings`): every deadline in the city counts
    on it."""

    roles = OFFICE_ROLES

    @expose("/")
    def index(self):
        today = clock.today()
        years = {y.year: y for y in db.session.scalars(sa.select(CalendarYear))}
        shown = sorted(set(years) | {today.year, today.year + 1}, reverse=True)
        return self.render("admin/escalation/calendar.html", years=years, shown=shown, today=today,
                           source_label=lambda source: label(CALENDAR_SOURCE_LABELS, source))

    @expose("/<int:year>", methods=("GET", "POST"))
    def year(self, year: int):
        if not 2000 <= year <= 2100:
            abort(404)
        row = db.session.get(CalendarYear, year)
        error, text, notice = None, None, (row.notice if row else "") or ""
        errors = {}
        may_publish = keeps_city_wide_settings(current_user)
        if request.method == "POST":
            if not may_publish:
                abort(403)
            text, notice = request.form.get("days", ""), request.form.get("notice", "")
            # what is typed is held to the API's rules of text (the lines' own format is the calendar file's)
            for name, value, single_line, max_len in (("notice", notice, True, NOTICE_MAX), ("days", text, False, None)):
                try:
                    storable_text(value, max_len=max_len, single_line=single_line)
                except FieldError as problem:
                    errors[name] = str(problem.message)
            try:
                if errors:
                    raise ValidationFailed(fields=errors)
                store.publish(db.session, text, year=year, source="admin", now=clock.now(),
                              notice=notice.strip() or None)
            except ValidationFailed as problem:
                db.session.rollback()
                error = str(problem.message)
            else:
                db.session.commit()
                store.invalidate()
                flash(_("%(year)d is published: deadlines in it now follow these days.", year=year), "success")
                return redirect(url_for(".year", year=year))
        exceptions = store.year_exceptions(db.session, year) if row and row.published else {}
        if text is None:
            text = "".join(f"{d.isoformat()},{1 if w else 0},{n or ''}\n" for d, (w, n) in exceptions.items())
        return self.render("admin/escalation/calendar_year.html", year=year, row=row, exceptions=exceptions,
                           text=text, notice=notice, error=error, errors=errors, may_publish=may_publish,
                           notice_max=NOTICE_MAX), 400 if error else 200


class PolicyView(RoleGuard, BaseView):
    """Working days per deadline kind: the defaults, and overrides per problem type, department or office.

    A window's staff set them for their own office's subtree (its offices and their departments); the problem
    types' figures apply city-wide, so only administrators and the root office's staff set those."""

    roles = OFFICE_ROLES

    def _reach(self):
        """(office ids this user may set policies for, department ids likewise, whether problem types too)."""
        user = current_user._get_current_object()
        if keeps_city_wide_settings(user):
            office_ids = None  # every office
        else:
            office_ids = set(offices.subtree_ids(db.session, user.office_id)) if user.office_id else set()
        query = sa.select(Department.id).where(Department.active.is_(True))
        if office_ids is not None:
            query = query.where(Department.office_id.in_(office_ids))
        return office_ids, set(db.session.scalars(query)), office_ids is None

    def _may(self, override: PolicyOverride, reach) -> bool:
        office_ids, department_ids, problem_types = reach
        if override.office_id is not None:
            return office_ids is None or override.office_id in office_ids
        if override.department_id is not None:
            return office_ids is None or override.department_id in department_ids
        return problem_types

    @expose("/")
    def index(self, error=None, status=200):
        reach = self._reach()
        office_ids, department_ids, problem_types = reach
        overrides = [o for o in db.session.scalars(sa.select(PolicyOverride).order_by(
            PolicyOverride.kind, PolicyOverride.problem_type, PolicyOverride.department_id, PolicyOverride.office_id))
            if self._may(o, reach)]
        departments = db.session.execute(sa.select(Department.id, Department.name).where(
            Department.active.is_(True), Department.id.in_(department_ids)).order_by(Department.code)).all()
        tree = [o for o in offices.tree(db.session, active_only=True) if office_ids is None or o.id in office_ids]
        rules = deadlines.policy()
        defaults = {**{k: rules.working_days(k) for k in DEFAULT_WORKING_DAYS},
                    **{k: rules.hour_defaults[k] for k in DEFAULT_WORKING_HOURS}}  # FIRST_CONTACT_HOURS included
        return self.render(
            "admin/escalation/policies.html", overrides=overrides, defaults=defaults,
            kinds=[(k, label(DEADLINE_LABELS, k)) for k in (*DEFAULT_WORKING_DAYS, *DEFAULT_WORKING_HOURS)],
            hourly=set(DEFAULT_WORKING_HOURS), max_hours=MAX_WORKING_HOURS,
            office_hours=", ".join(f"{start:%H:%M}–{end:%H:%M}" for start, end in rules.office_hours),
            problem_types=[(p.value, label(PROBLEM_TYPE_LABELS, p.value)) for p in ProblemType] if problem_types else [],
            departments=departments, department_names=department_names(), error=error, form=request.form,
            offices=[(o.id, "\u3000" * offices.depth(o) + o.name) for o in tree], office_names=offices.names(db.session),
            kind_label=lambda k: label(DEADLINE_LABELS, k), type_label=lambda p: label(PROBLEM_TYPE_LABELS, p),
            max_days=MAX_WORKING_DAYS,
        ), status

    @expose("/set", methods=("POST",))
    def set(self):
        form = request.form
        problem_type, department_id, office_id = store.override_scope(db.session, form.get("scope", ""))
        wanted = PolicyOverride(problem_type=problem_type, department_id=department_id, office_id=office_id)
        if any((problem_type, department_id, office_id)) and not self._may(wanted, self._reach()):
            return self.index(error=_("You may set policies only for your own office and the offices below it."),
                              status=403)
        try:
            store.set_override(db.session, form.get("kind", ""), form.get("scope", ""), form.get("working_days", ""),
                               by=current_user.id, now=clock.now())
        except ValidationFailed as error:
            db.session.rollback()
            return self.index(error=str(error.message), status=400)
        self._saved()
        flash(_("Saved. New deadlines follow it; running ones keep theirs."), "success")
        return redirect(url_for(".index"))

    @expose("/<int:override_id>/delete", methods=("POST",))
    def delete(self, override_id: int):
        row = db.session.get(PolicyOverride, override_id)
        if row is None or not self._may(row, self._reach()):
            abort(404)
        store.remove_override(db.session, row, clock.now())
        self._saved()
        flash(_("Removed: the default applies again."), "success")
        return redirect(url_for(".index"))

    def _saved(self):
        db.session.commit()
        store.invalidate()


def console_alerts() -> dict:
    """What every console page warns about: a stale scheduler (red) and years without a published calendar."""
    if not current_user.is_authenticated:
        return {}
    now = clock.now()
    last = sweeper.last_run(db.session)
    interval = current_app.config["SWEEP_INTERVAL_SECONDS"]
    published = db.session.scalars(sa.select(CalendarYear.year).where(CalendarYear.published.is_(True))).all()
    today = clock.today(now)
    return {"scheduler_stale": sweeper.is_stale(last, now, interval), "scheduler_last_run": last.at if last else None,
            "provisional_years": store.provisional_years_ahead(today, published),
            "can_edit_calendar": keeps_city_wide_settings(current_user)}


def register(admin) -> None:
    admin.add_view(DeadlinesView(name=_l("Overdue and due soon"), endpoint="deadlines", url="/admin/deadlines", category=CATEGORY))
    admin.add_view(CalendarView(name=_l("Working-day calendar"), endpoint="work_calendar", url="/admin/calendar",
                                category=CATEGORY))
    admin.add_view(PolicyView(name=_l("Deadline policies"), endpoint="policies", url="/admin/policies",
                              category=CATEGORY))
    admin.app.context_processor(lambda: {"escalation_alerts": console_alerts})



