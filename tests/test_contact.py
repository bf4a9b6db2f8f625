"""先行联系 (first contact on the clock): the deadline a transfer starts in working hours, `record_contact`, the
ladder (a warning at 75 % of the time, the supervisor at 100 %, texts through the outbox), the settings and policies,
the console and the report's 先行联系及时率.

The clock starts on Monday 2026-11-16 at 09:00: with the default office hours (09:00-12:00, 13:30-17:30) and limit
(8 working hours) a transfer then must be followed by a contact by Tuesday 10:00, and the warning goes at 16:30.
"""
from __future__ import annotations

import re
from datetime import datetime

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from escalation import store
from notify.models import SmsMessage
from reports import metrics
from reports.figures import monthly_figures
from admin.queues import QUEUES, AwaitingContactFilter, shortcut_args
from tests.helpers import (
    BASE_CONFIG,
    HANDLER_PHONE,
    console_sign_in,
    examples,
    give_phones,
    local,
    page_csrf,
    seed_world,
    set_password,
    steps,
    sweep,
    transferred,
)
from tests.report_figures import pdf_text, squash
from tickets.db import db
from tickets.models import Deadline, Ticket

SUPERVISOR_A = "+8613900000001"  # department A's 督办负责人 in tests.helpers.seed_world
CONTACT_TEXTS = ("contact_warning", "contact_supervisor")


def texts(world, *templates) -> list[tuple[str, str, str]]:
    """(template, phone, body) of the texts in the outbox, oldest first."""
    with world.app.app_context():
        return [tuple(row) for row in db.session.execute(
            sa.select(SmsMessage.template, SmsMessage.phone, SmsMessage.body)
            .where(SmsMessage.template.in_(templates or CONTACT_TEXTS)).order_by(SmsMessage.id))]


def contact_deadlines(world, tracking_no) -> list[Deadline]:
    with world.app.app_context():
        rows = db.session.scalars(sa.select(Deadline).join(Ticket, Ticket.id == Deadline.ticket_id).where(
            Ticket.tracking_no == tracking_no, Deadline.kind == "contact").order_by(Deadline.id)).all()
        db.session.expunge_all()
        return rows


def record(world, tracking_no, who="dept_a", expect=200, contacted_at=None, **body):
    body = {"contacted_at": contacted_at or "2026-11-16T10:00:00+08:00", "method": "phone",
            "outcome": "已电话联系申请人，约定明日上门核实。", **body}
    return world.act(who, tracking_no, "record_contact", expect=expect, **body)


def fired(result) -> dict:
    return {step: n for step, n in result.fired.items() if step.startswith("contact_")}


# --- the walk: a transfer left without contact warns, then reaches the supervisor ---------------------------------

def test_a_transfer_left_without_contact_warns_and_then_reaches_the_supervisor(world, clock):
    give_phones(world)
    case = transferred(world, "A")
    view = world.ticket("office", case)
    assert view["first_contact"]["state"] == "awaiting"
    assert view["first_contact"]["due_at"] == "2026-11-17T10:00:00+08:00"
    assert view["first_contact"]["working_hours"] == 8 and view["contact_due_at"] == view["first_contact"]["due_at"]
    planned = steps(world, case)
    assert planned[("contact", 1, "contact_warning")] == (local(2026, 11, 16, 16, 30), False, False)
    assert planned[("contact", 1, "contact_supervisor")] == (local(2026, 11, 17, 10, 0), False, False)

    clock.set(2026, 11, 16, 16, 29)
    assert fired(sweep(world)) == {}
    clock.set(2026, 11, 16, 16, 30)
    assert fired(sweep(world)) == {"contact_warning": 1}
    ((template, phone, body),) = texts(world)
    assert (template, phone) == ("contact_warning", HANDLER_PHONE)
    assert case in body and "市场监督管理局" in body and "2026-11-17 10:00" in body and "先行联系" in body

    clock.set(2026, 11, 17, 9, 59)
    assert fired(sweep(world)) == {}
    clock.set(2026, 11, 17, 10, 0)
    assert fired(sweep(world)) == {"contact_supervisor": 1}
    template, phone, body = texts(world)[-1]
    assert (template, phone) == ("contact_supervisor", SUPERVISOR_A)
    assert case in body and "2026-11-17 10:00" in body and "已超时" not in body  # on time: nothing to add
    clock.set(2026, 11, 18, 10, 0)
    assert fired(sweep(world)) == {} and len(texts(world)) == 2  # each step once

    # the case itself is not late: its handling deadline, the queues' order and its supervision are untouched
    view = world.ticket("office", case)
    assert view["overdue"] is False and view["due_kind"] == "handle" and view["supervision_level"] == 0
    assert view["due_at"] == "2026-11-23T23:59:59+08:00"
    assert view["first_contact"]["state"] == "past_due"
    assert world.get("office", "/api/v1/staff/tickets?overdue=true").get_json()["total"] == 0

    # the department records the contact it made late: the deadline ends late, as of the contact
    done = record(world, case, contacted_at="2026-11-18T09:40")  # the console's local time, no offset
    contact = done["first_contact"]
    assert contact["state"] == "late" and contact["contacted_at"] == "2026-11-18T09:40:00+08:00"
    assert contact["method"] == "phone" and contact["outcome"].startswith("已电话联系")
    assert done["contact_due_at"] is None and done["events"][-1]["data"]["on_time"] is False
    (deadline,) = contact_deadlines(world, case)
    assert (deadline.outcome, deadline.ended_at) == ("late", local(2026, 11, 18, 9, 40))


def test_a_late_sweep_calls_the_warning_off_and_states_the_hours_gone_by(world, clock):
    give_phones(world)
    case = transferred(world, "A")
    clock.set(2026, 11, 18, 15, 0)  # no sweep since Monday: the contact was due Tuesday 10:00
    result = sweep(world)
    assert fired(result) == {"contact_supervisor": 1}
    assert result.cancelled_why[("moment_passed", "contact_warning")] == 1
    ((template, _phone, body),) = texts(world)
    # Tuesday 10:00-12:00, 13:30-17:30, Wednesday 09:00-12:00, 13:30-15:00: 10.5 working hours
    assert template == "contact_supervisor" and "已超时10个工作小时" in body
    assert steps(world, case)[("contact", 1, "contact_warning")][2]  # cancelled, not sent


def test_a_contact_in_time_ends_the_deadline_and_calls_its_ladder_off(world, clock):
    give_phones(world)
    filed = world.file()
    case = filed["tracking_no"]
    world.act("office", case, "accept")
    world.act("office", case, "transfer", department_id=world.departments["A"])
    clock.set(2026, 11, 16, 11, 5)
    done = record(world, case, contacted_at="2026-11-16T11:00:00+08:00", method="visit")
    assert done["first_contact"]["state"] == "met" and done["first_contact"]["recorded_by"] == "dept_a"
    assert done["events"][-1]["action"] == "record_contact" and done["events"][-1]["data"]["on_time"] is True
    assert all(cancelled for key, (_at, _fired, cancelled) in steps(world, case).items() if key[0] == "contact")
    clock.set(2026, 11, 18, 9, 0)
    assert fired(sweep(world)) == {} and texts(world) == []
    # the citizen reads that the department has been in touch, never what was said
    timeline = world.client.get(f"/api/v1/tickets/{case}?code={filed['query_code']}").get_json()["timeline"]
    assert timeline[-1]["note"] == "承办部门已与您联系。" and "上门" not in str(timeline)
    # once only: the first contact is recorded
    again = record(world, case, expect=409)
    assert again["error"]["code"] == "invalid_transition"


def test_contact_times_are_checked(world, clock):
    case = transferred(world, "A")
    clock.set(2026, 11, 16, 10, 0)

    def refused(field, **body):
        answer = record(world, case, expect=422, **body)
        assert set(answer["error"]["fields"]) == {field}, answer
        return answer["error"]["fields"][field]

    assert "不能晚于当前时间" in refused("contacted_at", contacted_at="2026-11-16T10:05:00+08:00")
    assert "2026-11-16 09:00" in refused("contacted_at", contacted_at="2026-11-16T08:59:00+08:00")
    refused("contacted_at", contacted_at="16/11/2026 09:30")
    refused("contacted_at", contacted_at="2026-02-30T09:30")
    refused("contacted_at", contacted_at="9999-12-31T23:59:59-23:59")
    refused("method", method="email")
    refused("outcome", outcome="  ")
    # a device clock a minute ahead is taken as now; the transfer's own minute counts from the transfer
    assert record(world, case, contacted_at="2026-11-16T10:01:00+08:00")["first_contact"]["contacted_at"] == \
        "2026-11-16T10:00:00+08:00"


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3), max_leaves=6)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.fixed_dictionaries({}, optional={
    "contacted_at": JSONISH | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat()) | st.sampled_from(["2026-11-16T09:30", "2026-11-16T09:30:00Z", "2026-11-16 09:30"]),
    "method": JSONISH | st.sampled_from(["phone", "visit", "sms", "other"]),
    "outcome": JSONISH}) | JSONISH)
def test_any_body_is_answered_never_with_a_500(world, clock, body):
    case = transferred(world, "A")
    clock.set(2026, 11, 16, 10, 0)
    response = world.post("dept_a", f"/api/v1/staff/tickets/{case}/record_contact", json=body)
    assert response.status_code in (200, 400, 409, 422), (body, response.get_json())
    error = response.get_json().get("error")
    assert response.status_code == 200 or error["code"] in ("validation_error", "bad_request", "conflict")


# --- when the department gives the case up, or takes it again ------------------------------------------------

def test_a_reply_is_not_a_contact_and_a_send_back_resumes_it(world, clock):
    case = transferred(world, "A")
    clock.set(2026, 11, 16, 10, 0)
    world.act("dept_a", case, "reply", content="已办理。")
    (deadline,) = contact_deadlines(world, case)
    assert deadline.outcome == "not_contacted" and world.ticket("office", case)["contact_due_at"] is None
    world.act("office", case, "send_back", reason="请先与群众联系。")
    view = world.ticket("office", case)
    assert view["first_contact"]["state"] == "awaiting" and view["contact_due_at"] == "2026-11-17T10:00:00+08:00"
    assert not steps(world, case)[("contact", 1, "contact_supervisor")][2]  # its ladder is back too
    clock.set(2026, 11, 16, 10, 40)
    assert record(world, case, contacted_at="2026-11-16T10:30")["first_contact"]["state"] == "met"


def test_each_department_that_takes_the_case_owes_its_own_contact(world, clock):
    case = transferred(world, "A")
    clock.set(2026, 11, 16, 10, 0)
    world.act("dept_a", case, "return", reason="不属于本部门职责。")
    world.act("office", case, "transfer", department_id=world.departments["B"])
    first, second = contact_deadlines(world, case)
    assert (first.outcome, first.department_id) == ("not_contacted", world.departments["A"])
    assert (second.round, second.department_id, second.ended_at) == (2, world.departments["B"], None)
    assert second.due_at == local(2026, 11, 17, 11, 0)
    # B contacts, returns it; A gets it back and still owes a contact; B, taking it a third time, does not
    clock.set(2026, 11, 16, 10, 20)
    record(world, case, who="dept_b", contacted_at="2026-11-16T10:10")
    world.act("dept_b", case, "return", reason="请市场监管局办理。")
    world.act("office", case, "transfer", department_id=world.departments["A"])
    assert [d.department_id for d in contact_deadlines(world, case)][-1] == world.departments["A"]
    world.act("dept_a", case, "return", reason="不属于本部门职责。")  # A's second return: a 争议件
    world.act("supervisor", case, "arbitrate", department_id=world.departments["B"])
    assert len(contact_deadlines(world, case)) == 3  # B made its contact in round 2
    contact = world.ticket("office", case)["first_contact"]
    assert (contact["state"], contact["round"], contact["department_id"]) == ("met", 2, world.departments["B"])


# --- settings and policies --------------------------------------------------------------------------------------

def test_the_limit_follows_the_setting_and_the_policies(make_app, clock):
    app = make_app(FIRST_CONTACT_HOURS=4, OFFICE_HOURS="08:30-12:00,14:00-18:00")
    world = seed_world(app, app.test_client())
    case = transferred(world, "A")
    assert world.ticket("office", case)["first_contact"]["due_at"] == "2026-11-16T15:00:00+08:00"  # 3 h, then 1 h
    with app.app_context():
        store.set_override(db.session, "contact", f"department:{world.departments['B']}", "2", by=None, now=clock())
        store.set_override(db.session, "contact", "problem_type:too_slow", "12", by=None, now=clock())
        db.session.commit()
        store.invalidate()
    assert world.ticket("office", transferred(world, "B"))["first_contact"]["due_at"] == "2026-11-16T11:00:00+08:00"
    # the problem type's figure (the case is 办得慢): 12 working hours, 7 on Monday from 09:00, 5 on Tuesday
    assert world.ticket("office", transferred(world, "A"))["first_contact"]["due_at"] == "2026-11-17T15:30:00+08:00"
    set_password(world, "office")
    console = app.test_client()
    console_sign_in(console, "office")
    page = console.get("/admin/policies/").get_data(as_text=True)
    assert "08:30–12:00, 14:00–18:00" in page and "12 working hours" in page
    token = page_csrf(console, "/admin/policies/")
    for bad in ("0", "121", "x"):
        answer = console.post("/admin/policies/set", data={"kind": "contact", "scope": "problem_type:other",
                                                           "working_days": bad, "csrf_token": token})
        assert answer.status_code == 400 and "from 1 to 120" in answer.get_data(as_text=True)


@pytest.mark.parametrize("config, message", [
    ({"OFFICE_HOURS": "9点到5点"}, "office hours"),
    ({"OFFICE_HOURS": "13:30-17:30,09:00-12:00"}, "comes before"),
    ({"FIRST_CONTACT_HOURS": 0}, "FIRST_CONTACT_HOURS"),
    ({"FIRST_CONTACT_HOURS": 121}, "FIRST_CONTACT_HOURS"),
])
def test_bad_settings_stop_start_up_with_a_clear_message(config, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        create_app({**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **config})


def test_a_setting_from_the_environment_is_named_when_it_is_not_a_number(monkeypatch, tmp_path):
    monkeypatch.setenv("FIRST_CONTACT_HOURS", "八")
    with pytest.raises(ValueError, match="FIRST_CONTACT_HOURS='八'"):
        create_app({**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})


# --- the console ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_department_sees_and_records_the_first_contact_in_the_console(world, clock, console):
    waiting, done = transferred(world, "A"), transferred(world, "A")
    clock.set(2026, 11, 16, 9, 30)
    record(world, done, contacted_at="2026-11-16T09:20")
    english = console("dept_a")
    queue = english.get("/admin/queue-in-progress/").get_data(as_text=True)
    assert "First contact by" in queue and "2026-11-17 10:00" in queue
    in_progress = next(q for q in QUEUES if q.endpoint == "queue_in_progress")
    filtered = english.get("/admin/queue-in-progress/", query_string=shortcut_args(in_progress, AwaitingContactFilter))
    assert waiting in filtered.get_data(as_text=True) and done not in filtered.get_data(as_text=True)

    page = english.get(f"/admin/case/{waiting}").get_data(as_text=True)
    assert 'id="first-contact"' in page and "awaited" in page
    assert 'type="datetime-local"' in page and 'value="2026-11-16T09:30"' in page  # now, in local time
    form = re.search(r'id="action-record_contact".*?</form>', page, re.S).group(0)
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    answer = english.post(f"/admin/case/{waiting}/record_contact", data={
        "csrf_token": page_csrf(english, f"/admin/case/{waiting}"), "version": version,
        "contacted_at": "2026-11-16T09:25", "method": "sms", "outcome": "短信告知承办人联系方式。"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = english.get(f"/admin/case/{waiting}").get_data(as_text=True)
    card = re.search(r'id="first-contact".*?</section>', page, re.S).group(0)
    assert "on time" in card and "2026-11-16 09:25" in card and "By text message" in card and "短信告知" in card
    # a wrong time keeps what was typed and says why, in Chinese by default
    other = transferred(world, "A")
    console_zh = console("dept_a", lang="zh_CN")
    page = console_zh.get(f"/admin/case/{other}").get_data(as_text=True)
    version = re.search(r'id="action-record_contact".*?name="version" value="(\d+)"', page, re.S).group(1)
    answer = console_zh.post(f"/admin/case/{other}/record_contact", data={
        "csrf_token": page_csrf(console_zh, f"/admin/case/{other}"), "version": version,
        "contacted_at": "2026-11-17T09:25", "method": "phone", "outcome": "已联系。"})
    assert answer.status_code == 422 and "不能晚于当前时间" in answer.get_data(as_text=True)


# --- the report: 先行联系及时率 ----------------------------------------------------------------------------------

def test_the_months_first_contact_rate_by_hand(network, clock):
    """Eight transfers around November 2026, each deciding its contact deadline differently (see each line)."""
    world = network.world
    at = clock.set

    at(2026, 10, 30, 16, 0)
    k8 = transferred(world, "A")                        # due Mon 11-02 17:00; contacted 11-02 09:30: met, November
    at(2026, 11, 2, 9, 0)
    k1 = transferred(world, "A")                        # due 11-03 10:00; contacted 11:00 the same day: met
    at(2026, 11, 2, 9, 30)
    record(world, k8, contacted_at="2026-11-02T09:30")
    at(2026, 11, 2, 11, 0)
    record(world, k1, contacted_at="2026-11-02T11:00")
    at(2026, 11, 4, 9, 0)
    k2 = transferred(world, "A")                        # due 11-05 10:00; contacted 11-05 14:00: late
    at(2026, 11, 5, 15, 0)
    record(world, k2, contacted_at="2026-11-05T14:00")
    at(2026, 11, 9, 9, 0)
    k3 = network.file("c1")                             # 东湖县's case, its 人社局: never contacted, missed
    world.act("office_c1", k3, "accept")
    world.act("office_c1", k3, "transfer", department_id=network.departments["C1"])
    at(2026, 11, 11, 9, 0)
    k4 = transferred(world, "B")                        # B replies within the hour, no contact: not counted
    at(2026, 11, 11, 10, 0)
    world.act("dept_b", k4, "reply", content="已办理。")
    at(2026, 11, 12, 9, 0)
    k5 = transferred(world, "A")                        # due 11-13 10:00; A replies after it, no contact: missed
    at(2026, 11, 13, 15, 0)
    world.act("dept_a", k5, "reply", content="已办理。")
    at(2026, 11, 30, 9, 0)
    transferred(world, "B")                             # K7: due 12-01 10:00, falls due in December
    at(2026, 11, 30, 16, 0)
    k6 = transferred(world, "A")                        # due 12-01 17:00; contacted 11-30 17:00: met, November
    at(2026, 11, 30, 17, 0)
    record(world, k6, contacted_at="2026-11-30T17:00")
    at(2026, 12, 2, 9, 0)

    with world.app.app_context():
        november = monthly_figures(db.session, metrics.Month.parse("2026-11"))
        october = monthly_figures(db.session, metrics.Month.parse("2026-10"))
        december = monthly_figures(db.session, metrics.Month.parse("2026-12"))
    assert november["formula_version"] == "2026.7"
    office = november["office"]
    assert (office["contacts_due"], office["contacted_on_time"], office["contact_rate"]) == (6, 3, 0.5)
    rows = {row["name"]: row for row in november["departments"]}
    a, b = rows["市场监督管理局"], rows["人力资源和社会保障局"]
    assert (a["contacts_due"], a["contacted_on_time"], a["contact_rate"]) == (5, 3, 0.6)  # K1 K2 K5 K6 K8
    assert (b["contacts_due"], b["contacted_on_time"], b["contact_rate"]) == (0, 0, None)  # K4 in time, K7 December
    c1 = rows["东湖县人社局"]
    assert (c1["contacts_due"], c1["contacted_on_time"], c1["contact_rate"]) == (1, 0, 0.0)  # K3
    counties = {row["code"]: row for row in november["offices"]}
    assert (counties["c1"]["contacts_due"], counties["c1"]["contact_rate"]) == (1, 0.0)
    assert (november["own"]["contacts_due"], november["own"]["contacted_on_time"]) == (5, 3)
    assert (october["office"]["contacts_due"], october["office"]["contact_rate"]) == (0, None)  # K8 met in November
    assert (december["office"]["contacts_due"], december["office"]["contacted_on_time"]) == (1, 0)  # K7

    pdf = world.get("office", "/api/v1/reports/monthly/2026-11.pdf")
    assert pdf.status_code == 200
    text = squash(pdf_text(pdf.data))
    assert "先行联系及时率" in text and "50.0%" in text and "60.0%" in text
