"""The clerk's and the leader's console work (issue 16): 受理并转办 and 「下一件」, 我来办 and 我的案件, 批示, lists that say
what a case is about and how long is left, saved filters, and bulk actions with one result per case (console and API)."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import examples, page_csrf, supervise
from tickets.db import db
from tickets.models import Event, SavedFilter, Ticket

# The workflow's and the forms' own rules: the same on both databases. What reads lists, visibility and the report's
# SQL (my cases, search, bulk over the API, the next case of a window, the instruction in the report) runs on both.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def events_of(world, no) -> list[str]:
    return [e["action"] for e in world.ticket("admin", no)["events"]]


def sms_of(world, no) -> list[tuple[str, str]]:
    from notify.models import SmsMessage

    with world.app.app_context():
        ticket_id = db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == no))
        return [(m.template, m.phone) for m in db.session.scalars(
            sa.select(SmsMessage).where(SmsMessage.ticket_id == ticket_id).order_by(SmsMessage.id))]


def give_phone(world, who, phone):
    from tickets.models import User

    with world.app.app_context():
        db.session.get(User, world.users[who]).phone = phone
        db.session.commit()


# --- 受理并转办 ---------------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_accept_and_transfer_is_one_submit_with_both_events_and_one_version(world):
    no = world.file()["tracking_no"]
    before = world.ticket("office", no)
    after = world.act("office", no, "accept_and_transfer", department_id=world.departments["A"], working_days=3,
                      instructions="请核实", version=before["version"])
    assert after["status"] == "transferred" and after["version"] == before["version"] + 1
    assert [e["action"] for e in after["events"]][-2:] == ["accept", "transfer"]
    transfer = after["events"][-1]
    assert transfer["data"]["department_name"] == "市场监督管理局" and transfer["data"]["working_days"] == 3
    assert after["owner_name"] == "office"  # whoever accepts works it
    # the citizen hears of the transfer once, as after the two steps
    assert [t for t, _ in sms_of(world, no)].count("transferred") == 1


@SQLITE_ONLY
def test_accept_and_transfer_refuses_as_the_two_steps_would_and_changes_nothing(world):
    no = world.file()["tracking_no"]
    bad = world.act("office", no, "accept_and_transfer", expect=422, department_id=999999)
    assert "department_id" in bad["error"]["fields"]
    assert world.ticket("office", no)["status"] == "submitted" and events_of(world, no) == ["file"]
    world.act("dept_a", no, "accept_and_transfer", expect=404, department_id=world.departments["A"])
    world.act("supervisor", no, "accept_and_transfer", expect=403, department_id=world.departments["A"])
    world.act("office", no, "accept")
    world.act("office", no, "accept_and_transfer", expect=409, department_id=world.departments["A"])


# --- 我来办, reassignment, 我的案件 ----------------------------------------------------------------------------------

@SQLITE_ONLY
def test_take_a_case_and_only_a_supervisor_reassigns_it(world):
    no = world.file()["tracking_no"]
    world.act("admin", no, "accept_and_transfer", department_id=world.departments["A"])
    assert world.ticket("admin", no)["owner_id"] is None  # an admin's acceptance makes nobody the owner
    taken = world.act("dept_a", no, "assign")
    assert taken["handler_name"] == "dept_a" and taken["events"][-1]["data"]["side"] == "handler"
    again = world.act("dept_a", no, "assign", expect=409)
    assert again["error"]["code"] == "invalid_transition"
    world.act("office", no, "assign", expect=403, user_id=world.users["supervisor"])  # only a supervisor gives
    world.act("office", no, "assign")  # the window's side is free: the clerk takes it there
    moved = world.act("supervisor", no, "assign", user_id=world.users["supervisor"])
    assert moved["owner_name"] == "supervisor" and moved["events"][-1]["data"]["previous_user_id"] == world.users["office"]
    # someone who cannot work the case: another department's handler, a leader, nobody at all
    for user_id in (world.users["dept_b"], world.users["leader"], 999999, "x", -1):
        refused = world.act("supervisor", no, "assign", expect=422, user_id=user_id)
        assert "user_id" in refused["error"]["fields"]


@SQLITE_ONLY
def test_a_transfer_elsewhere_frees_the_handler_and_a_return_too(world):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept_and_transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "assign")
    world.act("dept_a", no, "return", reason="不属于本部门")
    view = world.ticket("office", no)
    assert view["handler_id"] is None and view["owner_name"] == "office"
    world.act("dept_a", no, "assign", expect=409)  # no longer with their department


def test_my_cases_in_the_api_and_the_console(world):
    mine = world.file(description="我的案件：营业执照")["tracking_no"]
    other = world.file(description="别人的案件：社保")["tracking_no"]
    world.act("office", mine, "accept")
    world.act("admin", other, "accept")
    listed = world.get("office", "/api/v1/staff/tickets?assignee=me").get_json()
    assert [i["tracking_no"] for i in listed["items"]] == [mine]
    nobody = world.get("office", "/api/v1/staff/tickets?assignee=none").get_json()
    assert other in [i["tracking_no"] for i in nobody["items"]] and mine not in [i["tracking_no"] for i in nobody["items"]]
    page = world.console("office").get("/admin/queue-mine/").get_data(as_text=True)
    assert mine in page and other not in page
    home = world.console("office").get("/admin/").get_data(as_text=True)
    assert re.search(r"我的案件\D*1\b", home)
    bad = world.get("office", "/api/v1/staff/tickets?assignee=everyone")
    assert bad.status_code == 422 and "assignee" in bad.get_json()["error"]["fields"]


# --- 批示 ------------------------------------------------------------------------------------------------------

def test_a_leaders_instruction_is_shown_on_top_texted_to_the_handlers_and_in_the_report(world):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept_and_transfer", department_id=world.departments["A"])
    give_phone(world, "dept_a", "+8613911110000")
    give_phone(world, "dept_b", "+8613922220000")
    refused = world.act("leader", no, "instruct", expect=409, content="请尽快")
    assert "督办" in refused["error"]["message"]
    supervise(world, no, level=3)
    world.act("office", no, "instruct", expect=403, content="请尽快")
    done = world.act("leader", no, "instruct", content="请分管负责同志牵头，<b>三日内</b>办结。")
    assert done["instructions"][0]["content"] == "请分管负责同志牵头，<b>三日内</b>办结。"
    assert done["instructions"][0]["by"] == "leader"
    texts = sms_of(world, no)
    assert ("instruction_handler", "+8613911110000") in texts
    assert all(phone != "+8613922220000" for _, phone in texts)  # another department's handler is not texted
    assert done["events"][-1]["data"]["notified"] == {"handler": 1}
    page = world.console("dept_a").get(f"/admin/case/{no}").get_data(as_text=True)
    top = page.index('id="instructions"')
    assert top < page.index('id="description"')
    assert "&lt;b&gt;三日内&lt;/b&gt;" in page[top:top + 2000]
    # the month's escalation list of the report carries it
    from reports import metrics
    from reports.figures import monthly_figures
    from tickets import clock

    with world.app.app_context():
        figures = monthly_figures(db.session, metrics.Month.parse(clock.local(clock.now()).strftime("%Y-%m")))
    instructions = [i for i in figures["escalations"]["items"] if i["action"] == "instruct"]
    assert instructions and instructions[0]["instruction"].startswith("请分管负责同志牵头")


# --- lists ------------------------------------------------------------------------------------------------------

def test_lists_show_what_the_case_is_about_how_long_is_left_and_who_works_it(world):
    no = world.file(description="营业执照变更跑了三次窗口都说材料不全，" * 5)["tracking_no"]
    world.act("office", no, "accept_and_transfer", department_id=world.departments["A"], working_days=5)
    item = next(i for i in world.get("office", "/api/v1/staff/tickets").get_json()["items"] if i["tracking_no"] == no)
    assert item["summary"].startswith("营业执照变更") and item["summary"].endswith("…") and len(item["summary"]) <= 60
    assert item["working_days_left"] in (4, 5) and item["working_days_overdue"] is None
    assert item["owner_name"] == "office" and item["channel"] == "api"
    page = world.console("office").get("/admin/queue-in-progress/").get_data(as_text=True)
    assert "营业执照变更跑了三次" in page and "个工作日" in page
    assert re.search(r'class="col-channel"[^>]*>\s*网上', page)


def test_search_is_one_definition_for_the_api_and_the_console(world):
    a = world.file(name="王五", phone="13912345678", description="公积金提取被拒")["tracking_no"]
    b = world.file(name="赵六", phone="13800001111", description="不动产登记排队太久")["tracking_no"]
    for term, expected in (("公积金", {a}), ("139 1234 5678", {a}), (b.lower(), {b}), ("赵六", {b}), ("100%_", set())):
        api = {i["tracking_no"] for i in world.get("office", f"/api/v1/staff/tickets?q={term}").get_json()["items"]}
        assert api == expected, term
        page = world.console("office").get("/admin/cases/", query_string={"search": term}).get_data(as_text=True)
        assert {n for n in (a, b) if n in page} == expected, term


# --- saved filters ------------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_saved_filters_are_per_user_and_keep_only_list_arguments(world):
    client = world.console("office")
    token = page_csrf(client, "/admin/cases/?search=x")
    response = client.post("/admin/cases/filters", data={
        "csrf_token": token, "name": "超期的", "query": "flt0_0=yes&search=执照&page=3&next=//evil.example"})
    assert response.status_code == 302
    with world.app.app_context():
        saved = db.session.scalar(sa.select(SavedFilter))
        assert saved.query == "flt0_0=yes&search=%E6%89%A7%E7%85%A7" and saved.endpoint == "cases"
    page = client.get("/admin/cases/").get_data(as_text=True)
    assert "超期的" in page and "/admin/cases/?flt0_0=yes&amp;search=" in page
    assert "超期的" not in world.console("supervisor").get("/admin/cases/").get_data(as_text=True)
    other = world.console("supervisor")
    refused = other.post(f"/admin/cases/filters/{saved.id}/delete", data={"csrf_token": page_csrf(other, "/admin/cases/")})
    assert refused.status_code == 404
    empty = client.post("/admin/cases/filters", data={"csrf_token": token, "name": "", "query": "flt0_0=yes"})
    assert empty.status_code == 302
    assert client.post(f"/admin/cases/filters/{saved.id}/delete", data={"csrf_token": token}).status_code == 302
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SavedFilter)) == 0


# --- bulk -------------------------------------------------------------------------------------------------------

def test_bulk_transfer_over_the_api_refuses_the_stale_case_and_does_the_rest(world):
    numbers = [world.file(description=f"批量转办第{n}件案件")["tracking_no"] for n in range(4)]
    for no in numbers:
        world.act("office", no, "accept")
    versions = {no: world.ticket("office", no)["version"] for no in numbers}
    world.act("office", numbers[1], "note", content="看过")  # no version bump: still fresh
    world.act("office", numbers[2], "remind")                  # bumped: stale for the selection
    body = {"tickets": [{"tracking_no": no, "version": versions[no]} for no in numbers] + ["BJ19990101-0001",
                                                                                          numbers[0]],
            "department_id": world.departments["B"]}
    answer = world.post("office", "/api/v1/staff/tickets/bulk/transfer", json=body).get_json()
    results = {r["tracking_no"]: r for r in reversed(answer["results"])}  # the first result of each number
    assert len(answer["results"]) == 6 and answer["done"] == 3 and answer["refused"] == 3
    assert results[numbers[2]]["error"]["code"] == "conflict"
    assert results["BJ19990101-0001"]["error"]["code"] == "not_found"
    assert answer["results"][-1]["ok"] is False  # the same case twice: once only
    for no in (numbers[0], numbers[1], numbers[3]):
        assert results[no]["ok"] and results[no]["status"] == "transferred"
        assert world.ticket("office", no)["department_id"] == world.departments["B"]
    assert world.ticket("office", numbers[2])["status"] == "accepted"


@SQLITE_ONLY
def test_bulk_refusals_are_clear_errors(world):
    no = world.file()["tracking_no"]
    assert world.post("office", "/api/v1/staff/tickets/bulk/approve", json={"tickets": [no]}).status_code == 404
    assert world.post("office", "/api/v1/staff/tickets/bulk/accept", json={"tickets": []}).status_code == 422
    too_many = world.post("office", "/api/v1/staff/tickets/bulk/accept", json={"tickets": [no] * 101})
    assert too_many.status_code == 422 and "tickets" in too_many.get_json()["error"]["fields"]
    assert world.post(None, "/api/v1/staff/tickets/bulk/accept", json={"tickets": [no]}).status_code == 401
    answer = world.post("dept_a", "/api/v1/staff/tickets/bulk/accept", json={"tickets": [no]}).get_json()
    assert answer["results"][0]["error"]["code"] == "not_found"  # a case they cannot see does not exist for them
    missing = world.post("office", "/api/v1/staff/tickets/bulk/transfer", json={"tickets": [no]}).get_json()
    assert missing["results"][0]["error"]["code"] in ("invalid_transition", "validation_error")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@SQLITE_ONLY  # the body's checks are Python; the database adds nothing but time
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["tickets", "department_id", "version", "note", "user_id", "x"]), JSON,
                            max_size=4), action=st.sampled_from(["accept", "transfer", "remind", "assign", "nope"]))
def test_any_bulk_body_gets_an_answer_never_a_500(world, body, action):
    response = world.post("office", f"/api/v1/staff/tickets/bulk/{action}", json=body)
    assert response.status_code in (200, 404, 422), response.get_json()
    if response.status_code == 200:
        answer = response.get_json()
        assert answer["done"] + answer["refused"] == len(answer["results"])


@SQLITE_ONLY
def test_bulk_in_the_console_from_the_intake_queue(world):
    numbers = [world.file(description=f"窗口批量第{n}件")["tracking_no"] for n in range(3)]
    client = world.console("office")
    page = client.get("/admin/queue-intake/").get_data(as_text=True)
    assert 'id="bulk-form"' in page
    selection = re.findall(r'name="tickets" value="([^"]+)"', page)
    assert sorted(v.split(":")[0] for v in selection) == sorted(numbers)
    world.act("office", numbers[0], "accept")  # meanwhile a colleague accepted one
    response = client.post("/admin/queue-intake/bulk", data={
        "csrf_token": page_csrf(client, "/admin/queue-intake/"), "action": "accept_and_transfer",
        "department_id": str(world.departments["C"]), "tickets": selection, "back": "//evil.example/"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert text.count('class="bulk-done"') == 2 and text.count('class="bulk-refused"') == 1
    assert 'href="//evil.example/"' not in text
    assert {world.ticket("office", no)["status"] for no in numbers[1:]} == {"transferred"}
    # a department handler has no bulk accept, and an action the queue does not offer is refused
    dept = world.console("dept_a")
    assert dept.post("/admin/queue-in-progress/bulk", data={
        "csrf_token": page_csrf(dept, "/admin/queue-in-progress/"), "action": "accept",
        "tickets": [selection[0]]}).status_code == 404


# --- 下一件 ------------------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_after_dispatching_from_a_queue_the_next_case_opens(world):
    first, second = (world.file(description=f"队列第{n}件")["tracking_no"] for n in range(2))
    client = world.console("office")
    page = client.get(f"/admin/case/{first}?queue=queue_intake").get_data(as_text=True)
    assert f'/admin/case/{second}?queue=queue_intake' in page and 'id="next-case"' in page
    assert page.index('id="action-accept_and_transfer"') < page.index('id="action-accept"')
    response = client.post(f"/admin/case/{first}/accept_and_transfer", data={
        "csrf_token": page_csrf(client, f"/admin/case/{first}"), "queue": "queue_intake",
        "department_id": str(world.departments["A"])})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/case/{second}?queue=queue_intake")
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert first in shown and "受理并转办：已完成。" in shown
    # the department the clerk just used is offered in one click; it wins over the list's choice
    assert f'name="quick_department_id" value="{world.departments["A"]}"' in shown
    last = client.post(f"/admin/case/{second}/accept_and_transfer", data={
        "csrf_token": page_csrf(client, f"/admin/case/{second}"), "queue": "queue_intake", "department_id": "",
        "quick_department_id": str(world.departments["A"])})
    assert last.status_code == 302 and last.headers["Location"].endswith(f"/admin/case/{second}?queue=queue_intake")
    assert world.ticket("office", second)["department_id"] == world.departments["A"]
    assert 'id="queue-done"' in client.get(last.headers["Location"]).get_data(as_text=True)
    # a queue the viewer may not use is ignored
    assert 'id="next-case"' not in world.console("dept_a").get(f"/admin/case/{first}?queue=queue_intake").get_data(
        as_text=True)


@SQLITE_ONLY
def test_events_of_one_dispatch_share_the_moment(world):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept_and_transfer", department_id=world.departments["A"])
    with world.app.app_context():
        ticket_id = db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == no))
        ats = db.session.scalars(sa.select(Event.at).where(Event.ticket_id == ticket_id,
                                                           Event.action.in_(("accept", "transfer")))).all()
    assert len(ats) == 2 and ats[0] == ats[1]


def test_the_open_cases_index_covers_exactly_the_open_statuses():
    """Migration 0017 wrote the partial index's condition out; it must stay the open statuses of the models."""
    import pathlib

    from tickets.models import OPEN_CONDITION

    migration = (pathlib.Path(__file__).parents[1] / "migrations" / "versions" / "0017_console.py").read_text()
    assert f'"{OPEN_CONDITION}"' in migration


def test_a_clerks_next_case_is_one_of_their_own_windows(network):
    """待受理 also lists the windows below (to follow them); 「下一件」 leads a clerk only to cases they can act on."""
    world = network.world
    own, below = network.file("root"), network.file("c1")
    client = world.console("office")
    page = client.get(f"/admin/case/{own}?queue=queue_intake").get_data(as_text=True)
    assert 'id="next-case"' not in page  # the only other case waiting is a window below's
    response = client.post(f"/admin/case/{own}/accept_and_transfer", data={
        "csrf_token": page_csrf(client, f"/admin/case/{own}"), "queue": "queue_intake",
        "department_id": str(world.departments["A"])})
    assert response.status_code == 302 and f"/admin/case/{own}?" in response.headers["Location"]
    assert 'id="queue-done"' in client.get(response.headers["Location"]).get_data(as_text=True)
    assert below in client.get("/admin/queue-intake/").get_data(as_text=True)
