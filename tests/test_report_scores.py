"""The 通报's scores, ranks, 红黑榜, 环比/同比 and 主要问题 on a hand-built history of three months, on SQLite and
PostgreSQL: November 2026 (the report's month), October 2026 (环比, and its 黑榜) and November 2025 (同比).

Every case goes through the API: accepted and transferred on a Monday at 09:00, contacted at 09:30 (先行联系 met: its 8
working hours end Tuesday 10:00) unless said otherwise, replied and approved, and rated by the citizen at once (a
rating of 1-3: no 差评). The handling deadline is 5 working days (the Monday after); a late case replies after it.
REPORT_MIN_CASES is 2 here.

    2025-11 (同比)   Y1→A on time, contacted                             office: 1 accepted, every rate 100 %
    2026-10 (环比)   O1→A late, not contacted; O2→A on time               A: on time 1/2, contact 1/2, score 70
                    O3, O4→B on time, contacted                          B: 100
                    office: 4 accepted, 4 closed, on time 3/4, contact 3/4, 1 overdue
    2026-11         N1, N2→A on time, contacted; N3→A late, not contacted A: on time 2/3, contact 2/3, score 80
                    N4, N5→B on time, contacted                          B: 100
                    N6→C accepted, transferred, never answered           C: 1 case: listed, not ranked
                    office: 6 accepted, 5 closed, on time 4/5, contact 4/6, 2 overdue (N3 late, N6 still open)

Scores (weights 40/40/20, every satisfaction 100 %): A in October 40×0.5 + 40×1 + 20×0.5 = 70; A in November
40×0.6667 + 40×1 + 20×0.6667 = 80.002 → 80.0 (rates are kept to four decimals); B 100. So B leads both months, A is on
the 黑榜 in October and again in November.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from reports import metrics, operations
from reports.figures import monthly_figures
from reports.models import Report
from tickets.db import db

A_NAME, B_NAME, C_NAME = "市场监督管理局", "人力资源和社会保障局", "住房和城乡建设局"


def build_history(world, clock) -> dict:
    A, B, C = (world.departments[k] for k in "ABC")
    handler = {A: "dept_a", B: "dept_b"}
    cases = {}

    def case(name, department, year, month, monday, *, contacted=True, reply_day=None, score=1):
        clock.set(year, month, monday, 9, 0)
        filed = world.file(service_item="营业执照变更")
        no = cases[name] = filed["tracking_no"]
        world.act("office", no, "accept")
        world.act("office", no, "transfer", department_id=department)
        if department not in handler:
            return
        if contacted:
            clock.set(year, month, monday, 9, 30)
            world.act(handler[department], no, "record_contact", contacted_at=clock.now.isoformat(), method="phone",
                      outcome="已电话联系，说明办理进度。")
        clock.set(year, month, reply_day or monday + 1, 9, 0)
        world.act(handler[department], no, "reply", content="已办理完毕。")
        world.act("office", no, "approve")
        response = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": score})
        assert response.status_code == 200, response.get_json()

    case("Y1", A, 2025, 11, 3)
    case("O1", A, 2026, 10, 12, contacted=False, reply_day=21, score=3)
    case("O2", A, 2026, 10, 12, score=2)
    case("O3", B, 2026, 10, 12)
    case("O4", B, 2026, 10, 12)
    case("N1", A, 2026, 11, 2)
    case("N2", A, 2026, 11, 2, score=3)
    case("N3", A, 2026, 11, 2, contacted=False, reply_day=11, score=2)
    case("N4", B, 2026, 11, 2)
    case("N5", B, 2026, 11, 2)
    case("N6", C, 2026, 11, 2)
    clock.set(2026, 12, 3, 10, 0)
    return cases


@pytest.fixture
def history(world, clock):
    world.app.config["REPORT_MIN_CASES"] = 2
    return build_history(world, clock)


def figures_of(app, month="2026-11"):
    with app.app_context():
        figures = monthly_figures(db.session, metrics.Month.parse(month))
        db.session.rollback()
        return figures


def rows_of(figures) -> dict:
    return {row["name"]: row for row in figures["departments"]}


def test_scores_ranks_and_boards_by_hand(world, history):
    october, november = figures_of(world.app, "2026-10"), figures_of(world.app)
    assert november["scoring"] == {"weights": {"on_time_rate": 40, "satisfaction_rate": 40, "contact_rate": 20},
                                   "min_cases": 2,
                                   "thresholds": {"on_time_rate": 0.9, "satisfaction_rate": 0.9, "contact_rate": 0.9}}
    oct_rows, nov_rows = rows_of(october), rows_of(november)
    assert {name: (r["on_time_rate"], r["satisfaction_rate"], r["contact_rate"], r["score"], r["rank"])
            for name, r in oct_rows.items()} == {
        A_NAME: (0.5, 1.0, 0.5, 70.0, 2), B_NAME: (1.0, 1.0, 1.0, 100.0, 1), C_NAME: (None, None, None, None, None)}
    assert {name: (r["on_time_rate"], r["satisfaction_rate"], r["contact_rate"], r["score"], r["rank"], r["unranked"])
            for name, r in nov_rows.items()} == {
        A_NAME: (0.6667, 1.0, 0.6667, 80.0, 2, None),
        B_NAME: (1.0, 1.0, 1.0, 100.0, 1, None),
        C_NAME: (None, None, 0.0, 0.0, None, "few_cases")}  # one case: its missed first contact scores 0, unranked
    assert [row["name"] for row in november["departments"]] == [B_NAME, A_NAME, C_NAME]
    # two ranked units: one on each list; A was on October's 黑榜 too
    ids = {name: row["id"] for name, row in nov_rows.items()}
    assert october["department_boards"] == {
        "red": [{"id": ids[B_NAME], "code": None, "name": B_NAME, "rank": 1, "score": 100.0}],
        "black": [{"id": ids[A_NAME], "code": None, "name": A_NAME, "rank": 2, "score": 70.0, "again": False}]}
    assert november["department_boards"] == {
        "red": [{"id": ids[B_NAME], "code": None, "name": B_NAME, "rank": 1, "score": 100.0}],
        "black": [{"id": ids[A_NAME], "code": None, "name": A_NAME, "rank": 2, "score": 80.0, "again": True}]}
    assert november["office_boards"] == {"red": [], "black": []}  # a single window: no windows below


def test_month_on_month_and_year_on_year_by_hand(world, history):
    november = figures_of(world.app)
    office = november["office"]
    assert (office["accepted"], office["closed"], office["closure_rate"], office["on_time_rate"],
            office["satisfaction_rate"], office["contact_rate"], office["participation_rate"], office["overdue"],
            office["bad"]) == (6, 5, 0.8333, 0.8, 1.0, 0.6667, 1.0, 2, 0)
    assert november["comparison"]["previous_month"] == "2026-10"
    assert november["comparison"]["year_ago_month"] == "2025-11"
    table = {row["key"]: (row["value"], row["previous"], row["mom"], row["year_ago"], row["yoy"], row["better"])
             for row in november["comparison"]["rows"]}
    assert table == {
        "accepted": (6, 4, 2, 1, 5, None),
        "closure_rate": (0.8333, 1.0, -16.7, 1.0, -16.7, True),     # (0.8333 - 1) × 100 = -16.67
        "on_time_rate": (0.8, 0.75, 5.0, 1.0, -20.0, True),
        "satisfaction_rate": (1.0, 1.0, 0.0, 1.0, 0.0, True),
        "contact_rate": (0.6667, 0.75, -8.3, 1.0, -33.3, True),     # -8.33, -33.33
        "participation_rate": (1.0, 1.0, 0.0, 1.0, 0.0, True),
        "overdue": (2, 1, 1, 0, 2, False),
        "bad": (0, 0, 0, 0, 0, False),
    }


def test_main_problems_by_hand(world, history):
    figures = figures_of(world.app)
    office = figures["office"]["name"]
    assert [(p["kind"], p["unit"], p["key"], p["value"]) for p in figures["problems"]] == [
        ("office", office, "on_time_rate", 0.8),
        ("office", office, "contact_rate", 0.6667),
        ("department", A_NAME, "on_time_rate", 0.6667),   # B meets every threshold; C has too few cases to judge
        ("department", A_NAME, "contact_rate", 0.6667),
        ("black_again", A_NAME, None, None),
        ("overdue_at_end", None, None, 1),                  # N6; N3 was answered, late
    ]


def test_earlier_months_come_from_kept_reports_of_the_same_formula_version(world, history):
    """A kept October report is read, not recomputed (its figures are the record); one of another formula version
    is not."""
    computed = figures_of(world.app)["comparison"]["rows"]
    with world.app.app_context():
        operations.get_or_generate(db.session, metrics.Month.parse("2026-10"), trigger=operations.MANUAL)
        db.session.commit()
        report = db.session.scalar(sa.select(Report).where(Report.month == "2026-10"))
        figures = dict(report.figures)
        figures["office"] = {**figures["office"], "accepted": 40}
        report.figures = figures
        db.session.commit()
    kept = {row["key"]: row for row in figures_of(world.app)["comparison"]["rows"]}
    assert (kept["accepted"]["previous"], kept["accepted"]["mom"]) == (40, -34)
    assert kept["on_time_rate"] == {row["key"]: row for row in computed}["on_time_rate"]
    with world.app.app_context():
        db.session.execute(sa.update(Report).values(formula_version="2026.1"))
        db.session.commit()
    assert figures_of(world.app)["comparison"]["rows"] == computed


def test_thresholds_of_the_office_decide_the_main_problems(world, history):
    from tickets.models import Office
    from tickets import offices

    with world.app.app_context():
        office = db.session.get(Office, offices.root_id(db.session))
        office.report_thresholds = {"on_time_rate": 0.6}
        db.session.commit()
    problems = figures_of(world.app)["problems"]
    assert [p["kind"] for p in problems] == ["black_again", "overdue_at_end"]  # 80 % and 66.7 % meet 60 %


def test_typical_cases_marked_by_the_office_are_listed_in_their_closing_month(world, history):
    n1, n6 = history["N1"], history["N6"]
    summary = "企业变更登记<b>跑了三次</b>，转办后一天办结。"
    world.act("office", n1, "mark_typical", summary=summary)
    (listed,) = figures_of(world.app)["typical_cases"]
    assert (listed["tracking_no"], listed["summary"], listed["department"]) == (n1, summary, A_NAME)
    assert figures_of(world.app, "2026-10")["typical_cases"] == []  # closed in November
    # only the office, only closed cases, a summary required, a withdrawal only of a mark
    assert world.act("dept_a", n1, "mark_typical", expect=403, summary="x")["error"]["code"] == "forbidden"
    world.act("office", n6, "mark_typical", expect=409, summary="未办结")
    assert "summary" in world.act("office", n1, "mark_typical", expect=422, summary=" ")["error"]["fields"]
    assert "summary" in world.act("office", n1, "mark_typical", expect=422, summary="长" * 501)["error"]["fields"]
    history_actions = [e["action"] for e in world.ticket("office", n1)["events"]]
    assert history_actions.count("mark_typical") == 1
    world.act("office", n1, "mark_typical", typical=False)
    assert figures_of(world.app)["typical_cases"] == []
    assert "typical" in world.act("office", n1, "mark_typical", expect=422, typical=False)["error"]["fields"]
