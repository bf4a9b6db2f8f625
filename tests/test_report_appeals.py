"""申诉复核 in the monthly report: a hand-built November 2026 with appeals, its figures worked out by hand, on SQLite
and PostgreSQL; an upheld appeal changes only its department's figures; the PDF's section.

No holidays fall in Nov 2 – Dec 3 2026, surveys stay open 3 days (set here), every survey is answered. Departments:
A 市场监督管理局, B 人力资源和社会保障局 (C has no case). Every case is accepted and sent on its first day, replied to
and approved on the next.

  P1  A, Nov 2; approved Nov 3; rated 5 Nov 4 (差评, rectifying). A appeals Nov 5; the supervisor upholds it Nov 6
      and lifts the rectification: closed again, no new survey.
  P2  A, Nov 2; approved Nov 3; rated 1 Nov 4.
  P3  B, Nov 2; approved Nov 3; rated 4 Nov 4. B appeals Nov 5; rejected Nov 6. Reworked and approved Nov 9;
      round 2 rated 2 Nov 10.
  P4  A, Nov 16; approved Nov 17; rated 4 Nov 18. Return visit Nov 19; A appeals Nov 19; upheld Nov 20 without
      lifting (still rectifying); reworked and approved Nov 23; round 2 rated 3 Nov 24.
  P5  A, Nov 23; approved Nov 24 (survey closes Nov 27); rated 5 Nov 25. A appeals Nov 26; upheld (and lifted) Dec 1:
      after November's end but before November's report is made (Dec 3), so the draft sets it aside too; the
      lifting itself (Dec 1) is not a November rectification; December counts the decision.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from reports import metrics
from reports.figures import monthly_figures
from tests.helpers import page_csrf
from tests.report_figures import pdf_text
from tickets.db import db
from tickets.models import Appeal, Ticket

A_NAME, B_NAME = "市场监督管理局", "人力资源和社会保障局"
REASON = "办件记录显示已按时按规办结，差评与办理无关。"

# Office-wide: every rating counts, upheld or not.
OFFICE = {
    "accepted": 5,
    "closed": 4,                 # P1 (lifted Nov 6), P2, P3 (Nov 9), P4 (Nov 23); P5 rectifying at the end
    "closure_rate": 0.8,
    "surveys": 7,                # P1, P2, P3 ×2, P4 ×2, P5
    "rated": 7,
    "satisfied": 3,              # P2 (1), P3 round 2 (2), P4 round 2 (3)
    "satisfaction_rate": 0.4286,  # 3 / 7
    "good_rate": 0.2857,         # 2 / 7
    "bad": 4,                    # P1, P3, P4, P5
    "bad_rectified": 3,          # P1 (lifted), P3, P4 (rework approved); P5 lifted only in December
    "bad_rectified_rate": 0.75,
    "bad_visited": 1,            # P4
    "return_visit_rate": 0.25,
    "bad_upheld": 3,             # P1, P4, and P5 (decided Dec 1, before the report is made); P3's was rejected
    "appeals": 4,                # P1, P3, P4, P5 filed in November
    "appeals_upheld": 2,         # P1, P4 decided in November
    "appeals_rejected": 1,       # P3
}
# A's own figures: P1's, P4's and P5's 差评 (upheld by the time the report is made) are not A's.
DEPARTMENT_A = {
    "accepted": 4, "closed": 3, "closure_rate": 0.75,                # P1 P2 P4 P5; P5 open at the end
    "surveys": 5, "rated": 5,                                        # P1, P2, P4 ×2, P5
    "satisfied": 2,                                                  # P2 (1), P4 round 2 (3)
    "satisfaction_rate": 1.0,                                        # 2 / (5 − 3 set aside); 2 / 5 without appeals
    "good_rate": 0.2,                                                # 1 / 5: over every answer
    "bad": 0,                                                        # 3 − 3 set aside
    "bad_rectified_rate": None,                                      # no 差评 of A's own left
    "return_visit_rate": None,
    "bad_upheld": 3, "appeals": 3, "appeals_upheld": 2, "appeals_rejected": 0,
}
DEPARTMENT_B = {
    "accepted": 1, "closed": 1, "surveys": 2, "rated": 2, "satisfaction_rate": 0.5, "bad": 1,
    "bad_rectified_rate": 1.0, "return_visit_rate": 0.0, "bad_upheld": 0,
    "appeals": 1, "appeals_upheld": 0, "appeals_rejected": 1,
}


@pytest.fixture
def app(make_app):
    return make_app(SURVEY_OPEN_DAYS=3)


def build_november(world, clock, *, p4_upheld: bool = True) -> dict:
    """Walk P1..P5 through the API at the times of the module's docstring; {"P1": tracking number, ...}."""
    cases, codes = {}, {}

    def at(month, day, hour=9):
        clock.set(2026, month, day, hour)

    def open_case(name, department):
        filed = world.file()
        cases[name], codes[name] = filed["tracking_no"], filed["query_code"]
        world.act("office", cases[name], "accept")
        world.act("office", cases[name], "transfer", department_id=world.departments[department])

    def answer(name, who):
        world.act(who, cases[name], "reply", content="已办理完毕。")
        world.act("office", cases[name], "approve")

    def rate(name, score):
        response = world.client.post(f"/api/v1/tickets/{cases[name]}/rating?code={codes[name]}", json={"score": score})
        assert response.status_code == 200, response.get_json()

    def appeal(name, who):
        world.act(who, cases[name], "appeal", reason=REASON)

    def decide(name, uphold, lift=False):
        world.act("supervisor", cases[name], "decide_appeal", uphold=uphold, reason="复核意见。",
                  lift_rectification=lift)

    at(11, 2)
    for name, department in (("P1", "A"), ("P2", "A"), ("P3", "B")):
        open_case(name, department)
    at(11, 3)
    answer("P1", "dept_a"), answer("P2", "dept_a"), answer("P3", "dept_b")
    at(11, 4)
    rate("P1", 5), rate("P2", 1), rate("P3", 4)
    at(11, 5)
    appeal("P1", "dept_a"), appeal("P3", "dept_b")
    at(11, 6, 10)
    decide("P1", True, lift=True)
    decide("P3", False)
    at(11, 9)
    answer("P3", "dept_b")
    at(11, 10)
    rate("P3", 2)
    at(11, 16)
    open_case("P4", "A")
    at(11, 17)
    answer("P4", "dept_a")
    at(11, 18)
    rate("P4", 4)
    at(11, 19)
    world.act("office", cases["P4"], "record_visit", visited_on="2026-11-19", contacted=True, outcome="已回访。")
    appeal("P4", "dept_a")
    at(11, 20)
    decide("P4", p4_upheld)
    at(11, 23)
    answer("P4", "dept_a")
    open_case("P5", "A")
    at(11, 24)
    rate("P4", 3)
    answer("P5", "dept_a")
    at(11, 25)
    rate("P5", 5)
    at(11, 26)
    appeal("P5", "dept_a")
    at(12, 1)
    decide("P5", True, lift=True)
    at(12, 3, 10)
    return cases


def figures_of(app, month="2026-11"):
    with app.app_context():
        return monthly_figures(db.session, metrics.Month.parse(month))


def rows_of(figures) -> dict:
    return {row["name"]: row for row in figures["departments"]}


def test_appeals_in_the_hand_built_month(world, clock):
    build_november(world, clock)
    figures = figures_of(world.app)
    assert figures["formula_version"] == "2026.7"
    for key, expected in OFFICE.items():
        assert figures["office"][key] == expected, key
    rows = rows_of(figures)
    for name, expected_row in ((A_NAME, DEPARTMENT_A), (B_NAME, DEPARTMENT_B)):
        for key, expected in expected_row.items():
            assert rows[name][key] == expected, (name, key)
    assert rows["住房和城乡建设局"]["rank"] is None
    december = figures_of(world.app, "2026-12")
    assert (december["office"]["appeals"], december["office"]["appeals_upheld"]) == (0, 1)  # P5, decided Dec 1
    assert rows_of(december)[A_NAME]["appeals_upheld"] == 1 and rows_of(december)[A_NAME]["rank"] is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the queries are the ones checked above on both
def test_an_upheld_appeal_changes_only_its_departments_figures(world, clock):
    """November with P4's appeal upheld, then the same history with it rejected (the row's decision turned over):
    the office's figures and B's row stay, but for the counts of appeals decided each way; only A's 差评 figures move.
    (Ranks aside: a department's place depends on the others' figures; here B draws level with A.)"""
    world.app.config["REPORT_MIN_CASES"] = 1  # a hand-built month: a few cases each
    cases = build_november(world, clock)
    upheld = figures_of(world.app)
    with world.app.app_context():
        ticket_id = db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == cases["P4"]))
        db.session.execute(sa.update(Appeal).where(Appeal.ticket_id == ticket_id).values(upheld=False))
        db.session.commit()
    rejected = figures_of(world.app)

    def changed(before, after):
        return {key: (before[key], after[key]) for key in before
                if before[key] != after[key] and key not in ("rank", "score")}

    appeal_counts = {"appeals_upheld": (2, 1), "appeals_rejected": (1, 2), "bad_upheld": (3, 2),
                     "bad_upheld_rectified": (2, 1), "bad_upheld_visited": (1, 0)}
    assert changed(upheld["office"], rejected["office"]) == appeal_counts
    assert upheld["trend"] == rejected["trend"] and upheld["offices"] == rejected["offices"]
    before, after = rows_of(upheld), rows_of(rejected)
    assert changed(before[B_NAME], after[B_NAME]) == {}
    assert [before[name]["rank"] for name in (A_NAME, B_NAME)] == [1, 2]  # on time alike, A's 满意率 higher
    assert [after[name]["rank"] for name in (A_NAME, B_NAME)] == [1, 2]  # A's 满意率 still the higher: 66.7 % to 50 %
    assert changed(before[A_NAME], after[A_NAME]) == {
        **appeal_counts, "appeals_rejected": (0, 1),
        "bad": (0, 1),                        # none (P1, P4, P5 set aside), then P4
        "satisfaction_rate": (1.0, 0.6667),   # 2 / 2, then 2 / 3
        "satisfaction_rate_with_default": (1.0, 0.6667),  # no default ratings here: the same
        "bad_rectified": (0, 1), "bad_rectified_rate": (None, 1.0),  # P4's rework, approved Nov 23
        "bad_visited": (0, 1), "return_visit_rate": (None, 1.0),     # P4's return visit
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # it reads the figures checked above on both
def test_the_pdf_counts_the_appeals(world, clock):
    build_november(world, clock)
    with world.app.app_context():
        from reports.operations import compute

        report = compute(db.session, metrics.Month.parse("2026-11"))
    text = "".join(pdf_text(report.pdf).split())
    assert "差评申诉复核" in text and "被剔除的差评" in text
    # A: 3 filed, 2 upheld in November, 0 rejected, 3 set aside (P5's upheld Dec 1, before the report); B: 1, 0, 1, 0;
    # the office: 4, 2, 1, 3
    assert f"{A_NAME}3203" in text and f"{B_NAME}1010" in text and "全窗口合计4213" in text
    assert "不计入该部门上表中的差评数和满意率，但仍计入全窗口合计。" in text


def test_an_appeal_upheld_while_the_draft_is_reviewed_shows_in_the_draft_made_again(world, clock):
    """The 通报's working days: November's draft is made on Dec 1; a 差评 of Nov 25 (its survey closed Nov 27) is
    appealed on Dec 2 and upheld on Dec 3; the office makes the draft again in the console and A's 差评 is gone from
    its row (the office's total keeps it). Once published, nothing moves the month."""
    from reports import operations

    cases, codes = {}, {}
    clock.set(2026, 11, 23, 9)
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    clock.set(2026, 11, 24, 9)
    world.act("dept_a", no, "reply", content="已办理完毕。")
    world.act("office", no, "approve")
    clock.set(2026, 11, 25, 9)
    assert world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}",
                             json={"score": 5}).status_code == 200
    clock.set(2026, 12, 1, 0, 5)
    with world.app.app_context():
        operations.get_or_generate(db.session, metrics.Month.parse("2026-11"), trigger=operations.AUTO)
        db.session.commit()

    def a_row():
        body = world.get("office", "/api/v1/reports/monthly/2026-11").get_json()
        return body["status"], rows_of(body)[A_NAME]["bad"], body["office"]["bad"]

    assert a_row() == ("draft", 1, 1)
    clock.set(2026, 12, 2, 10)
    world.act("dept_a", no, "appeal", reason=REASON)
    clock.set(2026, 12, 3, 10)
    world.act("supervisor", no, "decide_appeal", uphold=True, reason="复核属实。")
    assert a_row() == ("draft", 1, 1)  # the kept draft stands until it is made again
    clock.set(2026, 12, 3, 11)
    office = world.console("office")
    response = office.post("/admin/reports/generate",
                           data={"month": "2026-11", "csrf_token": page_csrf(office, "/admin/reports/")})
    assert response.status_code == 302
    assert a_row() == ("draft", 0, 1)
    assert world.post("office", "/api/v1/reports/monthly/2026-11/publish").status_code == 200
    assert office.post("/admin/reports/generate", data={
        "month": "2026-11", "csrf_token": page_csrf(office, "/admin/reports/")}).status_code == 302
    assert a_row() == ("published", 0, 1)
