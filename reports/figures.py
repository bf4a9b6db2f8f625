"""Everything a monthly report shows, assembled from the figures (`metrics`) and the lists (`lists`)."""
from __future__ import annotations

import sqlalchemy as sa

from tickets import clock, deadlines
from tickets.models import Department

from .formulas import FORMULA_VERSION
from .lists import escalation_list, overdue_list, recurring
from .metrics import (
    Month, WorkingDays, department_counts, empty_counts, had_cases, office_total, trend, with_rates,
)


def policy():
    return deadlines.policy()


def monthly_figures(session, month: Month, *, progress=lambda step: None) -> dict:
    """Everything a monthly report shows, as JSON-ready data. `progress(step)` is called after each part."""
    rules = policy()
    tz = clock.local_tz()
    working_days = WorkingDays(rules.calendar_source(), tz)
    if session.get_bind().dialect.name == "postgresql":
        # These queries look expensive to the planner, whose JIT compilation then costs more than it saves
        # (over a second per query at 100,000 cases); their sorts fit in memory with a little more room.
        session.execute(sa.text("SET LOCAL jit = off"))
        session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    groups = department_counts(session, month, tz, working_days)
    progress("figures")
    problem_types, service_items = recurring(session, month, tz)
    progress("recurring")
    figures = {
        "month": str(month),
        "formula_version": FORMULA_VERSION,
        "office": with_rates(office_total(groups)),
        "departments": department_table(session, groups),
        "unassigned": with_rates(groups.get(None, empty_counts())),
        "problem_types": problem_types,
        "service_items": service_items,
        "overdue": overdue_list(session, month, tz, working_days),
        "escalations": escalation_list(session, month, tz),
    }
    progress("lists")
    figures["trend"] = trend(session, month, tz, figures["office"])
    progress("trend")
    return figures


def department_table(session, groups: dict) -> list[dict]:
    """Every active department (and any other with figures), ranked (`rank_departments`)."""
    names = dict(session.execute(
        sa.select(Department.id, Department.name).where(sa.or_(
            Department.active.is_(True), Department.id.in_([d for d in groups if d is not None])))
    ).all())
    return rank_departments([{"id": d, "name": name, **with_rates(groups.get(d, empty_counts()))}
                             for d, name in names.items()])


def rank_departments(rows: list[dict]) -> list[dict]:
    """The departments with cases in the month ranked, then those without; each row gets its `rank`.

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
