"""Command line of API.md: `flask db ...`, `flask users ...` (`flask seed-demo` is the demo's, in demo/cli.py)."""
from __future__ import annotations

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from .accounts import create_user, issue_token
from .db import db
from .errors import ValidationFailed
from .models import Role, User
from .schema import alembic_config, downgrade_database, upgrade_database

db_cli = AppGroup("db", help="Schema migrations (Alembic).")
users_cli = AppGroup("users", help="Staff accounts and API tokens.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Bring the schema up to REVISION (default: the newest)."""
    upgrade_database(revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision):
    """Take the schema back to REVISION."""
    downgrade_database(revision)


@db_cli.command("current")
def db_current():
    """Print the schema's current revision."""
    from alembic import command

    command.current(alembic_config())


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate/--empty", default=True)
def db_revision(message, autogenerate):
    """Write a new migration (compared with the models unless --empty)."""
    from alembic import command

    command.revision(alembic_config(), message=message, autogenerate=autogenerate)


# How the `users` commands name the fields of tickets/accounts.py in their messages.
OPTION_NAMES = {"username": "USERNAME", "role": "--role", "department_id": "--department", "password": "--password",
                "phone": "--phone", "display_name": "--name", "label": "--label", "user_id": "USERNAME"}


def refused(error: ValidationFailed) -> click.ClickException:
    """The accounts rules' refusal as the command line says it: the message, then one line per option."""
    db.session.rollback()
    lines = [f"{OPTION_NAMES.get(name, name)}: {message}" for name, message in error.fields.items()]
    return click.ClickException("\n".join([str(error.message), *lines]))


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--department", "department_code", help="department code, for the department role")
@click.option("--password", help="at least 8 characters; prompted for when omitted")
@click.option("--no-password", is_flag=True,
              help="an account without a password: it cannot sign in to the console, only use API tokens")
@click.option("--phone", help="mainland mobile number")
@click.option("--name", "display_name", help="name shown to colleagues")
def users_create(username, role, department_code, password, no_password, phone, display_name):
    """Create a staff account (the console's rules: tickets/accounts.py)."""
    if no_password and password is not None:
        raise click.UsageError("--password and --no-password exclude each other")
    if password is None and not no_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(db.session, username, role, department_code=department_code, password=password,
                           phone=phone, display_name=display_name, require_password=not no_password)
    except ValidationFailed as error:
        raise refused(error) from None
    db.session.commit()
    click.echo(f"created {user.username} ({user.role})")


@users_cli.command("token")
@click.argument("username")
@click.option("--label", help="what the token is for")
def users_token(username, label):
    """Print a new API token for USERNAME (shown once; only its hash is stored)."""
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise click.BadParameter(f"no user {username!r}")
    try:
        token = issue_token(db.session, user, label)
    except ValidationFailed as error:
        raise refused(error) from None
    db.session.commit()
    click.echo(token)


def register(app) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
