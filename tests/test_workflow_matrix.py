"""Every action against every status (allowed, or 409 invalid_transition) and every role (allowed or 403/404)."""
from __future__ import annotations

import pytest

from tests.helpers import supervise
from tickets.workflow import ACTIONS

PAYLOADS = {
    "accept": {"note": "材料齐全"},
    "reject": {"reason": "属于涉法涉诉事项"},
    "transfer": {"department_id": "B"},
    "return": {"reason": "不属于本部门职责"},
    "request_extension": {"working_days": 3, "reason": "需要现场核查"},
    "decide_extension": {"approve": True},
    "reply": {"content": "已办结，请到 3 号窗口领取。"},
    "approve": {},
    "send_back": {"reason": "答复不完整"},
    "resolve": {"content": "已电话告知办理材料。"},
    "remind": {"note": "请抓紧"},
    "note": {"content": "内部备注"},
    "explain": {"content": "已当面解释政策依据。"},
    "record_visit": {"visited_on": "2026-11-16", "contacted": True, "outcome": "已电话回访。"},
    "refer_up": {"reason": "需要上级协调"},
    "assign_down": {"office_code": "c1", "instructions": "请属地办理"},
    "arbitrate": {"department_id": "B"},
    "record_contact": {"contacted_at": "2026-11-16T09:00:00+08:00", "method": "phone", "outcome": "已电话联系申请人。"},
    "appeal": {"reason": "差评与办理质量无关，办件记录可证。", "evidence": "办件档案第 12 号"},
    "decide_appeal": {"uphold": True, "reason": "申诉属实。", "lift_rectification": True},
    "mark_typical": {"summary": "企业变更登记多次往返，转办后一天办结。"},
    "record_rating": {"score": 2, "comment": "电话回访：满意。"},
    "accept_and_transfer": {"department_id": "B", "instructions": "请核实后答复"},
    "assign": {"user_id": "office"},  # admin gives the case to the window's clerk; others take it themselves (我来办)
    "instruct": {"content": "请分管负责同志牵头，三个工作日内办结。"},
    "notify_linked": {},  # 主动治理: only a closed proactive task (see tests/test_clusters.py)
    "merge": {"into": "new"},  # 并单: into a case filed for it (tests/test_merging.py has the rest)
    "split": {"note": "不是同一问题"},
    "anonymise": {"reason": "反映人申请删除个人信息"},  # a deletion request: ended cases only (test_privacy_retention.py)
    "request_anonymise": {"reason": "反映人申请删除个人信息"},  # the same, recorded until the case has ended for good
    "cancel_anonymise_request": {"reason": "反映人来电撤回申请"},  # only while a request waits (ROLE_CASES)
}

# Status -> what it takes to get a fresh ticket there (as admin and citizen).
STEPS = {
    "submitted": [],
    "accepted": ["accept"],
    "rejected": ["reject"],
    "transferred": ["accept", "transfer_a"],
    "returned": ["accept", "transfer_a", "return"],
    "replied": ["accept", "transfer_a", "reply"],
    "closed": ["accept", "transfer_a", "reply", "approve"],
    "rectifying": ["accept", "transfer_a", "reply", "approve", "rate_5"],
    "withdrawn": ["withdraw"],
    "merged": ["merge"],
}

ALLOWED = {
    "submitted": {"accept", "accept_and_transfer", "reject", "remind", "note", "assign"},
    "accepted": {"transfer", "resolve", "remind", "note", "assign_down", "assign"},
    "rejected": {"note", "anonymise"},
    # decide_extension needs a pending request, so it is refused here; see test_extension_* for the rest
    "transferred": {"return", "request_extension", "reply", "remind", "note", "record_contact", "assign"},
    "returned": {"transfer", "remind", "note", "assign_down", "assign"},
    "replied": {"approve", "send_back", "remind", "note", "assign"},
    # record_rating: the round approve opened; anonymise waits for it to close (test_privacy_retention.py)
    "closed": {"note", "mark_typical", "record_rating"},
    # reopened by a 差评 not yet visited (nor appealed: decide_appeal needs an appeal, see test_appeals_*)
    "rectifying": {"reply", "explain", "remind", "note", "record_visit", "appeal", "assign"},
    "withdrawn": {"note", "anonymise"},  # 撤回 by the citizen: final, like 不予受理
    # 并单: handled as the case it joined, until split; anonymised once that case is answered (test_privacy_retention.py)
    "merged": {"note", "split"},
}
for _status in ("submitted", "accepted", "transferred", "returned"):  # 并单 before a department answered
    ALLOWED[_status] = ALLOWED[_status] | {"merge"}
for _status in set(ALLOWED) - {"rejected", "withdrawn"}:  # a deletion request waits where anonymise cannot yet
    ALLOWED[_status] = ALLOWED[_status] | {"request_anonymise"}


def payload(world, action, role="admin"):
    body = dict(PAYLOADS[action])
    if "department_id" in body:
        body["department_id"] = world.departments[body["department_id"]]
    if body.get("into") == "new":
        body["into"] = world.file()["tracking_no"]
    if "user_id" in body:  # only an admin (or a supervisor) names someone else; the others take the case themselves
        body = {**body, "user_id": world.users[body["user_id"]]} if role == "admin" else {}
    return body


def ticket_in(world, status: str) -> str:
    """A new case brought to `status`: filed and rated through the API as a citizen does, the staff's steps taken
    through the workflow directly (`World.step`: the action under test is what goes through the API)."""
    filed = world.file()
    no = filed["tracking_no"]
    for step in STEPS[status]:
        if step == "transfer_a":
            world.step("admin", no, "transfer", department_id=world.departments["A"])
        elif step == "withdraw":
            response = world.client.post(f"/api/v1/tickets/{no}/withdraw?code={filed['query_code']}", json={})
            assert response.status_code == 200, response.get_json()
        elif step == "rate_5":
            response = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 5})
            assert response.status_code == 200, response.get_json()
        else:
            world.step("admin", no, step, **payload(world, step))
    assert world.state(no)[0] == status
    return no


# 受理并转办 records both steps' events, with one version bump; these actions change no state (no bump).
TWO_STEPS = {"accept_and_transfer": ("accept", "transfer")}
UNCLAIMED = {name for name, spec in ACTIONS.items() if not spec.changes_state}


def test_table_covers_every_action():
    assert set(PAYLOADS) == set(ACTIONS)
    # refer_up: the root window has no window above it; arbitrate: only a 争议件 (see test_office_actions.py);
    # decide_appeal: only an appeal (see test_appeals_in_every_status_a_bad_rating_leaves)
    # instruct: only a case under supervision (督办, 挂牌督办), see ROLE_CASES
    # notify_linked: only a closed 主动治理 task (see tests/test_clusters.py)
    # cancel_anonymise_request: only while a deletion request waits, see ROLE_CASES
    assert set().union(*ALLOWED.values()) | {"decide_extension", "refer_up", "arbitrate", "decide_appeal", "instruct",
                                             "notify_linked", "cancel_anonymise_request"} == set(ACTIONS)


@pytest.mark.parametrize("status", list(STEPS))
def test_every_action_in_every_status(network, status):
    world = network.world  # the root window's cases, with windows below it for assign_down
    no = None
    for action in ACTIONS:
        no = no or ticket_in(world, status)  # a refused action changed nothing: the next one takes the same case
        _status, version, events = world.state(no)
        response = world.post("admin", f"/api/v1/staff/tickets/{no}/{action}", json=payload(world, action))
        body = response.get_json()
        if action in ALLOWED[status]:
            assert response.status_code == 200, (status, action, body)
            recorded = TWO_STEPS.get(action, (action,))
            assert [e["action"] for e in body["events"][-len(recorded):]] == list(recorded)
            assert len(body["events"]) == events + len(recorded)
            assert body["version"] == version + (0 if action in UNCLAIMED else 1)
            assert world.state(no) == (body["status"], body["version"], len(body["events"]))
            no = None
        else:
            assert response.status_code == 409, (status, action, body)
            assert body["error"]["code"] == "invalid_transition"
            assert world.state(no) == (status, version, events)  # nothing changed


# For each action: a status where it is allowed, and the roles that may take it there. The ticket's lead
# department is A, so dept_a acts as "its own department" and dept_b cannot see the ticket at all (404).
ROLE_CASES = {
    "accept": ("submitted", {"admin", "office"}),
    "reject": ("submitted", {"admin", "office"}),
    "transfer": ("accepted", {"admin", "office"}),
    "return": ("transferred", {"admin", "dept_a"}),
    "request_extension": ("transferred", {"admin", "dept_a"}),
    "decide_extension": ("transferred+extension", {"admin", "office"}),
    "reply": ("transferred", {"admin", "dept_a"}),
    "approve": ("replied", {"admin", "office"}),
    "send_back": ("replied", {"admin", "office"}),
    "resolve": ("accepted", {"admin", "office"}),
    "remind": ("transferred", {"admin", "office", "supervisor"}),
    "note": ("transferred", {"admin", "office", "supervisor", "dept_a"}),
    "explain": ("rectifying", {"admin", "office"}),
    "record_visit": ("rectifying", {"admin", "office"}),
    "record_contact": ("transferred", {"admin", "dept_a"}),  # the lead department only: dept_b cannot see it (404)
    "appeal": ("rectifying", {"admin", "dept_a"}),
    "decide_appeal": ("rectifying+appeal", {"admin", "supervisor"}),
    "mark_typical": ("closed", {"admin", "office"}),
    "record_rating": ("closed", {"admin", "office"}),
    "accept_and_transfer": ("submitted", {"admin", "office"}),
    "assign": ("transferred", {"admin", "office", "dept_a", "supervisor"}),  # 我来办; the admin names someone
    "instruct": ("transferred+supervised", {"admin", "supervisor", "leader"}),  # 批示 at 督办 (level 2) and above
    "merge": ("transferred", {"admin", "office"}),
    "split": ("merged", {"admin", "office"}),
    "anonymise": ("rejected", {"admin", "office"}),  # ended at once (a closed case's survey is open a while)
    "request_anonymise": ("transferred", {"admin", "office"}),
    "cancel_anonymise_request": ("transferred+deletion_requested", {"admin", "office"}),
}
ALL_ROLES = ("admin", "office", "dept_a", "dept_b", "supervisor", "leader")


def case_in(world, status: str) -> str:
    """A new case in one of ROLE_CASES's statuses."""
    if status == "transferred+extension":
        no = ticket_in(world, "transferred")
        world.step("dept_a", no, "request_extension", working_days=2, reason="需要补充材料")
    elif status == "rectifying+appeal":
        no = ticket_in(world, "rectifying")
        world.step("dept_a", no, "appeal", reason="差评与办理质量无关。")
    elif status == "transferred+supervised":
        no = ticket_in(world, "transferred")
        supervise(world, no, level=2)
    elif status == "transferred+deletion_requested":
        no = ticket_in(world, "transferred")
        world.step("office", no, "request_anonymise", reason="反映人申请删除个人信息")
    else:
        no = ticket_in(world, status)
    return no


@pytest.mark.parametrize("action", list(ROLE_CASES))
def test_every_action_for_every_role(world, action):
    status, allowed = ROLE_CASES[action]
    no = None
    for role in ALL_ROLES:
        no = no or case_in(world, status)  # a refused role changed nothing: the next one takes the same case
        visible = world.case(no).department_id == world.departments["A"]
        before = world.state(no)
        response = world.post(role, f"/api/v1/staff/tickets/{no}/{action}", json=payload(world, action, role))
        if role in allowed:
            expected = 200
        elif role.startswith("dept_") and not (role == "dept_a" and visible):
            expected = 404  # another department's (or an undispatched) case does not exist for them
        else:
            expected = 403
        assert response.status_code == expected, (action, role, response.get_json())
        if expected == 200:
            no = None
        else:
            assert response.get_json()["error"]["code"] == {403: "forbidden", 404: "not_found"}[expected]
            assert world.state(no) == before  # nothing changed


# 申诉复核: the statuses a case rated 差评 may be in, each with how to get there from `rectifying` (rated 5), and whether
# the department may appeal there, and the supervisor decide a pending appeal.
AFTER_BAD_RATING = {
    "rectifying": ([], True, True),
    "replied": ([("dept_a", "reply", {"content": "已重新办理。"})], False, True),
    "closed (explained)": ([("office", "explain", {"content": "已解释。"})], True, True),
    "closed (rework approved)": ([("dept_a", "reply", {"content": "已重新办理。"}), ("office", "approve", {})],
                                 True, True),
}


@pytest.mark.parametrize("state", list(AFTER_BAD_RATING))
def test_appeals_in_every_status_a_bad_rating_leaves(world, state):
    """`appeal` and `decide_appeal` in every status a 差评 can leave a case in (the other statuses are covered by
    test_every_action_in_every_status: there is no 差评 to appeal, no appeal to decide)."""
    steps, may_appeal, may_decide = AFTER_BAD_RATING[state]
    for appeal_first in (False, True):
        no = ticket_in(world, "rectifying")
        if appeal_first:
            world.step("dept_a", no, "appeal", **PAYLOADS["appeal"])
        for who, action, body in steps:
            world.step(who, no, action, **body)
        _status, version, _events = world.state(no)
        action, allowed = ("decide_appeal", may_decide) if appeal_first else ("appeal", may_appeal)
        response = world.post("admin", f"/api/v1/staff/tickets/{no}/{action}", json=payload(world, action))
        assert response.status_code == (200 if allowed else 409), (state, action, response.get_json())
        body = response.get_json()
        if allowed:
            assert body["events"][-1]["action"] == action
        else:
            assert body["error"]["code"] == "invalid_transition"
            assert world.state(no)[1] == version
        if appeal_first:  # decided: nothing waits any more, and the round was appealed once
            for again in ("appeal", "decide_appeal"):
                response = world.post("admin", f"/api/v1/staff/tickets/{no}/{again}", json=payload(world, again))
                assert response.status_code == 409, (state, again, response.get_json())


def test_office_replies_to_a_rectification_it_resolved_itself(world):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "resolve", content="已电话答复。")
    world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 4})
    assert world.ticket("office", no)["status"] == "rectifying"
    world.act("office", no, "reply", content="已重新核实并再次答复。")
    world.act("office", no, "approve")
    assert world.ticket("office", no)["status"] == "closed"


def test_unknown_action_is_404(world):
    no = world.file()["tracking_no"]
    response = world.post("admin", f"/api/v1/staff/tickets/{no}/delete", json={})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
