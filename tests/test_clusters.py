"""一类事 and 主动治理 (tickets/clusters.py, tickets/workflow/governance.py, admin/clusters.py, reports/clusters.py): the
list's counts, window and trend, who sees which clusters, the API's answers and refusals, opening a proactive task
from a cluster, sending its answer to the linked citizens once, the console's pages and the report's 高频诉求."""
from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from notify.models import SmsMessage
from tests.helpers import csrf_of
from tests.report_figures import pdf_text, squash
from tickets.db import db
from tickets.models import Event, Survey, Ticket

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
EN = {"Accept-Language": "en"}
ITEM = "营业执照变更"
TEXT = "营业执照变更网上提交后一直显示审核中，打电话也没人接"
_numbers = itertools.count(1)


def new_phone() -> str:
    return f"139{next(_numbers):08d}"


def cases(world, n, *, cluster=None, days_ago=0.0, office=None, item=ITEM, phone=None, text=TEXT) -> list[str]:
    """`n` cases filed through the API, moved `days_ago` back and put in one cluster (`cluster`: a tracking number
    whose case's cluster they join; None: the first of them starts it). Filing clusters similar texts itself
    (tickets/duplicates.py, see the test below); set here, each test decides its clusters whatever the thresholds."""
    body = {"service_item": item} if item else {}
    if office:
        body["office_code"] = office
    nos = [world.file(phone=phone or new_phone(), description=f"{text}（第{k}次）", **body)["tracking_no"]
           for k in range(n)]
    with world.app.app_context():
        rows = list(db.session.scalars(sa.select(Ticket).where(Ticket.tracking_no.in_(nos)).order_by(Ticket.id)))
        anchor = (db.session.scalar(sa.select(Ticket.cluster_id).where(Ticket.tracking_no == cluster))
                  if cluster else rows[0].id)
        for row in rows:
            row.cluster_id = anchor
            row.created_at = row.created_at - timedelta(days=days_ago)
        db.session.commit()
    return nos


def cluster_of(world, no) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(Ticket.cluster_id).where(Ticket.tracking_no == no))


def listing(world, who, expect=200, **params):
    response = world.client.get("/api/v1/staff/clusters", query_string=params, headers={**world.headers(who), **EN})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def by_id(answer) -> dict:
    return {item["id"]: item for item in answer["items"]}


def open_task(world, who, cluster_id, expect=201, **body):
    body = {"department_id": world.departments["A"], "working_days": 5, "content": "请统一梳理营业执照变更网上审核流程。",
            **body}
    response = world.client.post(f"/api/v1/staff/clusters/{cluster_id}/governance", json=body,
                                 headers={**world.headers(who), **EN})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


# --- the list: counts, window, trend -----------------------------------------------------------------------------

@SQLITE_ONLY
def test_a_cluster_is_listed_with_its_counts_window_trend_and_days(world, clock):
    # now: Monday 2026-11-16 09:00; the window is Nov 3 00:00 .. now, the previous one Oct 20 .. Nov 3
    rising = cases(world, 3, days_ago=0)
    cases(world, 2, cluster=rising[0], days_ago=12.9)  # Nov 3, 11:24: the window's first day
    cases(world, 1, cluster=rising[0], days_ago=13.5)  # Nov 2: the previous window
    falling = cases(world, 5, days_ago=1, item="社保转移")
    cases(world, 7, cluster=falling[0], days_ago=20, item="社保转移")
    small = cases(world, 4, item="公积金提取")          # 4 < CLUSTER_MIN_CASES
    cases(world, 9, days_ago=15, item="户籍迁移")       # all before the window
    with world.app.app_context():  # a merged one counts (a person who reported it); one finished
        db.session.execute(sa.update(Ticket).where(Ticket.tracking_no == rising[1]).values(status="merged"))
        db.session.commit()
    world.act("office", rising[2], "reject", reason="不属于受理范围")

    answer = listing(world, "office")
    assert answer["days"] == 14 and answer["min_cases"] == 5 and answer["total"] == 2
    assert answer["start"].startswith("2026-11-03T00:00:00") and answer["end"].startswith("2026-11-16T09:00")
    assert [item["id"] for item in answer["items"]] == [cluster_of(world, rising[0]), cluster_of(world, falling[0])]
    first, second = answer["items"]
    assert (first["count"], first["previous_count"], first["trend"]) == (5, 1, "rising")
    assert (first["open"], first["closed"]) == (3, 2)  # merged and rejected are finished
    assert first["service_item"] == ITEM and first["title"].startswith(f"{ITEM} · {TEXT[:10]}")
    assert first["first_case"]["tracking_no"] == rising[0] and first["office_code"] == "root"
    assert [d["date"] for d in first["daily"]][:1] == ["2026-11-03"] and len(first["daily"]) == 14
    assert first["daily"][0]["count"] == 2 and first["daily"][-1]["count"] == 3
    assert sum(d["count"] for d in first["daily"]) == first["count"]
    assert (second["count"], second["previous_count"], second["trend"]) == (5, 7, "falling")
    assert first["governance"] is None
    assert cluster_of(world, small[0]) not in by_id(answer)

    clock.advance(days=2)  # the window moves: Nov 5 .. Nov 18; the two of Nov 3 leave it
    assert [i["count"] for i in listing(world, "office")["items"]] == [5]


@SQLITE_ONLY
def test_filing_puts_similar_reports_in_one_cluster_which_the_list_shows(world):
    """The real path: tickets/duplicates.py gives each filing its cluster (nothing set by hand here)."""
    wordings = ["营业执照变更网上提交后一直显示审核中，打电话也没人接。", "营业执照变更网上提交以后一直显示审核中，电话没人接！",
                "你好，营业执照变更在网上提交后一直审核中，打电话没有人接", "營業執照變更網上提交後一直顯示審核中，打電話也沒人接",
                "营业执照变更网上提交后一直显示审核中，打了好几次电话也没人接，希望尽快解决"]
    nos = [world.file(phone=new_phone(), service_item=ITEM, description=text)["tracking_no"] for text in wordings]
    other = world.file(phone=new_phone(), service_item=ITEM, description="想问一下个体户注销需要准备哪些材料")
    (item,) = listing(world, "office")["items"]
    assert item["count"] == 5 and item["first_case"]["tracking_no"] == nos[0]
    assert {cluster_of(world, no) for no in nos} == {item["id"]} != {cluster_of(world, other["tracking_no"])}


@SQLITE_ONLY
def test_who_sees_which_clusters_and_the_apis_refusals(network):
    world = network.world
    county = cases(world, 5, office="c1")
    township = cases(world, 6, office="t11", item="医保报销")
    world.act("office_t11", township[0], "refer_up", reason="需要县里协调")  # its first case moves up to the county
    other = cases(world, 6, office="c2", item="不动产登记")
    root = cases(world, 5)
    ids = {name: cluster_of(world, nos[0]) for name, nos in
           (("county", county), ("township", township), ("other", other), ("root", root))}
    assert set(by_id(listing(world, "admin"))) == set(ids.values())
    assert set(by_id(listing(world, "leader"))) == set(ids.values())  # the root's office-wide roles see everything
    assert set(by_id(listing(world, "office_c1"))) == {ids["county"], ids["township"]}
    assert set(by_id(listing(world, "supervisor_c1"))) == {ids["county"], ids["township"]}
    assert set(by_id(listing(world, "leader_t11"))) == {ids["township"]}
    seen_below = by_id(listing(world, "leader_t11"))[ids["township"]]  # without the case that moved up
    assert (seen_below["count"], seen_below["first_case"]["tracking_no"]) == (5, township[1])
    seen_above = by_id(listing(world, "office_c1"))[ids["township"]]
    assert (seen_above["count"], seen_above["first_case"]["tracking_no"]) == (6, township[0])
    assert set(by_id(listing(world, "office_c2"))) == {ids["other"]}
    assert set(by_id(listing(world, "office", office="c1"))) == {ids["county"], ids["township"]}
    assert listing(world, "office_c2", office="c1")["items"] == []  # outside what the caller sees: nothing
    for who in ("dept_a", "dept_c1"):  # the list is the office's, not a department's
        assert listing(world, who, expect=403)["error"]["code"] == "forbidden"
    assert listing(world, "office", expect=422, office="nowhere")["error"]["fields"]["office"] == "No such window."
    assert listing(world, "office", expect=422, office="x" * 500)["error"]["code"] == "validation_error"
    assert world.client.get("/api/v1/staff/clusters").status_code == 401
    item = by_id(listing(world, "office_c1"))[ids["county"]]
    assert set(item) == {"id", "title", "office_code", "office_name", "service_item", "problem_type", "count",
                         "previous_count", "trend", "daily", "open", "closed", "unlinked", "qualifies", "first_case",
                         "last_at", "governance"}
    assert item["office_code"] == "c1" and item["office_name"] == "东湖县办不成事窗口"


def test_the_listing_and_a_task_on_postgresql_and_sqlite(world):
    """The GROUP BY over the window (local dates, the visibility subquery, the window function), and a task opened (the
    row lock, the filing's own transaction for its number) and answered, on both databases."""
    first = cases(world, 4, days_ago=0.1)
    cases(world, 2, cluster=first[0], days_ago=3)
    cases(world, 3, cluster=first[0], days_ago=16)
    (item,) = listing(world, "supervisor")["items"]
    assert (item["count"], item["previous_count"], item["trend"]) == (6, 3, "rising")
    assert [d["count"] for d in item["daily"]][-4:] == [2, 0, 0, 4]
    assert sum(d["count"] for d in item["daily"]) == 6
    task = open_task(world, "office", item["id"])["tracking_no"]
    world.act("dept_a", task, "reply", content="已统一办理流程。")
    world.act("office", task, "approve")
    assert world.act("office", task, "notify_linked")["events"][-1]["data"] == {"cases": 6, "numbers": 6}
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                                 .where(SmsMessage.template == "governance_answer")) == 6
    (item,) = listing(world, "leader")["items"]
    assert item["governance"]["notified"] is True and item["unlinked"] == 0


# --- 主动治理 -------------------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_opening_a_proactive_task_checks_roles_input_and_state(network, clock):
    world = network.world
    nos = cases(world, 5, office="c1")
    cluster_id = cluster_of(world, nos[0])
    few = cluster_of(world, cases(world, 4, office="c1", item="医保报销")[0])
    for who in ("supervisor_c1", "leader_c1", "dept_c1", "leader"):
        assert open_task(world, who, cluster_id, expect=403)["error"]["code"] == "forbidden"
    assert open_task(world, "office", cluster_id, expect=403)["error"]["code"] == "forbidden"  # not its window
    assert open_task(world, "office_c2", cluster_id, expect=404)["error"]["code"] == "not_found"  # not seen
    assert open_task(world, "office_c1", 999_999, expect=404)["error"]["code"] == "not_found"
    assert open_task(world, "office_c1", 2**40, expect=404)["error"]["code"] == "not_found"
    bad = open_task(world, "office_c1", cluster_id, expect=422, department_id=None, working_days=0, content="短")
    assert set(bad["error"]["fields"]) == {"department_id", "working_days", "content"}
    for body, field in (({"department_id": world.departments["C2"]}, "department_id"),  # another county's
                        ({"department_id": "A"}, "department_id"), ({"working_days": 61}, "working_days"),
                        ({"working_days": "五"}, "working_days"), ({"content": ["x"]}, "content"),
                        ({"department_id": 2**40}, "department_id"), ({"working_days": 10**12}, "working_days"),
                        ({"content": "很" * 2001}, "content")):
        assert field in open_task(world, "office_c1", cluster_id, expect=422, **body)["error"]["fields"], body
    assert open_task(world, "office_c1", few, expect=409)["error"]["code"] == "invalid_transition"
    response = world.client.post(f"/api/v1/staff/clusters/{cluster_id}/governance", data="[1]",
                                 content_type="application/json", headers=world.headers("office_c1"))
    assert response.status_code in (400, 422)
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)
                                 .where(Ticket.channel == "proactive")) == 0  # nothing was left half made

    task = open_task(world, "office_c1", cluster_id, department_id=world.departments["C1"], working_days=3)
    assert task["status"] == "transferred" and task["department_id"] == world.departments["C1"]
    assert task["channel"] == "proactive" and task["citizen_name"] == "东湖县办不成事窗口"
    assert task["due_at"].startswith("2026-11-19")  # 3 working days from Monday
    assert {d["kind"] for d in task["deadlines"]} == {"accept", "handle", "return"}  # no 先行联系: nobody to contact
    actions = [e["action"] for e in task["events"]]
    assert actions == ["file", "governance_open", "accept", "transfer"]
    opened = task["events"][1]
    assert opened["data"]["cluster_id"] == cluster_id and opened["data"]["cases"] == 5
    assert opened["actor"] == "office_c1" and opened["note"].startswith(ITEM)  # who opened it, from which cluster
    with world.app.app_context():
        linked = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(
            Ticket.governance_id == sa.select(Ticket.id).where(Ticket.tracking_no == task["tracking_no"])
            .scalar_subquery()))
        assert linked == 5
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                                 .join(Ticket, Ticket.id == SmsMessage.ticket_id)
                                 .where(Ticket.tracking_no == task["tracking_no"], SmsMessage.audience == "citizen")) == 0
    (item,) = [i for i in listing(world, "office_c1")["items"] if i["id"] == cluster_id]
    assert item["count"] == 5  # the task itself is not a report
    assert item["governance"]["tracking_no"] == task["tracking_no"] and item["governance"]["open"] is True
    assert item["governance"]["linked"] == 5 and item["governance"]["department_name"] == "东湖县人社局"
    assert open_task(world, "office_c1", cluster_id, expect=409)["error"]["message"].endswith(
        f"{task['tracking_no']}.")
    assert open_task(world, "admin", cluster_id, expect=409)["error"]["code"] == "invalid_transition"


@SQLITE_ONLY
def test_the_answer_reaches_every_linked_citizen_once(world, clock):
    shared = new_phone()
    nos = cases(world, 3) + cases(world, 2, phone=shared)
    cluster_id = cluster_of(world, nos[0])
    with world.app.app_context():
        db.session.execute(sa.update(Ticket).where(Ticket.tracking_no.in_(nos[3:])).values(cluster_id=cluster_id))
        db.session.commit()
    landline = cases(world, 1, cluster=nos[0], phone="010-6512 3456")
    task = open_task(world, "office", cluster_id)["tracking_no"]
    assert "notify_linked" not in world.ticket("office", task)["allowed_actions"]
    clock.advance(days=1)
    late = cases(world, 1, cluster=nos[0])  # joins while the task is open: linked when the answer goes out
    world.act("dept_a", task, "reply", content="已统一网上审核流程，营业执照变更现可一次办结。")
    world.act("office", task, "approve")
    clock.advance(hours=1)
    after = cases(world, 1, cluster=nos[0])  # filed after the task closed: a new report, not linked
    view = world.ticket("office", task)
    assert view["status"] == "closed" and "notify_linked" in view["allowed_actions"]
    with world.app.app_context():
        task_id = db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == task))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Survey).where(Survey.ticket_id == task_id)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                                 .where(SmsMessage.ticket_id == task_id, SmsMessage.audience == "citizen")) == 0

    done = world.act("admin", task, "notify_linked")
    assert done["events"][-1]["action"] == "notify_linked"
    assert done["events"][-1]["data"] == {"cases": 7, "numbers": 6}  # 3 + 2 (one number) + landline + late
    again = world.post("office", f"/api/v1/staff/tickets/{task}/notify_linked", json={})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_transition"
    with world.app.app_context():
        texts = db.session.execute(sa.select(Ticket.tracking_no, SmsMessage.phone, SmsMessage.body)
                                   .join(Ticket, Ticket.id == SmsMessage.ticket_id)
                                   .where(SmsMessage.template == "governance_answer")).all()
        assert sorted(no for no, _phone, _body in texts) == sorted(nos[:4] + late)  # one per mobile number
        assert all("已统一网上审核流程" in body for _no, _phone, body in texts)
        told = set(db.session.scalars(sa.select(Ticket.tracking_no).join(Event, Event.ticket_id == Ticket.id)
                                      .where(Event.action == "governance_answer", Event.public.is_(True))))
        assert told == set(nos + landline + late)
        statuses = dict(db.session.execute(sa.select(Ticket.tracking_no, Ticket.status)
                                           .where(Ticket.tracking_no.in_(nos + after))).all())
        assert set(statuses.values()) == {"submitted"}  # linked cases stay cases of their own
        assert db.session.scalar(sa.select(Ticket.governance_id).where(Ticket.tracking_no == after[0])) is None
    refused = open_task(world, "office", cluster_id, expect=409)["error"]["message"]
    assert "already took these cases up" in refused  # the same cases: not a second task
    cases(world, 4, cluster=nos[0])  # the problem comes back: with the one filed after closing, 5 new cases
    assert open_task(world, "office", cluster_id)["status"] == "transferred"


@SQLITE_ONLY
def test_the_citizen_reads_the_root_fix_on_the_lookup_page(world):
    filed = world.file(phone=new_phone(), service_item=ITEM, description=TEXT)
    more = cases(world, 4, cluster=None)
    cluster_id = cluster_of(world, more[0])
    with world.app.app_context():
        db.session.execute(sa.update(Ticket).where(Ticket.tracking_no == filed["tracking_no"])
                           .values(cluster_id=cluster_id))
        db.session.commit()
    task = open_task(world, "office", cluster_id)["tracking_no"]
    world.act("dept_a", task, "reply", content="已开通线上一次办结通道。")
    world.act("office", task, "approve")
    world.act("office", task, "notify_linked")
    page = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}", headers=EN)
    (step,) = [e for e in page.get_json()["timeline"] if e["label"] == "Fixed at the root (主动治理)"]
    assert "已开通线上一次办结通道。" in step["note"]
    assert task not in str(page.get_json())  # nothing of the task's number


# --- the console -------------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_the_console_lists_clusters_and_opens_a_task_from_one(world, console):
    nos = cases(world, 6)
    cluster_id = cluster_of(world, nos[0])
    office = console("office")
    page = office.get("/admin/clusters/").get_data(as_text=True)
    assert f'href="/admin/clusters/{cluster_id}"' in page and "cluster-chart" in page and "↑" in page
    assert "<script" not in page.split('id="clusters-list"')[1].split("</table>")[0]
    detail = office.get(f"/admin/clusters/{cluster_id}").get_data(as_text=True)
    for no in nos:
        assert f'/admin/case/{no}"' in detail
    assert "139****" in detail and "139000" not in detail.split('id="cluster-cases"')[1]  # masked
    assert 'id="governance-form"' in detail
    bad = office.post(f"/admin/clusters/{cluster_id}/governance",
                      data={"department_id": "", "working_days": "99", "content": "", "csrf_token": csrf_of(detail)})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert 'id="error-department_id"' in body and 'id="error-working_days"' in body and 'id="error-content"' in body
    done = office.post(f"/admin/clusters/{cluster_id}/governance",
                       data={"department_id": str(world.departments["B"]), "working_days": "",
                             "content": "请人社局统一梳理。", "csrf_token": csrf_of(detail)})
    assert done.status_code == 302 and "/admin/case/BJ" in done.headers["Location"]
    again = office.get(f"/admin/clusters/{cluster_id}").get_data(as_text=True)
    assert 'id="governance-case"' in again and 'id="governance-form"' not in again
    assert "A proactive task for this recurring problem is open already" in again  # why there is no form
    task_no = done.headers["Location"].rsplit("/", 1)[1]
    slip = office.get(done.headers["Location"] + "/slip.pdf")  # 交办单 of a case without a phone: a dash, not a blank
    assert slip.status_code == 200 and re.search(r"(?:联系电话|Phone number)\s*—", pdf_text(slip.get_data()))
    assert task_no in office.get("/admin/cases/").get_data(as_text=True)  # in the lists as any case
    assert task_no in office.get("/admin/cases/export/csv/").get_data(as_text=True)
    task_page = office.get(done.headers["Location"]).get_data(as_text=True)  # the task and a linked case link back
    assert 'id="cluster-note"' in task_page and f'href="/admin/clusters/{cluster_id}"' in task_page
    assert '<span class="case-phone" id="case-phone">—</span>' in task_page  # no number: a dash, not an empty line
    linked_page = office.get(f"/admin/case/{nos[0]}").get_data(as_text=True)
    assert 'id="cluster-note"' in linked_page and done.headers["Location"].rsplit("/", 1)[1] in linked_page
    handler = console("dept_b").get(done.headers["Location"])  # the department works the task, without the list
    assert handler.status_code == 200 and 'id="cluster-note"' not in handler.get_data(as_text=True)
    assert console("dept_a").get("/admin/clusters/").status_code == 403
    leader = console("leader").get(f"/admin/clusters/{cluster_id}").get_data(as_text=True)
    assert 'id="governance-form"' not in leader and 'id="governance-case"' in leader
    assert office.get("/admin/clusters/abc").status_code == 404
    assert office.get("/admin/clusters/99999999999999999999").status_code == 404
    no_token = office.post(f"/admin/clusters/{cluster_id}/governance", data={"department_id": "1"})
    assert no_token.status_code == 400  # CSRF


# --- the monthly report ------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_the_monthly_report_lists_frequent_requests_with_month_on_month_and_what_was_done(world, clock):
    clock.set(2026, 11, 20, 10, 0)
    nos = cases(world, 6, days_ago=1)          # November: 6
    cases(world, 2, cluster=nos[0], days_ago=25)  # October 26: 2
    quieter = cases(world, 5, days_ago=2, item="社保转移<b>&")
    cluster_id = cluster_of(world, nos[0])
    task = open_task(world, "office", cluster_id)["tracking_no"]
    world.act("dept_a", task, "reply", content="已统一网上审核流程。")
    world.act("office", task, "approve")
    world.act("office", task, "notify_linked")
    clock.set(2026, 12, 2, 9, 0)
    response = world.client.get("/api/v1/reports/monthly/2026-11", headers=world.headers("office"))
    figures = response.get_json()
    section = figures["clusters"]
    assert section["min_cases"] == 5 and section["total"] == 2
    first, second = section["items"]
    assert (first["cluster_id"], first["count"], first["previous"], first["mom"]) == (cluster_id, 6, 2, 4)
    assert first["governance"]["tracking_no"] == task and first["governance"]["status"] == "closed"
    assert first["governance"]["answer"] == "已统一网上审核流程。" and first["governance"]["notified"] is True
    assert first["governance"]["linked"] == 6
    assert (second["count"], second["previous"], second["governance"]) == (5, 0, None)
    assert second["service_item"] == "社保转移<b>&" and cluster_of(world, quieter[0]) == second["cluster_id"]
    pdf = world.client.get("/api/v1/reports/monthly/2026-11.pdf", headers=world.headers("office")).data
    text = squash(pdf_text(pdf))
    assert squash("社保转移<b>&") in text and squash(task) in text and squash("已统一网上审核流程。") in text
    assert squash("高频诉求") in text or squash("Frequent requests") in text
