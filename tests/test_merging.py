"""并单: a case joins another that handles the same problem (`merge`), and leaves it again (`split`) exactly as it was;
the joined citizen hears the answer, gets a survey of their own, and a 差评 reopens the case that handled it."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from notify.models import SmsMessage
from tests.helpers import page_csrf, transferred
from tickets.db import db
from tickets.privacy import crypto
from tickets.models import Deadline, Event, Survey, Ticket

OTHER_PHONE = "13900139000"


def texts(world, national: str, *templates) -> list[str]:
    with world.app.app_context():
        return list(db.session.scalars(
            sa.select(SmsMessage.template).where(SmsMessage.phone_index == crypto.phone_index("+86" + national),
                                                 SmsMessage.template.in_(templates)).order_by(SmsMessage.id)))


def lookup(world, filed) -> dict:
    response = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}")
    assert response.status_code == 200
    return response.get_json()


def deadlines_of(world, no) -> list[tuple]:
    with world.app.app_context():
        return [tuple(row) for row in db.session.execute(
            sa.select(Deadline.kind, Deadline.round, Deadline.due_at, Deadline.ended_at, Deadline.outcome)
            .join(Ticket, Ticket.id == Deadline.ticket_id).where(Ticket.tracking_no == no).order_by(Deadline.id))]


def test_one_problem_two_citizens_one_answer_each_their_own_survey(world):
    first = transferred(world, "A")
    joined = world.file(phone=OTHER_PHONE, description="营业执照变更一个多月了还没办好，窗口说在审核。")
    no = joined["tracking_no"]
    world.act("office", no, "accept")
    merged = world.act("office", no, "merge", into=first, note="同一企业的执照变更")
    assert merged["status"] == "merged" and merged["merged_into"] == first
    assert world.ticket("office", first)["merged_cases"] == [no]
    assert [d[4] for d in deadlines_of(world, no)] == ["merged"]  # its accept-and-dispatch deadline ends with it
    assert texts(world, OTHER_PHONE, "merged") == ["merged"]

    # the joined citizen follows the handling, and nothing of the other person's case
    view = lookup(world, joined)
    assert view["status"] == "merged" and view["handled_with"]["status"] == "transferred"
    assert view["handled_with"]["department_name"] == "市场监督管理局"
    assert first not in str(view) and "张三" not in str(view["handled_with"])
    citizen = world.app.test_client()
    citizen.post("/track", data={"tracking_no": no, "code": joined["query_code"],
                                 "csrf_token": page_csrf(citizen, "/track")})
    page = citizen.get(f"/track/{no}").get_data(as_text=True)
    assert 'id="handled-with"' in page and first not in page

    world.act("dept_a", first, "reply", content="已为企业办结营业执照变更，新执照可到窗口领取。")
    world.act("office", first, "approve")
    view = lookup(world, joined)
    assert view["reply"] == "已为企业办结营业执照变更，新执照可到窗口领取。" and view["survey_open"]
    assert texts(world, OTHER_PHONE, "closed", "survey") == ["closed", "survey"]  # once each
    assert texts(world, "13800138000", "closed", "survey") == ["closed", "survey"]

    # a 差评 from the joined citizen reopens the case that handled the problem, for its department
    response = world.client.post(f"/api/v1/tickets/{no}/rating?code={joined['query_code']}", json={"score": 5})
    assert response.status_code == 200 and response.get_json()["status"] == "merged"
    handled = world.ticket("office", first)
    assert handled["status"] == "rectifying"
    # the 好差评 export counts the joined citizen's rating for the department that handled the problem
    from reports.evaluation import export_rows
    from reports.metrics import Month
    from tickets import clock as clocks
    with world.app.app_context():
        now = clocks.now()
        rows = list(export_rows(db.session, Month.containing(now, clocks.local_tz()), clocks.local_tz(),
                                identity=False, now=now))
    assert [(r["department_code"], r["rating"], r["rectification_status"]) for r in rows if r["case_no"] == no] \
        == [("A", 5, "rectifying")]
    assert handled["events"][-1]["action"] == "joined_rating" and handled["events"][-1]["data"]["joined"] == no
    assert world.client.post(f"/api/v1/tickets/{no}/rating?code={joined['query_code']}",
                             json={"score": 1}).status_code == 409  # rated once
    world.act("dept_a", first, "reply", content="已重新核实并当面送达新执照。")
    world.act("office", first, "approve")
    assert texts(world, OTHER_PHONE, "closed", "survey") == ["closed", "survey"] * 2  # the new answer, once more
    with world.app.app_context():
        rounds = db.session.scalars(sa.select(Survey.round).join(Ticket, Ticket.id == Survey.ticket_id)
                                    .where(Ticket.tracking_no == no).order_by(Survey.round)).all()
    assert rounds == [1, 2]


def test_every_case_a_case_page_links_to_opens_for_its_reader(world):
    """并单 names the cases merged into this one; a department's handler sees their number, but only a link to what
    it may open (a merged report is no department's case: its link was a 404)."""
    first = transferred(world, "A")
    joined = world.file(phone=OTHER_PHONE, description="营业执照变更一个多月了还没办好，窗口说在审核。")["tracking_no"]
    world.act("office", joined, "accept")
    world.act("office", joined, "merge", into=first, note="同一企业的执照变更")
    for role, page_of, linked in (("office", first, {joined}), ("dept_a", first, set()), ("office", joined, {first})):
        reader = world.console(role)
        page = reader.get(f"/admin/case/{page_of}").get_data(as_text=True)
        box = re.search(r'id="merged-(?:cases|into)">(.*?)</div>', page, re.S).group(1)
        assert (joined if page_of == first else first) in box  # named either way
        links = set(re.findall(r'href="/admin/case/(BJ[\d-]+)"', box))
        assert links == linked, (role, page_of, links)
        for no in set(re.findall(r'href="/admin/case/(BJ[\d-]+)"', page)):  # and every case link of the page opens
            assert reader.get(f"/admin/case/{no}").status_code == 200, (role, page_of, no)


def test_split_restores_the_case_exactly_and_only_before_the_other_is_closed(world, clock):
    first = transferred(world, "A")
    no = transferred(world, "B")
    world.act("dept_b", no, "request_extension", working_days=3, reason="需要现场核查。")
    before = world.ticket("office", no)
    running = deadlines_of(world, no)
    clock.advance(hours=5)
    world.act("office", no, "merge", into=first)
    assert all(ended is not None for _, _, _, ended, _ in deadlines_of(world, no))
    assert world.ticket("office", no)["due_at"] is None
    clock.advance(hours=5)
    split = world.act("office", no, "split", note="经核实不是同一问题")
    assert deadlines_of(world, no) == running
    for key in ("status", "department_id", "due_at", "extension_pending", "supervision_level"):
        assert split[key] == before[key], key
    assert world.ticket("office", first)["merged_cases"] == []
    assert texts(world, "13800138000", "merged", "split")[-2:] == ["merged", "split"]
    assert (split["events"][-1]["action"], split["events"][-1]["to_status"]) == ("split", "transferred")
    # merged again, then the case it joined is closed: the merge stays
    world.act("office", no, "merge", into=first)
    world.act("dept_a", first, "reply", content="已办结。")
    world.act("office", first, "approve")
    assert world.act("office", no, "split", expect=409)["error"]["code"] == "invalid_transition"


def test_a_case_that_heard_the_answer_is_not_split_even_when_the_other_reopens(world, clock):
    """Once B has the answer of the case it joined (its reply, its closing, a survey round), splitting it would leave an
    open case marked answered, with a survey its citizen, or the closing sweep, rates: the merge stays, also while
    the case it joined is reopened by its own citizen's 差评."""
    from notify.closing import close_surveys

    first = world.file()
    a = first["tracking_no"]
    world.act("office", a, "accept")
    world.act("office", a, "transfer", department_id=world.departments["A"])
    joined = world.file(phone=OTHER_PHONE)
    no = joined["tracking_no"]
    world.act("office", no, "merge", into=a)
    assert "split" in world.ticket("office", no)["allowed_actions"]  # not answered yet
    world.act("dept_a", a, "reply", content="已办结。")
    world.act("office", a, "approve")
    response = world.client.post(f"/api/v1/tickets/{a}/rating?code={first['query_code']}", json={"score": 4})
    assert response.status_code == 200 and response.get_json()["status"] == "rectifying"
    refused = world.act("office", no, "split", expect=409)
    assert refused["error"]["code"] == "invalid_transition" and "split" not in world.ticket("office", no)[
        "allowed_actions"]
    view = lookup(world, joined)
    assert view["status"] == "merged" and view["reply"] == "已办结。" and view["survey_open"]
    clock.advance(days=10)
    with world.app.app_context():
        close_surveys(db.session, clock.now)
        db.session.commit()
    events = world.ticket("office", no)["events"]
    assert events[-1]["action"] == "rate_default" and events[-1]["from_status"] == "merged"


def test_a_disputed_case_merged_leaves_the_disputed_list_until_it_is_split(world):
    """争议件 lists the cases the supervisor can still arbitrate: a merged one is handled as the case it joined (split
    again, it waits for the arbitration once more)."""
    first = transferred(world, "B")
    no = world.file(phone=OTHER_PHONE)["tracking_no"]
    world.act("office", no, "accept")
    for reason in ("非本部门职责", "仍非本部门职责"):
        world.act("office", no, "transfer", department_id=world.departments["A"])
        returned = world.act("dept_a", no, "return", reason=reason)
    assert returned["disputed"] is True
    supervisor = world.console("supervisor")
    assert no in supervisor.get("/admin/disputed/").get_data(as_text=True)
    world.act("office", no, "merge", into=first)
    assert no not in supervisor.get("/admin/disputed/").get_data(as_text=True)
    split = world.act("office", no, "split")
    assert (split["status"], split["disputed"]) == ("returned", True) and "arbitrate" in world.ticket(
        "supervisor", no)["allowed_actions"]
    assert no in supervisor.get("/admin/disputed/").get_data(as_text=True)
    world.act("office", no, "merge", into=first)
    world.act("dept_b", first, "reply", content="已办结。")
    world.act("office", first, "approve")  # the merge is final: it never waits for an arbitration again
    assert no not in supervisor.get("/admin/disputed/").get_data(as_text=True)


MERGEABLE = {"submitted", "accepted", "transferred", "returned"}


def test_merge_and_split_in_every_status_and_role(world, clock):
    from tests.helpers import an_office_in_every_state

    cases = an_office_in_every_state(world, clock)
    target = transferred(world, "A")
    for key, no in cases.items():
        status = world.ticket("office", no)["status"]
        for who in ("dept_a", "supervisor", "leader"):
            refused = world.post(who, f"/api/v1/staff/tickets/{no}/merge", json={"into": target}).status_code
            assert refused == 403 or (refused == 404 and who == "dept_a"), who  # 404: a case dept_a does not see
        assert world.post("office", f"/api/v1/staff/tickets/{no}/split", json={}).status_code == 409
        expected = 200 if status in MERGEABLE else 409
        world.act("office", no, "merge", expect=expected, into=target)
        if expected == 200:
            assert world.post("supervisor", f"/api/v1/staff/tickets/{no}/split", json={}).status_code == 403
            world.act("admin", no, "split")
            assert world.ticket("office", no)["status"] == status


@pytest.mark.parametrize("into, message", [
    (None, "into"), ("", "into"), ("BJ20990101-9999", "No case has this tracking number."),
    ("x" * 300, "into"), (12, "into"), (["BJ"], "into"),
])
def test_bad_targets_are_refused_with_the_field(world, into, message):
    no = world.file()["tracking_no"]
    response = world.post("office", f"/api/v1/staff/tickets/{no}/merge", json={"into": into})
    assert response.status_code == 422
    assert "into" in response.get_json()["error"]["fields"]
    assert world.ticket("office", no)["status"] == "submitted"


def test_targets_that_cannot_take_a_case_in(world):
    a, b, c = (world.file()["tracking_no"] for _ in range(3))
    assert "into" in world.act("office", a, "merge", expect=422, into=a)["error"]["fields"]  # itself
    world.act("office", b, "reject", reason="不属于受理范围。")
    assert "into" in world.act("office", a, "merge", expect=422, into=b)["error"]["fields"]  # rejected
    world.act("office", a, "merge", into=c)
    # c has a case joined: it cannot join another itself; a (merged) takes nothing in
    assert world.act("office", c, "merge", expect=409, into=b)["error"]["code"] == "invalid_transition"
    d = world.file()["tracking_no"]
    assert "into" in world.act("office", d, "merge", expect=422, into=a)["error"]["fields"]
    response = world.client.post(f"/api/v1/staff/tickets/{d}/merge", data="not json",
                                 headers={**world.headers("office"), "Content-Type": "application/json"})
    assert response.status_code in (400, 422) and "error" in response.get_json()


def test_merging_into_a_closed_case_answers_at_once(world):
    first = transferred(world, "A")
    world.act("dept_a", first, "reply", content="已办结，请到窗口领取。")
    world.act("office", first, "approve")
    joined = world.file(phone=OTHER_PHONE)
    world.act("office", joined["tracking_no"], "merge", into=first)
    view = lookup(world, joined)
    assert view["reply"] == "已办结，请到窗口领取。" and view["survey_open"]
    assert texts(world, OTHER_PHONE, "merged", "closed", "survey") == ["merged", "closed", "survey"]
    with world.app.app_context():
        kinds = db.session.scalars(sa.select(Event.action).join(Ticket, Ticket.id == Event.ticket_id)
                                   .where(Ticket.tracking_no == first).order_by(Event.id)).all()
    assert kinds[-1] == "merge_in"


def test_the_report_counts_the_problem_once_and_every_citizen(world, clock):
    """Hand-checked: in November three people report one problem (one merged before acceptance, one after), and a
    fourth's merge is undone; in December a fifth joins. Cases: 2 problems in November (the handled one and the split
    one), 并单 2, 诉求人次 4; every joined citizen's rating counts for department A."""
    from reports import metrics
    from reports.figures import monthly_figures

    clock.set(2026, 11, 10, 10)
    first = transferred(world, "A")
    early = world.file(phone="13900139001")                      # merged before acceptance
    world.act("office", early["tracking_no"], "merge", into=first)
    late = world.file(phone="13900139002")                       # accepted, then merged
    world.act("office", late["tracking_no"], "accept")
    world.act("office", late["tracking_no"], "merge", into=first)
    undone = world.file(phone="13900139003")                     # accepted, merged, split: a problem of its own
    world.act("office", undone["tracking_no"], "accept")
    world.act("office", undone["tracking_no"], "merge", into=first)
    world.act("office", undone["tracking_no"], "split")
    world.act("dept_a", first, "reply", content="已办结。")
    world.act("office", first, "approve")
    for filed, score in ((early, 1), (late, 2)):
        assert world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                                 json={"score": score}).status_code == 200
    clock.set(2026, 12, 2, 10)
    december = world.file(phone="13900139004")
    world.act("office", december["tracking_no"], "merge", into=first)
    with world.app.app_context():
        november = monthly_figures(db.session, metrics.Month.parse("2026-11"))
    office = november["office"]
    assert (office["accepted"], office["merged"], office["people"]) == (2, 2, 4)
    a = {row["name"]: row for row in november["departments"]}["市场监督管理局"]
    assert (a["accepted"], a["merged"], a["people"], a["closed"]) == (1, 2, 3, 1)
    # three surveys closed on 17 November, the case's own (unanswered) and the two joined citizens' (answered)
    assert (a["surveys"], a["rated"], a["satisfied"]) == (3, 2, 2)
    with world.app.app_context():
        dec = monthly_figures(db.session, metrics.Month.parse("2026-12"))
    a = {row["name"]: row for row in dec["departments"]}["市场监督管理局"]
    assert (a["surveys"], a["merged"], a["people"]) == (1, 1, 1)  # December's joined citizen: its survey, its report
    assert dec["office"]["merged"] == 1 and dec["office"]["accepted"] == 0


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_any_body_is_a_clear_answer_never_a_500(world):
    """Whatever a client sends as `merge`'s or `split`'s body: 200, or a 4xx in the error shape; nothing half done."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.helpers import examples

    target = world.file()["tracking_no"]
    values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40), st.just(target),
                       st.just(target.lower()), st.lists(st.text(max_size=3), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))

    @settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
    @given(action=st.sampled_from(["merge", "split"]), body=st.one_of(
        st.dictionaries(st.sampled_from(["into", "note", "version"]), values, max_size=3), values))
    def check(action, body):
        no = world.file()["tracking_no"]
        response = world.post("office", f"/api/v1/staff/tickets/{no}/{action}", json=body)
        assert response.status_code in (200, 400, 409, 422), (body, response.get_json())
        answer = response.get_json()
        if response.status_code == 200:
            assert answer["status"] == "merged" and answer["merged_into"] == target
        else:
            assert answer["error"]["code"] and answer["error"]["message"]
            assert world.ticket("office", no)["status"] == "submitted"

    check()
