"""Review of the `flask` commands of every room: a bad argument, a file or directory that is not there, a broker that is
away and Ctrl-C are each one line (or a clear message and exit 130), never a traceback; what committed stays.

Every test runs on SQLite and PostgreSQL (the `database_url` fixture behind `app` and `world`) unless marked.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from escalation import sweeper
from escalation.models import CalendarYear, EscalationStep
from notify import closing
from reports.models import Report
from tests.helpers import examples, open_cases
from tickets.db import db
from tickets.models import Survey

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def one_line_refusal(result, expected: str = "", code: int | None = None) -> str:
    """The command refused in one `Error: ...` line (after Click's usage lines for a bad argument), no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and result.exit_code in ((1, 2) if code is None else (code,)), result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and expected in last, result.output
    return last


# --- files and directories that are not there -------------------------------------------------------------------------

def test_a_report_to_a_directory_that_is_not_there_is_refused_before_the_work(world, clock, tmp_path):
    runner = world.app.test_cli_runner()
    for output in (tmp_path / "missing" / "r.pdf", tmp_path / "file.txt" / "r.pdf"):
        (tmp_path / "file.txt").write_text("x")
        one_line_refusal(runner.invoke(args=["report", "monthly", "2026-10", "-o", str(output)]), "-o")
        one_line_refusal(runner.invoke(args=["evaluation", "export", "2026-10", "-o", str(output)]), "-o")
    with world.app.app_context():  # refused before any work: no draft was kept
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 0
    done = runner.invoke(args=["evaluation", "export", "2026-10", "-o", str(tmp_path / "ratings.jsonl")])
    assert done.exit_code == 0 and (tmp_path / "ratings.jsonl").exists(), done.output


# --- the calendar: years and texts the database cannot hold -----------------------------------------------------------

@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(year=st.one_of(st.integers(max_value=1999), st.integers(min_value=2101)))
def test_calendar_show_of_a_year_outside_2000_to_2100_is_one_line(app, year):
    result = app.test_cli_runner().invoke(args=["calendar", "show", "--", str(year)])
    one_line_refusal(result, "YEAR", code=2)


@pytest.mark.parametrize("content, notice, expected", [
    ("9999-12-31,0,元旦\n", None, "9999"),
    ("0001-01-01,0,元旦\n", None, "0001"),
    ("2027-01-01,0,元\x00旦\n", None, "2027-01-01"),
    ("2027-01-01,0,元旦\n", "国办发明电\x00", "--notice"),
    ("2027-01-01,0,元旦\n", "国" * 201, "--notice"),
])
def test_calendar_import_refuses_what_it_cannot_publish_in_one_line(app, tmp_path, content, notice, expected):
    path = tmp_path / "days.csv"
    path.write_text(content, encoding="utf-8")
    args = ["calendar", "import", str(path)] + (["--notice", notice] if notice is not None else [])
    one_line_refusal(app.test_cli_runner().invoke(args=args), expected)
    with app.app_context():  # nothing published
        assert db.session.scalar(sa.select(CalendarYear).where(CalendarYear.source == "import")) is None


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=st.text(min_size=1, max_size=20).filter(lambda s: not s.startswith("-")))
@example(username="wang\x00")  # PostgreSQL refuses NUL in a text
@example(username="wang\udcff")  # a byte of a non-UTF-8 command line, as Python passes it on
def test_users_token_of_any_name_is_an_answer_not_a_traceback(app, username):
    result = app.test_cli_runner().invoke(args=["users", "token", username])
    one_line_refusal(result, "no user", code=2)


# --- the broker away --------------------------------------------------------------------------------------------------

@SQLITE
def test_redrive_with_the_broker_away_says_so_in_one_line_and_loses_nothing(make_app, clock):
    from tests.helpers import seed_world

    app = make_app(BROKER_URL=DEAD_BROKER)
    world = seed_world(app, app.test_client())
    runner = app.test_cli_runner()
    assert runner.invoke(args=["webhooks", "add", "http://127.0.0.1:1/x", "--events", "created"]).exit_code == 0
    world.file()  # a text to the citizen and a webhook delivery, neither enqueued (logged): they wait for a re-drive
    clock.advance(minutes=5)
    for args in (["sms", "redrive"], ["webhooks", "redrive"]):
        one_line_refusal(runner.invoke(args=args), "BROKER_URL", code=1)
    assert "pending" in runner.invoke(args=["sms", "status"]).output  # still waiting, for the next re-drive


# --- Ctrl-C: what the committed batches did stays, and the command says so --------------------------------------------

def interrupted_after(count: int, real):
    """`real`, raising KeyboardInterrupt (Ctrl-C) at its call number `count` + 1."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) > count:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapper


def stopped(result, done_words: str) -> None:
    assert result.exit_code == 130 and "Traceback" not in result.output, result.output
    assert done_words in result.stderr and "run the same command again" in result.stderr, result.stderr
    assert "Aborted!" not in result.output


@SQLITE
def test_close_surveys_stopped_by_ctrl_c_keeps_its_batches_and_says_so(world, clock, monkeypatch):
    from tests.test_default_rating import resolved

    for _ in range(3):
        resolved(world)
    clock.advance(days=8)
    monkeypatch.setattr(closing, "BATCH_SIZE", 1)
    monkeypatch.setattr(closing, "settle", interrupted_after(2, closing.settle))
    stopped(world.app.test_cli_runner().invoke(args=["evaluation", "close-surveys"]), "2 closed survey(s) settled")
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Survey).where(Survey.defaulted)) == 2


@SQLITE
def test_escalation_sweep_of_a_backlog_shows_progress_and_stops_cleanly_on_ctrl_c(world, clock, monkeypatch):
    open_cases(world, clock, n=4)
    world.app.config["ESCALATION_BATCH_SIZE"] = 1
    monkeypatch.setattr(sweeper, "_act", interrupted_after(2, sweeper._act))
    runner = world.app.test_cli_runner()
    stopped(runner.invoke(args=["escalation", "sweep"]), "step(s) fired")
    with world.app.app_context():
        fired = db.session.scalar(sa.select(sa.func.count()).select_from(EscalationStep)
                                  .where(EscalationStep.fired_at.is_not(None)))
    assert fired > 0  # the two committed batches
    monkeypatch.undo()
    world.app.config["ESCALATION_BATCH_SIZE"] = 1
    done = runner.invoke(args=["escalation", "sweep"])
    assert done.exit_code == 0 and "sweeping" in done.output and "fired" in done.output, done.output


@SQLITE
def test_attachments_move_stopped_by_ctrl_c_says_how_far_it_came(make_app, tmp_path, monkeypatch):
    from tests.helpers import seed_world
    from tests.test_attachments import file_with, jpeg, pdf
    from tickets import storage

    volume = tmp_path / "files"
    volume.mkdir()
    app = make_app(ATTACHMENT_DIR=str(volume))  # the files in the database, to be moved to the volume
    world = seed_world(app, app.test_client())
    assert file_with(world, ("通知.jpg", jpeg(), "image/jpeg"), ("表.pdf", pdf(), "application/pdf")).status_code == 201
    monkeypatch.setattr(storage, "move", interrupted_after(1, storage.move))
    runner = app.test_cli_runner()
    stopped(runner.invoke(args=["attachments", "move", "--to", "directory", "--batch", "1"]), "1 stored file(s) moved")
    monkeypatch.undo()
    again = runner.invoke(args=["attachments", "move", "--to", "directory"])
    assert again.exit_code == 0 and "2 of 3 stored files moved" in again.output, again.output


@SQLITE
@pytest.mark.parametrize("batch", ["0", "-1"])
def test_attachments_move_refuses_a_batch_below_one(make_app, tmp_path, batch):
    app = make_app(ATTACHMENT_DIR=str(tmp_path))
    one_line_refusal(app.test_cli_runner().invoke(args=["attachments", "move", "--to", "directory", "--batch", batch]),
                     "--batch", code=2)


@SQLITE
def test_webhooks_test_with_the_broker_away_does_not_say_enqueued(make_app):
    app = make_app(BROKER_URL=DEAD_BROKER)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["webhooks", "add", "http://127.0.0.1:1/x", "--events", "created"]).exit_code == 0
    result = runner.invoke(args=["webhooks", "test", "1"])
    assert not any(line.endswith(" enqueued") for line in result.output.splitlines()), result.output
    one_line_refusal(result, "enqueued 0 of 1", code=1)
    assert "pending    1" in runner.invoke(args=["webhooks", "status"]).output  # the re-drive sends it later


@SQLITE
def test_sms_redrive_now_stopped_by_ctrl_c_says_how_many_were_tried(world, clock, monkeypatch):
    from notify import cli as sms_cli

    world.file()
    world.file(phone="13900139000")
    clock.advance(minutes=5)
    monkeypatch.setattr(sms_cli, "_send_here", interrupted_after(1, sms_cli._send_here))
    stopped(world.app.test_cli_runner().invoke(args=["sms", "redrive", "--now"]), "1 of 2 message(s) tried")


@pytest.mark.parametrize("code", ["A\x00", "A\udcff"])
def test_users_create_with_a_department_code_no_database_holds_names_no_department(app, code):
    result = app.test_cli_runner().invoke(args=["users", "create", "bob", "--role", "department", "--department", code,
                                                "--no-password"])
    assert result.exit_code == 1 and "Traceback" not in result.output, repr(result.exception)  # the refused() style:
    assert result.output.startswith("Error: ") and "\n--department: " in result.output, result.output  # one per option


@pytest.mark.parametrize("number", [2**31, 2**63, 10**30, -1, 0, True, 1.5, "x"])
@pytest.mark.parametrize("role, field", [("department", "department_id"), ("office", "office_id")])
def test_an_account_naming_a_number_no_database_holds_is_refused_on_the_field(app, number, role, field):
    """The rule is the accounts' (the command line and the console both reach it): a number past the database's
    integers names no department or office, as an unknown one does, not a database error."""
    from tickets import accounts
    from tickets.errors import ValidationFailed

    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        accounts.create_user(db.session, "bob", role, require_password=False, **{field: number})
    assert field in refused.value.fields
