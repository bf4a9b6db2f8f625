"""知识库: entries kept by their owners, suggested beside a case's answer (ranked, fresh, visible to the one answering),
the entry and version an answer started from kept with its event, and the console's list, forms and 已复核."""
from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.browser import LiveServer, sign_in
from tests.helpers import csrf_of, examples, submit
from tickets import knowledge
from tickets.db import db
from tickets.models import Event, KnowledgeEntry, Ticket, User
from tickets.workflow import Actor

ITEM = "营业执照变更登记"


def add(world, who, **values) -> int:
    """An entry written by `who` through the operation; its id."""
    with world.app.app_context():
        entry = knowledge.create_entry(db.session, Actor.of(db.session.get(User, world.users[who])), **values)
        db.session.commit()
        return entry.id


def entry_row(world, entry_id) -> KnowledgeEntry:
    with world.app.app_context():
        return db.session.get(KnowledgeEntry, entry_id)


def suggested(world, who, no, expect=200):
    response = world.get(who, f"/api/v1/staff/tickets/{no}/knowledge")
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def rate(world, filed, score):
    return world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                             json={"score": score})


def reply_with(world, who, no, value):
    """A reply naming `value` as its knowledge entry, the answer in English (messages are the test's subject)."""
    return world.client.post(f"/api/v1/staff/tickets/{no}/reply", json={"content": "已办结。", "knowledge_entry_id": value},
                             headers={**world.headers(who), "Accept-Language": "en"})


def titles(world, who, no) -> list[str]:
    return [item["title"] for item in suggested(world, who, no)]


def at_department(world, department="A", **filing) -> str:
    no = world.file(service_item=ITEM, **filing)["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments[department])
    return no


def event_of(world, no, action) -> Event:
    with world.app.app_context():
        return db.session.scalar(sa.select(Event).join(Ticket, Ticket.id == Event.ticket_id)
                                 .where(Ticket.tracking_no == no, Event.action == action).order_by(Event.id.desc()))


# --- ranking, a pure rule -------------------------------------------------------------------------------------

def test_rank_puts_the_service_item_first_then_the_department_then_the_text():
    ticket = Ticket(description="营业执照变更办了一个月还没结果。", service_item=ITEM, department_id=1)

    def entry(i, title, content, items=(), department_id=None):
        return KnowledgeEntry(id=i, title=title, content=content, service_items=list(items),
                              department_id=department_id, updated_at=None, office_id=1, review_by=date(2030, 1, 1))

    text = entry(1, "营业执照办理进度查询", "可在网上查询营业执照变更的进度。")
    department = entry(2, "受理时限", "三日内答复。", department_id=1)
    item = entry(3, "所需材料", "请携带身份证原件。", items=[ITEM])
    unrelated = entry(4, "公积金提取", "需提供购房合同。")
    other_department = entry(5, "户籍迁移", "请到派出所办理。", department_id=2)
    two_pairs = entry(6, "营业时间", "变更须预约。")  # 营业 and 变更 only: too little in common
    everything = [text, department, item, unrelated, other_department, two_pairs]
    for e in everything:
        e.updated_at = date(2026, 1, e.id)  # comparable, newest last
    assert knowledge.rank(everything, ticket) == [item, department, text]
    assert knowledge.rank([text, department, item], ticket, limit=1) == [item]
    assert knowledge.bigrams("营业 执照，ABc") == {"营业", "业执", "执照", "照a", "ab", "bc"}
    assert knowledge.excerpt("一" * 61) == "一" * 60 + "…" and knowledge.excerpt("a\n b") == "a b"
    assert knowledge.excerpt("已收悉。\n经核实：") == "已收悉。经核实："  # no space between Chinese


# --- suggestions through the API -------------------------------------------------------------------------------

def test_suggestions_are_ranked_fresh_and_the_handlers_own(world, clock):
    no = at_department(world)
    add(world, "office", title="营业执照办理进度查询", content="可在网上查询营业执照变更的进度。")
    add(world, "dept_a", title="受理时限", content="本局受理后三日内答复。")
    add(world, "office", title="所需材料", content="请携带身份证原件。", service_items=[ITEM])
    add(world, "office", title="公积金提取", content="需提供购房合同。")  # nothing in common: not offered
    add(world, "dept_b", title="人社局的条目", content="营业执照变更。", service_items=[ITEM])  # another department's
    add(world, "office", title="已停用", content="营业执照变更。", service_items=[ITEM], active=False)
    soon = add(world, "office", title="快到期", content="营业执照变更。", service_items=[ITEM],
               review_by=date(2026, 11, 20))

    assert titles(world, "dept_a", no) == ["快到期", "所需材料", "受理时限", "营业执照办理进度查询"]
    assert "人社局的条目" in titles(world, "office", no)  # the window uses every department's entries
    suggested(world, "dept_b", no, expect=404)  # a case the caller cannot see
    item = suggested(world, "dept_a", no)[1]
    assert item == {"id": item["id"], "title": "所需材料", "content": "请携带身份证原件。", "version": 1,
                    "service_items": [ITEM], "department_name": None, "review_by": "2027-11-16"}
    assert suggested(world, "dept_a", no)[2]["department_name"] == "市场监督管理局"

    clock.set(2026, 11, 20, 23, 59)  # its review day: still offered
    assert "快到期" in titles(world, "dept_a", no)
    clock.set(2026, 11, 21, 0, 1)  # the day after: past its review date, offered to nobody
    assert "快到期" not in titles(world, "dept_a", no) and "快到期" not in titles(world, "office", no)
    with world.app.app_context():
        office = Actor.of(db.session.get(User, world.users["office"]))
        assert [e.id for e in knowledge.expired_for(db.session, office)] == [soon]


def test_entries_follow_the_windows_and_a_handler_never_sees_another_departments(world, network):
    for who, title in (("office", "市级通用"), ("office_c1", "东湖县通用"), ("office_t11", "青石镇通用"),
                       ("office_c2", "西山县通用"), ("dept_c1", "东湖县人社局"), ("dept_c2", "西山县人社局"),
                       ("dept_a", "市场监管局")):
        add(world, who, title=title, content="营业执照变更", service_items=[ITEM])
    no = network.file("t11", service_item=ITEM)
    world.act("office_t11", no, "accept")
    world.act("office_t11", no, "transfer", department_id=network.departments["C1"])
    assert set(titles(world, "dept_c1", no)) == {"市级通用", "东湖县通用", "青石镇通用", "东湖县人社局"}
    assert set(titles(world, "office_t11", no)) == {"市级通用", "东湖县通用", "青石镇通用", "东湖县人社局", "市场监管局"}
    suggested(world, "office_c2", no, expect=404)
    with world.app.app_context():
        owners = dict(db.session.execute(sa.select(KnowledgeEntry.title, KnowledgeEntry.office_id)).all())
    assert owners["东湖县人社局"] == network.offices["c1"] and owners["市场监管局"] == network.offices["root"]


# --- the answer keeps the entry and its version ------------------------------------------------------------------

def test_an_answer_keeps_the_entry_and_version_it_started_from(world, clock):
    entry_id = add(world, "dept_a", title="营业执照变更材料清单", content="需提交：申请书、执照原件。",
                   service_items=[ITEM])
    with world.app.app_context():
        entry = db.session.get(KnowledgeEntry, entry_id)
        handler = Actor.of(db.session.get(User, world.users["dept_a"]))
        knowledge.update_entry(db.session, handler, entry, review_by=date(2027, 1, 4))  # the date only: same text
        assert entry.version == 1
        knowledge.update_entry(db.session, handler, entry, content="需提交：申请书、执照正副本原件。")
        db.session.commit()
        assert entry.version == 2 and entry.updated_by == world.users["dept_a"]
    no = at_department(world)
    typed = "需提交：申请书、执照正副本原件。您的申请已于今日办结。"
    view = world.act("dept_a", no, "reply", content=typed, knowledge_entry_id=entry_id)
    assert view["status"] == "replied" and view["reply_content"] == typed
    reply = next(e for e in view["events"] if e["action"] == "reply")
    assert reply["data"] == {"knowledge": {"id": entry_id, "version": 2, "title": "营业执照变更材料清单"}}

    general = add(world, "office", title="答复格式", content="您好！经核实……")
    filed = world.file()
    world.act("office", filed["tracking_no"], "accept")
    world.act("office", filed["tracking_no"], "resolve", content="您好！经核实，已办结。", knowledge_entry_id=str(general))
    assert event_of(world, filed["tracking_no"], "resolve").data["knowledge"]["id"] == general
    assert rate(world, filed, 4).status_code == 200
    world.act("office", filed["tracking_no"], "explain", content="您好！经核实，依法须本人到场。",
              knowledge_entry_id=general)
    assert event_of(world, filed["tracking_no"], "explain").data["knowledge"] == {"id": general, "version": 1,
                                                                                 "title": "答复格式"}
    plain = at_department(world)
    world.act("dept_a", plain, "reply", content="已办结。")
    assert event_of(world, plain, "reply").data is None  # no entry, nothing kept


def test_an_entry_the_actor_may_not_use_is_a_field_error(world, clock):
    others = add(world, "dept_b", title="人社局的条目", content="营业执照变更。")
    stale = add(world, "dept_a", title="旧条目", content="营业执照变更。", review_by=date(2026, 11, 17))
    clock.set(2026, 11, 18, 9)
    no = at_department(world)
    version = world.ticket("dept_a", no)["version"]
    for value, message in ((others, "There is no such knowledge base entry for this case."),
                           (stale, "past its review date"), (2147483647, "There is no such knowledge base entry"),
                           (2147483648, "No record has this id."), ("abc", "Must be a whole number."),
                           (1.5, "Must be a whole number.")):
        response = reply_with(world, "dept_a", no, value)
        assert response.status_code == 422, (value, response.get_json())
        assert message in response.get_json()["error"]["fields"]["knowledge_entry_id"], value
    after = world.ticket("dept_a", no)
    assert after["status"] == "transferred" and after["version"] == version  # nothing moved


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=12).filter(str.strip),
                       st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                       st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_any_knowledge_entry_id_is_a_field_error_never_a_server_error(world, value):
    if not hasattr(world, "knowledge_case"):  # once per test: one case, and the only entry another department's
        world.knowledge_case = at_department(world)
        add(world, "dept_b", title="人社局的条目", content="营业执照变更。")
    response = reply_with(world, "dept_a", world.knowledge_case, value)
    assert response.status_code == 422, (value, response.get_json())
    assert set(response.get_json()["error"]["fields"]) == {"knowledge_entry_id"}


# --- the console --------------------------------------------------------------------------------------------------

def test_the_console_keeps_entries_by_role(world, console):
    office = console("office")
    response = submit(office, "/admin/knowledge/new/", {
        "title": "答复群众的基本格式", "content": "您好！经核实：……", "service_items": f"{ITEM}\n个体户注销、{ITEM}",
        "department_id": "", "review_by": "2027-06-30", "active": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    made = db_entry(world, "答复群众的基本格式")
    assert (made.department_id, made.service_items, made.review_by, made.version) == (
        None, [ITEM, "个体户注销"], date(2027, 6, 30), 1)
    edit = f"/admin/knowledge/edit/?id={made.id}"
    assert submit(office, edit, {"title": made.title, "content": "您好！经核实：……办理结果：……",
                                 "service_items": ITEM, "review_by": "2027-06-30", "active": "y"}).status_code == 302
    assert db_entry(world, made.title).version == 2
    refused = submit(office, edit, {"title": made.title, "content": "x", "review_by": "2020-01-01", "active": "y"})
    assert "The review date cannot be in the past." in refused.get_data(as_text=True)

    handler = console("dept_a")
    page = handler.get("/admin/knowledge/new/").get_data(as_text=True)
    assert 'name="department_id"' not in page and 'name="office_id"' not in page and 'name="csrf_token"' in page
    assert submit(handler, "/admin/knowledge/new/", {"title": "市场监管局的条目", "content": "三日内答复。",
                                                      "department_id": str(world.departments["B"]),
                                                      "review_by": "", "active": "y"}).status_code == 302
    own = db_entry(world, "市场监管局的条目")
    assert own.department_id == world.departments["A"] and own.review_by == date(2027, 11, 16)
    assert "市场监管局的条目" in office.get("/admin/knowledge/").get_data(as_text=True)  # the window keeps it too
    assert made.title not in handler.get("/admin/knowledge/").get_data(as_text=True)

    other = console("dept_b")
    assert "市场监管局的条目" not in other.get("/admin/knowledge/").get_data(as_text=True)
    assert other.get(f"/admin/knowledge/edit/?id={own.id}").status_code == 404
    csrf = csrf_of(other.get("/admin/knowledge/").get_data(as_text=True))
    assert other.post(f"/admin/knowledge/edit/?id={own.id}", data={
        "csrf_token": csrf, "title": "改掉", "content": "改掉", "active": "y"}).status_code == 404
    assert other.post(f"/admin/knowledge/review/{own.id}", data={"csrf_token": csrf}).status_code == 404
    assert db_entry(world, "市场监管局的条目").version == 1

    reader = console("supervisor")
    listing = reader.get("/admin/knowledge/").get_data(as_text=True)
    assert made.title in listing and "/admin/knowledge/new/" not in listing and "/admin/knowledge/edit/" not in listing
    assert reader.get("/admin/knowledge/new/").status_code == 302  # Flask-Admin's answer to a list without forms
    assert reader.post(f"/admin/knowledge/review/{made.id}",
                       data={"csrf_token": csrf_of(listing)}).status_code == 404
    assert console("leader").get("/admin/knowledge/").status_code == 200

    admin = console("admin")
    root = str(entry_row(world, made.id).office_id)
    page = admin.get("/admin/knowledge/new/").get_data(as_text=True)
    assert 'name="office_id"' in page and 'name="department_id"' in page
    assert submit(admin, "/admin/knowledge/new/", {"title": "住建局的条目", "content": "x", "office_id": root,
                                                    "department_id": str(world.departments["C"]),
                                                    "active": "y"}).status_code == 302
    assert db_entry(world, "住建局的条目").department_id == world.departments["C"]
    assert world.client.get("/admin/knowledge/").status_code == 302  # the anonymous sign in first


def db_entry(world, title) -> KnowledgeEntry:
    with world.app.app_context():
        return db.session.scalar(sa.select(KnowledgeEntry).where(KnowledgeEntry.title == title))


def test_an_expired_entry_is_listed_for_its_owner_until_reviewed(world, console, clock):
    entry_id = add(world, "dept_a", title="失业保险金申领条件", content="营业执照变更。", service_items=[ITEM],
                   review_by=date(2026, 11, 17))
    add(world, "dept_b", title="人社局的旧条目", content="x", review_by=date(2026, 11, 17))
    clock.set(2026, 11, 19, 9)
    handler = console("dept_a")
    home = handler.get("/admin/").get_data(as_text=True)
    alert = re.search(r'id="knowledge-due">\s*<a class="alert-link" href="([^"]+)">([^<]+)</a>', home)
    assert alert and alert.group(2) == "Knowledge base entries due for review: 1"
    listing = handler.get(alert.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert 'id="knowledge-due-list"' in listing and "失业保险金申领条件" in listing and "人社局的旧条目" not in listing
    assert "Due for review" in listing
    assert 'id="knowledge-due"' not in console("supervisor").get("/admin/").get_data(as_text=True)
    no = at_department(world)
    assert titles(world, "dept_a", no) == []

    response = handler.post(f"/admin/knowledge/review/{entry_id}", data={"csrf_token": csrf_of(listing)})
    assert response.status_code == 302
    reviewed = entry_row(world, entry_id)
    assert reviewed.review_by == date(2027, 11, 19) and reviewed.version == 1
    assert reviewed.updated_by == world.users["dept_a"]
    assert 'id="knowledge-due"' not in handler.get("/admin/").get_data(as_text=True)
    assert 'id="knowledge-due-list"' not in handler.get("/admin/knowledge/").get_data(as_text=True)
    assert titles(world, "dept_a", no) == ["失业保险金申领条件"]


def test_the_case_page_offers_the_entries_and_the_reply_keeps_the_one_used(world, console):
    entry_id = add(world, "dept_a", title="营业执照变更材料清单", content="需提交：申请书、执照原件。" * 5,
                   service_items=[ITEM])
    no = at_department(world)
    handler = console("dept_a")
    page = handler.get(f"/admin/case/{no}").get_data(as_text=True)
    panel = re.search(r'<div class="knowledge-panel[^>]*id="knowledge-reply".*?</ul>', page, re.S).group(0)
    assert "营业执照变更材料清单" in panel and "Version 1" in panel
    assert ("需提交：申请书、执照原件。" * 5)[:60] + "…" in panel  # the excerpt; the whole text in <details>
    assert "<details>" in panel and "knowledge-insert" in panel
    assert " hidden" in panel  # the button waits for the script
    assert 'id="reply-knowledge_entry_id" name="knowledge_entry_id" value=""' in page
    assert re.search(r'<script nonce="[^"]+" src="/static/knowledge\.js', page)
    assert "knowledge-panel" not in console("office").get(f"/admin/case/{no}").get_data(as_text=True)  # no answer

    bad = handler.post(f"/admin/case/{no}/reply", data={"csrf_token": csrf_of(page), "content": "我改过的答复",
                                                       "knowledge_entry_id": "999999"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'id="reply-knowledge_entry_id-error"' in text and "我改过的答复" in text
    assert handler.post(f"/admin/case/{no}/reply", data={
        "csrf_token": csrf_of(page), "content": "我改过的答复", "knowledge_entry_id": str(entry_id)}).status_code == 302
    assert event_of(world, no, "reply").data["knowledge"] == {"id": entry_id, "version": 1,
                                                              "title": "营业执照变更材料清单"}
    assert "knowledge-panel" not in handler.get(f"/admin/case/{no}").get_data(as_text=True)  # nothing to answer now


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_insert_puts_the_text_in_the_box_and_names_the_entry(world, browser_page):
    entry_id = add(world, "dept_a", title="营业执照变更材料清单", content="需提交：申请书、执照原件。",
                   service_items=[ITEM])
    no = at_department(world)
    world.console("dept_a")
    page = browser_page
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "dept_a")
        page.goto(f"{server.url}/admin/case/{no}")
        page.fill("#reply-content", "您好！")
        page.click("#knowledge-reply .knowledge-insert")
        assert page.input_value("#reply-content") == "您好！\n\n需提交：申请书、执照原件。"
        assert page.input_value("#reply-knowledge_entry_id") == str(entry_id)
        page.fill("#reply-content", "您好！需提交申请书和执照原件，已为您办结。")
        page.click("#action-reply button[type=submit]")
        page.wait_for_selector(".case-status >> text=待审核")
    reply = event_of(world, no, "reply")
    assert reply.data["knowledge"]["id"] == entry_id and reply.note == "您好！需提交申请书和执照原件，已为您办结。"
