"""Monthly reports of every office (tests/network.py's tree), on SQLite and PostgreSQL.

A hand-built November 2026 over three levels, walked through the real API by each window's own staff. No
holidays fall in Oct 28 – Dec 3 2026 (working days are Monday to Friday); handling deadlines are 5 working
days (accepted Nov 2 → due Nov 9), surveys stay open 3 days. Every case is filed and accepted on Mon Nov 2.

  R1  root: sent to A; replied and approved Nov 4 (on time; 2 working days). Rated 1 on Nov 5.
  K1  c1:   sent to C1; replied and approved Nov 11 (late; 7 working days). Rated 3 on Nov 12.
  K2  t11:  sent to C1; replied and approved Nov 4. Rated 4 on Nov 5 (差评) → rectifying; the township
            explains Nov 6 (closed again, on time; 4 working days to the last closing).
  K3  t12:  sent to A; escalated to level 2 on Nov 12; still open at the month's end (overdue).
  W1  c2:   sent to C2; replied and approved Nov 3 (on time; 1 working day). Rated 2 on Nov 4.
  W2  t21:  resolved by the township itself on Nov 2 (no department; 0 working days). Never rated.
  W3  t21:  sent to C2, which returns it on Nov 3 (a return counted against C2); sent to B on Nov 3 (due Nov 10);
            still open at the month's end (overdue, B's).

先行联系: every transfer on Nov 2 at 09:00 owes a first contact by Nov 3 at 10:00 (8 working hours). C1 contacts
K2's citizen on Nov 2 at 15:00 (on time); B, given W3 on Nov 3 at 09:00, contacts its citizen on Nov 5 (late: due
Nov 4 10:00). Nobody else records one: R1 and K1 were replied to after Nov 3 10:00 and K3 never was, so they count
as missed; W1's reply (Nov 3 09:00) and C2's return of W3 came before the time was up: not counted.
"""
from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from reports import metrics
from reports.figures import monthly_figures
from reports.models import Report
from tests.network import OFFICES
from tests.report_month import A_NAME, _escalate, at
from tickets.db import db
from tickets.models import Ticket

MONTH = "2026-11"
URL = f"/api/v1/reports/monthly/{MONTH}"
C1_NAME, C2_NAME = "东湖县办不成事窗口", "西山县办不成事窗口"

# Each case's counts, worked out by hand from the story above: (owning office, department at the month's end, counts).
CASES = {
    "R1": ("root", "A", dict(accepted=1, closed=1, closed_in_month=1, closed_on_time=1, handling_days=2, surveys=1,
                             rated=1, satisfied=1, good=1, contacts_due=1)),
    "K1": ("c1", "C1", dict(accepted=1, closed=1, closed_in_month=1, handling_days=7, overdue=1, surveys=1, rated=1,
                            satisfied=1, contacts_due=1)),
    "K2": ("t11", "C1", dict(accepted=1, closed=1, closed_in_month=1, closed_on_time=1, handling_days=4, surveys=1,
                             rated=1, bad=1, bad_rectified=1, contacts_due=1, contacted_on_time=1)),
    "K3": ("t12", "A", dict(accepted=1, overdue=1, supervised_2=1, contacts_due=1)),
    "W1": ("c2", "C2", dict(accepted=1, closed=1, closed_in_month=1, closed_on_time=1, handling_days=1, surveys=1,
                            rated=1, satisfied=1, good=1)),
    "W2": ("t21", None, dict(accepted=1, closed=1, closed_in_month=1, closed_on_time=1, surveys=1)),
    "W3": ("t21", "B", dict(accepted=1, overdue=1, contacts_due=1)),
}
RETURNS = (("t21", "C2", 1),)  # W3, returned by C2: counted against C2 (whose case it no longer is)

# The city's report, by hand: 7 accepted, 5 closed (R1 K1 K2 W1 W2); closed in the month 5, on time 4 (K1 late);
# handling days 2 + 7 + 4 + 1 + 0 = 14; overdue K1 K3 W3; surveys 5, rated 4 (not W2), satisfied 3 (1, 3, 2),
# good 2 (1, 2), bad 1 (K2, answered by explanation, not visited).
CITY = {"accepted": 7, "closed": 5, "closure_rate": 0.7143, "closed_in_month": 5, "closed_on_time": 4,
        "on_time_rate": 0.8, "avg_handling_days": 2.8, "overdue": 3, "returned": 1, "extended": 0,
        "supervised_1": 0, "supervised_2": 1, "supervised_3": 0, "surveys": 5, "rated": 4,
        "participation_rate": 0.8, "satisfied": 3, "satisfaction_rate": 0.75, "good": 2, "good_rate": 0.5, "bad": 1,
        "bad_rectified": 1, "bad_rectified_rate": 1.0, "bad_visited": 0, "return_visit_rate": 0.0,
        "contacts_due": 5, "contacted_on_time": 1, "contact_rate": 0.2}
# 东湖县 (c1, t11, t12): K1 K2 K3. 3 accepted, 2 closed; on time 1 of 2; handling 11 / 2; overdue K1 K3;
# rated 2, satisfied 1 (K1's 3), bad 1.
C1 = {"accepted": 3, "closed": 2, "closure_rate": 0.6667, "closed_in_month": 2, "closed_on_time": 1,
      "on_time_rate": 0.5, "avg_handling_days": 5.5, "overdue": 2, "returned": 0, "supervised_2": 1, "surveys": 2,
      "rated": 2, "satisfaction_rate": 0.5, "good_rate": 0.0, "bad": 1, "bad_rectified_rate": 1.0,
      "contacts_due": 3, "contacted_on_time": 1, "contact_rate": 0.3333}
# 西山县 (c2, t21): W1 W2 W3. 3 accepted, 2 closed, both on time; handling 1 / 2; overdue W3; returned 1 (W3, C2);
# rated 1 (W1's 2): satisfied.
C2 = {"accepted": 3, "closed": 2, "closure_rate": 0.6667, "closed_in_month": 2, "closed_on_time": 2,
      "on_time_rate": 1.0, "avg_handling_days": 0.5, "overdue": 1, "returned": 1, "surveys": 2, "rated": 1,
      "participation_rate": 0.5, "satisfaction_rate": 1.0, "good_rate": 1.0, "bad": 0, "bad_rectified_rate": None,
      "contacts_due": 1, "contacted_on_time": 0, "contact_rate": 0.0}
CHILDREN = {code: [c for c, _name, _level, parent in OFFICES if parent == code] for code in
            ("root", *(c for c, *_ in OFFICES))}


def subtree_codes(code: str) -> list[str]:
    return [code] + [below for child in CHILDREN[code] for below in subtree_codes(child)]


def expected_counts(codes, *, department="any") -> dict:
    """The hand counts summed over the cases owned by `codes` (and of one department at the month's end)."""
    total = metrics.empty_counts()
    for office, dept, counts in CASES.values():
        if office in codes and (department == "any" or dept == department):
            for key, value in counts.items():
                total[key] += value
    for office, dept, count in RETURNS:
        if office in codes and (department == "any" or dept == department):
            total["returned"] += count
    total["accepted_online"] = total["accepted"]  # every case here is filed through the API (受理渠道: 网上)
    return total


@pytest.fixture
def november(network, clock):
    world = network.world
    A, B, C1d, C2d = (world.departments[code] for code in ("A", "B", "C1", "C2"))
    t = {}

    def file(name, office):
        t[name] = world.file(**({} if office == "root" else {"office_code": office}))
        return t[name]["tracking_no"]

    def act(who, name, action, **body):
        return world.act(who, t[name]["tracking_no"], action, **body)

    def rate(name, score):
        no, code = t[name]["tracking_no"], t[name]["query_code"]
        response = world.client.post(f"/api/v1/tickets/{no}/rating?code={code}", json={"score": score})
        assert response.status_code == 200, response.get_json()

    at(clock, 11, 2)
    for name, office, staff, department in (("R1", "root", "office", A), ("K1", "c1", "office_c1", C1d),
                                            ("K2", "t11", "office_t11", C1d), ("K3", "t12", "office_t12", A),
                                            ("W1", "c2", "office_c2", C2d), ("W3", "t21", "office_t21", C2d)):
        file(name, office)
        act(staff, name, "accept")
        act(staff, name, "transfer", department_id=department)
    file("W2", "t21")
    act("office_t21", "W2", "accept")
    act("office_t21", "W2", "resolve", content="已当场答复。")
    at(clock, 11, 2, 15)
    act("dept_c1", "K2", "record_contact", contacted_at="2026-11-02T15:00", method="phone", outcome="已电话联系。")
    at(clock, 11, 3)
    act("dept_c2", "W1", "reply", content="已办理完毕。")
    act("office_c2", "W1", "approve")
    act("dept_c2", "W3", "return", reason="应由市级部门办理。")
    act("office_t21", "W3", "transfer", department_id=B)
    at(clock, 11, 4)
    rate("W1", 2)
    for name, dept, staff in (("R1", "dept_a", "office"), ("K2", "dept_c1", "office_t11")):
        act(dept, name, "reply", content="已办理完毕。")
        act(staff, name, "approve")
    at(clock, 11, 5)
    act("dept_b", "W3", "record_contact", contacted_at="2026-11-05T09:00", method="visit", outcome="已上门联系。")
    rate("R1", 1)
    rate("K2", 4)
    at(clock, 11, 6)
    act("office_t11", "K2", "explain", content="政策规定如此，已向群众说明。")
    at(clock, 11, 11)
    act("dept_c1", "K1", "reply", content="已办理完毕。")
    act("office_c1", "K1", "approve")
    at(clock, 11, 12)
    rate("K1", 3)
    _escalate(world.app, t["K3"]["tracking_no"], 2, clock.now)
    at(clock, 12, 3, 10)
    return t


def figures_of(network, code: str) -> dict:
    with network.world.app.app_context():
        return monthly_figures(db.session, metrics.Month.parse(MONTH), network.offices[code])


def check(figures: dict, expected: dict, where):
    for key, value in expected.items():
        assert figures[key] == value, (where, key, figures[key], value)


def test_every_figure_of_every_office_by_hand(network, november):
    for code in ("root", *(c for c, *_ in OFFICES)):
        figures = figures_of(network, code)
        codes = subtree_codes(code)
        # the total: every count, and every rate from them, against the hand counts of the subtree's cases
        check(figures["office"], metrics.with_rates(expected_counts(codes)), code)
        assert figures["office"]["code"] == code
        # each child office's row: the hand counts of that child's whole subtree
        rows = {row["code"]: row for row in figures["offices"]}
        assert set(rows) == set(CHILDREN[code]), code
        for child in CHILDREN[code]:
            check(rows[child], metrics.with_rates(expected_counts(subtree_codes(child))), (code, child))
        check(figures["own"], metrics.with_rates(expected_counts([code])), (code, "own"))
        # each department's row: its cases of this subtree; its returns, whoever has the case now
        departments = {row["name"]: row for row in figures["departments"]}
        with network.world.app.app_context():
            names = dict(db.session.execute(sa.text("SELECT code, name FROM department")).all())
        for dept in ("A", "B", "C1", "C2"):
            counts = expected_counts(codes, department=dept)
            if any(counts.values()):
                check(departments[names[dept]], metrics.with_rates(counts), (code, dept))
        check(figures["unassigned"], metrics.with_rates(expected_counts(codes, department=None)), (code, "none"))
    # the hand totals written out (so the per-case table above is checked against the story too)
    check(figures_of(network, "root")["office"], CITY, "city")
    city_rows = {row["code"]: row for row in figures_of(network, "root")["offices"]}
    check(city_rows["c1"], C1, "c1")
    check(city_rows["c2"], C2, "c2")
    check(figures_of(network, "c1")["office"], C1, "c1's own report")


def test_a_parent_is_the_sum_of_its_children_and_its_own_cases(network, november):
    """Property over every office: total = Σ child rows + own, count by count; a child's row = that child's report."""
    totals = {code: figures_of(network, code) for code in ("root", *(c for c, *_ in OFFICES))}
    for code, figures in totals.items():
        for key in metrics.COUNTS:
            if key == "handling_days":
                continue
            parts = [row[key] for row in figures["offices"]] + [figures["own"][key]]
            assert figures["office"][key] == sum(parts), (code, key)
        for row in figures["offices"]:
            child = totals[row["code"]]["office"]
            assert {k: row[k] for k in metrics.COUNTS if k in row} == {k: child[k] for k in metrics.COUNTS if k in child}
    # departments listed: the county's own department, and any other that handled a case of its subtree
    c1 = [row["name"] for row in totals["c1"]["departments"]]
    assert "东湖县人社局" in c1 and "市场监督管理局" in c1 and "西山县人社局" not in c1
    assert totals["t11"]["offices"] == [] and totals["t11"]["office"]["accepted"] == 1


def test_the_city_ranks_its_counties_and_each_level_reads_its_own(network, november):
    world = network.world
    world.app.config["REPORT_MIN_CASES"] = 1  # a few cases each
    body = world.get("office", URL).get_json()
    assert body["office"]["code"] == "root" and body["office"]["accepted"] == 7
    # 同级比较: 西山县 on time 100 %, 东湖县 50 %
    assert [(row["code"], row["rank"]) for row in body["offices"]] == [("c2", 1), ("c1", 2)]
    assert body["offices"][0]["name"] == C2_NAME and body["offices"][1]["on_time_rate"] == 0.5
    # default: the caller's own office; its subtree's figures, its townships ranked (t12 has nothing closed)
    mine = world.get("leader_c1", URL).get_json()
    assert mine["office"]["code"] == "c1" and mine["office"]["accepted"] == 3
    assert [row["code"] for row in mine["offices"]] == ["t11", "t12"]
    assert world.get("office_c1", URL + "?office=t11").get_json()["office"]["accepted"] == 1
    assert world.get("admin", URL + "?office=c2").get_json()["office"]["accepted"] == 3
    assert world.get("office", URL + "?office=c1").get_json()["office"]["accepted"] == 3


def test_a_case_referred_up_before_acceptance_is_accepted_by_the_window_above(network, clock):
    """A township refers a case up before accepting it (`refer_up` out of `submitted`): the county has it `accepted`
    without an `accept` event, and that hand-over is its acceptance, in the month it happened. Before, the case was in no
    month's 受理数 anywhere, though closed (and on time) in 本月办结数. A case referred up after its acceptance is
    accepted once, by the township, in the month of its `accept`."""
    world = network.world
    clock.set(2026, 10, 30, 9)
    early = network.file("t11")
    world.step("office_t11", early, "accept")                                 # October's, at the township
    clock.set(2026, 11, 2, 9)
    world.step("office_t11", early, "refer_up", reason="需要县里协调")
    referred = network.file("t11", phone="13900139000")
    world.step("office_t11", referred, "refer_up", reason="需要县里协调")     # submitted -> accepted at c1
    world.step("office_c1", referred, "transfer", department_id=network.departments["C1"])
    clock.set(2026, 11, 4, 9)
    world.step("dept_c1", referred, "reply", content="已办理完毕。")
    world.step("office_c1", referred, "approve")
    clock.set(2026, 12, 3, 10)
    city, county = figures_of(network, "root"), figures_of(network, "c1")
    for figures in (city, county):
        office = figures["office"]
        assert (office["accepted"], office["closed"], office["closed_in_month"]) == (1, 1, 1), office
        assert sum(p["count"] for p in figures["problem_types"]) == 1
    assert county["own"]["accepted"] == 1 and figures_of(network, "t11")["office"]["accepted"] == 0
    c1 = {row["name"]: row for row in county["departments"]}["东湖县人社局"]
    assert (c1["accepted"], c1["closed"]) == (1, 1)
    with world.app.app_context():
        october = monthly_figures(db.session, metrics.Month.parse("2026-10"), network.offices["root"])
    assert october["office"]["accepted"] == 1  # the early case: accepted once, in October


def test_a_past_month_stays_with_the_windows_that_had_the_cases_at_its_end(network, clock):
    """A month's figures and lists are those of the windows that owned the cases at its end (the last hand-over before
    it), not of the ticket's `office_id` now: a case a township accepted in November (and a county department returned
    to it) referred up on Dec 1, and one a county accepted in November assigned down on Dec 1, leave every report of
    November as it was, before and after, at every level (受理数, 退单数, the windows' rows, the lists)."""
    world = network.world
    clock.set(2026, 11, 2, 9)
    up = network.file("t11")
    world.step("office_t11", up, "accept")
    world.step("office_t11", up, "transfer", department_id=network.departments["C1"])
    clock.set(2026, 11, 3, 9)
    world.step("dept_c1", up, "return", reason="不属于本部门职责。")
    clock.set(2026, 11, 30, 9)
    down = network.file("c1", phone="13900139000")
    world.step("office_c1", down, "accept")
    clock.set(2026, 12, 1, 9)
    codes = ("root", "c1", "t11", "t12")
    before = {code: figures_of(network, code) for code in codes}
    world.step("office_t11", up, "refer_up", reason="需要县里协调")
    world.step("office_c1", down, "assign_down", office_code="t12", instructions="请镇里办理。")
    after = {code: figures_of(network, code) for code in codes}
    for code in codes:
        for key in ("office", "departments", "unassigned", "offices", "own", "problem_types", "overdue"):
            assert after[code][key] == before[code][key], (code, key)
    t11, c1 = after["t11"]["office"], after["c1"]
    assert (t11["accepted"], t11["returned"]) == (1, 1)
    assert after["t12"]["office"]["accepted"] == 0 and c1["own"]["accepted"] == 1
    assert {row["code"]: row["accepted"] for row in c1["offices"]} == {"t11": 1, "t12": 0}
    assert {row["code"]: row["returned"] for row in c1["offices"]} == {"t11": 1, "t12": 0}


def test_the_window_at_an_instant_is_the_same_condition_written_both_ways(network, clock):
    """`Scope.holds_at` (every figure's filter: the window is looked up only for cases handed over since) selects
    exactly the cases `holds(owner_at(...))` does, for every office's scope and instants before, at, between and
    after hand-overs."""
    world = network.world
    clock.set(2026, 11, 2, 9)
    stay, up, down, both = (network.file(code, phone=f"1390013{k:04d}")
                            for k, code in enumerate(("t11", "t11", "c1", "t11")))
    for no, code in ((up, "t11"), (down, "c1"), (both, "t11")):
        world.step(f"office_{code}", no, "accept")
    clock.set(2026, 11, 10, 9)
    world.step("office_t11", up, "refer_up", reason="需要县里协调")
    world.step("office_c1", down, "assign_down", office_code="t12", instructions="请镇里办理。")
    world.step("office_t11", both, "refer_up", reason="需要县里协调")
    clock.set(2026, 11, 20, 9)
    world.step("office_c1", both, "assign_down", office_code="t12", instructions="请镇里办理。")
    shanghai = ZoneInfo("Asia/Shanghai")  # at a hand-over's very instant too (10th and 20th, 09:00)
    instants = [datetime(2026, 11, day, 9, tzinfo=shanghai) for day in (1, 10, 15, 20, 30)]
    seen = {}
    with world.app.app_context():
        for code in ("root", *(c for c, *_ in OFFICES)):
            scope = metrics.Scope.of(db.session, network.offices[code])
            for instant in instants:
                def ids(condition):
                    return set(db.session.scalars(sa.select(Ticket.tracking_no).where(condition)))
                seen[code, instant.day] = ids(scope.holds_at(instant))
                assert seen[code, instant.day] == ids(scope.holds(metrics.owner_at(instant))), (code, instant)
    assert seen["t11", 1] == {stay, up, both} and seen["t11", 15] == {stay}
    assert seen["c1", 15] == {stay, up, down, both}
    assert seen["t12", 1] == set() and seen["t12", 15] == {down} and seen["t12", 30] == {down, both}


def test_a_past_month_s_frequent_requests_stay_with_the_windows_that_had_them(network, clock):
    """高频诉求 (reports/clusters.py) counts a month's cases where every other figure does: at the windows that owned
    them at the month's end. Three similar reports a township had in November, referred up on Dec 1, stay the
    township's (its name on the item too) in November's reports at every level, before and after."""
    world = network.world
    world.app.config["CLUSTER_MIN_CASES"] = 2
    clock.set(2026, 11, 30, 9)
    nos = [network.file("t11", phone=f"13900139{k:03d}", service_item="营业执照变更",
                        description=f"营业执照变更网上提交后一直显示审核中，打电话也没人接（第{k}次）") for k in range(3)]
    with world.app.app_context():
        rows = db.session.scalars(sa.select(Ticket).where(Ticket.tracking_no.in_(nos)).order_by(Ticket.id)).all()
        for row in rows:
            row.cluster_id = rows[0].id
        db.session.commit()
    codes = ("root", "c1", "t11", "t12")
    before = {code: figures_of(network, code)["clusters"] for code in codes}
    assert [(i["count"], i["office_code"]) for i in before["t11"]["items"]] == [(3, "t11")]
    assert before["c1"]["items"] == before["t11"]["items"] and before["t12"]["items"] == []
    clock.set(2026, 12, 1, 9)
    for no in nos:
        world.step("office_t11", no, "refer_up", reason="需要县里协调")
    assert {network.office_of(no) for no in nos} == {"c1"}
    assert {code: figures_of(network, code)["clusters"] for code in codes} == before


def test_a_case_a_department_returned_and_the_window_above_settled_is_not_the_departments(network, clock):
    """A county department returns a township's case (退回); the township refers it up and the county settles it itself
    (`resolve`). The ticket keeps the department's `department_id`, but the closing, its timeliness and the citizen's
    rating are the county window's (`unassigned`, the county's own cases), as is the case in the cohort; the
    department keeps only its returns (退单数). A case it returned that the
    township sent on to a city department is that department's."""
    world = network.world
    clock.set(2026, 11, 2, 9)
    filed = world.file(office_code="t11"), world.file(office_code="t11", phone="13900139000")
    settled, answered = (case["tracking_no"] for case in filed)
    for case in (settled, answered):
        world.step("office_t11", case, "accept")
        world.step("office_t11", case, "transfer", department_id=network.departments["C1"])
    clock.set(2026, 11, 3, 9)
    for case in (settled, answered):
        world.step("dept_c1", case, "return", reason="不属于本部门职责。")
    world.step("office_t11", settled, "refer_up", reason="需要县里协调")
    world.step("office_c1", settled, "resolve", content="县窗口已当场答复。")
    world.step("office_t11", answered, "transfer", department_id=network.departments["A"])
    clock.set(2026, 11, 4, 9)
    world.step("dept_a", answered, "reply", content="已办理完毕。")
    world.step("office_t11", answered, "approve")
    for case, score in zip(filed, (4, 1)):  # the 差评 reopens the county's answer: not closed at the month's end
        response = world.client.post(f"/api/v1/tickets/{case['tracking_no']}/rating?code={case['query_code']}",
                                     json={"score": score})
        assert response.status_code == 200, response.get_json()
    clock.set(2026, 12, 3, 10)
    city, county = figures_of(network, "root"), figures_of(network, "c1")
    keys = ("accepted", "closed", "closed_in_month", "closed_on_time", "surveys", "rated", "bad", "returned")
    rows = {row["name"]: row for row in city["departments"]}
    assert [rows["东湖县人社局"][key] for key in keys] == [0, 0, 0, 0, 0, 0, 0, 2]
    assert [rows[A_NAME][key] for key in keys] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert [city["unassigned"][key] for key in keys] == [1, 0, 1, 1, 1, 1, 1, 0]
    # by window: the settled case is the county's own at the month's end, with its return; the other the township's
    assert [county["own"][key] for key in keys] == [1, 0, 1, 1, 1, 1, 1, 1]
    t11 = {row["code"]: row for row in county["offices"]}["t11"]
    assert [t11[key] for key in keys] == [1, 1, 1, 1, 1, 1, 0, 1]


@pytest.mark.parametrize("who, office", [
    ("office_c1", "c2"), ("leader_c1", "t21"), ("supervisor_c2", "c1"), ("office_t11", "c1"), ("office_t11", "t12"),
    ("office_t11", "root"), ("leader_c2", "nowhere"), ("office", "nowhere"), ("office_c1", "x" * 40),
])
def test_an_office_outside_the_callers_subtree_is_404(network, clock, who, office):
    clock.set(2026, 12, 3, 10)
    for suffix in ("", ".pdf"):
        response = network.world.get(who, f"{URL}{suffix}?office={office}")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found", (who, office)
    assert network.world.get("dept_c1", URL + "?office=c1").status_code == 403  # handlers read no reports
    with network.world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 0


def test_reports_are_kept_per_office_and_month(network, november):
    world = network.world
    for who in ("office", "office_c1", "office_c1", "office_t21"):
        assert world.get(who, URL).get_json()["kept"] is True
    assert world.get("leader_c2", URL).get_json()["kept"] is False  # a leader's reading keeps nothing
    with world.app.app_context():
        kept = db.session.execute(sa.select(Report.office_id, Report.month)).all()
    assert sorted(kept) == sorted((network.offices[code], MONTH) for code in ("root", "c1", "t21"))
    # the console lists each office's own, and downloads them by office
    console = world.console("office_c1")
    page = console.get("/admin/reports/?office=t11").get_data(as_text=True)
    assert "青石镇便民服务中心" in page and "report-list" not in page
    page = console.get("/admin/reports/").get_data(as_text=True)
    assert "report-list" in page and "红岩乡" not in page and "白沙镇便民服务中心" in page
    assert console.get(f"/admin/reports/{MONTH}.pdf?office=c1").status_code == 200
    assert console.get(f"/admin/reports/{MONTH}.pdf?office=c2").status_code == 404
    assert console.get("/admin/reports/?office=c2").status_code == 404


def test_the_cli_takes_the_office(network, november, tmp_path):
    runner = network.world.app.test_cli_runner()
    out = tmp_path / "c2.pdf"
    result = runner.invoke(args=["report", "monthly", MONTH, "-o", str(out), "--office", "c2"])
    assert result.exit_code == 0, result.output
    assert "accepted 3" in result.output and C2_NAME in pdf_text(out.read_bytes())
    result = runner.invoke(args=["report", "monthly", MONTH, "-o", str(out), "--office", "nowhere"])
    assert result.exit_code != 0 and "nowhere" in result.output


def pdf_text(data: bytes) -> str:
    return "".join("".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages)


def test_the_city_pdf_names_the_counties_in_ranking_order(network, november):
    network.world.app.config["REPORT_MIN_CASES"] = 1  # a few cases each
    response = network.world.get("leader", URL + ".pdf")
    assert response.status_code == 200
    text = pdf_text(response.data)
    section = text.index("下级窗口排名")
    assert text.index(C2_NAME, section) < text.index(C1_NAME, section)
    assert "本窗口自有案件" in text
    county = network.world.get("leader_c1", URL + ".pdf")
    assert county.status_code == 200 and 'c1.pdf"' in county.headers["Content-Disposition"]
    text = pdf_text(county.data)
    assert C1_NAME in text and C2_NAME not in text and "青石镇便民服务中心" in text
