"""The JSON API as API.md describes it: the loop, visibility, masking, deadlines and the error shape."""
from __future__ import annotations

import ast
import pathlib
from datetime import datetime

import pytest


def public(world, filed, lang=None):
    headers = {"Accept-Language": lang} if lang else {}
    return world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}", headers=headers)


def rate(world, filed, score, **extra):
    return world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                             json={"score": score, **extra})


def test_public_lists(world):
    departments = world.client.get("/api/v1/departments").get_json()
    assert [d["code"] for d in departments] == ["A", "B", "C"]
    assert set(departments[0]) == {"id", "code", "name"}
    types = world.client.get("/api/v1/problem-types").get_json()
    assert [t["code"] for t in types] == ["cannot_handle", "too_slow", "too_hard", "other"]
    assert types[0]["label"] == "办不了"
    english = world.client.get("/api/v1/problem-types", headers={"Accept-Language": "en"}).get_json()
    assert english[1]["label"] == "Too slow"


def test_filing_answers_contract_fields(world, clock):
    filed = world.file(phone="+86 139-1234-5678", department_id=world.departments["B"], service_item="社保转移")
    assert set(filed) == {"tracking_no", "query_code", "status", "created_at"}
    assert filed["tracking_no"] == "BJ20261116-0001" and filed["status"] == "submitted"
    assert datetime.fromisoformat(filed["created_at"]) == clock.now
    assert world.file()["tracking_no"] == "BJ20261116-0002"
    detail = world.ticket("office", filed["tracking_no"])
    assert detail["phone"] == "+8613912345678"
    assert detail["suggested_department_id"] == world.departments["B"] and detail["department_id"] is None
    # accept deadline: one working day, counted from the next day
    assert detail["due_at"] == "2026-11-17T23:59:59+08:00" and detail["due_kind"] == "accept"


def test_the_whole_loop_as_the_citizen_sees_it(world, clock):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept", note="内部：材料齐全")
    clock.advance(hours=1)
    world.act("office", no, "transfer", department_id=world.departments["A"], instructions="内部：请加急")
    clock.advance(hours=2)
    world.act("dept_a", no, "note", content="内部：已联系申请人")
    world.act("dept_a", no, "reply", content="已办结，请到 3 号窗口领取执照。")
    view = public(world, filed).get_json()
    assert view["status"] == "replied" and view["status_label"] == "待审核"
    assert view["reply"] is None  # not before the office approved it
    assert view["timeline"][-1]["label"] == "部门已答复" and "审核" in view["timeline"][-1]["note"]
    assert "3 号窗口" not in str(view)
    clock.advance(hours=1)
    world.act("office", no, "approve")
    view = public(world, filed).get_json()
    assert view["status"] == "closed" and view["reply"] == "已办结，请到 3 号窗口领取执照。"
    assert [step["status"] for step in view["timeline"]] == ["submitted", "accepted", "transferred", "replied",
                                                              "closed"]
    assert "市场监督管理局" in view["timeline"][2]["note"]
    text = str(view)
    assert "内部" not in text and "'office'" not in text and "dept_a" not in text
    assert view["survey_open"] is True
    assert rate(world, filed, 2, comment="很快").status_code == 200
    view = public(world, filed).get_json()
    assert view["rating"]["score"] == 2 and view["rating"]["label"] == "满意" and not view["survey_open"]
    again = rate(world, filed, 1)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_transition"


def test_bad_rating_reopens_for_the_same_department_and_rounds_are_kept(world, clock):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已处理。")
    world.act("office", no, "approve")
    clock.advance(days=1)
    response = rate(world, filed, 5, comment="根本没解决")
    assert response.status_code == 200 and response.get_json()["status"] == "rectifying"
    detail = world.ticket("dept_a", no)
    assert detail["department_id"] == world.departments["A"] and detail["due_kind"] == "rectify"
    rectify = [d for d in detail["deadlines"] if d["kind"] == "rectify"][0]
    assert rectify["working_days"] == 15
    # sending a rectification reply back keeps it a rectification
    world.act("dept_a", no, "reply", content="已重新办理。")
    world.act("office", no, "send_back", reason="请附上办理结果")
    assert world.ticket("office", no)["status"] == "rectifying"
    world.act("dept_a", no, "reply", content="已重新办理，结果见附件。")
    world.act("office", no, "approve")
    assert rate(world, filed, 1).status_code == 200
    rounds = [e["data"]["round"] for e in world.ticket("office", no)["events"] if e["action"] == "rate"]
    assert rounds == [1, 2]


def test_explain_closes_a_rectification_without_a_new_survey(world):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "resolve", content="已告知。")
    rate(world, filed, 4)
    world.act("office", no, "explain", content="该事项依法须本人到场办理，已电话解释。")
    view = public(world, filed).get_json()
    assert view["status"] == "closed" and view["reply"].startswith("该事项依法")
    assert view["survey_open"] is False


def test_rating_rules(world):
    filed = world.file()
    assert rate(world, filed, 3).status_code == 409  # no survey before closure
    world.act("office", filed["tracking_no"], "accept")
    world.act("office", filed["tracking_no"], "resolve", content="已答复。")
    for bad in (0, 6, "x", None, True, 2.5):
        response = rate(world, filed, bad)
        assert response.status_code == 422 and "score" in response.get_json()["error"]["fields"], bad
    wrong_code = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code=WRONG", json={"score": 1})
    assert wrong_code.status_code == 404


def test_survey_closes_after_three_days(world, clock):
    filed = world.file()
    world.act("office", filed["tracking_no"], "accept")
    world.act("office", filed["tracking_no"], "resolve", content="已答复。")
    clock.advance(days=3, seconds=1)
    assert public(world, filed).get_json()["survey_open"] is False
    assert rate(world, filed, 1).status_code == 409


def test_wrong_code_and_unknown_number_look_the_same(world):
    filed = world.file()
    wrong = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code=AAAAAAAA")
    unknown = world.client.get(f"/api/v1/tickets/BJ20000101-0001?code={filed['query_code']}")
    missing = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}")
    assert wrong.status_code == unknown.status_code == missing.status_code == 404
    assert wrong.get_json() == unknown.get_json() == missing.get_json()
    # codes are forgiving about case and spaces, as people type them
    code = filed["query_code"]
    spaced = world.client.get(f"/api/v1/tickets/{filed['tracking_no'].lower()}?code={code[:4].lower()}%20{code[4:]}")
    assert spaced.status_code == 200


def test_transfer_sets_the_handling_deadline_in_working_days(world, clock):
    clock.set(2026, 9, 29, 10, 0)  # Tuesday before National Day
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    detail = world.act("office", no, "transfer", department_id=world.departments["A"])
    assert detail["due_at"] == "2026-10-12T23:59:59+08:00"  # Sep 30, Oct 8, 9, 10 (make-up Saturday), 12
    kinds = {d["kind"]: d for d in detail["deadlines"]}
    assert kinds["accept"]["outcome"] == "met" and kinds["handle"]["working_days"] == 5
    assert kinds["return"]["due_at"] == "2026-10-08T23:59:59+08:00"
    custom = world.act("office", world.file()["tracking_no"], "accept")
    custom = world.act("office", custom["tracking_no"], "transfer", department_id=world.departments["A"], working_days=10)
    assert [d for d in custom["deadlines"] if d["kind"] == "handle"][-1]["working_days"] == 10


def test_extension_moves_the_deadline_and_tells_the_citizen(world, clock):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])  # due Mon 2026-11-23
    world.act("dept_a", no, "request_extension", working_days=3, reason="需现场核查")
    twice = world.post("dept_a", f"/api/v1/staff/tickets/{no}/request_extension", json={"working_days": 1, "reason": "再延"})
    assert twice.status_code == 409
    refused = world.act("office", no, "decide_extension", approve=False, note="时间足够")
    assert refused["due_at"] == "2026-11-23T23:59:59+08:00" and not refused["extension_pending"]
    world.act("dept_a", no, "request_extension", working_days=3, reason="需现场核查")
    approved = world.act("office", no, "decide_extension", approve=True)
    assert approved["due_at"] == "2026-11-26T23:59:59+08:00"
    handle = [d for d in approved["deadlines"] if d["kind"] == "handle"][0]
    assert handle["extended_days"] == 3 and handle["original_due_at"] == "2026-11-23T23:59:59+08:00"
    notes = [step["note"] for step in public(world, filed).get_json()["timeline"]]
    assert any("2026-11-26" in (n or "") for n in notes)


def test_extension_only_before_the_deadline(world, clock):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=1)
    clock.set(2026, 11, 18, 0, 0, 1)
    late = world.post("dept_a", f"/api/v1/staff/tickets/{no}/request_extension", json={"working_days": 1, "reason": "晚了"})
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "invalid_transition"


def test_return_window_and_redispatch(world, clock):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "return", reason="不属于本部门")
    detail = world.act("office", no, "transfer", department_id=world.departments["B"])
    assert detail["status"] == "transferred" and detail["department_id"] == world.departments["B"]
    assert world.get("dept_a", f"/api/v1/staff/tickets/{no}").status_code == 404
    clock.set(2026, 11, 19, 0, 0, 1)  # the 2-working-day window (Tue, Wed) is over
    late = world.post("dept_b", f"/api/v1/staff/tickets/{no}/return", json={"reason": "也不是我们"})
    assert late.status_code == 409


def test_department_sees_only_its_own_and_co_department_cases(world):
    a = world.file()["tracking_no"]
    b = world.file()["tracking_no"]
    co = world.file()["tracking_no"]
    for no, lead in ((a, "A"), (b, "B"), (co, "B")):
        world.act("office", no, "accept")
    world.act("office", a, "transfer", department_id=world.departments["A"])
    world.act("office", b, "transfer", department_id=world.departments["B"])
    world.act("office", co, "transfer", department_id=world.departments["B"], co_department_ids=[world.departments["A"]])
    listed = world.get("dept_a", "/api/v1/staff/tickets").get_json()
    assert {item["tracking_no"] for item in listed["items"]} == {a, co} and listed["total"] == 2
    filtered = world.get("dept_a", f"/api/v1/staff/tickets?department_id={world.departments['B']}").get_json()
    assert [item["tracking_no"] for item in filtered["items"]] == [co]
    assert world.get("dept_a", f"/api/v1/staff/tickets/{b}").status_code == 404
    # a co-department may read and add notes, never reply for the lead
    assert world.post("dept_a", f"/api/v1/staff/tickets/{co}/note", json={"content": "协办意见"}).status_code == 200
    assert world.post("dept_a", f"/api/v1/staff/tickets/{co}/reply", json={"content": "x"}).status_code == 403
    assert world.ticket("dept_a", co)["phone"] == "138****8000"
    assert world.get("office", "/api/v1/staff/tickets").get_json()["total"] == 3


def test_lists_mask_phones_and_detail_shows_them_to_handlers(world):
    no = world.file(phone="13912345678")["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    for role in ("admin", "office", "dept_a", "supervisor", "leader"):
        item = world.get(role, "/api/v1/staff/tickets").get_json()["items"][0]
        assert item["phone"] == "139****5678", role
    for role, full in (("office", True), ("dept_a", True), ("admin", True), ("supervisor", False), ("leader", False)):
        assert (world.ticket(role, no)["phone"] == "+8613912345678") is full, role


def test_list_filters_and_paging(world, clock):
    numbers = [world.file()["tracking_no"] for _ in range(5)]
    for no in numbers[:3]:
        world.act("office", no, "accept")
        world.act("office", no, "transfer", department_id=world.departments["A"], working_days=1)
    page = world.get("office", "/api/v1/staff/tickets?per_page=2&page=2").get_json()
    assert page["total"] == 5 and page["page"] == 2 and page["per_page"] == 2 and len(page["items"]) == 2
    assert world.get("office", "/api/v1/staff/tickets?status=transferred").get_json()["total"] == 3
    assert world.get("office", "/api/v1/staff/tickets?overdue=true").get_json()["total"] == 0
    clock.set(2026, 11, 18, 9, 0)  # accept and handling deadlines (both Nov 17) have passed
    overdue = world.get("office", "/api/v1/staff/tickets?overdue=true").get_json()
    assert overdue["total"] == 5 and all(item["overdue"] for item in overdue["items"])
    for query, field in (("status=bogus", "status"), ("page=0", "page"), ("per_page=1000", "per_page"),
                         ("overdue=maybe", "overdue"), ("department_id=x", "department_id")):
        response = world.get("office", f"/api/v1/staff/tickets?{query}")
        assert response.status_code == 422 and field in response.get_json()["error"]["fields"], query


def test_version_check(world):
    no = world.file()["tracking_no"]
    current = world.ticket("office", no)["version"]
    stale = world.post("office", f"/api/v1/staff/tickets/{no}/accept", json={"version": current + 1})
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "conflict"
    ok = world.act("office", no, "accept", version=current)
    assert ok["version"] == current + 1
    bad = world.post("office", f"/api/v1/staff/tickets/{no}/remind", json={"version": "abc"})
    assert bad.status_code == 422


def test_notes_do_not_bump_the_version(world):
    no = world.file()["tracking_no"]
    version = world.ticket("office", no)["version"]
    assert world.act("office", no, "note", content="备注")["version"] == version


def test_auth_errors(world):
    assert world.client.get("/api/v1/staff/tickets").status_code == 401
    bad = world.client.get("/api/v1/staff/tickets", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "unauthorized"
    assert world.client.get("/api/v1/staff/tickets", headers={"Authorization": "Basic abc"}).status_code == 401


def test_payload_validation_names_fields(world):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    response = world.post("office", f"/api/v1/staff/tickets/{no}/transfer",
                          json={"department_id": 999, "working_days": 0, "co_department_ids": "x"})
    fields = response.get_json()["error"]["fields"]
    assert response.status_code == 422 and set(fields) == {"department_id", "working_days", "co_department_ids"}
    same = world.post("office", f"/api/v1/staff/tickets/{no}/transfer",
                      json={"department_id": world.departments["A"], "co_department_ids": [world.departments["A"]]})
    assert same.status_code == 422
    empty_reason = world.post("office", f"/api/v1/staff/tickets/{world.file()['tracking_no']}/reject", json={"reason": "  "})
    assert empty_reason.status_code == 422 and "reason" in empty_reason.get_json()["error"]["fields"]
    assert world.ticket("office", no)["status"] == "accepted"


@pytest.mark.parametrize("department_id", [0, -1, 2**31, 10**20])
def test_ids_out_of_range_are_field_errors_on_every_database(world, department_id):
    body = {"name": "王五", "phone": "13800138000", "problem_type": "other", "description": "部门编号越界的测试",
            "department_id": department_id}
    filed = world.client.post("/api/v1/tickets", json=body)
    assert filed.status_code == 422 and set(filed.get_json()["error"]["fields"]) == {"department_id"}
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    transfer = world.post("office", f"/api/v1/staff/tickets/{no}/transfer",
                          json={"department_id": department_id, "co_department_ids": [department_id]})
    assert transfer.status_code == 422
    assert set(transfer.get_json()["error"]["fields"]) == {"department_id", "co_department_ids"}
    assert filed.get_json()["error"]["fields"]["department_id"] == "编号无效，没有对应的记录。"


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"data": "name=x", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400, "bad_request"),
        ({"data": '"text"', "content_type": "application/json"}, 400, "bad_request"),
        ({"data": "{}", "content_type": "application/json"}, 422, "validation_error"),
        ({"data": '{"name": "' + "长" * 70000 + '"}', "content_type": "application/json"}, 413, "payload_too_large"),
        ({"data": b"\xff\xfe\x00", "content_type": "application/json"}, 400, "bad_request"),
    ],
)
def test_malformed_bodies(world, kwargs, status, code):
    response = world.client.post("/api/v1/tickets", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]


def test_method_and_route_errors_use_the_error_shape(world):
    response = world.client.delete("/api/v1/tickets")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
    response = world.client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_messages_in_english_on_request(world):
    english = world.client.post("/api/v1/tickets", json={}, headers={"Accept-Language": "en"}).get_json()
    chinese = world.client.post("/api/v1/tickets", json={}).get_json()
    assert english["error"]["fields"]["name"] == "This field is required."
    assert chinese["error"]["fields"]["name"] == "此项为必填项。"


def test_only_the_workflow_assigns_a_status():
    """Nothing outside the tickets/workflow package may set Ticket.status (the model's default aside)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    offenders = []
    for path in root.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or path.parent.name == "workflow":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
