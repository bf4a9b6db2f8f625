"""The access log: every showing of a whole number and every export with whole numbers is one line (who, when, which
case, why); masked views, lists and exports write none; the reason is asked once per case and sign-in of everyone
but the case's handler; roles that may not see whole numbers never get one; administrators search the log."""
from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
import sqlalchemy as sa

from tests.browser import LiveServer, shot, sign_in
from tests.helpers import START, examples, page_csrf
from tickets.db import db
from tickets.models import AccessLog, User
from tickets.privacy import access as privacy

PHONE, WHOLE, MASKED = "13911112222", "+8613911112222", "139****2222"


def lines(world) -> list[dict]:
    with world.app.app_context():
        rows = db.session.scalars(sa.select(AccessLog).order_by(AccessLog.id))
        return [{"kind": r.kind, "user_id": r.user_id, "actor": r.actor, "ticket_id": r.ticket_id, "reason": r.reason,
                 "count": r.count, "detail": r.detail, "at": r.at} for r in rows]


def ticket_id(world, no) -> int:
    with world.app.app_context():
        from tickets.models import Ticket
        return db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == no))


def message(world, lazy) -> str:
    """A message as the console shows it (Chinese once the catalog has it)."""
    with world.app.test_request_context("/admin/"):
        return str(lazy)


def reveal(client, no, **form):
    return client.post(f"/admin/case/{no}/whole-number", data={"csrf_token": page_csrf(client, f"/admin/case/{no}"), **form})


def transferred_to_a(world, phone=PHONE) -> str:
    """Accepted by `office` (its owner: the window's handler) and transferred to department A, nobody there on it."""
    no = world.file(phone=phone)["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    return no


def without_api_lines(world) -> int:
    """The lines so far (the API answers of the set-up are lines too: their answers show the whole number)."""
    return len(lines(world))


def test_the_handler_sees_the_whole_number_at_once_and_each_showing_is_one_line(world):
    no = transferred_to_a(world)
    world.act("dept_a", no, "assign")  # 我来办: dept_a's handler now has the case
    before = without_api_lines(world)
    for who in ("office", "dept_a"):  # the window's owner and the department's handler
        client = world.console(who)
        page = client.get(f"/admin/case/{no}").get_data(as_text=True)
        assert MASKED in page and PHONE not in page and 'id="reveal-phone"' in page and 'id="reveal-reason"' not in page
        for _ in range(2):
            shown = reveal(client, no)
            assert shown.status_code == 200 and f'id="case-phone">{PHONE}<' in shown.get_data(as_text=True)
    new = lines(world)[before:]
    assert [(line["kind"], line["user_id"], line["reason"]) for line in new] == [
        ("view_phone", world.users["office"], None)] * 2 + [("view_phone", world.users["dept_a"], None)] * 2
    assert all(line["ticket_id"] == ticket_id(world, no) and line["detail"]["handler"] is True
               and line["detail"]["via"] == "console" and line["at"] == START for line in new)


def test_anyone_else_gives_a_reason_once_per_case_and_sign_in(world):
    no = transferred_to_a(world)
    other = transferred_to_a(world, phone="13933334444")
    before = without_api_lines(world)
    admin = world.console("admin")  # allowed, but not the case's handler
    page = admin.get(f"/admin/case/{no}").get_data(as_text=True)
    assert 'id="reveal-reason"' in page and PHONE not in page
    empty = reveal(admin, no)
    text = empty.get_data(as_text=True)
    assert empty.status_code == 422 and PHONE not in text
    assert message(world, privacy.REASON_REQUIRED) in text and 'id="reveal-error"' in text
    for bad in ("x", "长" * 201):
        refused = reveal(admin, no, reason=bad)
        assert refused.status_code == 422 and message(world, privacy.REASON_LENGTH) in refused.get_data(as_text=True)
    assert len(lines(world)) == before  # nothing shown, nothing logged
    assert reveal(admin, no, reason="  回访群众 核实诉求 ").status_code == 200
    # asked once: the page no longer asks, the next showing keeps the reason given
    assert 'id="reveal-reason"' not in admin.get(f"/admin/case/{no}").get_data(as_text=True)
    again = reveal(admin, no)
    assert again.status_code == 200 and PHONE in again.get_data(as_text=True)
    # another case asks again, and so does a new sign-in
    assert reveal(admin, other).status_code == 422
    assert 'id="reveal-reason"' in world.console("admin").get(f"/admin/case/{no}").get_data(as_text=True)
    new = lines(world)[before:]
    assert [(line["kind"], line["user_id"], line["ticket_id"], line["reason"]) for line in new] == [
        ("view_phone", world.users["admin"], ticket_id(world, no), "回访群众 核实诉求")] * 2
    assert "handler" not in new[0]["detail"]
    # a handler of the lead department who does not have the case gives a reason too
    dept_a = world.console("dept_a")
    assert reveal(dept_a, no).status_code == 422
    assert reveal(dept_a, no, reason="先行联系").status_code == 200


@pytest.mark.parametrize("who", ["supervisor", "leader", "dept_c"])
def test_who_may_not_see_whole_numbers_never_gets_one(world, who):
    no = transferred_to_a(world)
    if who == "dept_c":  # a co-department sees the case, not the whole number
        no = world.file(phone=PHONE)["tracking_no"]
        world.act("office", no, "accept")
        world.act("office", no, "transfer", department_id=world.departments["A"],
                  co_department_ids=[world.departments["C"]])
        with world.app.app_context():
            user = User(username="dept_c", role="department", department_id=world.departments["C"])
            db.session.add(user)
            db.session.commit()
            world.users["dept_c"] = user.id
    before = without_api_lines(world)
    client = world.console(who)
    page = client.get(f"/admin/case/{no}")
    assert page.status_code == 200 and MASKED in page.get_data(as_text=True)
    assert 'id="reveal-phone"' not in page.get_data(as_text=True)
    assert reveal(client, no, reason="想看看").status_code == 403
    slip = PdfReader(io.BytesIO(client.get(f"/admin/case/{no}/slip.pdf").get_data()))
    assert MASKED in "".join(p.extract_text() for p in slip.pages)
    assert len(lines(world)) == before


def test_a_handler_of_another_department_cannot_reveal_its_case(world):
    no = transferred_to_a(world)
    before = without_api_lines(world)
    dept_b = world.console("dept_b")
    token = page_csrf(dept_b, "/admin/")
    assert dept_b.post(f"/admin/case/{no}/whole-number", data={"csrf_token": token, "reason": "看看"}).status_code == 404
    assert world.get("dept_b", f"/api/v1/staff/tickets/{no}").status_code == 404
    assert len(lines(world)) == before


def test_masked_views_lists_and_exports_write_no_line(world):
    no = transferred_to_a(world)
    before = without_api_lines(world)
    office = world.console("office")
    assert no in office.get(f"/admin/cases/?search={PHONE}").get_data(as_text=True)  # found by the number typed
    for path in (f"/admin/case/{no}", "/admin/cases/", "/admin/sms/",
                 f"/admin/case/{no}/slip.pdf", "/admin/cases/export/csv/", f"/admin/cases/export/csv/?phones=full"):
        response = office.get(path)
        assert response.status_code == 200, path
        body = response.get_data()
        if response.mimetype == "application/pdf":
            body = "".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages).encode()
        assert PHONE.encode() not in body, path  # ?phones=full asks for nothing now
    token = page_csrf(office, "/admin/cases/")
    unticked = office.post("/admin/cases/export/csv/full", data={"csrf_token": token, "reason": "不勾选"})
    assert unticked.status_code == 200 and PHONE not in unticked.get_data().decode("utf-8-sig")
    assert world.get("office", "/api/v1/staff/tickets").status_code == 200
    assert world.ticket("supervisor", no)["phone"] == MASKED  # the API masks for who may not see it: no line
    assert len(lines(world)) == before


def test_the_staff_api_logs_each_answer_with_the_whole_number(world):
    no = transferred_to_a(world)
    before = without_api_lines(world)
    assert world.ticket("office", no)["phone"] == WHOLE
    answer = world.act("dept_a", no, "note", content="已电话联系")
    assert answer["phone"] == WHOLE
    key = {"Idempotency-Key": "note-once-1"}
    first = world.client.post(f"/api/v1/staff/tickets/{no}/note", json={"content": "再次联系"},
                              headers={**world.headers("dept_a"), **key})
    replayed = world.client.post(f"/api/v1/staff/tickets/{no}/note", json={"content": "再次联系"},
                                 headers={**world.headers("dept_a"), **key})
    assert first.status_code == replayed.status_code == 200 and replayed.headers.get("Idempotent-Replayed") == "true"
    new = lines(world)[before:]
    assert [(line["kind"], line["user_id"], line["detail"]["via"]) for line in new] == [
        ("view_phone", world.users["office"], "api")] + [("view_phone", world.users["dept_a"], "api")] * 3


def test_a_repeated_request_shows_the_number_as_the_caller_may_see_it_now(world):
    """An Idempotency-Key's kept answer is the case as it was: a department that led the case then, and is only a
    co-department now, gets the number masked on a repeat, and no line says it saw it."""
    no = transferred_to_a(world)
    key = {**world.headers("dept_a"), "Idempotency-Key": "note-a-1"}
    first = world.client.post(f"/api/v1/staff/tickets/{no}/note", json={"content": "已联系"}, headers=key)
    assert first.status_code == 200 and first.get_json()["phone"] == WHOLE
    world.act("dept_a", no, "return", reason="不属于本部门职责范围")
    world.act("office", no, "transfer", department_id=world.departments["B"], co_department_ids=[world.departments["A"]])
    assert world.ticket("dept_a", no)["phone"] == MASKED
    before = len(lines(world))
    repeated = world.client.post(f"/api/v1/staff/tickets/{no}/note", json={"content": "已联系"}, headers=key)
    assert repeated.status_code == 200 and repeated.headers.get("Idempotent-Replayed") == "true"
    assert repeated.get_json()["phone"] == MASKED and WHOLE not in repeated.get_data(as_text=True)
    assert lines(world)[before:] == []


def test_a_repeated_request_after_anonymisation_answers_from_the_anonymised_case(world, clock):
    """The kept answer held the name and number anonymising replaced for good: a repeat is answered from the case as
    it is now, with neither, and no line of a showing."""
    world.app.config["IDEMPOTENCY_KEY_HOURS"] = 24 * 10  # kept past the survey, which the case waits for (8 days)
    no = world.file(phone=PHONE, name="李四")["tracking_no"]
    key = {**world.headers("office"), "Idempotency-Key": "accept-once-1"}
    first = world.client.post(f"/api/v1/staff/tickets/{no}/accept", json={}, headers=key)
    assert first.status_code == 200 and first.get_json()["phone"] == WHOLE and first.get_json()["citizen_name"] == "李四"
    world.act("office", no, "resolve", content="已办结。")
    clock.advance(days=8)  # its survey closed: the case has ended, it may be anonymised
    world.act("office", no, "anonymise", reason="反映人申请删除个人信息")
    before = len(lines(world))
    repeated = world.client.post(f"/api/v1/staff/tickets/{no}/accept", json={}, headers=key)
    assert repeated.status_code == 200 and repeated.headers.get("Idempotent-Replayed") == "true"
    body = repeated.get_data(as_text=True)
    assert WHOLE not in body and PHONE not in body and "李四" not in body
    assert repeated.get_json()["citizen_name"] == repeated.get_json()["phone"] == "已匿名化"
    assert lines(world)[before:] == []


def test_an_anonymised_case_has_no_number_to_show_and_no_showing_to_log(world, clock):
    no = world.file(phone=PHONE)["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "resolve", content="已办结。")
    clock.advance(days=8)  # its survey closed: the case has ended, it may be anonymised
    world.act("office", no, "anonymise", reason="反映人申请删除个人信息")
    before = len(lines(world))
    assert world.ticket("office", no)["phone"] == "已匿名化"
    assert reveal(world.console("office"), no).status_code == 403
    assert lines(world)[before:] == []


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=st.text(max_size=12) | st.dates().map(str), until=st.text(max_size=12) | st.dates().map(str))
@example(since="0001-01-01", until="9999-12-31")
@example(since="1999-12-31", until="2101-01-01")
def test_the_log_search_reads_any_date_or_says_it_cannot(world, since, until):
    """Any text in the date fields, and any day of the calendar (the first and the last among them, which moved
    between time zones or a day later overflow): the page, with a message for a date it cannot use, never a 500 (a
    NUL character is a 400 anywhere, tickets/http.py)."""
    page = world.console("admin").get("/admin/access-log/", query_string={"since": since, "until": until})
    assert page.status_code == (400 if "\x00" in since + until else 200)


def test_an_export_with_whole_numbers_is_a_choice_with_a_reason_and_one_line(world):
    transferred_to_a(world)
    world.file(phone="13933334444")
    before = without_api_lines(world)
    office = world.console("office")
    page = office.get("/admin/cases/?search=13933334444").get_data(as_text=True)
    form = re.search(r'<form method="post" action="([^"]+)" id="export-full-form"', page)
    assert form and 'name="full_phones"' in page
    action = form.group(1).replace("&amp;", "&")
    token = page_csrf(office, "/admin/cases/")
    refused = office.post(action, data={"csrf_token": token, "full_phones": "y", "reason": ""})
    assert refused.status_code == 302 and "/admin/cases/" in refused.headers["Location"]
    assert message(world, privacy.REASON_REQUIRED) in office.get(refused.headers["Location"]).get_data(as_text=True)
    assert len(lines(world)) == before
    exported = office.post(action, data={"csrf_token": token, "full_phones": "y", "reason": "核对回访名单"})
    rows = list(csv.reader(io.StringIO(exported.get_data().decode("utf-8-sig"))))
    assert exported.status_code == 200 and [r[rows[0].index("联系电话")] for r in rows[1:]] == ["13933334444"]
    whole = office.post("/admin/cases/export/csv/full", data={"csrf_token": token, "full_phones": "y", "reason": "月度核对"})
    assert PHONE in whole.get_data().decode("utf-8-sig")
    new = lines(world)[before:]
    assert [(line["kind"], line["user_id"], line["reason"], line["count"], line["ticket_id"]) for line in new] == [
        ("export", world.users["office"], "核对回访名单", 1, None), ("export", world.users["office"], "月度核对", 2, None)]
    assert new[0]["detail"] == {"what": "cases", "filters": {"search": True}}  # that a search ran, never its term
    assert "13933334444" not in repr(new)


def test_no_line_of_the_log_holds_a_number_typed_into_its_reason_or_filters(world):
    """The log holds no numbers (docs/privacy.md): a number typed into the reason for a showing or an export, or
    carried in a list's filter, is masked as the deletion request's reason is; the log's page shows none."""
    number = "13912345678"
    filed = world.file(name="欧阳明月", phone=number)
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    admin = world.console("admin")  # may see it, not the handler: asked a reason
    shown = admin.post(f"/admin/case/{no}/whole-number",
                       data={"csrf_token": page_csrf(admin, f"/admin/case/{no}"), "reason": f"回拨{number}核实诉求"})
    assert shown.status_code == 200
    office = world.console("office")
    exported = office.post(f"/admin/cases/export/csv/full?flt0_0=139%201234%205678", data={
        "csrf_token": page_csrf(office, "/admin/cases/"), "full_phones": "y", "reason": f"核对１３９－１２３４－５６７８等号码"})
    assert exported.status_code == 200
    world.act("office", no, "resolve", content="已办结。")
    rated = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 1})
    assert rated.status_code == 200  # the survey answered: the case has ended
    world.act("office", no, "anonymise", reason=f"反映人{number}申请删除个人信息")
    with world.app.app_context():
        lines = db.session.execute(sa.select(AccessLog.kind, AccessLog.reason, AccessLog.detail)).all()
    reasons = {kind: reason for kind, reason, _ in lines if reason}
    assert reasons == {"view_phone": "回拨***核实诉求", "export": "核对***等号码", "anonymise": "反映人***申请删除个人信息"}
    assert not any(re.search(r"1\s?3\s?9", str(detail)) for _, _, detail in lines), lines
    page = admin.get("/admin/access-log/").get_data(as_text=True)
    assert number not in page and "回拨***核实诉求" in page


@pytest.mark.parametrize("who", ["dept_a", "supervisor", "leader"])
def test_only_who_sees_whole_numbers_exports_them(world, who):
    transferred_to_a(world)
    before = without_api_lines(world)
    client = world.console(who)
    token = page_csrf(client, "/admin/")
    response = client.post("/admin/cases/export/csv/full", data={"csrf_token": token, "full_phones": "y",
                                                                  "reason": "想导出"})
    assert response.status_code == 403 and len(lines(world)) == before


def test_the_evaluation_export_with_identity_is_logged(make_app, tmp_path):
    for identity in (False, True):
        app = make_app(EVALUATION_EXPORT_IDENTITY=identity)
        result = app.test_cli_runner().invoke(args=["evaluation", "export", "2026-11", "-o", str(tmp_path / "e.jsonl")])
        assert result.exit_code == 0, result.output
        with app.app_context():
            found = [(r.kind, r.actor, r.count, r.detail) for r in db.session.scalars(sa.select(AccessLog))]
        assert found == ([("export", "cli", 0, {"what": "evaluation", "filters": {"month": "2026-11", "office": "root"}})]
                         if identity else [])


def test_administrators_search_the_log(world, clock):
    no, other = transferred_to_a(world), transferred_to_a(world, phone="13933334444")
    with world.app.app_context():
        db.session.execute(sa.delete(AccessLog))
        office, admin = (db.session.get(User, world.users[name]) for name in ("office", "admin"))
        first, second = ticket_id(world, no), ticket_id(world, other)
        for day in range(1, 31):  # one showing a day through November, alternately by office and admin
            who = office if day % 2 else admin
            privacy.record(db.session, "view_phone", user=who, ticket_id=first if day % 3 else second,
                           reason=f"理由{day}", at=START.replace(day=day, hour=10))
        for day in range(1, 31):  # 60 lines: two pages
            privacy.record(db.session, "citizen_export", actor="citizen", ticket_id=second,
                           at=START.replace(day=day, hour=11))
        privacy.record_export(db.session, user=office, what="cases", count=7, filters={}, reason="导出")
        db.session.commit()
    client = world.console("admin")

    def found(**args):
        page = client.get("/admin/access-log/", query_string=args)
        assert page.status_code == 200
        return re.findall(r'<td class="access-reason">([^<]*)</td>', page.get_data(as_text=True))

    first_page = found()
    assert len(first_page) == 50 and first_page[:3] == ["—", "理由30", "—"]  # newest first
    assert len(found(page=2)) == 11 and found(page=3) == []
    assert found(user=world.users["office"], kind="view_phone") == [f"理由{d}" for d in range(29, 0, -2)]
    assert found(case=no.lower(), kind="view_phone", since="2026-11-10", until="2026-11-14") == [
        "理由14", "理由13", "理由11", "理由10"]
    assert found(kind="citizen_export", since="2026-11-30") == ["—"]
    assert found(kind="nonsense", user="x", since="2026-13-01")  # bad values are left out, with a message, not a 500
    menu = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/access-log/"' in menu and PHONE not in client.get("/admin/access-log/").get_data(as_text=True)


@pytest.mark.parametrize("who", ["office", "dept_a", "supervisor", "leader"])
def test_only_administrators_open_the_log(world, who):
    client = world.console(who)
    assert client.get("/admin/access-log/").status_code == 403
    assert 'href="/admin/access-log/"' not in client.get("/admin/").get_data(as_text=True)
    anonymous = world.app.test_client().get("/admin/access-log/")
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_revealing_a_number_in_the_browser_asks_a_reason_once_and_leaves_a_line_admins_see(world, browser_page):
    page = browser_page
    no = transferred_to_a(world)
    for who in ("office", "admin"):
        world.console(who)  # gives the account its test password
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "admin")
        page.goto(f"{server.url}/admin/case/{no}")
        assert page.locator("#case-phone").inner_text() == MASKED
        page.click("#reveal-phone-button")  # no reason: a message, nothing shown
        page.wait_for_selector("#reveal-error")
        assert page.locator("#case-phone").inner_text() == MASKED
        page.fill("#reveal-reason", "回访群众")
        page.click("#reveal-phone-button")
        page.wait_for_selector(".case-phone-full")
        assert page.locator("#case-phone").inner_text() == PHONE
        shot(page, "privacy-01-revealed")
        page.goto(f"{server.url}/admin/case/{no}")
        assert page.locator("#reveal-reason").count() == 0  # asked once per case and sign-in
        page.goto(f"{server.url}/admin/access-log/")
        row = page.locator("#access-log tbody tr").first
        assert "回访群众" in row.inner_text() and no in row.inner_text()
        shot(page, "privacy-02-access-log")
