"""Command line of API.md: `flask db ...`, `flask users ...` (`flask seed-demo` is the demo's, in demo/cli.py)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from . import offices, validation
from .accounts import create_user, issue_token
from .db import commit_counted, db
from .departments import create_department
from .errors import StorageUnavailable, ValidationFailed
from .models import OfficeLevel, Role, TokenScope, User
from .schema import alembic_config, downgrade_database, upgrade_database

db_cli = AppGroup("db", help="Schema migrations (Alembic).")
users_cli = AppGroup("users", help="Staff accounts and API tokens.")
offices_cli = AppGroup("offices", help="The tree of windows (offices).")
departments_cli = AppGroup("departments", help="Departments of the offices.")
attachments_cli = AppGroup("attachments", help="Files of the cases (附件) and where they are kept.")


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
                "phone": "--phone", "display_name": "--name", "label": "--label", "user_id": "USERNAME",
                "office_id": "--office", "office_code": "--office"}
# ... and how the `offices` and `departments` commands name the fields of tickets/offices.py and departments.py.
OFFICE_OPTION_NAMES = {"code": "CODE", "name": "--name", "level": "--level", "parent_code": "--parent",
                       "area_code": "--area-code", "active": "--active"}
DEPARTMENT_OPTION_NAMES = {"code": "CODE", "name": "--name", "office_code": "--office",
                           "supervisor_phone": "--supervisor-phone", "leader_phone": "--leader-phone",
                           "supervisor_name": "--supervisor-name", "leader_name": "--leader-name"}


def writable_output(path, hint: str = "'-o' / '--output'") -> None:
    """Refuse, before any work, a file to write whose directory is not there or may not be written (Click's
    `writable` checks only a file that already exists)."""
    folder = Path(path).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{folder} is not a directory this process may write to", param_hint=hint)


@contextmanager
def interruptible(done: Callable[[], str]):
    """Ctrl-C during a command's committed batches: `done()` (what the batches committed so far did) and how to go on,
    on stderr, and exit status 130 (the shell's for a command ended by Ctrl-C), not Click's bare "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt:
        db.session.rollback()
        click.echo(f"interrupted: {done()} before it; run the same command again to do what is left", err=True)
        raise click.exceptions.Exit(130) from None


@contextmanager
def batches_shown(due: int, label: str, batch_size: int, what: str):
    """A command's committed batches: a progress bar when more than one batch is due, and on Ctrl-C how many `what`
    the committed batches did (`interruptible`). Yields `progress(n)`, to call after each batch with its size."""
    done = [0]
    with interruptible(lambda: f"{done[0]} {what}"), \
            click.progressbar(length=due, label=label, show_pos=True, hidden=due <= batch_size) as bar:
        def progress(count: int) -> None:
            done[0] += count
            bar.update(count)

        yield progress


def enqueue_each(send: Callable[[int], object], ids: list[int], what: str) -> None:
    """Enqueue each id for the workers; the broker away is one line saying how many went (the others wait in the
    database for the scheduler's next re-drive), not a traceback."""
    for done, row_id in enumerate(ids):
        try:
            send(row_id)
        except Exception as error:  # noqa: BLE001 - the broker's errors (redis, pika, dramatiq) share no base class
            raise click.ClickException(
                f"the broker (BROKER_URL) cannot be reached: enqueued {done} of {len(ids)} {what}; the others wait for "
                f"the next re-drive, or send them in this process with --now ({type(error).__name__}: "
                f"{(str(error).splitlines() or [''])[0][:200]})") from None


def refused(error: ValidationFailed, names: dict = OPTION_NAMES) -> click.ClickException:
    """The rules' refusal as the command line says it: the message, then one line per option."""
    db.session.rollback()
    lines = [f"{names.get(name, name)}: {message}" for name, message in error.fields.items()]
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
@click.option("--office", "office_code", help="office code, for the office, supervisor and leader roles "
                                              "(default: the root)")
def users_create(username, role, department_code, password, no_password, phone, display_name, office_code):
    """Create a staff account (the console's rules: tickets/accounts.py)."""
    if no_password and password is not None:
        raise click.UsageError("--password and --no-password exclude each other")
    if password is None and not no_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(db.session, username, role, department_code=department_code, password=password,
                           phone=phone, display_name=display_name, require_password=not no_password,
                           office_code=office_code)
    except ValidationFailed as error:
        raise refused(error) from None
    db.session.commit()
    click.echo(f"created {user.username} ({user.role})")


@users_cli.command("token")
@click.argument("username")
@click.option("--label", help="what the token is for")
@click.option("--scope", type=click.Choice([scope.value for scope in TokenScope]),
              help="limit the token to filing (file), reading (read) or staff actions (act); "
                   "default: all its user may do")
def users_token(username, label, scope):
    """Print a new API token for USERNAME (shown once; only its hash is stored)."""
    found = sa.select(User).where(User.username == username)
    user = db.session.scalar(found) if validation.storable(username) else None  # else a database error
    if user is None:
        raise click.BadParameter(f"no user {username!r}")
    try:
        token = issue_token(db.session, user, label, scope)
    except ValidationFailed as error:
        raise refused(error) from None
    db.session.commit()
    click.echo(token)


@offices_cli.command("create")
@click.argument("code")
@click.option("--name", required=True, help="the window's name, e.g. 东湖县办不成事窗口")
@click.option("--level", required=True, type=click.Choice([level.value for level in OfficeLevel]))
@click.option("--parent", "parent_code", help="the parent office's code (only the first office, the root, has none)")
@click.option("--area-code", help="12-digit administrative area code")
@click.option("--default-rating/--no-default-rating", "default_unanswered", default=True, show_default=True,
              help="record a survey of its cases left unanswered as 基本满意 when it closes (好差评)")
def offices_create(code, name, level, parent_code, area_code, default_unanswered):
    """Create an office (the console's rules: tickets/offices.py)."""
    try:
        office = offices.create_office(db.session, code=code, name=name, level=level, parent_code=parent_code,
                                       area_code=area_code, default_unanswered=default_unanswered)
    except ValidationFailed as error:
        raise refused(error, OFFICE_OPTION_NAMES) from None
    db.session.commit()
    click.echo(f"created {office.code} ({office.level})")


@offices_cli.command("list")
def offices_list():
    """The tree of offices, indented: code, level, name, area code; marked when inactive or not defaulting ratings."""
    for office in offices.tree(db.session):
        inactive = "" if office.active else "  (inactive)"
        area = f"  {office.area_code}" if office.area_code else ""
        marks = inactive + ("" if office.default_unanswered else "  (no default rating)")
        click.echo(f"{'  ' * offices.depth(office)}{office.code}  [{office.level}]  {office.name}{area}{marks}")


@departments_cli.command("create")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--office", "office_code", help="the office whose level's work it does (default: the root)")
@click.option("--supervisor-phone", help="mobile of the supervisor in charge (督办 texts)")
@click.option("--leader-phone", help="mobile of the leader in charge (挂牌督办 texts)")
@click.option("--supervisor-name")
@click.option("--leader-name")
def departments_create(code, name, office_code, supervisor_phone, leader_phone, supervisor_name, leader_name):
    """Create a department (rules: tickets/departments.py)."""
    try:
        department = create_department(db.session, code, name, office_code=office_code,
                                       supervisor_phone=supervisor_phone, leader_phone=leader_phone,
                                       supervisor_name=supervisor_name, leader_name=leader_name)
    except ValidationFailed as error:
        raise refused(error, DEPARTMENT_OPTION_NAMES) from None
    db.session.commit()
    click.echo(f"created {department.code}")


@attachments_cli.command("move")
@click.option("--to", "to", type=click.Choice(["directory", "database"]), required=True,
              help="where the files go: the volume of ATTACHMENT_DIR, or the database")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="files moved per transaction")
def attachments_move(to, batch):
    """Move every file's bytes to one store (run it, then set ATTACHMENT_STORAGE to match; safe to run again).
    Downloads keep working throughout: a file not in the configured store is read from the other."""
    import os

    from flask import current_app

    from . import storage
    from .models import Attachment

    root = current_app.config["ATTACHMENT_DIR"]
    if not root or not os.path.isdir(root) or not os.access(root, os.W_OK):
        raise click.UsageError(f"ATTACHMENT_DIR must name an existing directory this process may write to "
                               f"(given: {root!r})")
    keys = [k for row in db.session.execute(sa.select(Attachment.blob_key, Attachment.thumb_key).order_by(Attachment.id))
            for k in row if k]
    moved = 0
    with interruptible(lambda: f"{moved} stored file(s) moved to the {to}"), \
            click.progressbar(length=len(keys), label=f"moving files to the {to}", show_pos=True) as bar:
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            try:
                count = storage.move(db.session, to, chunk)
            except StorageUnavailable:  # the volume failed (logged): the batches before stay moved
                db.session.rollback()
                raise click.ClickException(f"the volume of ATTACHMENT_DIR failed after {moved} files; run the same "
                                           "command again when it is back") from None
            def tally(count=count, chunk=chunk) -> None:
                nonlocal moved
                moved += count  # what the committed batches moved (Ctrl-C says so)
                bar.update(len(chunk))

            commit_counted(db.session, tally)
    click.echo(f"{moved} of {len(keys)} stored files moved to the {to}; the others were there already")
    if current_app.config["ATTACHMENT_STORAGE"] != to:
        click.echo(f"now set ATTACHMENT_STORAGE={to}")


def register(app) -> None:
    app.cli.add_command(attachments_cli)
    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(offices_cli)
    app.cli.add_command(departments_cli)


# --- the database away or not upgraded: one line, not a traceback ----------------------------------------------------

_MISSING_SCHEMA = ("UndefinedTable", "UndefinedColumn")  # PostgreSQL's words (psycopg's classes) for a table not there


def database_problem(error: Exception) -> str | None:
    """What an operator should read when a command met a database error (None: not the database's state, a bug): the
    schema not upgraded (a table or column missing), or the database not reachable or refusing the work now."""
    from .http import DATABASE_ERRORS, database_reason

    said = database_reason(error)
    if said.split(":", 1)[0] in _MISSING_SCHEMA or "no such table" in said or "no such column" in said:
        return ("the database does not have this version's tables: run `flask --app app db upgrade` first "
                f"({said})")
    if isinstance(error, DATABASE_ERRORS):
        return f"the database cannot be reached or cannot do this now; check DATABASE_URL and the server ({said})"
    return None


def explain_database_errors(app) -> None:
    """Every `flask` command (each room's group, wrapped once at start): a database that cannot be reached or was never
    upgraded is one line and exit status 1, not a traceback. Other errors stay as they are: they are bugs."""
    for command in app.cli.commands.values():
        if getattr(command, "explains_database_errors", False):
            continue  # the command objects are the modules' own: every app made in one process shares them

        def explained(ctx, _invoke=command.invoke):
            try:
                return _invoke(ctx)
            except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
                problem = database_problem(error)
                if problem is None:
                    raise
                raise click.ClickException(problem) from None

        command.invoke = explained
        command.explains_database_errors = True
