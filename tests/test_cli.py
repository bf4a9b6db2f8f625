"""The CLI of API.md and migrations that match the models on every backend (the demo: test_demo.py)."""
from __future__ import annotations

import pytest
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


# Commands of every room that read or write the database at once (their own arguments valid)
DATABASE_COMMANDS = (["privacy", "status"], ["privacy", "anonymise", "--closed-before", "2026-01-01"],
                     ["escalation", "sweep"], ["report", "monthly", "2026-10", "-o", "/dev/null"], ["sms", "status"],
                     ["webhooks", "list"], ["offices", "list"], ["evaluation", "close-surveys"],
                     ["dispatch", "export"], ["users", "token", "nobody"])


def _one_line_error(result, expected: str) -> None:
    output = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert output[-1].startswith("Error: ") and expected in output[-1], result.output


def test_a_database_never_upgraded_is_one_line_naming_the_upgrade(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    for args in DATABASE_COMMANDS:
        _one_line_error(app.test_cli_runner().invoke(args=args), "flask --app app db upgrade")


def test_a_database_that_cannot_be_reached_is_one_line(make_app):
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    for args in DATABASE_COMMANDS:
        _one_line_error(app.test_cli_runner().invoke(args=args), "the database cannot be reached")


def test_the_flask_command_itself_says_it_in_one_line(tmp_path):
    """The real entry point (Flask's own command group finds each room's command): the same line, on stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "BROKER_URL": ""}
    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "app", "escalation", "sweep"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == ["Error: the database does not have this version's tables: run "
                                                "`flask --app app db upgrade` first (OperationalError: no such table: "
                                                "escalation_step)"], done.stderr


def test_other_database_errors_are_left_to_show_as_the_bugs_they_are():
    from tickets.cli import database_problem

    integrity = sa.exc.IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed: ticket.tracking_no"))
    assert database_problem(integrity) is None
    assert "db upgrade" in database_problem(sa.exc.OperationalError("SELECT ...", {}, Exception("no such table: x")))


# Every command that writes a file given with -o (the others print to stdout)
FILE_COMMANDS = (["dispatch", "export"], ["report", "monthly", "2026-10"], ["evaluation", "export", "2026-10"])


@pytest.mark.parametrize("args", FILE_COMMANDS, ids=[" ".join(args[:2]) for args in FILE_COMMANDS])
def test_a_file_to_write_in_a_missing_directory_is_one_line_before_any_work(app, tmp_path, args):
    target = tmp_path / "no-such-dir" / "out.file"
    result = app.test_cli_runner().invoke(args=[*args, "-o", str(target)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert f"{target.parent} is not a directory this process may write to" in result.output, result.output
    assert not target.parent.exists()
