"""`flask report monthly <YYYY-MM> -o file.pdf [--office <code>]`: generate (or regenerate) and keep a month's report
of an office's subtree (default: the root's)."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from tickets import offices
from tickets.db import db
from tickets.errors import BanjieError

from . import operations
from .display import percent

report_cli = AppGroup("report", help="Monthly closure-rate reports.")
STEPS = ("figures", "recurring", "lists", "trend", "pdf")


@report_cli.command("monthly")
@click.argument("month")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the PDF.")
@click.option("--office", "office_code", default=None, help="The office (code) whose subtree the report covers; "
              "default: the root.")
def monthly(month, output, office_code):
    """Compute MONTH's figures (YYYY-MM), write its PDF to OUTPUT and keep the report in the database."""
    try:
        parsed = operations.ended_month(month)
    except BanjieError as error:
        raise click.BadParameter(str(error.message), param_hint="MONTH") from None
    office = offices.by_code(db.session, office_code) if office_code is not None else offices.root(db.session)
    if office is None:
        raise click.BadParameter(f"no office has the code {office_code!r}", param_hint="--office")
    with click.progressbar(length=len(STEPS), label=f"report {office.code} {parsed}", show_pos=True) as bar:
        report = operations.get_or_generate(db.session, parsed, office.id, trigger=operations.MANUAL,
                                            regenerate=True, progress=lambda step: bar.update(1))
        db.session.commit()
    output.write_bytes(report.pdf)
    office = report.figures["office"]
    click.echo(f"{output}: {len(report.pdf)} bytes; accepted {office['accepted']}, closure rate "
               f"{percent(office['closure_rate'])}, formula version {report.formula_version}")
