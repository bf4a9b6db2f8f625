"""Management in the console: departments, users and their API tokens, service items, problem types.

The first tests hold every Flask-Admin form to the model: each editable column is in the form unless the
view says, in `form_excluded_columns`, that it leaves it out (SQLModel's AutoString and our UTCDateTime are
silently dropped by Flask-Admin's own converter, and so are foreign keys of models without relationships).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from flask_admin.contrib.sqla.form import AdminModelConverter, get_form
from flask_admin.model import BaseModelView
from sqlmodel import SQLModel
from werkzeug.datastructures import MultiDict
from wtforms import Form

from admin import console
from admin.converters import BanjieModelConverter, LocalDateTimeField
from tests.helpers import console_sign_in, csrf_of, row, set_password, submit
from tickets.db import db
from tickets.models import ApiToken, Department, ServiceItem, User

PHONE_ERROR_EN = "Enter a valid mainland mobile number, e.g. 138 0013 8000."
PHONE_ERROR_ZH = "请输入有效的大陆手机号码，例如 138 0013 8000。"
MANAGEMENT = ("/admin/departments/", "/admin/service-items/", "/admin/users/", "/admin/api-tokens/")


# --- forms match the models ------------------------------------------------------------------------------

def editable_views(app):
    return [view for view in console(app)._views
            if isinstance(view, BaseModelView) and (view.can_create or view.can_edit)]


def expected_fields(view) -> tuple[set[str], set[str]]:
    """(columns the form must show, columns the view leaves out on purpose)."""
    columns = {attr.key for attr in sa.inspect(view.model).column_attrs
               if not any(column.primary_key for column in attr.columns)}
    excluded = set(view.form_excluded_columns or ())
    assert excluded <= columns, f"{view.endpoint} excludes columns its model lacks: {excluded - columns}"
    return columns - excluded, excluded


def test_every_form_shows_every_editable_column(app):
    views = editable_views(app)
    assert {view.model for view in views} >= {Department, User, ServiceItem}
    with app.test_request_context():
        for view in views:
            # Exclusions, not an allow-list: a column added to the model shows up, or this test says why not.
            assert not view.form_columns, view.endpoint
            shown, excluded = expected_fields(view)
            for form_class in (view._create_form_class, view._edit_form_class):
                fields = set(form_class()._fields)
                assert shown <= fields, f"{view.endpoint} form lacks {shown - fields}"
                assert not excluded & fields, f"{view.endpoint} form shows excluded {excluded & fields}"


# Flask-Admin's Select2Field (for `form_choices`) hands WTForms 3.3 the tuples it deprecates; ChoicesField doesn't.
@pytest.mark.filterwarnings("ignore:Passing SelectField choices as tuples:DeprecationWarning")
def test_the_form_check_fails_with_flask_admins_own_converter(app):
    """The test above has teeth: Flask-Admin's converter alone drops columns these views need."""
    dropped = {}
    with app.test_request_context():
        for view in editable_views(app):
            form_class = get_form(view.model, AdminModelConverter(db, view), exclude=view.form_excluded_columns,
                                  extra_fields=view.form_extra_fields)
            shown, _excluded = expected_fields(view)
            dropped[view.endpoint] = shown - set(form_class()._fields)
    assert dropped["service_items"] == {"name", "department_id"}  # AutoString, foreign key
    assert dropped["users"] == {"department_id", "office_id"}
    assert dropped["departments"] == {"office_id"}


def test_converter_knows_every_column_type_of_every_table(app):
    view = editable_views(app)[0]
    converter = BanjieModelConverter(db, view)
    unknown = [f"{table.name}.{column.name} ({type(column.type).__name__})"
               for table in SQLModel.metadata.sorted_tables for column in table.columns
               if converter.get_converter(column) is None]
    assert unknown == []


def test_local_datetime_field_enters_local_time_and_keeps_utc(app):
    class TimeForm(Form):
        at = LocalDateTimeField()

    with app.test_request_context():
        form = TimeForm(MultiDict({"at": "2026-11-16 09:30"}))
        assert form.validate()
        assert form.at.data == datetime(2026, 11, 16, 1, 30, tzinfo=timezone.utc)
        shown = TimeForm(data={"at": datetime(2026, 11, 16, 1, 30, 5, tzinfo=timezone.utc)})
        assert shown.at._value() == "2026-11-16 09:30:05"
        assert TimeForm(MultiDict({"at": "tomorrow"})).validate() is False


# --- over HTTP --------------------------------------------------------------------------------------------

DEPARTMENT = {"office_id": "1", "code": "D", "name": "教育局", "supervisor_name": "李督", "supervisor_phone": "139 0000 0003",
              "leader_name": "王领", "leader_phone": "+86 139-0000-0004", "active": "y"}


def test_admin_creates_a_department_with_normalised_phones(world, console):
    client = console("admin")
    response = submit(client, "/admin/departments/new/", DEPARTMENT)
    assert response.status_code == 302
    department = row(world, Department, code="D")
    assert department.name == "教育局" and department.active
    assert (department.supervisor_phone, department.leader_phone) == ("+8613900000003", "+8613900000004")
    assert department.created_at is not None
    listing = client.get("/admin/departments/").get_data(as_text=True)
    assert "139****0003" in listing and "13900000003" not in listing


@pytest.mark.parametrize("lang, message", [("en", PHONE_ERROR_EN), ("zh_CN", PHONE_ERROR_ZH)])
def test_a_bad_phone_is_a_form_error_that_keeps_what_was_typed(world, console, lang, message):
    client = console("admin", lang=lang)
    response = submit(client, "/admin/departments/new/", {**DEPARTMENT, "supervisor_phone": "12345"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in page
    assert 'value="12345"' in page and 'value="教育局"' in page
    assert row(world, Department, code="D") is None


def test_a_duplicate_department_code_is_a_form_error(world, console):
    client = console("admin")
    response = submit(client, "/admin/departments/new/", {**DEPARTMENT, "code": "A"})
    assert response.status_code == 200
    assert "This is already in use." in response.get_data(as_text=True)
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Department).where(Department.code == "A")) == 1
    # Editing a department and keeping its own code is no duplicate.
    path = f"/admin/departments/edit/?id={world.departments['A']}"
    response = submit(client, path, {"office_id": "1", "code": "A", "name": "市场监管局", "active": "y"})
    assert response.status_code == 302
    assert row(world, Department, code="A").name == "市场监管局"


def test_a_department_is_deactivated_not_deleted(world, console):
    client = console("office")
    department_id = world.departments["C"]
    path = f"/admin/departments/edit/?id={department_id}"
    response = submit(client, path, {"office_id": "1", "code": "C", "name": "住房和城乡建设局",
                                     "supervisor_phone": "+8613900000001"})  # "active" unticked
    assert response.status_code == 302
    assert row(world, Department, id=department_id).active is False
    page = client.get("/admin/departments/").get_data(as_text=True)
    assert "/admin/departments/delete/" not in page
    response = client.post("/admin/departments/delete/", data={"id": department_id, "csrf_token": csrf_of(page)})
    assert response.status_code in (302, 403, 404, 405)
    assert row(world, Department, id=department_id) is not None


def test_admin_creates_a_department_handler_who_can_sign_in(world, console):
    client = console("admin")
    user = {"username": "zhao", "display_name": "赵六", "role": "department", "phone": "13800138001",
            "active": "y", "new_password": "first-password-1"}
    # A department handler needs a department, and a new account a password.
    page = submit(client, "/admin/users/new/", {**user, "new_password": ""}).get_data(as_text=True)
    assert "A department handler needs a department." in page and "Set a password for the new account." in page
    office = {**user, "role": "office", "department_id": str(world.departments["A"])}
    assert "Only department handlers belong to a department." in submit(
        client, "/admin/users/new/", office).get_data(as_text=True)
    assert row(world, User, username="zhao") is None

    response = submit(client, "/admin/users/new/", {**user, "department_id": str(world.departments["B"])})
    assert response.status_code == 302
    created = row(world, User, username="zhao")
    assert (created.role, created.department_id, created.phone) == ("department", world.departments["B"],
                                                                    "+8613800138001")
    assert created.password_hash.startswith("scrypt:")
    listing = client.get("/admin/users/").get_data(as_text=True)
    assert "zhao" in listing and "Department handler" in listing and "人力资源和社会保障局" in listing
    assert "scrypt:" not in listing and "138****8001" in listing

    other = world.app.test_client()
    assert console_sign_in(other, "zhao", "first-password-1").status_code == 302


def test_admin_resets_a_password(world, console):
    client = console("admin")
    path = f"/admin/users/edit/?id={world.users['dept_a']}"
    form = client.get(path).get_data(as_text=True)
    assert "password_hash" not in form and "scrypt:" not in form
    data = {"username": "dept_a", "role": "department", "department_id": str(world.departments["A"]),
            "active": "y"}
    # An empty new password keeps the old one.
    set_password(world, "dept_a", "old-password-1")
    assert submit(client, path, data).status_code == 302
    assert console_sign_in(world.app.test_client(), "dept_a", "old-password-1").status_code == 302
    assert submit(client, path, {**data, "new_password": "new-password-2"}).status_code == 302
    fresh = world.app.test_client()
    assert console_sign_in(fresh, "dept_a", "old-password-1").status_code == 401
    assert console_sign_in(fresh, "dept_a", "new-password-2").status_code == 302


def test_admin_cannot_lock_themselves_out(world, console):
    client = console("admin")
    path = f"/admin/users/edit/?id={world.users['admin']}"
    page = submit(client, path, {"username": "admin", "role": "admin"}).get_data(as_text=True)
    assert "You cannot deactivate your own account." in page
    page = submit(client, path, {"username": "admin", "role": "office", "active": "y"}).get_data(as_text=True)
    assert "You cannot remove your own administrator role." in page
    admin = row(world, User, username="admin")
    assert admin.active and admin.role == "admin"
    # Another account can be deactivated; its tokens stop working with it.
    path = f"/admin/users/edit/?id={world.users['leader']}"
    assert submit(client, path, {"username": "leader", "role": "leader"}).status_code == 302
    assert row(world, User, username="leader").active is False
    assert world.get("leader", "/api/v1/staff/tickets").status_code == 401


def test_tokens_are_shown_once_work_and_can_be_revoked(world, console):
    client = console("admin")
    issue = f"/admin/api-tokens/issue/?user_id={world.users['office']}"
    form = client.get(issue).get_data(as_text=True)
    assert f'value="{world.users["office"]}" selected' in form or f'selected value="{world.users["office"]}"' in form
    response = submit(client, "/admin/api-tokens/issue/",
                      {"user_id": str(world.users["office"]), "label": "12345 hotline"}, form_path=issue)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="api-token">([^<]+)</code>', response.get_data(as_text=True)).group(1)
    assert token.startswith("bj_")
    with client.session_transaction() as session:
        assert token not in repr(dict(session))  # not flashed into the cookie

    bearer = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/api/v1/staff/tickets", headers=bearer).status_code == 200
    stored = row(world, ApiToken, label="12345 hotline")
    assert stored.user_id == world.users["office"] and token not in stored.token_hash

    listing = client.get("/admin/api-tokens/").get_data(as_text=True)
    assert "12345 hotline" in listing and token not in listing and stored.token_hash not in listing
    response = client.post(f"/admin/api-tokens/revoke/{stored.id}", data={"csrf_token": csrf_of(listing)})
    assert response.status_code == 302
    assert row(world, ApiToken, id=stored.id).revoked_at is not None
    assert world.client.get("/api/v1/staff/tickets", headers=bearer).status_code == 401
    assert "Revoked" in client.get("/admin/api-tokens/").get_data(as_text=True)
    # The world's own token of the same user still works.
    assert world.get("office", "/api/v1/staff/tickets").status_code == 200


def test_office_manages_service_items_and_departments(world, console):
    client = console("office")
    for path in ("/admin/departments/", "/admin/service-items/", "/admin/problem-types/"):
        assert client.get(path).status_code == 200, path
    response = submit(client, "/admin/service-items/new/",
                      {"name": "  营业执照变更  ", "department_id": str(world.departments["A"]), "active": "y"})
    assert response.status_code == 302
    item = row(world, ServiceItem, name="营业执照变更")
    assert item.department_id == world.departments["A"] and item.active and item.created_at is not None
    page = submit(client, "/admin/service-items/new/", {"name": "营业执照变更"}).get_data(as_text=True)
    assert "This is already in use." in page
    long_name = submit(client, "/admin/service-items/new/", {"name": "办" * 101})
    assert long_name.status_code == 200 and row(world, ServiceItem, name="办" * 101) is None
    assert "营业执照变更" in client.get("/admin/service-items/").get_data(as_text=True)
    for path in ("/admin/users/", "/admin/users/new/", "/admin/api-tokens/", "/admin/api-tokens/issue/"):
        assert client.get(path).status_code == 403, path
    page = client.get("/admin/departments/").get_data(as_text=True)
    assert client.post("/admin/api-tokens/revoke/1", data={"csrf_token": csrf_of(page)}).status_code == 403


@pytest.mark.parametrize("who", ["dept_a", "supervisor", "leader"])
def test_other_staff_only_see_the_problem_types(world, console, who):
    client = console(who)
    for path in MANAGEMENT + ("/admin/departments/new/", "/admin/service-items/new/"):
        assert client.get(path).status_code == 403, (who, path)
    page = client.get("/admin/problem-types/").get_data(as_text=True)
    assert "too_slow" in page and "Too slow" in page
    assert "/admin/problem-types/edit" not in page


def test_the_anonymous_are_sent_to_sign_in(world):
    for path in MANAGEMENT + ("/admin/problem-types/", "/admin/api-tokens/issue/"):
        response = world.client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/admin/login"), path


def test_admin_menu_has_the_management_category(world, console):
    page = console("admin").get("/admin/").get_data(as_text=True)
    for text in ("Management", "Departments", "Service items", "Problem types", "Users", "API tokens"):
        assert text in page, text
    office_menu = console("office").get("/admin/").get_data(as_text=True)
    assert "/admin/departments/" in office_menu and "/admin/users/" not in office_menu


def test_lists_search_filter_and_sort(world, console):
    client = console("admin")
    for path, expect in (("/admin/departments/?search=市场", "市场监督管理局"),
                         ("/admin/departments/?sort=1&desc=1", "人力资源和社会保障局"),
                         ("/admin/users/?search=dept_", "dept_b"),
                         ("/admin/users/?flt0_0=supervisor", "supervisor"),
                         ("/admin/api-tokens/?sort=0", "leader"),
                         ("/admin/service-items/?search=x", "")):
        response = client.get(path)
        assert response.status_code == 200, path
        assert expect in response.get_data(as_text=True), path
    users = client.get("/admin/users/?flt0_0=supervisor").get_data(as_text=True)
    assert "dept_b" not in users


def test_a_database_failure_is_a_sentence_not_the_sql(world):
    """Flask-Admin flashed str(exception) on a failed save: the SQL and its parameters, in the page and in the
    session cookie anyone holding it can read."""
    from flask import get_flashed_messages
    from sqlalchemy.exc import OperationalError

    view = next(v for v in console(world.app)._views if getattr(v, "endpoint", "") == "users")
    error = OperationalError("INSERT INTO user_account (phone) VALUES (%(phone)s)", {"phone": "+8613912345678"},
                             Exception("server closed the connection"))
    with world.app.test_request_context():
        assert view.handle_view_exception(error) is True
        flashed = " ".join(message for _category, message in get_flashed_messages(with_categories=True))
    assert flashed == "未能保存，请重试。"
    assert "13912345678" not in flashed and "INSERT" not in flashed


@pytest.mark.parametrize("who", ["office_c1", "office_t11"])
def test_a_countys_or_townships_staff_read_the_citys_service_items_and_change_none(network, console, who):
    """The catalogue is the city's: its codes go into every 好差评 export, its being active into Open311's list. A
    county's or a township's office staff read it; only administrators and the root office change it (as the calendar
    and the problem types' deadlines)."""
    world = network.world
    with world.app.app_context():
        item = ServiceItem(name="社保卡补办", code="330000-SBK-001", department_id=world.departments["A"])
        db.session.add(item)
        db.session.commit()
        item_id = item.id
    client = console(who)
    page = client.get("/admin/service-items/").get_data(as_text=True)
    assert "社保卡补办" in page and "the city's office keeps it" in page
    assert "/admin/service-items/new/" not in page and "/admin/service-items/edit/" not in page
    csrf = csrf_of(page)
    for path in (f"/admin/service-items/edit/?id={item_id}", "/admin/service-items/new/"):
        form = client.get(path)
        assert form.status_code == 302 and "西山县人社局" not in form.get_data(as_text=True), path
    edited = client.post(f"/admin/service-items/edit/?id={item_id}", data={
        "csrf_token": csrf, "name": "社保卡补办", "code": "HIJACKED", "department_id": str(world.departments["C2"]),
        "active": ""})
    created = client.post("/admin/service-items/new/", data={"csrf_token": csrf, "name": "新事项", "active": "y"})
    assert edited.status_code == created.status_code == 302
    after = row(world, ServiceItem, id=item_id)
    assert (after.name, after.code, after.active, after.department_id) == (
        "社保卡补办", "330000-SBK-001", True, world.departments["A"])
    assert row(world, ServiceItem, name="新事项") is None
    # The root office's staff and the administrators still keep it.
    for keeper in ("office", "admin"):
        keeper_page = console(keeper).get("/admin/service-items/").get_data(as_text=True)
        assert "/admin/service-items/edit/" in keeper_page and "office keeps it" not in keeper_page, keeper
