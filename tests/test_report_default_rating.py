"""Default ratings in the monthly report, by hand, on SQLite and PostgreSQL (formula version 2026.2).

November 2026 in a network (tests/network.py): the root window defaults unanswered surveys, 东湖县 (c1) does not.
Every case is closed the day it is filed, so its survey opens then and closes 7 days later.

  R1  root, A, closed Nov 2: rated 1 (web) Nov 3                      survey closes Nov 9
  R2  root, A, closed Nov 2: unanswered → default 3 at Nov 9           Nov 9
  R3  root, B, closed Nov 3: rated 5 (差评) Nov 4 → rectifying         Nov 10
  R4  root, B, closed Nov 5: unanswered → default 3 at Nov 12          Nov 12
  C1  c1,   A, closed Nov 4: unanswered, c1 does not default: unrated  Nov 11
  R6  root, B, closed Nov 6: rated 3 by SMS Nov 7                      Nov 13
  R5  root, A, closed Nov 28: unanswered → default at Dec 5 (December's)

The sweep runs late, on Dec 10: every default carries its survey's closing time.

  surveys 6 (R1 R2 R3 R4 C1 R6), answered 3 (R1 1, R3 5, R6 3), default 2 (R2 R4)
  参评率 3 / 6 = 0.5; 满意率 (R1, R6) 2 / 3 = 0.6667; 含默认 (2 + 2) / (3 + 2) = 0.8; 好评率 1 / 3; 差评 1
  A: surveys 3 (R1 R2 C1), answered 1, default 1: 满意率 1.0, 含默认 2 / 2 = 1.0, 参评率 1 / 3
  B: surveys 3 (R3 R4 R6), answered 2, default 1: 满意率 1 / 2, 含默认 2 / 3, 参评率 2 / 3, 差评 1
  c1's row: surveys 1, answered 0, default 0: 满意率 and 含默认 none, 参评率 0
  December: surveys 1 (R5), default 1: 满意率 none, 含默认 1.0, 参评率 0
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from notify import closing
from notify.survey import handle_inbound
from reports import metrics
from reports.figures import monthly_figures
from reports.formulas import FORMULA_BY_KEY, FORMULA_VERSION
from tests.report_figures import pdf_text, squash
from tickets import offices
from tickets.db import db

CITIZEN = "+8613800138000"
SURVEY_KEYS = ("surveys", "rated", "defaulted", "satisfied", "participation_rate", "satisfaction_rate",
               "satisfaction_rate_with_default", "good_rate", "bad")
OFFICE = {"surveys": 6, "rated": 3, "defaulted": 2, "satisfied": 2, "participation_rate": 0.5,
          "satisfaction_rate": 0.6667, "satisfaction_rate_with_default": 0.8, "good_rate": 0.3333, "bad": 1}
DEPARTMENT_A = {"surveys": 3, "rated": 1, "defaulted": 1, "satisfied": 1, "participation_rate": 0.3333,
                "satisfaction_rate": 1.0, "satisfaction_rate_with_default": 1.0, "good_rate": 1.0, "bad": 0}
DEPARTMENT_B = {"surveys": 3, "rated": 2, "defaulted": 1, "satisfied": 1, "participation_rate": 0.6667,
                "satisfaction_rate": 0.5, "satisfaction_rate_with_default": 0.6667, "good_rate": 0.0, "bad": 1}
C1 = {"surveys": 1, "rated": 0, "defaulted": 0, "satisfied": 0, "participation_rate": 0.0,
      "satisfaction_rate": None, "satisfaction_rate_with_default": None, "good_rate": None, "bad": 0}
OWN = {"surveys": 5, "rated": 3, "defaulted": 2, "satisfaction_rate": 0.6667, "satisfaction_rate_with_default": 0.8}
DECEMBER = {"surveys": 1, "rated": 0, "defaulted": 1, "participation_rate": 0.0, "satisfaction_rate": None,
            "satisfaction_rate_with_default": 1.0}


def build(network, clock) -> dict:
    world = network.world
    with world.app.app_context():
        offices.by_code(db.session, "c1").default_unanswered = False
        db.session.commit()
    cases = {}

    def close(name, day, department, window="root"):
        clock.set(2026, 11, day, 9)
        office = "office" if window == "root" else f"office_{window}"
        filed = world.file(**({} if window == "root" else {"office_code": window}), phone=CITIZEN)
        no = filed["tracking_no"]
        world.act(office, no, "accept")
        world.act(office, no, "transfer", department_id=world.departments[department])
        world.act(f"dept_{department.lower()}", no, "reply", content="已办理完毕。")
        world.act(office, no, "approve")
        cases[name] = filed

    def rate(name, day, score):
        clock.set(2026, 11, day, 10)
        filed = cases[name]
        response = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                                     json={"score": score})
        assert response.status_code == 200, response.get_json()

    close("R1", 2, "A")
    close("R2", 2, "A")
    rate("R1", 3, 1)
    close("R3", 3, "B")
    close("C1", 4, "A", window="c1")
    rate("R3", 4, 5)
    close("R4", 5, "B")
    close("R6", 6, "B")
    clock.set(2026, 11, 7, 10)
    with world.app.app_context():  # R6 is the only open survey of its number now: the reply rates it
        assert handle_inbound(db.session, sid="SM-R6", phone=CITIZEN, body="3基本满意").outcome == "rated"
        db.session.commit()
    close("R5", 28, "A")
    clock.set(2026, 12, 10, 9)
    with world.app.app_context():
        result = closing.close_surveys(db.session, clock())
    assert (result.defaulted, result.left_unrated) == (3, 1)  # R2 R4 R5; C1
    return cases


def figures_of(app, month="2026-11", office=None):
    with app.app_context():
        office_id = offices.by_code(db.session, office).id if office else None
        return monthly_figures(db.session, metrics.Month.parse(month), office_id)


def assert_figures(row, expected, what):
    for key, value in expected.items():
        assert row[key] == value, (what, key, row[key], value)


def test_default_ratings_are_counted_apart(network, clock):
    build(network, clock)
    app = network.world.app
    figures = figures_of(app)
    assert figures["formula_version"] == FORMULA_VERSION == "2026.7"
    assert_figures(figures["office"], OFFICE, "office")
    departments = {row["name"]: row for row in figures["departments"]}
    assert_figures(departments["市场监督管理局"], DEPARTMENT_A, "A")
    assert_figures(departments["人力资源和社会保障局"], DEPARTMENT_B, "B")
    children = {row["code"]: row for row in figures["offices"]}
    assert_figures(children["c1"], C1, "c1")
    assert_figures(figures["own"], OWN, "own")
    assert figures["trend"][-1]["satisfaction_rate"] == 0.6667  # the trend draws the real answers' rate
    # one definition everywhere: the office total is the sum of its parts
    assert OFFICE["defaulted"] == DEPARTMENT_A["defaulted"] + DEPARTMENT_B["defaulted"]
    assert_figures(figures_of(app, office="c1")["office"], C1, "c1's own report")
    assert_figures(figures_of(app, "2026-12")["office"], DECEMBER, "December")
    # the closure figures do not see the default ratings: 7 cases closed, none reopened but R3
    assert figures["office"]["closed_in_month"] == 7


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_pdf_dashboard_and_formulas_say_which_is_which(network, clock):
    build(network, clock)
    app = network.world.app
    with app.app_context():
        from reports import operations

        report = operations.get_or_generate(db.session, metrics.Month.parse("2026-11"), trigger=operations.MANUAL)
        db.session.commit()
        text = squash(pdf_text(report.pdf))
        for words in ("默认评价数", "满意率（含默认评价）", "80.0%", "66.7%", "不含系统默认评价", "每条默认评价按“基本满意”计",
                      f"口径版本{FORMULA_VERSION}"):
            assert squash(words) in text, words
    with app.test_request_context("/?lang=en"):
        from flask_babel import refresh

        refresh()
        assert "default ratings not counted" in str(FORMULA_BY_KEY["satisfaction_rate"].definition)
        assert "default ratings not counted" in str(FORMULA_BY_KEY["participation_rate"].definition)
        assert "every default rating counts" in str(FORMULA_BY_KEY["satisfaction_rate_with_default"].definition)
    api = network.world.get("office", "/api/v1/reports/monthly/2026-11").get_json()
    assert api["office"]["satisfaction_rate_with_default"] == 0.8 and api["office"]["defaulted"] == 2
    clock.set(2026, 12, 10, 9)
    home = network.world.console("office").get("/admin/").get_data(as_text=True)
    assert '含默认评价 <strong id="satisfaction-with-default">80.0%</strong>' in home
    with app.app_context():
        kept = db.session.scalar(sa.text("SELECT count(*) FROM report"))
    assert kept == 1
