"""申诉复核: a department appeals a 差评 within 5 working days; the owning office's supervisor upholds or rejects it.

The actions in every status and for every role are in tests/test_workflow_matrix.py, the report's figures in
tests/test_report_appeals.py; here: what each action does to the case, its deadlines and ladder, the window of 5
working days, bad input, the windows' rule, the console (case page forms, the list, the dashboard), and migration
0014 down and up again on a database in use (SQLite and PostgreSQL; whether the table matches the model is
tests/test_cli.py's `test_migrations_match_the_models`).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import store
from escalation.calendar import END_OF_DAY, working_days_between
from escalation.models import EscalationStep
from notify.models import SmsMessage
from tests.helpers import TZ, examples, page_csrf
from tickets.db import db
from tickets.models import Appeal, Survey, Ticket
from tickets.schema import alembic_config
from tickets.workflow import APPEAL_WORKING_DAYS, appeal_window_ends

# What SQLite proves as well as PostgreSQL (the queries are the same): the rules, bad input, the console.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
REASON = "群众反映的事项已按规定办结，差评系对政策不满，非办理问题。"
DECISION = "调阅办件记录属实，申诉成立。"


def rated(world, score=5, department="A", who="dept_a") -> str:
    """A case of `department` closed, then rated `score` (by default a 差评: rectifying now). Its tracking number."""
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments[department])
    world.act(who, no, "reply", content="已办结。")
    world.act("office", no, "approve")
    response = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": score})
    assert response.status_code == 200, response.get_json()
    return no


def ticket_row(world, no) -> Ticket:
    with world.app.app_context():
        return db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))


def texts(world) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage))


def pending_steps(world, no) -> set:
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        return {(s.kind, s.step) for s in db.session.scalars(sa.select(EscalationStep).where(
            EscalationStep.ticket_id == ticket.id, EscalationStep.fired_at.is_(None),
            EscalationStep.cancelled_at.is_(None)))}


def test_an_upheld_appeal_that_lifts_the_rectification_closes_the_case_again(world, clock):
    no = rated(world)
    before = world.ticket("office", no)
    assert before["status"] == "rectifying" and "appeal" not in before["allowed_actions"]  # the office does not appeal
    assert {kind for kind, _step in pending_steps(world, no)} == {"rectify"}
    sent = texts(world)
    clock.advance(days=1)
    appealed = world.act("dept_a", no, "appeal", reason=REASON, evidence="办件档案 2026-0412 号；通话录音 11月16日")
    assert appealed["status"] == "rectifying" and appealed["version"] == before["version"] + 1
    event = appealed["events"][-1]
    assert (event["action"], event["public"], event["note"]) == ("appeal", False, REASON)
    assert event["data"]["survey_round"] == 1 and event["data"]["score"] == 5
    (appeal,) = appealed["appeals"]
    assert appeal["status"] == "pending" and appeal["evidence"].startswith("办件档案")
    assert appeal["department_name"] == "市场监督管理局" and appeal["upheld"] is None
    assert "decide_appeal" in world.ticket("supervisor", no)["allowed_actions"]
    decided = world.act("supervisor", no, "decide_appeal", uphold=True, reason=DECISION, lift_rectification=True)
    assert decided["status"] == "closed" and decided["reply"] == "已办结。"  # the answer the citizen already had
    (appeal,) = decided["appeals"]
    assert (appeal["status"], appeal["upheld"], appeal["lifted_rectification"]) == ("upheld", True, True)
    assert appeal["decision_reason"] == DECISION and appeal["decided_by"] == "supervisor"
    rectify = [d for d in decided["deadlines"] if d["kind"] == "rectify"]
    assert [(d["outcome"], d["ended_at"] is not None) for d in rectify] == [("lifted", True)]
    assert decided["due_at"] is None and pending_steps(world, no) == set()  # the ladder is called off
    assert texts(world) == sent  # nobody is texted (the supervisor sees the dashboard's count)
    with world.app.app_context():  # no new survey round: the citizen is not asked again
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Survey)) == 1
    assert [e["public"] for e in decided["events"] if e["action"] in ("appeal", "decide_appeal")] == [False, False]


@SQLITE_ONLY
def test_the_citizen_sees_nothing_of_the_appeal(world):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已办结。")
    world.act("office", no, "approve")
    world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 4})
    timeline = world.client.get(f"/api/v1/tickets/{no}?code={filed['query_code']}").get_json()["timeline"]
    world.act("dept_a", no, "appeal", reason=REASON)
    world.act("supervisor", no, "decide_appeal", uphold=True, reason=DECISION, lift_rectification=True)
    after = world.client.get(f"/api/v1/tickets/{no}?code={filed['query_code']}").get_json()
    assert after["timeline"] == timeline and after["status"] == "closed" and after["reply"] == "已办结。"


def test_upheld_without_lifting_and_rejected_change_nothing_but_the_record(world):
    kept = rated(world)
    world.act("dept_a", kept, "appeal", reason=REASON)
    after = world.act("supervisor", kept, "decide_appeal", uphold=True, reason=DECISION)
    assert after["status"] == "rectifying" and after["appeals"][0]["lifted_rectification"] is False
    assert {kind for kind, _step in pending_steps(world, kept)} == {"rectify"}
    assert after["events"][-1]["data"] == {"upheld": True, "lifted_rectification": False, "survey_round": 1,
                                           "department_id": world.departments["A"]}
    rejected = rated(world)
    world.act("dept_a", rejected, "appeal", reason=REASON)
    before = world.ticket("office", rejected)
    after = world.act("supervisor", rejected, "decide_appeal", uphold=False, reason="证据不足，申诉不成立。")
    assert after["status"] == "rectifying" and after["due_at"] == before["due_at"]
    assert after["deadlines"] == before["deadlines"] and after["appeals"][0]["status"] == "rejected"
    # one appeal per bad-rated round, whatever came of it
    error = world.act("dept_a", rejected, "appeal", expect=409, reason=REASON)["error"]
    assert error["code"] == "invalid_transition" and "已申诉" in error["message"]


@SQLITE_ONLY
def test_a_rectification_already_replied_to_is_not_lifted(world):
    no = rated(world)
    world.act("dept_a", no, "appeal", reason=REASON)
    world.act("dept_a", no, "reply", content="已重新办理。")
    after = world.act("supervisor", no, "decide_appeal", uphold=True, reason=DECISION, lift_rectification=True)
    assert after["status"] == "replied" and after["appeals"][0]["lifted_rectification"] is False
    assert "approve" in world.ticket("office", no)["allowed_actions"]


@SQLITE_ONLY
def test_a_case_closed_after_its_bad_rating_may_still_be_appealed(world):
    explained = rated(world)
    world.act("office", explained, "explain", content="已向群众解释政策依据。")
    assert "appeal" in world.ticket("dept_a", explained)["allowed_actions"]
    world.act("dept_a", explained, "appeal", reason=REASON)
    after = world.act("supervisor", explained, "decide_appeal", uphold=True, reason=DECISION,
                      lift_rectification=True)
    assert after["status"] == "closed" and after["appeals"][0]["lifted_rectification"] is False  # nothing to lift
    never_bad = world.file()["tracking_no"]
    world.act("office", never_bad, "accept")
    world.act("office", never_bad, "resolve", content="已答复。")
    error = world.act("admin", never_bad, "appeal", expect=409, reason=REASON)["error"]
    assert error["message"] == "该案件由窗口自行办结，没有可申诉的部门。"
    rated_well = rated(world, score=2)
    error = world.act("dept_a", rated_well, "appeal", expect=409, reason=REASON)["error"]
    assert error["message"] == "该案件没有可申诉的差评。"


@SQLITE_ONLY
@pytest.mark.parametrize("rated_at, last_moment", [
    ((2026, 11, 20, 15), (2026, 11, 27)),  # a Friday: Mon 23 .. Fri 27
    ((2026, 11, 21, 10), (2026, 11, 30)),  # a Saturday counts as Monday 23: Tue 24 .. Mon 30
    ((2026, 9, 30, 10), (2026, 10, 13)),   # before National Day: Oct 1-7 off; Oct 8, 9, 10 (a make-up Saturday), 12, 13
])
def test_the_appeal_window_is_five_working_days_after_the_rating(world, clock, rated_at, last_moment):
    clock.set(*rated_at)
    no = rated(world)
    end = datetime(*last_moment, END_OF_DAY.hour, END_OF_DAY.minute, END_OF_DAY.second, tzinfo=TZ)
    clock.now = end - timedelta(seconds=1)
    assert "appeal" in world.ticket("dept_a", no)["allowed_actions"]
    clock.now = end + timedelta(seconds=1)
    assert "appeal" not in world.ticket("dept_a", no)["allowed_actions"]
    error = world.act("dept_a", no, "appeal", expect=409, reason=REASON)["error"]
    assert error["message"] == "对该差评申诉的期限（5个工作日）已过。"


@SQLITE_ONLY
def test_the_window_is_counted_with_the_office_calendar(world):
    """For every day of 2026 (published: 调休 and holidays), the window ends at the end of a working day that is the
    fifth after the rating's day, as the calendar counts them."""
    with world.app.app_context():
        calendar = store.settings().calendar()
        day = datetime(2026, 1, 1, 10, tzinfo=TZ)
        while day.year == 2026:
            end = appeal_window_ends(day).astimezone(TZ)
            assert end.time() == END_OF_DAY and calendar.is_working_day(end.date()), day
            assert working_days_between(calendar, day, end, TZ) == APPEAL_WORKING_DAYS, day
            day += timedelta(days=1)


@SQLITE_ONLY
def test_reasons_are_required_and_lifting_needs_an_upheld_appeal(world):
    no = rated(world)
    error = world.act("dept_a", no, "appeal", expect=422, reason=" ", evidence="x" * 4001)["error"]
    assert set(error["fields"]) == {"reason", "evidence"}
    world.act("dept_a", no, "appeal", reason=REASON)
    error = world.act("supervisor", no, "decide_appeal", expect=422, uphold=False, lift_rectification=True)["error"]
    assert set(error["fields"]) == {"reason", "lift_rectification"}
    assert error["fields"]["lift_rectification"] == "只有申诉成立时才能撤销整改。"
    error = world.act("supervisor", no, "decide_appeal", expect=422, uphold="yes", reason=DECISION)["error"]
    assert set(error["fields"]) == {"uphold"}
    assert world.ticket("office", no)["appeals"][0]["status"] == "pending"


BODY_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                        st.lists(st.integers(), max_size=2), st.just("x" * 4001), st.just("\x00"))


@SQLITE_ONLY
@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(appeal=st.dictionaries(st.sampled_from(["reason", "evidence", "version"]), BODY_VALUES, max_size=3),
       decision=st.dictionaries(st.sampled_from(["uphold", "reason", "lift_rectification"]), BODY_VALUES, max_size=3))
def test_any_body_gets_an_answer_in_the_error_shape(world, appeal, decision):
    no = world.__dict__.setdefault("_case", rated(world))
    for who, action, body in (("dept_a", "appeal", appeal), ("supervisor", "decide_appeal", decision)):
        response = world.post(who, f"/api/v1/staff/tickets/{no}/{action}", json=body)
        assert response.status_code in (200, 400, 409, 422), (action, body, response.get_json())
        if response.status_code != 200:
            assert response.get_json()["error"]["code"] in ("bad_request", "invalid_transition", "conflict",
                                                            "validation_error")


def test_only_the_owning_windows_supervisor_decides(network):
    world = network.world
    no = network.file("c1")
    world.act("office_c1", no, "accept")
    world.act("office_c1", no, "transfer", department_id=world.departments["C1"])
    world.act("dept_c1", no, "reply", content="已办结。")
    world.act("office_c1", no, "approve")
    with world.app.app_context():  # the citizen's rating, without the query code the network's filing keeps
        from tickets import workflow
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        workflow.rate(db.session, ticket, 5)
        db.session.commit()
    world.act("dept_c1", no, "appeal", reason=REASON)
    for who, status in (("supervisor", 403), ("supervisor_t11", 404), ("supervisor_c2", 404), ("office_c1", 403),
                        ("leader_c1", 403), ("dept_c1", 403)):
        response = world.post(who, f"/api/v1/staff/tickets/{no}/decide_appeal", json={"uphold": True,
                                                                                       "reason": DECISION})
        assert response.status_code == status, (who, response.get_json())
    world.act("supervisor_c1", no, "decide_appeal", uphold=True, reason=DECISION, lift_rectification=True)
    assert world.ticket("supervisor", no)["status"] == "closed"


@SQLITE_ONLY
def test_the_console_case_page_list_and_dashboard(world):
    no = rated(world)
    handler = world.console("dept_a")
    page = handler.get(f"/admin/case/{no}").get_data(as_text=True)
    assert 'id="action-appeal"' in page
    response = handler.post(f"/admin/case/{no}/appeal", data={
        "csrf_token": page_csrf(handler, f"/admin/case/{no}"), "reason": REASON, "evidence": "档案 0412 号",
        "version": str(world.ticket("office", no)["version"])})
    assert response.status_code == 302
    page = handler.get(f"/admin/case/{no}?lang=zh_CN").get_data(as_text=True)
    assert 'id="appeals"' in page and "待复核" in page and "档案 0412 号" in page
    supervisor = world.console("supervisor")
    dashboard = supervisor.get("/admin/?lang=zh_CN").get_data(as_text=True)
    assert 'id="stat-appeals"' in dashboard and "待复核申诉" in dashboard
    listed = supervisor.get("/admin/appeals/?flt0_0=pending&lang=zh_CN").get_data(as_text=True)
    assert f"/admin/case/{no}" in listed and "appeal-to-decide" in listed and "申诉复核" in listed
    assert 'id="stat-appeals"' not in world.console("office").get("/admin/").get_data(as_text=True)
    response = supervisor.post(f"/admin/case/{no}/decide_appeal", data={
        "csrf_token": page_csrf(supervisor, f"/admin/case/{no}"), "uphold": "yes", "reason": DECISION,
        "lift_rectification": "yes", "version": str(world.ticket("office", no)["version"])})
    assert response.status_code == 302
    assert world.ticket("office", no)["status"] == "closed"
    assert f"/admin/case/{no}" not in supervisor.get("/admin/appeals/?flt0_0=pending").get_data(as_text=True)
    assert f"/admin/case/{no}" in supervisor.get("/admin/appeals/?flt0_0=upheld").get_data(as_text=True)
    assert f"/admin/case/{no}" not in world.console("dept_b").get("/admin/appeals/").get_data(as_text=True)
    assert f"/admin/case/{no}" in handler.get("/admin/appeals/").get_data(as_text=True)
    history = supervisor.get(f"/admin/case/{no}?lang=zh_CN").get_data(as_text=True)
    assert "申诉成立。" in history and "已撤销整改" in history


@SQLITE_ONLY
def test_a_console_decision_without_a_reason_keeps_what_was_typed(world):
    no = rated(world)
    world.act("dept_a", no, "appeal", reason=REASON)
    supervisor = world.console("supervisor")
    response = supervisor.post(f"/admin/case/{no}/decide_appeal?lang=zh_CN", data={
        "csrf_token": page_csrf(supervisor, f"/admin/case/{no}"), "uphold": "no", "lift_rectification": "yes",
        "reason": ""})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "只有申诉成立时才能撤销整改。" in page and "此项为必填项。" in page
    with world.app.app_context():
        assert db.session.scalar(sa.select(Appeal.decided_at)) is None


def test_the_appeal_table_goes_and_comes_back_with_the_cases_kept(world):
    no = rated(world)
    world.act("dept_a", no, "appeal", reason=REASON)
    runner = world.app.test_cli_runner()
    with world.app.app_context():
        before = ScriptDirectory.from_config(alembic_config()).get_revision("0014").down_revision
    try:
        result = runner.invoke(args=["db", "downgrade", before])
        assert result.exit_code == 0, result.output
        with world.app.app_context():
            assert "appeal" not in sa.inspect(db.engine).get_table_names()
            assert db.session.execute(sa.text("SELECT count(*) FROM survey")).scalar() == 1
    finally:
        result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with world.app.app_context():
        db.engine.dispose()  # SQLite's PRAGMAs may answer from a pooled connection's schema of before the upgrade
        inspector = sa.inspect(db.engine)
        assert {c["name"] for c in inspector.get_columns("appeal")} >= {"survey_id", "upheld", "lifted_rectification"}
        assert {i["name"] for i in inspector.get_indexes("appeal")} >= {"ix_appeal_filed", "ix_appeal_department_id"}
    # the round lost its appeal with the table: the department may appeal it again, and the supervisor decide
    assert world.ticket("dept_a", no)["appeals"] == []
    world.act("dept_a", no, "appeal", reason=REASON)
    decided = world.act("supervisor", no, "decide_appeal", uphold=True, reason=DECISION, lift_rectification=True)
    assert decided["status"] == "closed"
    second = world.post("dept_a", f"/api/v1/staff/tickets/{no}/appeal", json={"reason": REASON})
    assert second.status_code == 409  # one appeal per round: the unique survey_id is back
