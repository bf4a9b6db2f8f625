"""Everything a monthly report shows, assembled from the figures (`metrics`) and the lists (`lists`)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from .formulas import FORMULA_VERSION
from .lists import escalation_list, overdue_list, recurring
from .metrics import (
    Month, WorkingDays, department_counts, department_table, empty_counts, office_total, trend, with_rates,
)


def policy():
    return current_app.extensions["banjie.deadline_policy"]


def monthly_figures(session, month: Month, *, progress=lambda step: None) -> dict:
    """Everything a monthly report shows, as JSON-ready data. `progress(step)` is called after each part."""
    rules = policy()
    tz = rules.tz
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
