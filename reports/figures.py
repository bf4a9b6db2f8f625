"""Everything a monthly report shows, assembled from the figures (`metrics`) and the lists (`lists`).

A report is of one office and covers its whole subtree (`tickets.offices.subtree`): the office's total, its
departments (those whose work is in the subtree, and any other that handled a case of it), and one row per
child office with the figures of that child's subtree (同级比较), ranked as the departments are. The total
is the sum of the child offices' rows and of `own` (the cases the office itself owns).
"""
from __future__ import annotations

import sqlalchemy as sa

from tickets import clock, deadlines, offices
from tickets.models import Department, Office

from .formulas import FORMULA_VERSION
from .lists import escalation_list, overdue_list, recurring
from .metrics import (
    Month, Scope, WorkingDays, department_counts, empty_counts, had_cases, office_total, summed, trend, with_rates,
)


def policy():
    return deadlines.policy()


def report_office(session, office_id: int | None = None) -> Office:
    """The office a report is of: the one given, or the root (a deployment's default report)."""
    return session.get(Office, office_id) if office_id is not None else offices.root(session)


def monthly_figures(session, month: Month, office_id: int | None = None, *, progress=lambda step: None) -> dict:
    """Everything `office_id`'s (default: the root's) monthly report shows, as JSON-ready data.

    `progress(step)` is called after each part."""
    office = report_office(session, office_id)
    rules = policy()
    tz = clock.local_tz()
    working_days = WorkingDays(rules.calendar_source(), tz)
    if session.get_bind().dialect.name == "postgresql":
        # (JIT compilation, which cost these queries more than it saved, is off on every connection: tickets/db.py.)
        # Their sorts fit in memory with a little more room; and the month's cases are read by index from a table
        # the server holds in memory or on SSD, which the default random_page_cost (4, for spinning disks) prices
        # as a full scan's worth: at 1.1 the city's month of 100,000 cases in 2,000,000 took 3.8-4.7 s instead of
        # 4.3-5.7 s (tests/bench/README.md).
        session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        session.execute(sa.text("SET LOCAL random_page_cost = 1.1"))
    scope = Scope.of(session, office.id)
    groups = department_counts(session, month, tz, working_days, scope)
    by_department = summed(groups, lambda department_id, owner: department_id)
    branch = branches(session, office)
    by_branch = summed(groups, lambda department_id, owner: branch.get(owner, office.id))
    progress("figures")
    problem_types, service_items = recurring(session, month, tz, scope)
    progress("recurring")
    figures = {
        "month": str(month),
        "formula_version": FORMULA_VERSION,
        "office": {**office_fields(office), **with_rates(office_total(groups))},
        "departments": department_table(session, by_department, office),
        "unassigned": with_rates(by_department.get(None, empty_counts())),
        "offices": office_table(session, by_branch, office),
        "own": with_rates(by_branch.get(office.id, empty_counts())),
        "problem_types": problem_types,
        "service_items": service_items,
        "overdue": overdue_list(session, month, tz, working_days, scope),
        "escalations": escalation_list(session, month, tz, scope),
    }
    progress("lists")
    figures["trend"] = trend(session, month, tz, figures["office"], scope)
    progress("trend")
    return figures


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


def office_table(session, by_branch: dict, office: Office) -> list[dict]:
    """One row per child office (active, or with figures) with its subtree's figures, ranked (`rank_rows`)."""
    rows = [{"id": child.id, **office_fields(child), **with_rates(by_branch.get(child.id, empty_counts()))}
            for child in offices.children(session, office.id) if child.active or child.id in by_branch]
    return rank_rows(rows)


def department_table(session, groups: dict, office: Office | None = None) -> list[dict]:
    """The departments whose work is in the report's subtree (active ones) and every other with figures, ranked."""
    mine = Department.active.is_(True)
    if office is not None:
        mine = sa.and_(mine, Department.office_id.in_(offices.subtree(office.id)))
    names = dict(session.execute(
        sa.select(Department.id, Department.name).where(sa.or_(
            mine, Department.id.in_([d for d in groups if d is not None])))
    ).all())
    # A department's row leaves out the 差评 whose appeal was upheld (metrics.department_view); the total keeps them.
    return rank_rows([{"id": d, "name": name, **with_rates(groups.get(d, empty_counts()), department=True)}
                      for d, name in names.items()])


def rank_rows(rows: list[dict]) -> list[dict]:
    """The departments (or child offices) with cases in the month ranked, then those without; each row gets its
    `rank`.

    The ranking is by on-time rate, then satisfaction rate (a missing rate after every real one); equal
    rates share a rank (1, 2, 2, 4). A department without a case in the month has nothing to be ranked by:
    its rank is None and it follows the ranked ones, by name.
    """
    def standing(row):
        return tuple(-(row[key] if row[key] is not None else -1.0) for key in ("on_time_rate", "satisfaction_rate"))

    ranked = sorted((r for r in rows if had_cases(r)), key=lambda r: (standing(r), r["name"]))
    for place, row in enumerate(ranked, 1):
        tied = place > 1 and standing(row) == standing(ranked[place - 2])
        row["rank"] = ranked[place - 2]["rank"] if tied else place
    idle = sorted((r for r in rows if not had_cases(r)), key=lambda r: r["name"])
    for row in idle:
        row["rank"] = None
    return ranked + idle


rank_departments = rank_rows
