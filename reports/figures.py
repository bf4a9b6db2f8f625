"""Everything a monthly report shows, assembled from the figures (`metrics`) and the lists (`lists`).

A report is of one office and covers its whole subtree (`tickets.offices.subtree`): the office's total, its
departments (those whose work is in the subtree, and any other that handled a case of it), and one row per
child office with the figures of that child's subtree (同级比较), ranked as the departments are. The total
is the sum of the child offices' rows and of `own` (the cases the office itself owns).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from tickets import clock, deadlines, offices
from tickets.models import Department, Office, Ticket

from . import scores
from .clusters import frequent_clusters
from .formulas import FORMULA_VERSION
from .lists import escalation_list, overdue_list, recurring
from .metrics import (
    FIRST_YEAR, Month, Scope, WorkingDays, department_at, department_counts, empty_counts, had_cases, office_total, summed, trend, with_rates,
)
from .models import Report

TYPICAL_CASES = 10  # at most, in the order the office marked them


def policy():
    return deadlines.policy()


def report_office(session, office_id: int | None = None) -> Office:
    """The office a report is of: the one given, or the root (a deployment's default report)."""
    return session.get(Office, office_id) if office_id is not None else offices.root(session)


def scoring(office: Office) -> dict:
    """How this office's report scores, ranks and judges (`scores`): the deployment's weights and minimum, the
    office's thresholds of 主要问题 (its own, or REPORT_THRESHOLDS), as stored in the report's JSON."""
    config = current_app.config
    thresholds = office.report_thresholds or scores.thresholds_from(config["REPORT_THRESHOLDS"])
    return {"weights": scores.weights_from(config["REPORT_SCORE_WEIGHTS"]), "min_cases": config["REPORT_MIN_CASES"],
            "thresholds": thresholds}


def monthly_figures(session, month: Month, office_id: int | None = None, *, progress=lambda step: None) -> dict:
    """Everything `office_id`'s (default: the root's) monthly report shows, as JSON-ready data.

    `progress(step)` is called after each part."""
    office = report_office(session, office_id)
    tz = clock.local_tz()
    working_days = WorkingDays(policy().calendar_source(), tz)
    if session.get_bind().dialect.name == "postgresql":
        # (JIT compilation, which cost these queries more than it saved, is off on every connection: tickets/db.py.)
        # Their sorts fit in memory with a little more room; and the month's cases are read by index from a table
        # the server holds in memory or on SSD, which the default random_page_cost (4, for spinning disks) prices
        # as a full scan's worth: at 1.1 the city's month of 100,000 cases in 2,000,000 took 3.8-4.7 s instead of
        # 4.3-5.7 s (tests/bench/README.md).
        session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        session.execute(sa.text("SET LOCAL random_page_cost = 1.1"))
        # A plan for each run of a query with its own month, never the generic one: psycopg prepares a statement
        # after its fifth run, and from the sixth PostgreSQL may keep a generic plan, which for the trend's
        # cohort of a county (the same statement for twelve months in a row) ran one month for minutes instead of
        # under a second (tests/bench/README.md, "A trend month that took minutes").
        session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    scope = Scope.of(session, office.id)
    rules = scoring(office)
    figures = {"month": str(month), "formula_version": FORMULA_VERSION, "scoring": rules,
               **tables(session, month, office, scope, tz, working_days, rules)}
    progress("figures")
    previous = earlier(session, month.shift(-1), office, scope, tz, working_days, rules)
    year_ago = earlier(session, month.shift(-12), office, scope, tz, working_days, rules)
    figures["department_boards"] = scores.boards(figures["departments"], previous["department_boards"]["black"])
    figures["office_boards"] = scores.boards(figures["offices"], previous["office_boards"]["black"])
    figures["comparison"] = {"previous_month": str(month.shift(-1)), "year_ago_month": str(month.shift(-12)),
                             "rows": scores.comparison(figures["office"], previous["office"], year_ago["office"])}
    progress("comparison")
    problem_types, service_items = recurring(session, month, tz, scope)
    figures["problem_types"], figures["service_items"] = problem_types, service_items
    figures["clusters"] = frequent_clusters(session, month, tz, scope)  # 高频诉求 (reports/clusters.py)
    progress("recurring")
    figures["overdue"] = overdue_list(session, month, tz, working_days, scope)
    figures["escalations"] = escalation_list(session, month, tz, scope)
    figures["typical_cases"] = typical_cases(session, month, tz, scope)
    figures["problems"] = scores.problems(figures, rules["thresholds"])
    progress("lists")
    figures["trend"] = trend(session, month, tz, figures["office"], scope)
    progress("trend")
    return figures


def tables(session, month: Month, office: Office, scope: Scope, tz, working_days: WorkingDays, rules: dict) -> dict:
    """The month's figures of the office (`office`), its departments, the office's own cases settled without one
    (`unassigned`), its child offices (`offices`) and the cases it owns itself (`own`); departments and child
    offices scored and ranked (`scores.rank`)."""
    groups = department_counts(session, month, tz, working_days, scope, as_of=clock.now())
    by_department = summed(groups, lambda department_id, owner: department_id)
    branch = branches(session, office)
    by_branch = summed(groups, lambda department_id, owner: branch.get(owner, office.id))
    return {
        "office": {**office_fields(office), **with_rates(office_total(groups))},
        "departments": department_table(session, by_department, office, rules),
        "unassigned": with_rates(by_department.get(None, empty_counts())),
        "offices": office_table(session, by_branch, office, rules),
        "own": with_rates(by_branch.get(office.id, empty_counts())),
    }


def earlier(session, month: Month, office: Office, scope: Scope, tz, working_days: WorkingDays, rules: dict) -> dict:
    """An earlier month's totals and 红黑榜, for 环比, 同比 and the 黑榜's "two months running": from that month's kept
    report of this office when it was computed with the same formula version (as `trend` does), else computed now
    (its tables only, none of its lists). A month before the first year a report may cover has nothing."""
    nothing = {"office": None, "department_boards": {"black": []}, "office_boards": {"black": []}}
    if month.year < FIRST_YEAR:
        return nothing
    kept = session.scalar(sa.select(Report.figures).where(
        Report.office_id == office.id, Report.month == str(month), Report.formula_version == FORMULA_VERSION))
    if kept is None:
        kept = tables(session, month, office, scope, tz, working_days, rules)
        kept["department_boards"] = scores.boards(kept["departments"])
        kept["office_boards"] = scores.boards(kept["offices"])
    # A month without a single case to count (before the office opened, say) has nothing to compare with: its
    # zeros would read as a change.
    return {"office": kept["office"] if had_cases(kept["office"]) else None,
            "department_boards": kept.get("department_boards") or {"black": []},
            "office_boards": kept.get("office_boards") or {"black": []}}


def office_fields(office: Office) -> dict:
    return {"code": office.code, "name": office.name, "level": getattr(office.level, "value", office.level)}


def branches(session, office: Office) -> dict[int, int]:
    """{id of every office in `office`'s subtree: the child of `office` whose subtree holds it, or `office` itself}."""
    rows = session.execute(sa.select(Office.id, Office.path).where(Office.id.in_(offices.subtree(office.id)))).all()
    below = {}
    for office_id, path in rows:
        rest = path[len(office.path):].split("/", 1)[0]
        below[office_id] = int(rest) if rest else office.id
    return below


def office_table(session, by_branch: dict, office: Office, rules: dict) -> list[dict]:
    """One row per child office (active, or with figures) with its subtree's figures, scored and ranked."""
    rows = [{"id": child.id, **office_fields(child), **with_rates(by_branch.get(child.id, empty_counts()))}
            for child in offices.children(session, office.id) if child.active or child.id in by_branch]
    return rank_rows(rows, rules)


def department_table(session, groups: dict, office: Office, rules: dict) -> list[dict]:
    """The departments whose work is in the report's subtree (active ones) and every other with figures, scored and
    ranked."""
    mine = sa.and_(Department.active.is_(True), Department.office_id.in_(offices.subtree(office.id)))
    names = dict(session.execute(
        sa.select(Department.id, Department.name).where(sa.or_(
            mine, Department.id.in_([d for d in groups if d is not None])))
    ).all())
    # A department's row leaves out the 差评 whose appeal was upheld (metrics.department_view); the total keeps them.
    return rank_rows([{"id": d, "name": name, **with_rates(groups.get(d, empty_counts()), department=True)}
                      for d, name in names.items()], rules)


def rank_rows(rows: list[dict], rules: dict) -> list[dict]:
    """The rows scored and ranked by `scores.rank` with the report's weights and minimum number of cases."""
    return scores.rank(rows, weights=rules["weights"], min_cases=rules["min_cases"])


def typical_cases(session, month: Month, tz, scope: Scope) -> list[dict]:
    """典型案例: the cases of the scope (owned at the month's end) marked typical (`mark_typical`) whose last closing
    fell in the month, in the order they were marked, with their summaries and the department that closed them (none
    when the window settled the case itself: `metrics.department_at`)."""
    start, end = month.bounds(tz)
    rows = session.execute(
        sa.select(Ticket.tracking_no, Ticket.typical_summary, Ticket.closed_at, Department.name)
        .outerjoin(Department, Department.id == department_at(Ticket.id, Ticket.closed_at, through=True))
        .where(Ticket.typical_summary.is_not(None), Ticket.closed_at >= start, Ticket.closed_at < end,
               scope.owned(at=end))
        .order_by(Ticket.typical_at, Ticket.id).limit(TYPICAL_CASES)
    ).all()
    return [{"tracking_no": tracking_no, "summary": summary, "closed_at": closed_at.isoformat(), "department": name}
            for tracking_no, summary, closed_at, name in rows]
