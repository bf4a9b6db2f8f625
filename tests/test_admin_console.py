"""The staff console over HTTP: sign-in, who may open what, department isolation, and working a case."""
from __future__ import annotations

import csv
import io
import re

import pytest
from flask_admin.contrib.sqla import ModelView
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wtforms.fields.core import UnboundField

from admin.base import neither_creates_nor_edits, routes_never_served
from tests.helpers import CONSOLE_PASSWORD, console_lists, examples, page_csrf, serves

QUEUE_URLS = ["/admin/queue-intake/", "/admin/queue-accepted/", "/admin/queue-in-progress/", "/admin/queue-review/",
              "/admin/queue-returned/", "/admin/queue-rectifying/", "/admin/queue-closed/", "/admin/queue-rejected/",
              "/admin/cases/"]


def listed(page: str, no: str) -> bool:
    """Whether a case appears as a row (a link to its page), not merely in the echoed search box."""
    return f'/admin/case/{no}"' in page or f'/admin/case/{no}?queue=' in page


def login(client, username, password, **extra):
    return client.post("/admin/login", data={"username": username, "password": password,
                                             "csrf_token": page_csrf(client, "/admin/login"), **extra})


def transferred_to(world, department="A", **filing):
    no = world.file(**filing)["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments[department])
    return no


def case_form(client, no, action, **fields):
    """Post an action form of the case page the way the browser does: with the page's CSRF token and version."""
    page = client.get(f"/admin/case/{no}").get_data(as_text=True)
    form = re.search(rf'<form method="post" action="/admin/case/{no}/{action}".*?</form>', page, re.S)
    assert form, f"no {action} form on the page"
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(0)).group(1)
    version = re.search(r'name="version" value="(\d+)"', form.group(0)).group(1)
    return client.post(f"/admin/case/{no}/{action}", data={"csrf_token": token, "version": version, **fields})


# --- sign-in ---------------------------------------------------------------------------------------------

def test_sign_in_and_out(world):
    client = world.app.test_client()
    assert client.get("/admin/").headers["Location"].startswith("/admin/login?next=/admin/")
    world.console("office")  # sets the password
    wrong = login(client, "office", "not the password")
    assert wrong.status_code == 401 and "用户名或密码不正确" in wrong.get_data(as_text=True)
    unknown = login(client, "nobody", "whatever")
    assert unknown.status_code == 401 and "用户名或密码不正确" in unknown.get_data(as_text=True)
    ok = login(client, "office", CONSOLE_PASSWORD, next="/admin/cases/")
    assert ok.status_code == 302 and ok.headers["Location"] == "/admin/cases/"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/logout").status_code == 405  # signing out is a POST with a CSRF token
    assert client.post("/admin/logout").status_code == 400
    out = client.post("/admin/logout", data={"csrf_token": page_csrf(client, "/admin/")})
    assert out.status_code == 302 and client.get("/admin/").status_code == 302


def test_inactive_users_cannot_sign_in(world):
    signed_in = world.console("dept_a")
    from tickets.db import db
    from tickets.models import User
    with world.app.app_context():
        db.session.get(User, world.users["dept_a"]).active = False
        db.session.commit()
    assert login(world.app.test_client(), "dept_a", CONSOLE_PASSWORD).status_code == 401
    assert signed_in.get("/admin/").status_code == 302  # a session already open ends too


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/",
                                    "javascript:alert(1)", "http:/evil.example", "/\t/evil.example",
                                    "/\u2028/evil.example", "/\x85/evil.example", "/\x7f/evil.example"])
def test_next_never_leaves_the_site(world, target):
    world.console("office")
    client = world.app.test_client()
    response = login(client, "office", CONSOLE_PASSWORD, next=target)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_repeated_failures_are_throttled(make_app):
    app = make_app(LOGIN_RATELIMIT="3/15 minutes")
    client = app.test_client()
    codes = [login(client, "office", "wrong").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    page = login(client, "office", "wrong").get_data(as_text=True)
    assert "请稍后再试" in page
    # another account from the same client still has its own budget
    assert login(client, "leader", "wrong").status_code == 401


# --- who may open what -----------------------------------------------------------------------------------

EXPECTED = {
    # view: roles that get 200; everyone else signed in gets 403
    "/admin/": {"admin", "office", "dept_a", "supervisor", "leader"},
    "/admin/queue-intake/": {"admin", "office", "supervisor", "leader"},
    "/admin/queue-accepted/": {"admin", "office", "supervisor", "leader"},
    "/admin/queue-rejected/": {"admin", "office", "supervisor", "leader"},
    "/admin/queue-returned/": {"admin", "office", "supervisor", "leader"},
    "/admin/queue-in-progress/": {"admin", "office", "dept_a", "supervisor", "leader"},
    "/admin/queue-review/": {"admin", "office", "dept_a", "supervisor", "leader"},
    "/admin/queue-rectifying/": {"admin", "office", "dept_a", "supervisor", "leader"},
    "/admin/queue-closed/": {"admin", "office", "dept_a", "supervisor", "leader"},
    "/admin/cases/": {"admin", "office", "dept_a", "supervisor", "leader"},
    "/admin/cases/export/csv/": {"admin", "office"},
}


def test_role_by_view_matrix(world):
    clients = {who: world.console(who) for who in ("admin", "office", "dept_a", "supervisor", "leader")}
    anonymous = world.app.test_client()
    for path, allowed in EXPECTED.items():
        response = anonymous.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path
        for who, client in clients.items():
            expected = 200 if who in allowed else 403
            assert client.get(path).status_code == expected, (path, who)


def test_menus_show_only_what_the_role_may_open(world):
    department = world.console("dept_a").get("/admin/").get_data(as_text=True)
    assert "/admin/queue-in-progress/" in department and "/admin/queue-intake/" not in department
    office = world.console("office").get("/admin/").get_data(as_text=True)
    assert "/admin/queue-intake/" in office


def test_case_page_actions_follow_role_and_state(world):
    no = transferred_to(world, "A")
    pages = {who: world.console(who).get(f"/admin/case/{no}").get_data(as_text=True)
             for who in ("office", "dept_a", "supervisor", "leader")}
    actions = {who: set(re.findall(rf'action="/admin/case/{no}/(\w+)"', page)) for who, page in pages.items()}
    # 我来办 (assign) for the department, which nobody there works yet; the office clerk who accepted it works it
    # already; a supervisor may always reassign
    assert actions["dept_a"] == {"record_contact", "return", "request_extension", "reply", "note", "assign"}
    # 并单 until a department answered; a citizen's deletion request, recorded until the case has ended for good
    assert actions["office"] == {"remind", "note", "merge", "request_anonymise"}
    assert actions["supervisor"] == {"remind", "note", "assign"}
    assert actions["leader"] == set() and "没有需要您处理的事项" in pages["leader"]
    # a form the role may not use is refused even if posted by hand
    leader = world.console("leader")
    refused = leader.post(f"/admin/case/{no}/remind", data={"csrf_token": page_csrf(leader, f"/admin/case/{no}")})
    assert refused.status_code == 403
    assert world.ticket("office", no)["supervision_level"] == 0


# --- department isolation ----------------------------------------------------------------------------------

def test_a_department_sees_nothing_of_another_departments_cases(world):
    mine = transferred_to(world, "A", phone="13911112222", description="甲部门的案件描述")
    theirs = transferred_to(world, "B", phone="13933334444", description="乙部门的保密描述")
    client = world.console("dept_a")
    for path in (p for p in QUEUE_URLS if "dept_a" in EXPECTED[p]):  # the queues a department may open
        page = client.get(path).get_data(as_text=True)
        assert not listed(page, theirs), path
    listing = client.get("/admin/cases/").get_data(as_text=True)
    assert listed(listing, mine) and not listed(listing, theirs)
    for term in (theirs, "139 3333 4444", "乙部门"):
        assert not listed(client.get("/admin/cases/", query_string={"search": term}).get_data(as_text=True), theirs)
    assert client.get(f"/admin/case/{theirs}").status_code == 404
    assert client.post(f"/admin/case/{theirs}/reply", data={
        "csrf_token": page_csrf(client, f"/admin/case/{mine}"), "content": "越权答复"}).status_code == 404
    assert client.get("/admin/cases/export/csv/").status_code == 403
    assert world.ticket("office", theirs)["status"] == "transferred"
    # the dashboard counts only its own cases
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert not listed(dashboard, theirs)


def test_phone_numbers_are_masked_in_lists_and_whole_for_the_handler(world):
    no = transferred_to(world, "A", phone="13911112222")
    office = world.console("office")
    assert "139****2222" in office.get("/admin/cases/").get_data(as_text=True)
    assert "13911112222" not in office.get("/admin/cases/").get_data(as_text=True)
    for client in (office, world.console("dept_a")):  # masked until asked for (查看完整号码, tests/test_privacy_access.py)
        page = client.get(f"/admin/case/{no}").get_data(as_text=True)
        assert "139****2222" in page and "13911112222" not in page and 'id="reveal-phone"' in page
        shown = client.post(f"/admin/case/{no}/whole-number", data={"csrf_token": page_csrf(client, f"/admin/case/{no}"),
                                                             "reason": "回访"})
        assert "13911112222" in shown.get_data(as_text=True)
    supervisor = world.console("supervisor").get(f"/admin/case/{no}").get_data(as_text=True)
    assert "139****2222" in supervisor and "13911112222" not in supervisor


# --- working a case ----------------------------------------------------------------------------------------

def test_the_whole_loop_in_the_console(world):
    no = world.file(description="<script>alert(1)</script> 办证难 😀 𠀀")["tracking_no"]
    office, department = world.console("office"), world.console("dept_a")
    page = office.get(f"/admin/case/{no}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 办证难 😀 𠀀" in page and "<script>alert(1)" not in page
    assert 'data-confirm="' in page  # 不予受理 asks first
    assert case_form(office, no, "accept", note="材料齐全").status_code == 302
    assert "受理：已完成" in office.get(f"/admin/case/{no}").get_data(as_text=True)
    assert case_form(office, no, "transfer", department_id=str(world.departments["A"]), working_days="3",
                     co_department_ids=[str(world.departments["C"])], instructions="请三日内答复").status_code == 302
    detail = world.ticket("office", no)
    assert detail["status"] == "transferred" and detail["co_department_ids"] == [world.departments["C"]]
    assert [d["working_days"] for d in detail["deadlines"] if d["kind"] == "handle"] == [3]
    assert case_form(department, no, "reply", content="已办结，请到三号窗口领取。").status_code == 302
    assert case_form(office, no, "approve").status_code == 302
    detail = world.ticket("office", no)
    assert detail["status"] == "closed"
    assert [e["action"] for e in detail["events"]] == ["file", "accept", "transfer", "reply", "approve"]
    assert detail["events"][1]["actor"] == "office"  # the console acts as the signed-in user


def test_bad_form_input_is_explained_in_chinese_and_kept(world):
    no = world.file()["tracking_no"]
    office = world.console("office")
    response = case_form(office, no, "reject", reason="   ")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "此项为必填项" in page
    case_form(office, no, "accept")
    response = case_form(office, no, "transfer", department_id="", working_days="abc", instructions="保留这段说明")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "保留这段说明" in page and "须为整数" in page
    assert world.ticket("office", no)["status"] == "accepted"


def test_a_stale_page_gets_a_conflict_and_keeps_the_text(world):
    no = world.file()["tracking_no"]
    office = world.console("office")
    page = office.get(f"/admin/case/{no}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    world.act("office", no, "accept")  # a colleague was quicker
    response = office.post(f"/admin/case/{no}/note", data={"csrf_token": token, "version": "1",
                                                           "content": "我写的备注"})
    assert response.status_code == 409 and "我写的备注" in response.get_data(as_text=True)
    response = office.post(f"/admin/case/{no}/reject", data={"csrf_token": token, "version": "1",
                                                             "reason": "我写的理由"})
    assert response.status_code == 409
    assert "我写的理由" in response.get_data(as_text=True)
    assert world.ticket("office", no)["status"] == "accepted"


def test_non_ascii_digits_in_forms_are_field_errors(world):
    no = world.file()["tracking_no"]
    office = world.console("office")
    case_form(office, no, "accept")
    response = case_form(office, no, "transfer", department_id="²", co_department_ids=["٣"])
    assert response.status_code == 422 and world.ticket("office", no)["status"] == "accepted"


def test_forms_need_the_csrf_token(world):
    no = world.file()["tracking_no"]
    office = world.console("office")
    assert office.post(f"/admin/case/{no}/accept", data={"version": "1"}).status_code == 400
    assert world.ticket("office", no)["status"] == "submitted"


# --- queues: sorting, search, filters, export -------------------------------------------------------------

def test_search_by_number_phone_and_text(world):
    first = world.file(phone="13911112222", description="营业执照补办太慢")["tracking_no"]
    second = world.file(phone="13933334444", description="社保转移办不了")["tracking_no"]
    office = world.console("office")

    def found(term):
        page = office.get("/admin/cases/", query_string={"search": term}).get_data(as_text=True)
        return {no for no in (first, second) if listed(page, no)}

    assert found(first) == {first} and found(first.lower()) == {first}
    assert found("139-1111-2222") == {first} and found("+86 139 3333 4444") == {second}
    assert found("社保") == {second} and found("100%_") == set()


def test_in_progress_is_sorted_by_deadline_and_colours_the_late(world, clock):
    later = transferred_to(world, "A")
    world.act("office", later, "remind")
    clock.advance(days=1)
    sooner_no = world.file()["tracking_no"]
    world.act("office", sooner_no, "accept")
    world.act("office", sooner_no, "transfer", department_id=world.departments["A"], working_days=1)
    office = world.console("office")
    page = office.get("/admin/queue-in-progress/").get_data(as_text=True)
    assert page.index(sooner_no) < page.index(later)
    assert "due-soon" in page and "due-overdue" not in page
    clock.advance(days=10)
    office = world.console("office")  # ten idle days ended the session
    page = office.get("/admin/queue-in-progress/").get_data(as_text=True)
    assert page.count("due-overdue") == 2
    assert page.count("contact-late") == 2  # neither department recorded its first contact: a mark, not a red row
    overdue = office.get("/admin/cases/?flt0_0=yes").get_data(as_text=True)
    assert listed(overdue, later) and listed(overdue, sooner_no)


def test_filters_by_department_type_and_status(world):
    a = transferred_to(world, "A", problem_type="too_slow")
    b = transferred_to(world, "B", problem_type="too_hard")
    submitted = world.file(problem_type="other")["tracking_no"]
    office = world.console("office")

    def shown(query):
        page = office.get("/admin/cases/?" + query).get_data(as_text=True)
        return {no for no in (a, b, submitted) if listed(page, no)}

    assert shown(f"flt0_1={world.departments['A']}") == {a}
    assert shown("flt0_2=too_hard") == {b}
    assert shown("flt0_3=submitted") == {submitted}
    assert shown("flt0_1=abc") == {a, b, submitted}  # an invalid value is ignored with a message, never a 500
    assert shown("flt0_1=%C2%B2") == {a, b, submitted}  # '²' is a digit to Python, not a number
    assert office.get("/admin/cases/?flt0_2=%00").status_code == 400  # PostgreSQL refuses NUL in text
    assert office.get("/admin/cases/?search=a%00b").status_code == 400


def test_csv_export_for_the_office(world):
    no = world.file(name="=HYPERLINK(\"http://x\")", phone="13911112222")["tracking_no"]
    office = world.console("office")
    response = office.get("/admin/cases/export/csv/")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    header, row = rows[0], next(r for r in rows if r and r[0] == no)
    assert "受理编号" in header
    assert row[header.index("群众姓名")].startswith("'=")  # a spreadsheet will not run it
    assert row[header.index("联系电话")] == "139****2222"  # whole numbers only when asked: test_admin_export.py


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(search=st.text(max_size=40), filter_value=st.text(max_size=20), page=st.text(max_size=6),
       sort=st.text(max_size=4))
def test_queue_parameters_never_break_the_page(world, search, filter_value, page, sort):
    client = world.__dict__.setdefault("_office", world.console("office"))
    response = client.get("/admin/cases/", query_string={"search": search, "flt0_1": filter_value,
                                                         "flt1_2": filter_value, "page": page, "sort": sort})
    assert response.status_code in (200, 302, 400)


def test_only_lists_that_neither_create_nor_edit_have_forms_without_fields(app):
    """A read-only list gets an empty form (admin/base.py `ConsoleModelView.get_form`); a view that creates or edits,
    for every user or per user, keeps its model's form with its fields."""

    def fields(form_class) -> set[str]:
        return {name for name in dir(form_class) if isinstance(getattr(form_class, name), UnboundField)}

    views = console_lists(app)
    read_only = [view for view in views if neither_creates_nor_edits(view)]
    assert read_only and len(read_only) < len(views)
    for view in views:
        if view in read_only:
            assert fields(view._create_form_class) == fields(view._edit_form_class) == set(), view.endpoint
        else:
            assert fields(view._create_form_class) or fields(view._edit_form_class), view.endpoint


def test_a_list_has_only_the_routes_someone_can_use(world):
    """Flask-Admin makes every route of a model view whatever the view allows (a switched-off one redirects to the
    list); the console's lists make only those someone can use (admin/base.py `routes_never_served`). Another answers
    404, and a switch decided per user (a property) keeps its route."""
    app, admin = world.app, world.console("admin")
    views = console_lists(app)
    every = {name for _url, name, _methods in ModelView._urls}
    made = set()
    for view in views:
        never = routes_never_served(view)
        assert {name for name in every if serves(app, view, name)} == every - never, view.endpoint
        made |= every - never
    assert {"index_view", "create_view", "edit_view", "export"} <= made
    assert len(list(app.url_map.iter_rules())) < 220  # 360 with every route of every list
    queue, departments, knowledge = (next(v for v in views if v.endpoint == name)
                                     for name in ("queue_intake", "departments", "knowledge"))
    assert {"create_view", "edit_view", "delete_view", "details_view", "action_view"} <= routes_never_served(queue)
    assert admin.get("/admin/queue-intake/new/").status_code == 404
    assert admin.post("/admin/queue-intake/delete/", data={"id": "1"}).status_code == 404
    assert admin.post("/admin/queue-intake/action/", data={"action": "delete", "rowid": "1"}).status_code == 404
    assert admin.get("/admin/departments/new/").status_code == 200
    assert serves(app, departments, "edit_view") and not serves(app, departments, "delete_view")
    assert serves(app, knowledge, "create_view")  # can_create is the signed-in user's
    assert serves(app, queue, "export")  # can_export too


def _scaffolding(view) -> dict:
    """What Flask-Admin derived for a list when it was made, in comparable form."""
    def fields(form_class):
        return sorted(name for name, value in vars(form_class).items() if isinstance(value, UnboundField)) \
            if form_class is not None else None

    return {
        "list": [(name, str(label)) for name, label in view._list_columns],
        "sortable": sorted(view._sortable_columns),
        "export": [(name, str(label)) for name, label in view._export_columns],
        "details": [(name, str(label)) for name, label in getattr(view, "_details_columns", [])],
        "search": view._search_supported,
        "filters": [(type(f).__name__, str(f.name), str(f.operation())) for f in view._filters or ()],
        "forms": [fields(getattr(view, key, None)) for key in ("_create_form_class", "_edit_form_class",
                                                               "_delete_form_class", "_action_form_class")],
        "choices": view._column_choices_map,
        "actions": [(name, str(text)) for name, text in view._actions],
        "action_data": {name: (method.__func__, str(text), str(desc) if desc else desc)
                        for name, (method, text, desc) in view._actions_data.items()},
    }


def test_a_list_made_from_an_earlier_apps_scaffolding_is_what_flask_admin_makes_for_it(make_app):
    """The tests make each console list's scaffolding once per process (tests/conftest.py
    `share_console_scaffolding`): a second app's lists, built with another language and other limits, must hold what
    Flask-Admin's own `_refresh_cache` and `init_actions` derive for them, with their actions bound to them."""
    from flask_admin.actions import ActionsMixin
    from flask_admin.model.base import BaseModelView

    if not hasattr(BaseModelView, "own_refresh_cache"):
        pytest.skip("this run scaffolds every app's console itself (BANJIE_TEST_SCAFFOLD_EACH_APP=1)")
    make_app()
    app = make_app(BABEL_DEFAULT_LOCALE="en", RATELIMIT_PUBLIC="off")
    views = console_lists(app)
    assert len(views) > 20 and sum(bool(view._actions) for view in views) > 5
    with app.test_request_context():
        for view in views:
            shared = _scaffolding(view)
            assert all(method.__self__ is view for method, _text, _desc in view._actions_data.values())
            BaseModelView.own_refresh_cache(view)
            ActionsMixin.own_init_actions(view)
            assert _scaffolding(view) == shared, view.endpoint
