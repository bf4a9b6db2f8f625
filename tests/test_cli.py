"""The CLI of API.md and migrations that match the models on every backend (the demo: test_demo.py)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from tickets.db import db
from tickets.models import User


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
