"""A sweep that runs late (downtime, an outage, a backlog) tells the truth: texts state the facts when they are
written, a step whose moment passed is called off with its reason, and a case gets one history line per sweep.
Texts that reach nobody (no mobile number on record) and texts held by quiet hours say so in the console."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import sqlalchemy as sa

from escalation import sweeper
from escalation.calendar import working_days_overdue
from escalation.models import EscalationStep
from notify.models import SmsMessage
from reports.models import Report
from reports.operations import tell_leaders
from tests.helpers import (
    HANDLER_PHONE,
    TZ,
    contacted,
    escalations,
    give_phones,
    local,
    page_csrf,
    sweep,
    transferred_case,
)
from tickets import workflow
from tickets.db import db
from tickets.models import Department, Ticket, User


def texts(world, *templates) -> dict[str, list[str]]:
    """Template → bodies of the escalation texts written so far."""
    with world.app.app_context():
        rows = db.session.execute(sa.select(SmsMessage.template, SmsMessage.body).where(
            SmsMessage.template.in_(templates or ("escalation_warning", "escalation_supervisor", "escalation_leader",
                                                  "office_reminder"))).order_by(SmsMessage.id)).all()
    found: dict[str, list[str]] = {}
    for template, body in rows:
        found.setdefault(template, []).append(body)
    return found


def step_row(world, tracking_no, kind, step, round_=1) -> EscalationStep:
    with world.app.app_context():
        row = db.session.scalar(sa.select(EscalationStep).join(Ticket, Ticket.id == EscalationStep.ticket_id).where(
            Ticket.tracking_no == tracking_no, EscalationStep.kind == kind, EscalationStep.step == step,
            EscalationStep.round == round_))
        db.session.expunge(row)
        return row


def timeline(page: str) -> str:
    return re.search(r'id="timeline">(.*?)</ol>', page, re.S).group(1)


def escalation_table(page: str) -> str:
    return re.search(r'id="escalation-history">(.*?)</table>', page, re.S).group(1)


# --- a late sweep ------------------------------------------------------------------------------------------

def test_a_sweep_four_working_days_late_writes_true_texts_and_one_history_line(world, clock):
    give_phones(world)
    case = transferred_case(world, clock)  # handling due Monday 2026-11-23 at the end of the day
    # No sweep ran for a week: Tuesday to Friday after the deadline are over, so it is 4 working days overdue.
    clock.set(2026, 11, 30, 9, 0)
    result = sweep(world)
    assert result.fired == {"supervisor": 1, "leader": 1} and result.escalated == 1
    assert result.cancelled == 1 and result.cancelled_why == {("moment_passed", "warning"): 1}
    assert "1 cancelled (moment_passed: warning 1)" in result.summary()

    sent = texts(world)
    assert "escalation_warning" not in sent  # 「即将到期」 a week after the deadline would be a lie
    (supervisor,), (leader,) = sent["escalation_supervisor"], sent["escalation_leader"]
    for body in (supervisor, leader):
        assert "已超期4个工作日" in body and "2026-11-23 23:59" in body and case in body

    warning = step_row(world, case, "handle", "warning")
    assert warning.fired_at is None and warning.cancelled_at == clock.now and warning.cancel_reason == "moment_passed"
    assert warning.sms_count == 0

    (event,) = escalations(world, case)  # one history line, not three
    assert (event["level"], event["supervision_level"], event["previous_level"]) == (3, 3, 0)
    assert [(s["step"], s["level"], s["audience"], s["sms"]) for s in event["steps"]] == [
        ("supervisor", 2, "supervisor", 1), ("leader", 3, "leader", 1)]
    assert event["cancelled"] == [{"kind": "handle", "round": 1, "step": "warning", "reason": "moment_passed"}]
    assert event["notified"] == {"supervisor": 1, "leader": 1}
    assert world.ticket("office", case)["supervision_level"] == 3

    page = world.console("office").get(f"/admin/case/{case}").get_data(as_text=True)
    assert timeline(page).count("自动督办") == 1
    assert "督办级别：挂牌督办。" in timeline(page)
    assert "预警承办人已取消：时机已过（期限已届满）" in timeline(page)
    assert "告知领导（挂牌督办）：短信1条" in timeline(page)
    assert "时机已过（期限已届满）" in escalation_table(page)
    # the overdue list counts the same working days as the texts
    overdue = world.console("office").get("/admin/deadlines/").get_data(as_text=True)
    row = re.search(re.escape(case) + r"</a>.*?</tr>", overdue, re.S).group(0)
    assert "<td>4</td>" in row

    clock.advance(minutes=1)
    assert sweep(world).fired == {} and len(escalations(world, case)) == 1


def test_on_time_texts_do_not_depend_on_the_seconds_the_sweep_runs_late(world, clock):
    case = transferred_case(world, clock)
    clock.set(2026, 11, 20, 0, 0, 20)
    assert sweep(world).fired == {"warning": 1}
    clock.set(2026, 11, 24, 0, 0, 25)  # the deadline (11-23 23:59:59) passed 26 seconds ago
    assert sweep(world).fired == {"supervisor": 1}
    clock.set(2026, 11, 26, 0, 0, 10)  # two working days after it ended 11 seconds ago
    assert sweep(world).fired == {"leader": 1}
    sent = texts(world)
    assert "已超期0个工作日" in sent["escalation_supervisor"][0]
    assert "已超期2个工作日" in sent["escalation_leader"][0]
    assert [e["level"] for e in escalations(world, case)] == [1, 2, 3]  # one line per sweep, as before


def _edit(world, key: str, wording: str) -> str:
    """Save an administrator's wording through the editor's own check; its preview (with the editor's samples)."""
    from notify.messages import check_text
    from notify.operations import forget_templates, save_template
    from tickets import clock as product_clock

    with world.app.app_context():
        save_template(db.session, key, wording, by=None, now=product_clock.now())
        db.session.commit()
        forget_templates()
        return check_text(key, wording)


def test_an_edited_text_that_compares_days_overdue_says_what_its_preview_said(world, clock):
    """The editor checks and previews `days_overdue` as the number its samples hold (0 for 督办, 2 for 挂牌督办); the
    sweeper gives the same kind of value, so a wording that compares it behaves as it did in the preview."""
    give_phones(world)
    case = transferred_case(world, clock)
    preview = _edit(world, "escalation_supervisor",
                    "{{ tracking_no }}{% if days_overdue == 0 %}今日到期仍未办结{% else %}已超期{{ days_overdue }}个工作日"
                    "{% endif %}，请督促。")
    assert "今日到期仍未办结" in preview
    _edit(world, "escalation_leader", "【挂牌督办】{{ tracking_no }}已超期{{ days_overdue }}个工作日"
                                      "{% if days_overdue > 3 %}，情况严重{% endif %}，请领导关注。")
    clock.set(2026, 11, 24, 0, 0, 5)  # right after the deadline: 0 working days overdue
    sweep(world)
    clock.set(2026, 11, 30, 9, 0)  # four working days late
    sweep(world)
    sent = texts(world, "escalation_supervisor", "escalation_leader")
    assert "今日到期仍未办结" in sent["escalation_supervisor"][0], sent
    assert case in sent["escalation_leader"][0] and "已超期4个工作日，情况严重" in sent["escalation_leader"][0], sent


def test_every_value_the_sweeper_gives_a_text_is_of_the_kind_its_editor_checks(world, clock, monkeypatch):
    """What the template editor renders with (`MessageKind.sample`) and what the sweeper writes with agree, value by
    value, in kind (a number stays a number), for each text of the ladder."""
    from notify.messages import KINDS

    given = []
    real_send = sweeper.send_sms
    monkeypatch.setattr(sweeper, "send_sms", lambda phone, template, context, **kw: (
        given.append((template, context)), real_send(phone, template, context, **kw))[1])
    give_phones(world)
    transferred_case(world, clock)
    for day in (20, 24, 26):
        clock.set(2026, 11, day, 9, 0)
        sweep(world)
    assert {template for template, _ in given} >= {"escalation_warning", "escalation_supervisor", "escalation_leader"}
    for template, context in given:
        for name, sample in KINDS[template].sample.items():
            assert isinstance(context[name], int) == isinstance(sample, int), (template, name, context[name])


def test_working_days_overdue_counts_days_that_are_over():
    from escalation.calendar import from_chinese_calendar

    calendar, due = from_chinese_calendar(), local(2026, 11, 23, 23, 59, 59)
    assert working_days_overdue(calendar, due, due, TZ) == 0
    assert working_days_overdue(calendar, due, local(2026, 11, 24, 18, 0), TZ) == 0
    assert working_days_overdue(calendar, due, local(2026, 11, 24, 23, 59, 59), TZ) == 1
    assert working_days_overdue(calendar, due, local(2026, 11, 28, 12, 0), TZ) == 4  # Saturday
    assert working_days_overdue(calendar, due, local(2026, 11, 30, 9, 0), TZ) == 4
    assert working_days_overdue(calendar, due, local(2026, 11, 20, 9, 0), TZ) == 0  # not yet due


def test_a_late_warning_that_still_comes_before_the_deadline_is_sent(world, clock):
    give_phones(world)
    case = transferred_case(world, clock)
    clock.set(2026, 11, 23, 10, 0)  # the warning was due on Friday; the deadline is tonight
    assert sweep(world).fired == {"warning": 1}
    (body,) = texts(world)["escalation_warning"]
    assert "将于2026-11-23 23:59到期" in body and case in body


def test_a_warning_that_could_only_arrive_after_its_deadline_is_called_off(world, clock):
    give_phones(world)
    case = transferred_case(world, clock)
    clock.set(2026, 11, 23, 22, 0)  # quiet hours: a text written now goes at 08:00, after the deadline
    result = sweep(world)
    assert result.fired == {} and result.cancelled_why == {("moment_passed", "warning"): 1}
    assert texts(world) == {} and escalations(world, case) == []  # the deadline is not over: nothing else yet
    assert step_row(world, case, "handle", "warning").cancel_reason == "moment_passed"


def test_a_later_round_fires_with_its_own_facts(world, clock):
    """Returned and transferred again: round 1 was called off when it ended; round 2 fires late, in one line."""
    give_phones(world)
    case = transferred_case(world, clock)
    world.act("dept_a", case, "return", reason="不属于本部门职责。")
    clock.set(2026, 11, 17, 9, 0)
    world.act("office", case, "transfer", department_id=world.departments["B"])  # due Tuesday 11-24
    contacted(world, case, "dept_b")
    assert {s: step_row(world, case, "handle", s).cancel_reason for s in ("warning", "supervisor", "leader")} == {
        "warning": "deadline_ended", "supervisor": "deadline_ended", "leader": "deadline_ended"}
    clock.set(2026, 12, 1, 10, 0)  # Wednesday to Monday after 11-24 are over: 4 working days
    result = sweep(world)
    assert result.fired == {"supervisor": 1, "leader": 1}
    (event,) = escalations(world, case)
    assert {(s["round"], s["step"]) for s in event["steps"]} == {(2, "supervisor"), (2, "leader")}
    sent = texts(world)
    for body in (sent["escalation_supervisor"][0], sent["escalation_leader"][0]):
        assert "人力资源和社会保障局" in body and "2026-11-24 23:59" in body and "已超期4个工作日" in body


def test_one_sweep_acts_on_each_case_once_whatever_the_batch_size(world, clock, database_url):
    first, second = transferred_case(world, clock), transferred_case(world, clock)
    clock.set(2026, 12, 7, 9, 0)
    with world.app.app_context():
        result = sweeper.sweep(db.session, clock(), batch_size=1)
    # a batch takes every due step of the cases it claims: two cases, two batches, one history line each
    assert result.batches == 2 and result.fired == {"supervisor": 2, "leader": 2} and result.escalated == 2
    assert len(escalations(world, first)) == len(escalations(world, second)) == 1


def test_cancel_reasons_from_the_workflow(world, clock):
    case = transferred_case(world, clock)
    world.act("dept_a", case, "reply", content="已办理完毕。")
    assert step_row(world, case, "handle", "leader").cancel_reason == "deadline_ended"
    world.act("office", case, "send_back", reason="请补充办理依据。")
    restored = step_row(world, case, "handle", "leader")
    assert restored.cancelled_at is None and restored.cancel_reason is None
    world.act("dept_a", case, "reply", content="已补充办理依据。")
    world.act("office", case, "approve")  # closes the case with its review reminder still pending
    assert step_row(world, case, "review", "office_reminder", 2).cancel_reason == "case_closed"
    page = world.console("office").get(f"/admin/case/{case}").get_data(as_text=True)
    assert "案件已结束" in escalation_table(page) and "期限已先结束" in escalation_table(page)


# --- texts that reach nobody -------------------------------------------------------------------------------

NO_HANDLER = "未发送：该部门没有登记手机号的承办人。"
NO_SUPERVISOR = "未发送：该部门没有登记督办负责人手机号。"


def test_a_step_whose_audience_has_no_number_says_so(world, clock):
    """Department A's handler has no mobile, and A's supervisor number is removed."""
    with world.app.app_context():
        db.session.get(Department, world.departments["A"]).supervisor_phone = None
        db.session.commit()
    case = transferred_case(world, clock)
    clock.set(2026, 11, 20, 9, 0)
    result = sweep(world)
    assert result.fired == {"warning": 1} and result.unreached == {"handler": 1}
    assert "nobody to text for handler 1" in result.summary()
    warning = step_row(world, case, "handle", "warning")
    assert (warning.audience, warning.recipients, warning.sms_count) == ("handler", 0, 0)
    clock.set(2026, 11, 24, 9, 0)
    sweep(world)
    assert step_row(world, case, "handle", "supervisor").recipients == 0
    (first, second) = escalations(world, case)
    assert first["notified"] == {"handler": 0} and second["notified"] == {"supervisor": 0}

    world.act("office", case, "remind", note="请尽快办理。")
    page = world.console("office").get(f"/admin/case/{case}").get_data(as_text=True)
    table = escalation_table(page)
    assert NO_HANDLER in table and NO_SUPERVISOR in table
    history = timeline(page)
    assert history.count(NO_HANDLER) == 2  # the warning's line and the office's 催办
    assert history.count(NO_SUPERVISOR) == 1
    remind = next(e for e in world.ticket("office", case)["events"] if e["action"] == "remind")
    assert remind["data"]["notified"] == {"handler": 0}


def test_a_bad_rating_with_no_supervisor_number_says_so(world, clock):
    with world.app.app_context():
        db.session.get(Department, world.departments["A"]).supervisor_phone = None
        db.session.commit()
    case = transferred_case(world, clock)
    world.act("dept_a", case, "reply", content="已办理完毕。")
    world.act("office", case, "approve")
    with world.app.app_context():
        workflow.rate(db.session, db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == case)), 5, "没解决")
        db.session.commit()
    rate = next(e for e in world.ticket("office", case)["events"] if e["action"] == "rate")
    assert rate["data"]["notified"] == {"supervisor": 0}
    assert NO_SUPERVISOR in timeline(world.console("office").get(f"/admin/case/{case}").get_data(as_text=True))
    # with the number back, the next 差评 text goes and the history says nothing of the kind
    with world.app.app_context():
        db.session.get(Department, world.departments["A"]).supervisor_phone = "+8613900000001"
        db.session.commit()
    world.act("dept_a", case, "reply", content="已重新办理。")
    world.act("office", case, "approve")
    with world.app.app_context():
        workflow.rate(db.session, db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == case)), 4, "仍不满意")
        db.session.commit()
    rates = [e for e in world.ticket("office", case)["events"] if e["action"] == "rate"]
    assert rates[-1]["data"]["notified"] == {"supervisor": 1}


def test_department_pages_say_which_audiences_cannot_be_reached(world):
    with world.app.app_context():
        db.session.get(Department, world.departments["A"]).supervisor_phone = None
        db.session.get(User, world.users["dept_b"]).phone = "+8613800000022"
        db.session.commit()
    console = world.console("office")
    page = console.get("/admin/departments/").get_data(as_text=True)
    rows = {code: re.search(r"<td[^>]*>\s*" + code + r"\s*</td>.*?</tr>", page, re.S).group(0) for code in "ABC"}
    assert "没有登记手机号的承办人" in rows["A"] and "没有督办负责人手机号" in rows["A"]
    assert "没有分管领导手机号" not in rows["A"]
    assert "均可接收" in rows["B"] and "reach-missing" not in rows["B"]
    assert "没有登记手机号的承办人" in rows["C"]
    # nobody of the office and no leader account has a number in this office
    assert page.count('class="alert alert-warning role-unreachable"') == 2
    edit = console.get(f"/admin/departments/edit/?id={world.departments['A']}").get_data(as_text=True)
    notice = re.search(r'id="department-unreachable">(.*?)</div>', edit, re.S).group(1)
    assert "没有登记手机号的承办人" in notice and "没有督办负责人手机号" in notice
    edit_b = console.get(f"/admin/departments/edit/?id={world.departments['B']}").get_data(as_text=True)
    assert 'id="department-unreachable"' not in edit_b
    # a number entered through the form is seen at once
    saved = console.post(f"/admin/departments/edit/?id={world.departments['A']}", data={
        "office_id": "1", "code": "A", "name": "市场监督管理局", "supervisor_phone": "139 0000 0001", "leader_phone": "+8613900000002",
        "active": "y", "csrf_token": page_csrf(console, f"/admin/departments/edit/?id={world.departments['A']}")})
    assert saved.status_code == 302
    row_a = re.search(r"<td[^>]*>\s*A\s*</td>.*?</tr>", console.get("/admin/departments/").get_data(as_text=True),
                      re.S).group(0)
    assert "没有督办负责人手机号" not in row_a and "没有登记手机号的承办人" in row_a
    with world.app.app_context():
        db.session.get(User, world.users["office"]).phone = "+8613800000012"
        db.session.get(User, world.users["leader"]).phone = "+8613800000013"
        db.session.commit()
    assert "role-unreachable" not in console.get("/admin/departments/").get_data(as_text=True)


def test_a_monthly_report_no_leader_can_receive_is_logged(world, caplog):
    report = Report(month="2026-10", figures={"office": {"closure_rate": 0.9}}, pdf=b"", formula_version="1",
                    trigger="auto")
    with world.app.app_context(), caplog.at_level(logging.WARNING):
        assert tell_leaders(db.session, report) == 0
        db.session.rollback()
    assert "no active leader has a mobile number" in caplog.text


# --- quiet hours -------------------------------------------------------------------------------------------

def test_a_text_held_by_quiet_hours_says_until_when(world, clock):
    give_phones(world)
    case = transferred_case(world, clock)
    clock.set(2026, 11, 20, 0, 0)
    assert sweep(world).fired == {"warning": 1}
    clock.set(2026, 11, 23, 23, 59, 59)
    assert sweep(world).fired == {"supervisor": 1}
    with world.app.app_context():
        held = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.template == "escalation_supervisor"))
        assert held.status == "pending" and held.not_before == local(2026, 11, 24, 8, 0)
    console = world.console("office")
    until = "免打扰时段，暂缓至2026-11-24 08:00发送"
    case_sms = re.search(r'id="case-sms">(.*?)</section>', console.get(f"/admin/case/{case}").get_data(as_text=True),
                         re.S).group(1)
    assert until in case_sms
    assert until in console.get("/admin/sms/").get_data(as_text=True)
    page = console.get(f"/admin/sms/message/{held.id}").get_data(as_text=True)
    assert re.search(r'id="sms-hold">' + until, page)
    # a retry waits too, and says it is a retry
    with world.app.app_context():
        db.session.execute(sa.update(SmsMessage).where(SmsMessage.id == held.id).values(
            not_before=clock.now + timedelta(seconds=30), error_code="20429"))
        db.session.commit()
    assert "将于2026-11-24 00:00重试" in console.get("/admin/sms/").get_data(as_text=True)
    # once the morning has come, nothing is held any more
    clock.set(2026, 11, 24, 8, 0, 1)
    assert "暂缓至" not in console.get("/admin/sms/").get_data(as_text=True)


# --- upgrading ---------------------------------------------------------------------------------------------

def test_upgrading_a_database_with_steps_fills_in_what_the_rows_tell(world, clock):
    case = transferred_case(world, clock)
    clock.set(2026, 11, 20, 9, 0)
    sweep(world)  # the warning fires with nobody to text (dept_a's handler has no mobile)
    world.act("dept_a", case, "reply", content="已办理完毕。")  # the rest is called off
    runner = world.app.test_cli_runner()
    assert runner.invoke(args=["db", "downgrade", "0005"]).exit_code == 0
    with world.app.app_context():
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("escalation_step")}
        assert not {"cancel_reason", "audience", "recipients"} & columns
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    warning = step_row(world, case, "handle", "warning")
    assert (warning.audience, warning.recipients, warning.cancel_reason) == ("handler", 0, None)
    supervisor = step_row(world, case, "handle", "supervisor")
    assert (supervisor.cancel_reason, supervisor.audience, supervisor.recipients) == ("deadline_ended", None, None)
    table = escalation_table(world.console("office").get(f"/admin/case/{case}").get_data(as_text=True))
    assert NO_HANDLER in table and "期限已先结束" in table
    # the schema is the models' again (the check of tests/test_cli.py, after a round trip)
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with world.app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_warning_phone_of_the_handler_is_used_when_there_is_one(world, clock):
    give_phones(world)
    transferred_case(world, clock)
    clock.set(2026, 11, 20, 9, 0)
    assert sweep(world).unreached == {}
    with world.app.app_context():
        assert db.session.scalar(sa.select(SmsMessage.phone).where(
            SmsMessage.template == "escalation_warning")) == HANDLER_PHONE
