"""`flask report monthly <YYYY-MM> -o file.pdf [--office <code>]`: generate (or regenerate) and keep a month's report
of an office's subtree (default: the root's), as a draft; `flask report publish <YYYY-MM> [--office <code>]
[--next-steps TEXT]`: publish it (the leaders are texted). `flask evaluation close-surveys` and `flask evaluation export
<YYYY-MM> [--office <code>] [-o file]`: 好差评, the default rating of surveys left unanswered and the month's
ratings for the national platform."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from notify import closing
from tickets import clock, offices
from tickets.cli import batches_shown, writable_output
from tickets.db import db
from tickets.errors import BanjieError
from tickets.privacy import access as privacy

from . import metrics, operations
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
    writable_output(output)
    office = offices.by_code(db.session, office_code) if office_code is not None else offices.root(db.session)
    if office is None:
        raise click.BadParameter(f"no office has the code {office_code!r}", param_hint="--office")
    with click.progressbar(length=len(STEPS), label=f"report {office.code} {parsed}", show_pos=True) as bar:
        try:
            report = operations.get_or_generate(db.session, parsed, office.id, trigger=operations.MANUAL,
                                                regenerate=True, progress=lambda step: bar.update(1))
        except BanjieError as error:  # published: its figures are frozen (409)
            db.session.rollback()
            raise click.ClickException(_message(error)) from None
        db.session.commit()
    try:
        output.write_bytes(report.pdf)
    except OSError as error:  # a full disk, a directory gone meanwhile: the report is kept, its PDF not written
        raise click.ClickException(f"the report of {parsed} is kept as a draft, but {output} could not be written "
                                   f"({error.strerror or error}); run the command again") from None
    office = report.figures["office"]
    click.echo(f"{output}: {len(report.pdf)} bytes; accepted {office['accepted']}, closure rate "
               f"{percent(office['closure_rate'])}, formula version {report.formula_version}")


def _message(error: BanjieError) -> str:
    """An error of the contract as one line: its message, and what is wrong with each field."""
    fields = "; ".join(f"{name}: {message}" for name, message in error.fields.items())
    return f"{error.message}" + (f" ({fields})" if fields else "")


def _office(office_code: str | None):
    office = offices.by_code(db.session, office_code) if office_code is not None else offices.root(db.session)
    if office is None:
        raise click.BadParameter(f"no office has the code {office_code!r}", param_hint="--office")
    return office


@report_cli.command("publish")
@click.argument("month")
@click.option("--office", "office_code", default=None, help="The office (code) whose report to publish; default: the "
              "root.")
@click.option("--next-steps", "next_steps", default=None, help="下步工作: the office's next steps, written into the "
              "draft before it is published (default: those the draft has).")
def publish(month, office_code, next_steps):
    """Publish MONTH's report (YYYY-MM) of an office: its draft (generated first when there is none) is frozen, its
    PDF loses the 草稿 mark, and the office's leaders are texted. A published report cannot be generated again."""
    try:
        parsed = operations.ended_month(month)
    except BanjieError as error:
        raise click.BadParameter(str(error.message), param_hint="MONTH") from None
    office = _office(office_code)
    try:
        report, texted = operations.publish(db.session, parsed, office.id, user_id=None, next_steps=next_steps)
    except BanjieError as error:
        db.session.rollback()
        raise click.ClickException(_message(error)) from None
    db.session.commit()
    figures = report.figures["office"]
    click.echo(f"published the report of {parsed} for {office.code} ({office.name}): accepted {figures['accepted']}, "
               f"closure rate {percent(figures['closure_rate'])}, formula version {report.formula_version}, "
               f"next steps {'written' if report.next_steps else 'none'}; {texted} leader(s) texted")


# --- 好差评: the closing of surveys (the default rating) and the export -----------------------------------------

evaluation_cli = AppGroup("evaluation", help="好差评: close the surveys that are over (default rating); export a "
                                             "month's ratings.")


@evaluation_cli.command("close-surveys")
def close_surveys():
    """Settle every satisfaction survey that has closed unanswered (what the scheduler does every interval).

    At an office that defaults (the default), each is recorded as 基本满意 (3), marked defaulted, at its closing
    time; elsewhere it stays unrated. Safe to run at any time, twice, or beside the scheduler."""
    now = clock.now()
    due = closing.due_count(db.session, now)
    db.session.rollback()
    with batches_shown(due, "closing surveys", closing.BATCH_SIZE, "closed survey(s) settled") as progress:
        result = closing.close_surveys(db.session, now, progress=progress)
    click.echo(result.summary())
    if result.failed:
        raise SystemExit(1)


@evaluation_cli.command("export")
@click.argument("month")
@click.option("--office", "office_code", default=None, help="The office (code) whose subtree's ratings to export; "
              "default: the root (every rating).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Where to write the JSON lines; default: standard output.")
def export(month, office_code, output):
    """Write MONTH's ratings (YYYY-MM, by rating time, local) as JSON lines for the 好差评 platform.

    Every line is checked against reports/schemas/evaluation.schema.json first: on any failure nothing is
    written. The citizen's name and number are included only with EVALUATION_EXPORT_IDENTITY=true."""
    from . import evaluation

    try:
        parsed = metrics.Month.parse(month)
    except metrics.BadMonth:
        raise click.BadParameter(f"{month!r} is not a month: give it as YYYY-MM, e.g. 2026-11", param_hint="MONTH") \
            from None
    if output is not None:
        writable_output(output)
    office = offices.by_code(db.session, office_code) if office_code is not None else offices.root(db.session)
    if office is None:
        raise click.BadParameter(f"no office has the code {office_code!r}", param_hint="--office")
    identity = current_app.config["EVALUATION_EXPORT_IDENTITY"]
    now = clock.now()
    counts = {"lines": 0, "defaulted": 0}
    # Every line is written to a temporary file first: a row the schema refuses leaves no partial export behind.
    target_dir = output.resolve().parent if output is not None else None
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="\n", dir=target_dir, delete=False,
                                     prefix=".evaluation-", suffix=".jsonl") as spool:
        try:
            for row in evaluation.export_rows(db.session, parsed, clock.local_tz(), office_id=office.id,
                                              identity=identity, now=now):
                spool.write(evaluation.line(row))
                counts["lines"] += 1
                counts["defaulted"] += row["defaulted"]
        except evaluation.InvalidRow as error:
            spool.close()
            os.unlink(spool.name)
            raise click.ClickException(f"not exported, a row does not match the schema: {error}") from None
    if output is None:  # bytes, whatever the terminal's encoding: the lines are UTF-8
        with open(spool.name, "rb") as written:
            while chunk := written.read(1 << 16):
                click.echo(chunk, nl=False)
        os.unlink(spool.name)
    else:
        os.replace(spool.name, output)
    if identity:  # names and whole numbers left the system: the access log says so (never which ones)
        privacy.record_export(db.session, actor="cli", what="evaluation", count=counts["lines"],
                              filters={"month": str(parsed), "office": office.code})
        db.session.commit()
    where = output if output is not None else "standard output"
    over = parsed.bounds(clock.local_tz())[1] <= now
    click.echo(f"{counts['lines']} rating(s) of {parsed} for {office.code} ({counts['defaulted']} by default) "
               f"written to {where}; citizen identity {'included' if identity else 'left out'}"
               + ("" if over else "; the month is not over, so more may come"), err=True)
