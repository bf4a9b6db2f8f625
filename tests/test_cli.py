"""The CLI of API.md and migrations that match the models on every backend (the demo: test_demo.py)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from tickets.db import db
from tickets.models import Department, Office, User


def test_users_create_and_token(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "wang", "--role", "office", "--password", "s3cret-pw",
                                 "--phone", "138 0013 8000", "--name", "王敏"])
    assert result.exit_code == 0, result.output
    token = runner.invoke(args=["users", "token", "wang"]).output.strip()
    assert token.startswith("bj_")
    client = app.test_client()
    assert client.get("/api/v1/staff/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "wang"))
        assert user.phone == "+8613800138000" and user.password_hash.startswith("scrypt:")
    for args, message in (
        (["users", "create", "wang", "--role", "office", "--password", "long-enough"], "USERNAME: 该用户名已被使用"),
        (["users", "create", "d", "--role", "department", "--password", "long-enough"], "--department: "),
        (["users", "create", "d", "--role", "department", "--department", "NOPE", "--password", "long-enough"],
         "--department: 没有此代码的部门"),
        (["users", "create", "e", "--role", "office", "--password", "long-enough", "--phone", "123"], "--phone: "),
        (["users", "token", "nobody"], "no user"),
        (["users", "token", "wang", "--label", "x" * 65], "--label: "),  # the console's rules: tickets/accounts.py
    ):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and message in result.output, result.output


def test_migrations_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_upgrade_is_idempotent_and_downgrade_works(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert runner.invoke(args=["db", "downgrade", "base"]).exit_code == 0
    with app.app_context():
        assert "ticket" not in sa.inspect(db.engine).get_table_names()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with app.app_context():
        assert "ticket" in sa.inspect(db.engine).get_table_names()


def test_offices_departments_and_office_users(app):
    """`flask offices create/list`, `flask departments create`, `flask users create --office` (API.md "Offices")."""
    runner = app.test_cli_runner()
    ok = lambda *args: runner.invoke(args=list(args))
    for args in (["offices", "create", "c1", "--name", "东湖县办不成事窗口", "--level", "county", "--parent", "root",
                  "--area-code", "330101000000"],
                 ["offices", "create", "t11", "--name", "青石镇便民服务中心", "--level", "township", "--parent", "c1"],
                 ["departments", "create", "C1", "--name", "东湖县人社局", "--office", "c1",
                  "--supervisor-phone", "139 0000 0011", "--leader-phone", "+86 139-0000-0012"],
                 ["departments", "create", "CITY", "--name", "市公积金中心"],
                 ["users", "create", "wang", "--role", "office", "--office", "t11", "--password", "long-enough"]):
        result = ok(*args)
        assert result.exit_code == 0, (args, result.output)
    listing = ok("offices", "list").output.splitlines()
    assert [line.split()[0] for line in listing] == ["root", "c1", "t11"]
    assert listing[1].startswith("  c1  [county]  东湖县办不成事窗口  330101000000")
    assert listing[2].startswith("    t11  [township]")
    with app.app_context():
        c1 = db.session.scalar(sa.select(Office).where(Office.code == "c1"))
        root_id = db.session.scalar(sa.select(Office.id).where(Office.parent_id.is_(None)))
        departments = {d.code: d for d in db.session.scalars(sa.select(Department))}
        assert departments["C1"].office_id == c1.id and departments["CITY"].office_id == root_id
        assert (departments["C1"].supervisor_phone, departments["C1"].leader_phone) == ("+8613900000011",
                                                                                         "+8613900000012")
        user = db.session.scalar(sa.select(User).where(User.username == "wang"))
        assert user.office_id == db.session.scalar(sa.select(Office.id).where(Office.code == "t11"))
    for args, message in (
        (["offices", "create", "c1", "--name", "x", "--level", "county", "--parent", "root"], "CODE: 该代码已被使用"),
        (["offices", "create", "c9", "--name", "x", "--level", "county"], "--parent: "),
        (["offices", "create", "c9", "--name", "x", "--level", "county", "--parent", "nope"], "--parent: "),
        (["offices", "create", "c9", "--name", "x", "--level", "city", "--parent", "c1"], "--level: "),
        (["offices", "create", "c9", "--name", "x", "--level", "county", "--parent", "root", "--area-code", "12"],
         "--area-code: "),
        (["offices", "create", "c 9", "--name", "x", "--level", "county", "--parent", "root"], "CODE: "),
        (["departments", "create", "C1", "--name", "x"], "CODE: 该代码已被使用"),
        (["departments", "create", "C9", "--name", "x", "--office", "nope"], "--office: "),
        (["departments", "create", "C9", "--name", "x", "--supervisor-phone", "123"], "--supervisor-phone: "),
        (["departments", "create", "C9", "--name", "x", "--leader-phone", "abc"], "--leader-phone: "),
        (["departments", "create", "C9", "--name", " "], "--name: "),
        (["users", "create", "li", "--role", "office", "--office", "nope", "--password", "long-enough"], "--office: "),
    ):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    with app.app_context():  # nothing of the refused commands was written
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Office)) == 3
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Department)) == 2
