"""Staff accounts: one function and one set of rules for the console, the command line, the demo and the tests."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.helpers import row, submit
from tickets import accounts
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.models import User

GOOD = {"username": "li.na", "role": "office", "password": "long-enough-1"}


def create(world, **values):
    values = {**GOOD, **values}
    with world.app.app_context():
        try:
            user = accounts.create_user(db.session, values.pop("username"), values.pop("role"), **values)
            db.session.commit()
            return user
        except ValidationFailed as error:
            db.session.rollback()
            return {name: str(message) for name, message in error.fields.items()}


@pytest.mark.parametrize("values, field", [
    ({"role": None}, "role"),
    ({"role": ""}, "role"),
    ({"role": "superuser"}, "role"),
    ({"role": "department"}, "department_id"),                      # a handler needs a department
    ({"role": "office", "department_code": "A"}, "department_id"),  # nobody else belongs to one
    ({"role": "department", "department_code": "NOPE"}, "department_id"),
    ({"password": "seven77"}, "password"),
    ({"password": "x" * 201}, "password"),
    ({"phone": "12345"}, "phone"),
    ({"username": ""}, "username"),
    ({"username": "王五"}, "username"),
    ({"username": "a b"}, "username"),
    ({"username": "-lead"}, "username"),
    ({"username": "x" * 65}, "username"),
    ({"username": "OFFICE"}, "username"),                           # taken, whatever the case
    ({"display_name": "名" * 65}, "display_name"),
    ({"password": None, "require_password": True}, "password"),
])
def test_create_user_refuses_each_bad_field(world, values, field):
    errors = create(world, **values)
    assert isinstance(errors, dict) and field in errors, errors
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == len(world.users)


def test_create_user_names_every_bad_field_at_once(world):
    errors = create(world, username="", role="department", password="short", phone="1")
    assert set(errors) == {"username", "department_id", "password", "phone"}


def test_create_user_makes_handlers_and_token_only_accounts(world):
    handler = create(world, username="Zhao_6", role="department", department_code="B", phone="139 0000 0009",
                     display_name="  赵六  ")
    assert (handler.role, handler.department_id, handler.phone, handler.display_name) == (
        "department", world.departments["B"], "+8613900000009", "赵六")
    assert handler.password_hash.startswith("scrypt:")
    # From code (integrations, the test office) an account may have no password: it only uses API tokens.
    robot = create(world, username="hotline-12345", password=None)
    assert robot.password_hash is None


def test_update_user_keeps_the_rules_and_the_lockout_guard(world):
    with world.app.app_context():
        admin = db.session.get(User, world.users["admin"])
        handler = db.session.get(User, world.users["dept_a"])
        for changes, field in (({"role": "office"}, "department_id"), ({"role": None}, "role"),
                               ({"password": "short"}, "password"), ({"username": "Office"}, "username")):
            with pytest.raises(ValidationFailed) as refused:
                accounts.update_user(db.session, handler, **changes)
            assert field in refused.value.fields, changes
            db.session.rollback()
        with pytest.raises(ValidationFailed) as refused:
            accounts.update_user(db.session, admin, by=admin, role="office", active=False)
        assert set(refused.value.fields) == {"role", "active"}
        db.session.rollback()
        accounts.update_user(db.session, handler, role="office", department_id=None)
        db.session.commit()
        assert (handler.role, handler.department_id) == ("office", None)


# --- the command line --------------------------------------------------------------------------------------

def test_cli_create_has_no_default_role_and_says_what_is_wrong(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "wang", "--password", "long-enough-1"])
    assert result.exit_code != 0 and "--role" in result.output
    result = runner.invoke(args=["users", "create", "wang", "--role", "office", "--password", "short",
                                 "--phone", "123"])
    assert result.exit_code == 1, result.output
    assert "--password: 请使用" in result.output and "--phone: 请输入有效的大陆手机号码" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(args=["users", "create", "wang", "--role", "office", "--department", "A",
                                 "--password", "long-enough-1"])
    assert result.exit_code == 1 and "--department: " in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(User).where(User.username == "wang")) is None


def test_cli_asks_for_a_password_unless_told_the_account_has_none(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "wang", "--role", "office"], input="short\nshort\n")
    assert result.exit_code == 1 and "--password" in result.output
    result = runner.invoke(args=["users", "create", "hotline", "--role", "office", "--no-password"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["users", "create", "x", "--role", "office", "--no-password",
                               "--password", "long-enough-1"]).exit_code != 0
    with app.app_context():
        assert db.session.scalar(sa.select(User.password_hash).where(User.username == "hotline")) is None


# --- the console -------------------------------------------------------------------------------------------

def test_console_role_select_starts_empty_and_is_required(world, console):
    client = console("admin")
    form = client.get("/admin/users/new/").get_data(as_text=True)
    select = re.search(r'<select[^>]*id="role".*?</select>', form, re.S).group(0)
    first = re.search(r"<option[^>]*>([^<]*)</option>", select)
    assert first.group(1) == "Please choose" and 'value=""' in first.group(0) and "selected" in first.group(0)
    assert "selected" not in select[first.end():]
    page = submit(client, "/admin/users/new/", {"username": "zhou", "new_password": "long-enough-1",
                                                "active": "y"}).get_data(as_text=True)
    assert "Choose a role." in page
    assert row(world, User, username="zhou") is None
    page = submit(client, "/admin/users/new/", {"username": "zhou", "role": "office", "new_password": "short",
                                                "active": "y"}).get_data(as_text=True)
    assert "Use between 8 and 200 characters." in page and row(world, User, username="zhou") is None
    chinese = console("admin", lang="zh_CN").get("/admin/users/new/").get_data(as_text=True)
    assert ">请选择</option>" in chinese
