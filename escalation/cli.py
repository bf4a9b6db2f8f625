"""`flask calendar show|import` and `flask escalation sweep|scheduler`."""
from __future__ import annotations


from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from tickets import clock, validation
from tickets.cli import batches_shown
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.validation import FIRST_YEAR, LAST_YEAR

from . import store, sweeper
from .models import CalendarYear

calendar_cli = AppGroup("calendar", help="The working-day calendar.")
escalation_cli = AppGroup("escalation", help="The escalation ladder: sweeps and the scheduler.")


@calendar_cli.command("show")
@click.argument("year", type=click.IntRange(FIRST_YEAR, LAST_YEAR))
def calendar_show(year):
    """List YEAR's holidays and make-up working days, and whether the year is published."""
    row = db.session.get(CalendarYear, year)
    if row is None or not row.published:
        click.echo(f"{year}: not published - provisional (Monday to Friday are working days, no holidays)")
        return
    click.echo(f"{year}: published ({row.source}{', ' + row.notice if row.notice else ''})")
    for day, (workday, name) in store.year_exceptions(db.session, year).items():
        kind = "make-up working day" if workday else "holiday"
        click.echo(f"{day.isoformat()}  {'周' + '一二三四五六日'[day.weekday()]}  {kind:<20} {name or ''}".rstrip())


@calendar_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--notice", help="the State Council notice the days come from")
def calendar_import(path, notice):
    """Import PATH, a CSV of `date,workday,name` lines (only days that differ from Monday-Friday).

    workday is 1 for a make-up working weekend day, 0 for a holiday. Each year in the file is replaced
    whole and published, e.g.

        date,workday,name
        2027-01-01,0,元旦
        2027-02-06,1,春节
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
        notice = validation.text(notice, required=False, max_len=NOTICE_MAX, single_line=True)
    except UnicodeDecodeError as error:
        raise click.ClickException(str(error)) from None
    except validation.FieldError as error:
        raise click.BadParameter(str(error.message), param_hint="'--notice'") from None
    problem = _unpublishable(text)
    if problem:
        raise click.ClickException(problem)
    try:
        years = store.publish(db.session, text, source="import", now=clock.now(), notice=notice)
    except ValidationFailed as error:
        raise click.ClickException(str(error.message)) from None
    for year, exceptions in sorted(years.items()):
        click.echo(f"{year}: {sum(not w for w, _ in exceptions.values())} holiday(s), "
                   f"{sum(w for w, _ in exceptions.values())} make-up working day(s); published")
    db.session.commit()
    store.invalidate()


NOTICE_MAX = CalendarYear.__table__.c.notice.type.length
NAME_MAX = 50  # store.parse_calendar_csv keeps the first 50 characters of a day's name


def _unpublishable(text: str) -> str | None:
    """What in a well-formed calendar file cannot be published (store.publish says what is wrong with the others): a
    year outside FIRST_YEAR to LAST_YEAR, a day's name the database cannot hold."""
    try:
        years = store.parse_calendar_csv(text)
    except store.CalendarFileError:
        return None
    for year, days in sorted(years.items()):
        if not FIRST_YEAR <= year <= LAST_YEAR:
            return f"{year:04d}: only the years {FIRST_YEAR} to {LAST_YEAR} can be published"
        for day, (_workday, name) in sorted(days.items()):
            try:
                validation.text(name, required=False, max_len=NAME_MAX, single_line=True)
            except validation.FieldError as error:
                return f"{day.isoformat()}: the name: {error.message}"
    return None


@escalation_cli.command("sweep")
def escalation_sweep():
    """Fire every ladder step that is due now, and print what was done (a progress bar when more than a batch is
    due). Each batch commits: stopped, run it again and it fires what is left."""
    now = clock.now()
    due = sweeper.due_count(db.session, now)
    db.session.rollback()
    with batches_shown(due, "sweeping", current_app.config["ESCALATION_BATCH_SIZE"],
                       "step(s) fired or called off") as progress:
        result = sweeper.sweep(db.session, now, progress=progress)
    click.echo(result.summary())


@escalation_cli.command("plan")
def escalation_plan():
    """Plan the ladder of every open case (once after upgrading, or after changing ESCALATION_LADDER)."""
    from .operations import plan_all

    click.echo(f"planned the ladder of {plan_all(db.session, clock.now())} open case(s)")


@escalation_cli.command("scheduler")
def escalation_scheduler():
    """Run the scheduler loop in this process (production runs one of these next to the workers)."""
    from .scheduler import run_process

    run_process(current_app._get_current_object())


def register(app) -> None:
    app.cli.add_command(calendar_cli)
    app.cli.add_command(escalation_cli)
