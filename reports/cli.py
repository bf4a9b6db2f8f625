"""`flask report monthly <YYYY-MM> -o file.pdf`: generate (or regenerate) and keep a month's report."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

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
def monthly(month, output):
    """Compute MONTH's figures (YYYY-MM), write its PDF to OUTPUT and keep the report in the database."""
    try:
        parsed = operations.ended_month(month)
    except BanjieError as error:
        raise click.BadParameter(str(error.message), param_hint="MONTH") from None
    with click.progressbar(length=len(STEPS), label=f"report {parsed}", show_pos=True) as bar:
        report = operations.get_or_generate(db.session, parsed, trigger=operations.MANUAL, regenerate=True,
                                            progress=lambda step: bar.update(1))
        db.session.commit()
    output.write_bytes(report.pdf)
    office = report.figures["office"]
    click.echo(f"{output}: {len(report.pdf)} bytes; accepted {office['accepted']}, closure rate "
               f"{percent(office['closure_rate'])}, formula version {report.formula_version}")
