"""Review of the workflow's actions as the staff API reaches them: any JSON body is a clear answer, never a 500."""
from __future__ import annotations

import pytest

from tickets.workflow import ACTIONS

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# how to bring a fresh case (as admin) to a status
STEPS = {
    "submitted": [],
    "accepted": [("accept", {})],
    "transferred": [("accept", {}), ("transfer", {"department_id": "A"})],
    "replied": [("accept", {}), ("transfer", {"department_id": "A"}), ("reply", {"content": "已办结。"})],
    "closed": [("accept", {}), ("transfer", {"department_id": "A"}), ("reply", {"content": "已办结。"}),
               ("approve", {})],
}


def case_in(world, status: str) -> str:
    no = world.file()["tracking_no"]
    for action, body in STEPS[status]:
        if "department_id" in body:
            body = {**body, "department_id": world.departments[body["department_id"]]}
        world.act("admin", no, action, **body)
    return no


FIELDS = sorted({field.name for spec in ACTIONS.values() for field in spec.inputs} | {"version", "tickets"})


@SQLITE_ONLY
def test_any_body_for_any_action_is_a_clear_answer_never_a_500(world):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.helpers import examples

    other = world.file()["tracking_no"]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**31, max_value=2**70),
                        st.floats(allow_nan=False), st.text(max_size=12), st.just(other),
                        st.sampled_from(list(world.departments.values())), st.just("2026-11-16"),
                        st.just("2026-11-16T09:00"), st.just(""), st.sampled_from(list(world.users.values())))
    values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars,
                                                                                max_size=2))

    @settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
    @given(status=st.sampled_from(list(STEPS)), action=st.sampled_from(sorted(ACTIONS)),
           who=st.sampled_from(["admin", "office", "dept_a", "supervisor"]),
           body=st.one_of(st.dictionaries(st.sampled_from(FIELDS), values, max_size=4), values))
    def check(status, action, who, body):
        no = case_in(world, status)
        response = world.post(who, f"/api/v1/staff/tickets/{no}/{action}", json=body)
        assert response.status_code < 500, (status, action, who, body, response.get_json())
        if response.status_code >= 400:
            error = response.get_json()["error"]
            assert error["code"] and error["message"]

    check()


# --- 并单 across windows: a case the caller cannot see is no case to them --------------------------------------

def test_a_merge_target_in_a_window_the_caller_cannot_see_is_no_case(network):
    world = network.world
    mine = network.file("c1")
    hidden_open = network.file("c2")
    hidden_rejected = network.file("c2")
    world.act("office_c2", hidden_rejected, "reject", reason="不属于受理范围。")
    hidden_merged = network.file("c2")
    world.act("office_c2", hidden_merged, "merge", into=hidden_open)
    city = network.file("root")
    answers = {target: world.act("office_c1", mine, "merge", expect=422, into=target)["error"]["fields"]
               for target in (hidden_open, hidden_rejected, hidden_merged, city, "BJ20990101-9999")}
    assert len({str(fields) for fields in answers.values()}) == 1, answers  # all as the number nobody filed
    assert list(answers["BJ20990101-9999"]) == ["into"]
    assert world.ticket("office_c1", mine)["status"] == "submitted"


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite serialises writers as a whole
def test_two_cases_merged_into_each_other_at_once_one_wins_the_other_is_a_conflict(world, monkeypatch):
    """Each merge claims its own case, then the other: on PostgreSQL the two wait for each other (a deadlock the
    database breaks by aborting one); the one aborted is 409 conflict, like any lost race, never a 500 or a 503."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tickets.workflow import merging

    a, b = world.file()["tracking_no"], world.file()["tracking_no"]
    both_claimed_their_own = threading.Barrier(2, timeout=10)
    claim = merging.claim

    def claim_after_the_other(session, ticket, now):
        both_claimed_their_own.wait()
        return claim(session, ticket, now)

    monkeypatch.setattr(merging, "claim", claim_after_the_other)

    def merge(no, into):
        return world.app.test_client().post(f"/api/v1/staff/tickets/{no}/merge", json={"into": into},
                                            headers=world.headers("office"))

    with ThreadPoolExecutor(2) as pool:
        responses = [f.result() for f in [pool.submit(merge, a, b), pool.submit(merge, b, a)]]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.get_json() for r in responses]
    assert next(r for r in responses if r.status_code == 409).get_json()["error"]["code"] == "conflict"
    statuses = sorted(world.ticket("office", no)["status"] for no in (a, b))
    assert statuses == ["merged", "submitted"]


def test_the_merge_keeps_its_note(world):
    target, no = world.file()["tracking_no"], world.file()["tracking_no"]
    world.act("office", no, "merge", into=target, note="同一企业同一事项")
    merge = [e for e in world.ticket("office", no)["events"] if e["action"] == "merge"]
    joined = [e for e in world.ticket("office", target)["events"] if e["action"] == "merge_in"]
    assert merge[0]["note"] == joined[0]["note"] == "同一企业同一事项"
    assert "note" in world.act("office", world.file()["tracking_no"], "merge", expect=422, into=target,
                               note=["x"])["error"]["fields"]


# --- 主动治理: a county's task links and tells only the cases its window sees ----------------------------------------

def test_a_countys_proactive_task_never_links_or_texts_a_case_referred_to_the_city(network, clock):
    import sqlalchemy as sa

    from tickets.db import db
    from tickets.models import Event, Ticket

    world = network.world
    nos = [network.file("c1", phone=f"1390000{k:04d}", service_item="营业执照变更",
                        description=f"营业执照变更网上提交后一直显示审核中（第{k}次）") for k in range(6)]
    with world.app.app_context():
        first = db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == nos[0]))
        db.session.execute(sa.update(Ticket).where(Ticket.tracking_no.in_(nos)).values(cluster_id=first))
        db.session.commit()
    up, late_up = nos[4], nos[5]
    world.act("office_c1", up, "refer_up", reason="需要市级协调")  # now the city's case
    response = world.post("office_c1", f"/api/v1/staff/clusters/{first}/governance",
                          json={"department_id": world.departments["C1"], "content": "请统一梳理网上审核流程。"})
    assert response.status_code == 201, response.get_json()
    task = response.get_json()["tracking_no"]
    world.act("office_c1", late_up, "refer_up", reason="需要市级协调")  # linked, then referred: the city's now
    world.act("dept_c1", task, "reply", content="已统一网上审核流程。")
    world.act("office_c1", task, "approve")
    done = world.act("office_c1", task, "notify_linked")
    assert done["events"][-1]["data"] == {"cases": 4, "numbers": 4}
    with world.app.app_context():
        touched = db.session.execute(
            sa.select(Ticket.tracking_no, Event.action).join(Event, Event.ticket_id == Ticket.id)
            .where(Ticket.tracking_no.in_([up, late_up]), Event.action.like("governance%")).order_by(Event.id)).all()
    assert touched == [(late_up, "governance_link")]  # linked while it was the county's; never told by it


# --- 回访: two clerks record the return visit of one 差评 at once -------------------------------------------------

@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite serialises writers as a whole
def test_two_return_visits_of_one_bad_rating_at_once_one_wins_the_other_is_refused(world, monkeypatch):
    """`record_visit` claims no row (a handler's open form stays valid): both may pass its precondition; the second
    then waits for the first and is refused, 409, never a 500 of the one-visit-per-round constraint."""
    import dataclasses
    import threading
    from concurrent.futures import ThreadPoolExecutor

    filed = world.file()
    no = filed["tracking_no"]
    for action, body in STEPS["closed"]:
        body = {**body, "department_id": world.departments["A"]} if "department_id" in body else body
        world.act("admin", no, action, **body)
    response = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 5})
    assert response.status_code == 200
    both_passed_the_precondition = threading.Barrier(2, timeout=10)
    spec = ACTIONS["record_visit"]

    def parse(session, ticket, payload):
        both_passed_the_precondition.wait()
        return spec.parse(session, ticket, payload)

    monkeypatch.setitem(ACTIONS, "record_visit", dataclasses.replace(spec, parse=parse))

    def visit(outcome):
        return world.app.test_client().post(
            f"/api/v1/staff/tickets/{no}/record_visit", headers=world.headers("office"),
            json={"visited_on": "2026-11-16", "contacted": True, "outcome": outcome})

    with ThreadPoolExecutor(2) as pool:
        responses = [f.result() for f in [pool.submit(visit, "已回访。"), pool.submit(visit, "已电话回访。")]]
    assert sorted(r.status_code for r in responses) == [200, 409], [r.get_json() for r in responses]
    events = [e for e in world.ticket("office", no)["events"] if e["action"] == "record_visit"]
    assert len(events) == 1
