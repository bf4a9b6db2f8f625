"""Moving cases between levels (refer_up, assign_down), the 争议件 and its arbitration, and transfers along the tree.

The matrices file a case at the county window c1 (it has a window above, root, and windows below, t11 and t12):
each of the three actions in every status (allowed, or 409 invalid_transition and nothing changed) and for every
kind of user (allowed, 403, or 404 when the case is outside what they see).
"""
from __future__ import annotations

import pytest

from tickets.db import db
from tickets.models import DispatchRule, Office

from tests.helpers import page_csrf
from tests.network import OFFICES

NAMES = {code: name for code, name, _level, _parent in OFFICES}
REASON = "需要县里统筹协调"


def dept(network, code):
    return network.departments[code]


def steps_to(network, status: str, office: str = "c1") -> str:
    """A new case at `office` brought to `status` (disputed: returned twice by the same department)."""
    world = network.world
    filed = world.file(**({} if office == "root" else {"office_code": office}))
    no = filed["tracking_no"]
    c1 = {"department_id": dept(network, "C1")}
    plan = {
        "submitted": [],
        "accepted": [("admin", "accept", {})],
        "rejected": [("admin", "reject", {"reason": "不属于受理范围"})],
        "transferred": [("admin", "accept", {}), ("admin", "transfer", c1)],
        "returned": [("admin", "accept", {}), ("admin", "transfer", c1), ("dept_c1", "return", {"reason": "非本部门"})],
        "disputed": [("admin", "accept", {}), ("admin", "transfer", c1), ("dept_c1", "return", {"reason": "非本部门"}),
                     ("admin", "transfer", c1), ("dept_c1", "return", {"reason": "仍非本部门"})],
        "replied": [("admin", "accept", {}), ("admin", "transfer", c1), ("dept_c1", "reply", {"content": "已办结"})],
        "closed": [("admin", "accept", {}), ("admin", "transfer", c1), ("dept_c1", "reply", {"content": "已办结"}),
                   ("admin", "approve", {})],
        "rectifying": [("admin", "accept", {}), ("admin", "transfer", c1), ("dept_c1", "reply", {"content": "已办结"}),
                       ("admin", "approve", {}), "rate_5"],
    }[status]
    for step in plan:
        if step == "rate_5":
            response = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 5})
            assert response.status_code == 200, response.get_json()
        else:
            who, action, body = step
            world.act(who, no, action, **body)
    ticket = world.ticket("admin", no)
    assert ticket["status"] == ("returned" if status == "disputed" else status)
    assert ticket["disputed"] == (status == "disputed")
    return no


def body(network, action):
    return {"refer_up": {"reason": REASON},
            "assign_down": {"office_code": "t11", "instructions": "请属地核实"},
            "arbitrate": {"department_id": dept(network, "C1"), "note": "职责在县人社局"}}[action]


def owner_after(action):
    return {"refer_up": "root", "assign_down": "t11", "arbitrate": "c1"}[action]


ALLOWED = {
    "refer_up": {"submitted", "accepted", "returned"},
    "assign_down": {"accepted", "returned"},
    "arbitrate": {"disputed"},
}
STATUSES = ("submitted", "accepted", "rejected", "transferred", "returned", "disputed", "replied", "closed",
            "rectifying")


@pytest.mark.parametrize("status", STATUSES)
def test_each_action_between_levels_in_every_status(network, status):
    world = network.world
    refused = steps_to(network, status)
    for action in ALLOWED:
        if status in ALLOWED[action]:
            no = steps_to(network, status)
            after = world.act("admin", no, action, **body(network, action))
            assert after["events"][-1]["action"] == action
            assert network.office_of(no) == owner_after(action)
            assert after["status"] == ("transferred" if action == "arbitrate" else "accepted")
        else:
            before = world.ticket("admin", refused)
            response = world.post("admin", f"/api/v1/staff/tickets/{refused}/{action}", json=body(network, action))
            assert response.status_code == 409, (status, action, response.get_json())
            assert response.get_json()["error"]["code"] == "invalid_transition"
            after = world.ticket("admin", refused)
            assert (after["status"], after["version"], len(after["events"]), after["office_code"]) == (
                before["status"], before["version"], len(before["events"]), "c1")


# Who, for a case owned by c1 (in a status where the action is allowed): the root's users see it but do not own it
# (403); the townships below and the sibling county do not see it (404); dept_c1 sees it only once it was sent there.
USERS = ("admin", "office_c1", "supervisor_c1", "leader_c1", "dept_c1", "office", "supervisor", "leader",
         "office_t11", "supervisor_t11", "office_c2", "supervisor_c2", "dept_c2", "dept_a")
ROLE_CASES = {
    "refer_up": ("accepted", {"admin", "office_c1"}),
    "assign_down": ("accepted", {"admin", "office_c1"}),
    "arbitrate": ("disputed", {"admin", "supervisor_c1"}),
}
SEES_C1 = {"admin", "office_c1", "supervisor_c1", "leader_c1", "office", "supervisor", "leader"}


@pytest.mark.parametrize("action", list(ROLE_CASES))
def test_each_action_between_levels_for_every_user(network, action):
    world = network.world
    status, allowed = ROLE_CASES[action]
    refused = steps_to(network, status)
    for who in USERS:
        sees = who in SEES_C1 or (who == "dept_c1" and status == "disputed")  # the lead department's case
        expected = 200 if who in allowed else 403 if sees else 404
        no = steps_to(network, status) if expected == 200 else refused
        response = world.post(who, f"/api/v1/staff/tickets/{no}/{action}", json=body(network, action))
        assert response.status_code == expected, (action, who, response.get_json())
        if expected != 200:
            assert response.get_json()["error"]["code"] == {403: "forbidden", 404: "not_found"}[expected]
            assert network.office_of(no) == "c1"
        else:
            assert network.office_of(no) == owner_after(action)


def _deadlines(world, no, kind="accept"):
    return [(d["round"], d["outcome"], d["ended_at"] is None)
            for d in world.ticket("admin", no)["deadlines"] if d["kind"] == kind]


def test_refer_up_hands_the_case_and_a_new_accept_round_to_the_window_above(network):
    world = network.world
    filed = world.file(office_code="t11")
    no = filed["tracking_no"]
    assert _deadlines(world, no) == [(1, None, True)]
    ticket = world.act("office_t11", no, "refer_up", reason=REASON)
    event = ticket["events"][-1]
    assert (event["from_status"], event["to_status"], event["note"], event["public"]) == (
        "submitted", "accepted", REASON, True)
    assert event["data"] == {"from_office_id": network.offices["t11"], "from_office_code": "t11",
                             "from_office_name": NAMES["t11"], "to_office_id": network.offices["c1"],
                             "to_office_code": "c1", "to_office_name": NAMES["c1"]}
    assert _deadlines(world, no) == [(1, "referred", False), (2, None, True)]
    assert ticket["due_kind"] == "accept"
    # The township no longer owns it and, being below its new owner, no longer sees it; the county acts on it.
    assert world.get("office_t11", f"/api/v1/staff/tickets/{no}").status_code == 404
    assert "refer_up" in world.ticket("office_c1", no)["allowed_actions"]
    world.act("office_c1", no, "refer_up", reason="需要市级部门协调")
    assert network.office_of(no) == "root"
    assert _deadlines(world, no) == [(1, "referred", False), (2, "referred", False), (3, None, True)]
    # The root has no window above it.
    response = world.post("office", f"/api/v1/staff/tickets/{no}/refer_up", json={"reason": REASON})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_transition"
    # The reason is required.
    other = network.file("c1")
    response = world.post("office_c1", f"/api/v1/staff/tickets/{other}/refer_up", json={})
    assert response.status_code == 422 and "reason" in response.get_json()["error"]["fields"]

    # The citizen reads which window has the case, never the internal reason.
    public = world.client.get(f"/api/v1/tickets/{no}?code={filed['query_code']}").get_json()
    assert public["office_name"] == network.world.ticket("admin", no)["office_name"]
    notes = [step["note"] or "" for step in public["timeline"]]
    assert any(NAMES["c1"] in note for note in notes) and not any(REASON in note for note in notes)
    assert public["office_name"] in notes[-1]
    # And the public case page shows the window too.
    client = world.app.test_client()
    response = client.post("/track", data={"tracking_no": no, "code": filed["query_code"],
                                           "csrf_token": page_csrf(client, "/track")})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<dd id="window">{public["office_name"]}</dd>' in page and REASON not in page


def test_refer_up_is_refused_when_the_window_above_is_inactive(network):
    world = network.world
    no = network.file("t11")
    with world.app.app_context():
        db.session.get(Office, network.offices["c1"]).active = False
        db.session.commit()
    response = world.post("office_t11", f"/api/v1/staff/tickets/{no}/refer_up", json={"reason": REASON})
    assert response.status_code == 409 and network.office_of(no) == "t11"


def test_assign_down_goes_only_to_an_active_window_strictly_below(network):
    world = network.world
    no = network.file()
    world.act("office", no, "accept")
    with world.app.app_context():
        db.session.get(Office, network.offices["t12"]).active = False
        db.session.commit()
    for code in ("", "root", "nope", "t12", 17):
        response = world.post("office", f"/api/v1/staff/tickets/{no}/assign_down", json={"office_code": code})
        assert response.status_code == 422, (code, response.get_json())
        assert set(response.get_json()["error"]["fields"]) == {"office_code"}
    ticket = world.act("office", no, "assign_down", office_code="c1", instructions="请县里办理")
    assert (ticket["office_code"], ticket["status"], ticket["events"][-1]["note"]) == ("c1", "accepted", "请县里办理")
    assert _deadlines(world, no) == [(1, "referred", False), (2, None, True)]
    for code in ("c1", "root", "c2", "t21"):  # itself, above it, a sibling and a sibling's township
        response = world.post("office_c1", f"/api/v1/staff/tickets/{no}/assign_down", json={"office_code": code})
        assert response.status_code == 422, code
    world.act("office_c1", no, "assign_down", office_code="t11")
    assert network.office_of(no) == "t11"
    # The city still sees it (it is below), but acts on it only through remind and note.
    assert world.post("office", f"/api/v1/staff/tickets/{no}/resolve", json={"content": "x"}).status_code == 403
    world.act("office", no, "remind", note="请抓紧")


def test_a_department_returning_the_same_case_twice_makes_it_a_dispute_for_the_supervisor(network):
    world = network.world
    no = network.file("c1")
    world.act("office_c1", no, "accept")
    # Returns by different departments are no dispute.
    world.act("office_c1", no, "transfer", department_id=dept(network, "C1"))
    first = world.act("dept_c1", no, "return", reason="非本部门")
    assert first["events"][-1]["data"] == {"department_id": dept(network, "C1"), "disputed": False}
    world.act("office_c1", no, "transfer", department_id=dept(network, "A"))
    assert world.act("dept_a", no, "return", reason="非本部门")["disputed"] is False
    world.act("office_c1", no, "transfer", department_id=dept(network, "C1"))
    second = world.act("dept_c1", no, "return", reason="仍非本部门")
    assert second["disputed"] is True
    assert second["events"][-1]["data"] == {"department_id": dept(network, "C1"), "disputed": True}

    # While disputed the office cannot transfer it, nor hand it up or down: the supervisor decides.
    for action, payload in (("transfer", {"department_id": dept(network, "A")}), ("refer_up", {"reason": REASON}),
                            ("assign_down", {"office_code": "t11"})):
        response = world.post("office_c1", f"/api/v1/staff/tickets/{no}/{action}", json=payload)
        assert response.status_code == 409, action
        assert "争议" in response.get_json()["error"]["message"] or "disput" in response.get_json()["error"]["message"]
    assert world.ticket("supervisor_c1", no)["allowed_actions"] == ["arbitrate", "remind", "assign", "note"]
    # Only a department of the window or above it may be decided on.
    response = world.post("supervisor_c1", f"/api/v1/staff/tickets/{no}/arbitrate",
                          json={"department_id": dept(network, "C2")})
    assert response.status_code == 422 and set(response.get_json()["error"]["fields"]) == {"department_id"}

    decided = world.act("supervisor_c1", no, "arbitrate", department_id=dept(network, "C1"), working_days=3,
                        note="职责在县人社局")
    assert (decided["status"], decided["disputed"], decided["arbitrated_department_id"], decided["department_id"]) == (
        "transferred", False, dept(network, "C1"), dept(network, "C1"))
    event = decided["events"][-1]
    assert event["data"]["working_days"] == 3 and event["data"]["arbitrated"] is True
    open_kinds = sorted(d["kind"] for d in decided["deadlines"] if d["ended_at"] is None)
    assert open_kinds == ["contact", "handle"]  # no return window (C1 owes its first contact: it never made one)
    # The department decided on cannot return it, even with a return window; it replies.
    response = world.post("dept_c1", f"/api/v1/staff/tickets/{no}/return", json={"reason": "还是不归我们"})
    assert response.status_code == 409 and "return" not in world.ticket("dept_c1", no)["allowed_actions"]
    assert world.act("dept_c1", no, "reply", content="已办结")["status"] == "replied"


def test_a_case_the_window_above_resolves_after_a_return_is_no_longer_the_returning_departments(network):
    """C1 returned the case; the township referred it up and the county answered it itself. A 差评 of that answer is
    the window's to rectify: C1 is not told, gets no rectify deadline, cannot reply or appeal, no longer sees it."""
    world = network.world
    filed = world.file(office_code="t11")
    no = filed["tracking_no"]
    world.act("office_t11", no, "accept")
    world.act("office_t11", no, "transfer", department_id=dept(network, "C1"))
    world.act("dept_c1", no, "return", reason="不属于本部门职责。")
    world.act("office_t11", no, "refer_up", reason=REASON)
    closed = world.act("office_c1", no, "resolve", content="窗口已直接协调办结。")
    assert (closed["status"], closed["department_id"], closed["handler_id"]) == ("closed", None, None)
    rated = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 5})
    assert rated.status_code == 200
    case = world.ticket("office_c1", no)
    assert case["status"] == "rectifying" and case["department_id"] is None
    assert [d["department_id"] for d in case["deadlines"] if d["kind"] == "rectify"] == [None]
    assert world.get("dept_c1", f"/api/v1/staff/tickets/{no}").status_code == 404
    for action in ("reply", "appeal"):
        assert world.post("dept_c1", f"/api/v1/staff/tickets/{no}/{action}", json={}).status_code == 404, action


def test_transfer_goes_to_departments_of_the_window_or_above_it(network):
    """For every window and every department: the transfer is refused with a field error exactly when the
    department belongs to no window on the path from the root to the case's window."""
    world = network.world
    above = {"root": {"root"}, "c1": {"root", "c1"}, "t11": {"root", "c1"}, "t12": {"root", "c1"},
             "c2": {"root", "c2"}, "t21": {"root", "c2"}}
    home = {"A": "root", "B": "root", "C": "root", "C1": "c1", "C2": "c2"}
    for office, reachable in above.items():
        no = network.file(office)
        world.act("admin", no, "accept")
        for code, owner in home.items():
            # working_days 0 is always wrong, so nothing is transferred; the fields say what else is.
            for field, payload in (("department_id", {"department_id": dept(network, code)}),
                                   ("co_department_ids", {"department_id": dept(network, "A" if code != "A" else "B"),
                                                          "co_department_ids": [dept(network, code)]})):
                response = world.post("admin", f"/api/v1/staff/tickets/{no}/transfer",
                                      json={**payload, "working_days": 0})
                assert response.status_code == 422
                fields = response.get_json()["error"]["fields"]
                assert (field in fields) == (owner not in reachable), (office, code, field, fields)
        assert world.ticket("admin", no)["status"] == "accepted"
    # And a real one: a township's case to its county's department; the sibling county's is refused.
    no = network.file("t11")
    world.act("office_t11", no, "accept")
    response = world.post("office_t11", f"/api/v1/staff/tickets/{no}/transfer", json={"department_id": dept(network, "C2")})
    assert response.status_code == 422 and set(response.get_json()["error"]["fields"]) == {"department_id"}
    assert world.act("office_t11", no, "transfer", department_id=dept(network, "C1"))["status"] == "transferred"


def test_console_offers_the_windows_below_and_the_departments_a_case_may_go_to(network):
    import re

    world = network.world
    no = network.file("c1", problem_type="too_hard")
    world.act("office_c1", no, "accept")
    with world.app.app_context():  # 派单目录: too_hard at c1 -> C1
        db.session.add(DispatchRule(office_id=network.offices["c1"], scope="problem_type", value="too_hard",
                                    department_id=dept(network, "C1")))
        db.session.commit()
    client = world.console("office_c1")
    page = client.get(f"/admin/case/{no}").get_data(as_text=True)

    def options(action, field):
        form = re.search(rf'id="action-{action}".*?</form>', page, re.S).group(0)
        select = re.search(rf'<select[^>]*name="{field}".*?</select>', form, re.S).group(0)
        return re.findall(r'<option value="([^"]+)"\s*(selected)?', select)

    assert [v for v, _ in options("assign_down", "office_code")] == ["t11", "t12"]
    transfer = options("transfer", "department_id")
    assert {v for v, _ in transfer} == {str(dept(network, c)) for c in ("A", "B", "C", "C1")}
    assert [v for v, chosen in transfer if chosen] == [str(dept(network, "C1"))]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    version = world.ticket("admin", no)["version"]
    refused = client.post(f"/admin/case/{no}/assign_down",
                          data={"csrf_token": csrf, "version": version, "office_code": "t21"})
    assert refused.status_code == 422 and network.office_of(no) == "c1"
    done = client.post(f"/admin/case/{no}/assign_down",
                       data={"csrf_token": csrf, "version": version, "office_code": "t12", "instructions": "请镇里办理"})
    assert done.status_code == 302 and network.office_of(no) == "t12"
