"""Report figures on the hand-built November (tests/report_month.py), on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from reports import metrics
from reports.figures import monthly_figures
from tests.report_month import (
    A_NAME,
    B_NAME,
    DEPARTMENT_A,
    DEPARTMENT_B,
    MONTH,
    OFFICE,
    build_month,
)
from tickets.db import db


@pytest.fixture
def november(world, clock):
    return build_month(world, clock)


def figures_of(app, month=MONTH):
    with app.app_context():
        return monthly_figures(db.session, metrics.Month.parse(month))


def test_every_formula_on_the_hand_built_month(world, november):
    figures = figures_of(world.app)
    for key, expected in OFFICE.items():
        assert figures["office"][key] == expected, key
    rows = {row["name"]: row for row in figures["departments"]}
    for name, expected_row in ((A_NAME, DEPARTMENT_A), (B_NAME, DEPARTMENT_B)):
        for key, expected in expected_row.items():
            assert rows[name][key] == expected, (name, key)
    # 3 cases each, fewer than REPORT_MIN_CASES (5): listed, not ranked; C had no case in November at all
    assert [(row["name"], row["rank"], row["unranked"]) for row in figures["departments"]] == sorted([
        (B_NAME, None, "few_cases"), (A_NAME, None, "few_cases"), ("住房和城乡建设局", None, "no_cases")])
    assert figures["department_boards"] == {"red": [], "black": []}
    # with 1 case enough, both are ranked by score: B is better on time (100 % against 66.7 %) and in satisfaction
    world.app.config["REPORT_MIN_CASES"] = 1
    ranked = figures_of(world.app)["departments"]
    assert [(row["name"], row["rank"]) for row in ranked] == [(B_NAME, 1), (A_NAME, 2), ("住房和城乡建设局", None)]
    for row in ranked[:2]:
        weights = [(w, row[k]) for k, w in ((("on_time_rate", 40), ("satisfaction_rate", 40), ("contact_rate", 20)))
                   if row[k] is not None]
        assert row["score"] == round(sum(w * v for w, v in weights) * 100 / sum(w for w, _v in weights), 2)
    assert figures["unassigned"]["accepted"] == 1 and figures["unassigned"]["bad_rectified"] == 1  # T7
    assert figures["formula_version"] == metrics.FORMULA_VERSION


def test_lists_recurring_items_and_trend(world, november):
    figures = figures_of(world.app)
    overdue = figures["overdue"]
    # only T6 is past due and open at the month's end: due Nov 12, then Nov 13..30 hold 12 working days
    assert overdue["total"] == 1
    (row,) = overdue["items"]
    assert row["tracking_no"] == november["T6"]["tracking_no"]
    assert (row["department"], row["days_overdue"], row["supervision_level"]) == (B_NAME, 12, 3)
    escalations = figures["escalations"]
    assert escalations["total"] == 3  # T4 level 2, T6 level 3, T6 reminded; T1's October reminder is not here
    assert [(e["tracking_no"], e["level"]) for e in escalations["items"]] == [
        (november["T4"]["tracking_no"], 2), (november["T6"]["tracking_no"], 3), (november["T6"]["tracking_no"], 1)]
    assert [(p["code"], p["count"]) for p in figures["problem_types"]] == [
        ("too_slow", 5), ("cannot_handle", 1), ("too_hard", 1)]
    # 一类事: T2 T4 T8 T9 (T1 was accepted in October); 社保转移 is named once only, so it does not recur
    assert figures["service_items"] == [{"name": "营业执照变更", "count": 4}]
    trend = {point["month"]: point for point in figures["trend"]}
    assert len(figures["trend"]) == 12 and figures["trend"][-1]["month"] == MONTH
    assert trend["2026-11"] == {"month": "2026-11", "closure_rate": 0.7143, "satisfaction_rate": 0.5}
    assert trend["2026-10"] == {"month": "2026-10", "closure_rate": 0.0, "satisfaction_rate": None}  # T1 open on Oct 31
    assert trend["2025-12"]["closure_rate"] is None


def test_problem_types_and_service_items_are_of_the_cases_accepted(world, clock):
    """The lists count the cohort the figures count: a case merged (并单) by the month's end is not a case of it (its
    problem is counted once, by the case it joined), so the problem types add up to 受理数; one merged after the month's
    end still is the month's."""
    clock.set(2026, 11, 2, 9)
    first = world.file(service_item="营业执照变更")["tracking_no"]
    merged = world.file(service_item="营业执照变更", phone="13900139000", problem_type="too_hard")["tracking_no"]
    later = world.file(service_item="营业执照变更", phone="13900139001")["tracking_no"]
    for no in (first, merged, later):
        world.step("office", no, "accept")
    world.step("office", merged, "merge", into=first, note="同一问题")
    clock.set(2026, 12, 1, 9)
    world.step("office", later, "merge", into=first, note="同一问题")  # December's: November's cohort keeps it
    figures = figures_of(world.app)
    assert (figures["office"]["accepted"], figures["office"]["merged"]) == (2, 1)
    assert [(p["code"], p["count"]) for p in figures["problem_types"]] == [("too_slow", 2)]
    assert sum(p["count"] for p in figures["problem_types"]) == figures["office"]["accepted"]
    assert figures["service_items"] == [{"name": "营业执照变更", "count": 2}]


def test_december_events_do_not_change_november(world, november, clock):
    before = figures_of(world.app)
    clock.set(2026, 12, 20, 9)
    world.act("office", november["T6"]["tracking_no"], "remind")
    world.act("dept_b", november["T6"]["tracking_no"], "reply", content="已办结。")
    world.act("office", november["T6"]["tracking_no"], "approve")
    after = figures_of(world.app)
    assert after["office"] == before["office"] and after["departments"] == before["departments"]
    december = figures_of(world.app, "2026-12")["office"]
    assert (december["accepted"], december["closed_in_month"]) == (0, 2)  # T6 and T8, both accepted in November


def test_a_case_a_department_returned_is_the_windows_until_it_is_transferred_again(world, clock):
    """A department that returns a case (退回) gives it back to the window, though the ticket keeps its
    `department_id`: a case still waiting at the window at the month's end is the window's in the cohort
    (`unassigned`), not the department's, and the return stays counted against the department (退单数). A case it
    returned that another department then answered is that department's: accepted, closed, on time, rated."""
    A, B = world.departments["A"], world.departments["B"]
    clock.set(2026, 11, 2, 9)
    waiting, answered = world.file(), world.file(phone="13900139000")
    for case in (waiting, answered):
        world.step("office", case["tracking_no"], "accept")
        world.step("office", case["tracking_no"], "transfer", department_id=A)
    clock.set(2026, 11, 3, 9)
    for case in (waiting, answered):
        world.step("dept_a", case["tracking_no"], "return", reason="不属于本部门职责。")
    world.step("office", answered["tracking_no"], "transfer", department_id=B)
    clock.set(2026, 11, 5, 9)
    world.step("dept_b", answered["tracking_no"], "reply", content="已办理完毕。")
    world.step("office", answered["tracking_no"], "approve")
    response = world.client.post(f"/api/v1/tickets/{answered['tracking_no']}/rating?code={answered['query_code']}",
                                 json={"score": 1})
    assert response.status_code == 200, response.get_json()
    clock.set(2026, 12, 3, 10)
    figures = figures_of(world.app)
    rows = {row["name"]: row for row in figures["departments"]}
    keys = ("accepted", "closed", "closed_in_month", "closed_on_time", "surveys", "rated", "good", "returned")
    assert [rows[A_NAME][key] for key in keys] == [0, 0, 0, 0, 0, 0, 0, 2]
    assert [rows[B_NAME][key] for key in keys] == [1, 1, 1, 1, 1, 1, 1, 0]
    assert [figures["unassigned"][key] for key in keys] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert [figures["office"][key] for key in keys] == [2, 1, 1, 1, 1, 1, 1, 2]


def test_month_parsing():
    assert str(metrics.Month.parse("2026-01").shift(-1)) == "2025-12"
    for bad in ("2026-13", "2026-00", "2026-1", "26-01", "", "2026-01x", "1999-12"):
        with pytest.raises(metrics.BadMonth):
            metrics.Month.parse(bad)
