"""The console's forms hold staff-typed text to the API's one definition of a text field (tickets/validation.py `text`).

Every form that saves free text refuses a control character (and what else `validation.text` refuses) with its Chinese
message on the page, shows the form again with everything that was typed, and saves nothing; a normal Chinese text
with an emoji and a CJK Extension B character is saved exactly as typed. (A NUL is refused earlier, for every form, by
tickets/http.py's `reject_nul`: see tests/test_hostile_input.py.)
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

import pytest
import sqlalchemy as sa

from escalation.models import CalendarDay, CalendarYear
from notify.models import SmsTemplate
from notify.subscriptions import WebhookSubscription
from tickets import offices
from tickets.db import db
from tickets.models import (AccessLog, ApiToken, Department, DispatchRule, Event, KnowledgeEntry, Office, SavedFilter,
                            ServiceItem, User)
from tickets.validation import FieldError, text

from helpers import page_csrf

STORED = "包含无法保存的字符。"  # validation.text's message for what it refuses, as the console says it
CONTROL = "\x01"


@pytest.fixture
def app(make_app):
    return make_app()


def run(world, work):
    with world.app.app_context():
        return work()


def root_id(world) -> int:
    return run(world, lambda: offices.root_id(db.session))


def rows(world, *models) -> list:
    """Every row of these tables, as plain tuples: what "nothing saved" compares."""
    def read():
        found = []
        for model in models:
            columns = list(sa.inspect(model).columns)
            found.append(sorted(map(tuple, db.session.execute(sa.select(*columns)).all()), key=repr))
        return found
    return run(world, read)


# --- what each form needs -----------------------------------------------------------------------------------------

def a_service_item(world) -> int:
    def make():
        item = ServiceItem(name="社保卡补办", code="SB-001", active=True)
        db.session.add(item)
        db.session.commit()
        return item.id
    return run(world, make)


def a_child_office(world) -> int:
    def make():
        office = offices.create_office(db.session, code="c9", name="东湖县办不成事窗口", level="county",
                                       parent_code=db.session.get(Office, offices.root_id(db.session)).code)
        db.session.commit()
        return office.id
    return run(world, make)


def an_entry(world) -> int:
    console = world.console("office")
    response = console.post("/admin/knowledge/new/", data={
        "title": "答复群众的基本格式", "content": "您好！经核实：……", "service_items": "", "review_by": "",
        "active": "y", "csrf_token": page_csrf(console, "/admin/knowledge/new/")})
    assert response.status_code == 302, response.get_data(as_text=True)
    return run(world, lambda: db.session.scalar(sa.select(KnowledgeEntry.id)))


def a_case(world, accepted=True) -> str:
    no = world.file()["tracking_no"]
    if accepted:
        world.act("office", no, "accept")
    return no


def transferred_to_a(world) -> str:
    no = a_case(world)
    world.act("office", no, "transfer", department_id=world.departments["A"])
    return no


@dataclass
class Form:
    """One console form: who fills it in, where, with which good values, and which of them are free text."""

    name: str
    who: str
    path: Callable            # (world, setup) -> the form's address (its page and where it posts)
    values: Callable          # (world, setup) -> a good filling of every field
    texts: tuple              # the free-text fields
    tables: tuple             # what it writes to (nothing may change when it refuses)
    setup: Callable = lambda world: None
    page: Callable | None = None  # (world, setup) -> the page that shows the form, when it is not `path`
    follow: bool = False      # the form answers with a redirect to the page that shows it again


def department_values(world, _setup):
    return {"code": "Z9", "name": "教育局", "office_id": str(root_id(world)), "supervisor_name": "李督",
            "supervisor_phone": "139 0000 0003", "leader_name": "王领", "leader_phone": "139 0000 0004", "active": "y"}


def user_values(world, _setup):
    return {"username": "zhang.san", "display_name": "张三（窗口）", "role": "office", "office_id": str(root_id(world)),
            "department_id": "", "phone": "", "active": "y", "new_password": "a-good-password-1"}


FORMS = [
    Form("department new", "admin", lambda w, s: "/admin/departments/new/", department_values,
         ("code", "name", "supervisor_name", "leader_name"), (Department,)),
    Form("department edit", "admin", lambda w, s: f"/admin/departments/edit/?id={w.departments['A']}",
         lambda w, s: {**department_values(w, s), "code": "A", "name": "市场监督管理局"},
         ("code", "name", "supervisor_name", "leader_name"), (Department,)),
    Form("service item new", "office", lambda w, s: "/admin/service-items/new/",
         lambda w, s: {"name": "营业执照变更", "code": "YZ-002", "department_id": str(w.departments["A"]), "active": "y"},
         ("name", "code"), (ServiceItem,)),
    Form("service item edit", "office", lambda w, s: f"/admin/service-items/edit/?id={s}",
         lambda w, s: {"name": "社保卡补办（改）", "code": "SB-001", "department_id": "", "active": "y"},
         ("name", "code"), (ServiceItem,), setup=a_service_item),
    Form("user new", "admin", lambda w, s: "/admin/users/new/", user_values, ("username", "display_name"), (User,)),
    Form("user edit", "admin", lambda w, s: f"/admin/users/edit/?id={w.users['leader']}",
         lambda w, s: {**user_values(w, s), "username": "leader", "role": "leader", "new_password": ""},
         ("username", "display_name"), (User,)),
    Form("office new", "admin", lambda w, s: "/admin/offices/new/",
         lambda w, s: {"code": "c8", "name": "西山县办不成事窗口", "level": "county", "parent_id": str(root_id(w)),
                       "area_code": "330102000000", "active": "y"},
         ("code", "name", "area_code"), (Office,)),
    Form("office edit", "admin", lambda w, s: f"/admin/offices/edit/?id={s}",
         lambda w, s: {"code": "c9", "name": "东湖县办不成事窗口", "level": "county", "parent_id": str(root_id(w)),
                       "area_code": "", "active": "y"},
         ("code", "name", "area_code"), (Office,), setup=a_child_office),
    Form("knowledge new", "office", lambda w, s: "/admin/knowledge/new/",
         lambda w, s: {"title": "退回件的答复", "content": "您好！\r\n经核实：……", "service_items": "", "review_by": "",
                       "active": "y"},
         ("title", "content"), (KnowledgeEntry,)),
    Form("knowledge edit", "office", lambda w, s: f"/admin/knowledge/edit/?id={s}",
         lambda w, s: {"title": "答复群众的基本格式", "content": "您好！\r\n经核实：……办理结果：……", "service_items": "",
                       "review_by": "", "active": "y"},
         ("title", "content"), (KnowledgeEntry,), setup=an_entry),
    Form("API token", "admin", lambda w, s: "/admin/api-tokens/issue/",
         lambda w, s: {"user_id": str(w.users["office"]), "label": "12345 热线平台", "scope": ""}, ("label",), (ApiToken,)),
    Form("SMS template", "admin", lambda w, s: "/admin/sms-templates/closed",
         lambda w, s: {"body": "您反映的事项（{{ tracking_no }}）已办结：{{ reply|clip(40) }}"}, ("body",), (SmsTemplate,)),
    Form("dispatch rule", "office", lambda w, s: "/admin/dispatch/edit",
         lambda w, s: {"office_id": str(root_id(w)), "scope": "service_item", "value": "营业执照变更",
                       "department_id": str(w.departments["A"])}, ("value",), (DispatchRule,)),
    Form("calendar year", "admin", lambda w, s: "/admin/calendar/2027",
         lambda w, s: {"notice": "国办发明电〔2026〕1号", "days": "2027-02-06,1,春节调休\r\n2027-02-08,0,春节"},
         ("notice", "days"), (CalendarYear, CalendarDay)),
    Form("saved filter", "office", lambda w, s: "/admin/cases/filters",
         lambda w, s: {"name": "本周受理", "query": "search=营业执照"}, ("name",), (SavedFilter,),
         page=lambda w, s: "/admin/cases/?search=营业执照", follow=True),
    Form("whole number's reason", "admin", lambda w, s: f"/admin/case/{s}/whole-number",
         lambda w, s: {"reason": "回访群众核实诉求"}, ("reason",), (AccessLog,), setup=transferred_to_a,
         page=lambda w, s: f"/admin/case/{s}"),
    Form("case note", "office", lambda w, s: f"/admin/case/{s}/note",
         lambda w, s: {"content": "已电话联系申请人。", "version": "2"}, ("content",), (Event,), setup=a_case,
         page=lambda w, s: f"/admin/case/{s}"),
    Form("case rejection", "office", lambda w, s: f"/admin/case/{s}/reject",
         lambda w, s: {"reason": "属于诉讼事项，请通过法院解决。", "version": "1"}, ("reason",), (Event,),
         setup=lambda w: a_case(w, accepted=False), page=lambda w, s: f"/admin/case/{s}"),
    Form("walk-in filing", "office", lambda w, s: "/admin/intake/",
         lambda w, s: {"channel": "window", "office_code": "", "name": "李四", "phone": "139 1234 5678",
                       "problem_type": "too_hard", "description": "开证明要跑三个部门。", "service_item": ""},
         ("name", "description", "service_item"), (Event,)),
    Form("webhook", "admin", lambda w, s: "/admin/webhooks/new",
         lambda w, s: {"url": "https://hooks.example.com/banjie", "event_types": "closed", "office_id": "",
                       "label": "市12345平台", "secret": ""}, ("label",), (WebhookSubscription,)),
]


def token_of(world, form: Form, client, setup) -> str:
    return page_csrf(client, form.page(world, setup) if form.page else form.path(world, setup))


def post(world, form: Form, client, setup, values, token):
    return client.post(form.path(world, setup), data={**values, "csrf_token": token}, follow_redirects=form.follow)


CASES = [pytest.param(form, name, id=f"{form.name}: {name}") for form in FORMS for name in form.texts]


@pytest.mark.parametrize("form, name", CASES)
def test_a_control_character_in_any_console_text_field_is_refused_on_the_page_and_nothing_is_saved(world, form, name):
    setup = form.setup(world)
    client = world.console(form.who)
    values = form.values(world, setup)
    bad = {**values, name: f"{values[name] or '窗口'}{CONTROL}甲"}
    token = token_of(world, form, client, setup)
    before = rows(world, *form.tables)
    response = post(world, form, client, setup, bad, token)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code in (200, 400, 422), (response.status_code, page[:2000])
    assert STORED in page, page[:4000]
    for typed in (v for k, v in bad.items() if k in form.texts and v):
        # what was typed comes back in the form (a textarea may send CRLF and show LF)
        assert typed in page or typed.replace("\r\n", "\n") in page, (typed, page[:4000])
    assert rows(world, *form.tables) == before


# A lone surrogate cannot come through a form (its UTF-8 is invalid: Werkzeug keeps such bytes as their %XX escapes),
# nor can the characters Python strips as white space be lost by a field's strip: the console checks what was typed
# with the API's own rule, which refuses them.
@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\x7f", "\x1f名称", "名称\x0b", "\x0c名"])
def test_the_rule_the_console_applies_is_validation_text(value):
    from admin.base import storable_text

    with pytest.raises(FieldError):
        text(value, required=False, max_len=100)
    with pytest.raises(FieldError):
        storable_text(value, max_len=100)


GOOD = "反映：办不成 😀 𠀀 事"


@pytest.mark.parametrize("form", [f for f in FORMS if f.name in (
    "department new", "user edit", "service item new", "knowledge new", "calendar year", "saved filter")],
    ids=lambda f: f.name)
def test_chinese_text_with_an_emoji_and_an_extension_b_character_is_saved_as_typed(world, form):
    setup = form.setup(world)
    client = world.console(form.who)
    values = form.values(world, setup)
    field_name = {"department new": "name", "user edit": "display_name", "service item new": "name",
                  "knowledge new": "content", "calendar year": "notice", "saved filter": "name"}[form.name]
    response = post(world, form, client, setup, {**values, field_name: GOOD}, token_of(world, form, client, setup))
    assert response.status_code in (200, 302), response.get_data(as_text=True)[:3000]
    assert STORED not in response.get_data(as_text=True)
    stored = run(world, lambda: [value for table in form.tables for row in db.session.execute(
        sa.select(*sa.inspect(table).columns)).all() for value in row if value == GOOD])
    assert stored == [GOOD]


def test_a_model_forms_text_is_held_to_the_apis_length_and_one_line_rules(world):
    """The scaffolded forms' string fields say what the API says: at most the column's length, and names on one line."""
    client = world.console("admin")
    token = page_csrf(client, "/admin/departments/new/")
    good = department_values(world, None)
    long = client.post("/admin/departments/new/", data={**good, "supervisor_name": "督" * 51, "csrf_token": token})
    assert long.status_code == 200 and "不得超过 50 个字符。" in long.get_data(as_text=True)
    two_lines = client.post("/admin/departments/new/", data={**good, "name": "教育\r\n局", "csrf_token": token})
    page = html.unescape(two_lines.get_data(as_text=True))
    assert two_lines.status_code == 200 and "不能换行。" in page and "教育\r\n局" in page
    assert run(world, lambda: db.session.scalar(
        sa.select(sa.func.count()).select_from(Department).where(Department.code == "Z9"))) == 0
    assert client.post("/admin/departments/new/", data={**good, "supervisor_name": "督" * 50,
                                                         "csrf_token": token}).status_code == 302
