"""派单目录 (the dispatch catalogue): for a service item or a problem type filed at an office, the department
responsible. `tickets.offices.suggested_department` reads it; this module changes it, imports and exports it.

Operations only (nothing here commits): the console (admin/dispatch.py) and the CLI (`flask dispatch ...`) call
them and commit. Every refusal is a `ValidationFailed` with field errors; a CSV import names every bad line by
its number (`line_<n>`) and writes nothing if any line is bad.

The CSV has the header `office_code,scope,value,department_code` (UTF-8, with or without a byte order mark):
`scope` is `service_item` or `problem_type`; `value` the service item's name or the problem type's code. The
export guards every cell against spreadsheet formulas (`tickets.spreadsheets.csv_safe`): a value starting with
`=`, `+`, `-`, `@` (or with an apostrophe) gets a leading apostrophe, and the import drops one leading
apostrophe, so what is exported imports back as it was.
"""
from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass

import click
import sqlalchemy as sa
from flask.cli import AppGroup, with_appcontext
from flask_babel import lazy_gettext as _l

from . import clock, offices, validation
from .cli import writable_output
from .db import db
from .errors import ValidationFailed
from .models import Department, DispatchRule, DispatchScope, Office, ProblemType
from .spreadsheets import BOM, csv_safe

COLUMNS = ("office_code", "scope", "value", "department_code")
SCOPES = tuple(s.value for s in DispatchScope)
PROBLEM_TYPES = tuple(p.value for p in ProblemType)
VALUE_MAX = 100                 # DispatchRule.value, ServiceItem.name
LINE_MAX = 1000                 # characters on one CSV line; a longer one is refused, not parsed
MAX_LINES = 100_000             # lines in one import (a city's catalogue is a few thousand)
NEWLINE = re.compile(r"\r\n|\r|\n")  # lines as an editor numbers them (not str.splitlines's U+2028 and kin)

SCOPE_LABELS = {
    "service_item": _l("Service item"),
    "problem_type": _l("Problem type"),
}


# --- one rule -----------------------------------------------------------------------------------------------

def _clean_value(check: validation.Collector, scope, value):
    if scope == DispatchScope.problem_type.value:
        if not isinstance(value, str) or value.strip() not in PROBLEM_TYPES:
            check.fail("value", _l("Not a problem type code: use one of %(codes)s.", codes=", ".join(PROBLEM_TYPES)))
            return None
        return value.strip()
    return check.field("value", validation.text, value, required=True, max_len=VALUE_MAX, single_line=True)


def _check(check: validation.Collector, office: Office | None, scope, value, department: Department | None,
           within: Office | None, office_path: str | None = None) -> None:
    """The rules of one catalogue entry, into `check` (fields office_id, scope, value, department_id).

    `within`: the office whose subtree the caller may change (None: every office). `office_path` saves the
    lookup of the office's path when the caller has it (the import)."""
    if office is None:
        check.fail("office_id", _l("There is no office with this code."))
    elif within is not None and not office.path.startswith(within.path):
        check.fail("office_id", _l("This office is outside your window's network."))
    if scope not in SCOPES:
        check.fail("scope", _l("Choose service_item or problem_type."))
    else:
        check.values["value"] = _clean_value(check, scope, value)
    if department is None:
        check.fail("department_id", _l("There is no department with this code."))
    elif not department.active:
        check.fail("department_id", _l("This department is inactive."))
    elif office is not None and department.office_id not in offices.ancestor_ids(office):
        check.fail("department_id", _l("A case of this office cannot be transferred to this department: "
                                       "choose one of the office itself or of an office above it."))


def set_rule(session, office: Office | None, scope, value, department: Department | None, *,
             rule: DispatchRule | None = None, within: Office | None = None) -> DispatchRule:
    """Say which department answers `value` (a service item's name or a problem type's code) at `office`.

    Without `rule`, the office's entry for (scope, value) is created or its department changed; with `rule`,
    that entry is rewritten (and may not take the key of another one)."""
    check = validation.Collector()
    if rule is not None and within is not None:
        current = session.get(Office, rule.office_id)
        if current is None or not current.path.startswith(within.path):
            check.fail("office_id", _l("This office is outside your window's network."))
    _check(check, office, scope, value, department, within)
    clean = check.raise_if_errors()
    value = clean["value"]
    existing = session.scalar(sa.select(DispatchRule).where(
        DispatchRule.office_id == office.id, DispatchRule.scope == scope, DispatchRule.value == value))
    if rule is not None and existing is not None and existing.id != rule.id:
        raise ValidationFailed(fields={"value": _l("This office already has an entry for this value.")})
    target = rule or existing
    now = clock.now()
    if target is None:
        target = DispatchRule(office_id=office.id, scope=scope, value=value, department_id=department.id,
                              updated_at=now)
        session.add(target)
    else:
        target.office_id, target.scope, target.value = office.id, scope, value
        target.department_id, target.updated_at = department.id, now
    session.flush()
    return target


def remove_rule(session, rule: DispatchRule, *, within: Office | None = None) -> None:
    if within is not None:
        office = session.get(Office, rule.office_id)
        if office is None or not office.path.startswith(within.path):
            raise ValidationFailed(fields={"office_id": _l("This office is outside your window's network.")})
    session.delete(rule)
    session.flush()


def rules_within(within: Office | None) -> sa.Select:
    """SELECT of the catalogue entries of this office's subtree (every entry for None), in reading order."""
    query = (sa.select(DispatchRule).join(Office, Office.id == DispatchRule.office_id)
             .order_by(Office.path, DispatchRule.scope, DispatchRule.value, DispatchRule.id))
    if within is not None:
        query = query.where(DispatchRule.office_id.in_(offices.subtree(within.id)))
    return query


# --- CSV ----------------------------------------------------------------------------------------------------

@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    lines: int = 0  # entries read (lines other than the header and blank ones)

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "removed": self.removed, "lines": self.lines}


def decode(data: bytes) -> str:
    """An uploaded file's text: UTF-8, with or without a byte order mark; anything else is refused."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(fields={"file": _l("The file is not UTF-8 text. Save it as “CSV UTF-8”.")}) from None


def _cell(text: str) -> str:
    """A cell as written, less the apostrophe that guards a formula-like start (see `csv_cell`)."""
    text = text.strip()
    return text[1:] if text.startswith("'") else text


def csv_cell(value) -> str:
    """A cell for the export: formula starts guarded (tickets/spreadsheets.py), and a value that starts with an
    apostrophe gets one more, so the import's dropping of one leading apostrophe gives the value back."""
    text = "" if value is None else str(value)
    return csv_safe("'" + text if text.startswith("'") else text)


def split_lines(text: str) -> list[str]:
    return NEWLINE.split(text)


@dataclass
class _Line:
    number: int
    office: Office | None
    scope: str
    value: str
    department: Department | None


def _parse_line(number: int, line: str) -> list[str] | str:
    """The cells of one physical line, or why it cannot be read."""
    if len(line) > LINE_MAX:
        return str(_l("The line is longer than %(n)d characters.", n=LINE_MAX))
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:
        return str(_l("The line is not valid CSV (check its quotes)."))
    return rows[0] if rows else []


def _line_message(errors: dict) -> str:
    names = {"office_id": "office_code", "department_id": "department_code"}
    return "; ".join(f"{names.get(name, name)}: {message}" for name, message in errors.items())


def import_csv(session, text: str, *, replace: bool = False, within: Office | None = None,
               progress=None) -> ImportCounts:
    """Read a catalogue CSV into the table: every entry created or changed; with `replace`, the entries (of
    `within`'s subtree, or every one) that the file does not name are removed.

    All or nothing: if the header or any line is bad, a `ValidationFailed` names each (`header`, `line_<n>`,
    or `file`) and nothing is written. `progress(n)` is called as lines are read (the CLI's progress bar)."""
    if not isinstance(text, str):
        raise ValidationFailed(fields={"file": _l("The file is not UTF-8 text. Save it as “CSV UTF-8”.")})
    text = text.removeprefix(BOM)
    lines = split_lines(text)
    if len(lines) > MAX_LINES:
        raise ValidationFailed(fields={"file": _l("At most %(n)d lines in one file.", n=MAX_LINES)})
    errors: dict[str, str] = {}
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ValidationFailed(fields={"header": _l("The file is empty: the first line must be %(header)s.",
                                                    header=",".join(COLUMNS))})
    header = _parse_line(header_at + 1, lines[header_at])
    names = [cell.strip().lower() for cell in header] if isinstance(header, list) else []
    if sorted(names) != sorted(COLUMNS):
        raise ValidationFailed(fields={"header": _l("The first line must be %(header)s.", header=",".join(COLUMNS))})
    position = {name: names.index(name) for name in COLUMNS}

    office_by_code = {o.code: o for o in session.scalars(sa.select(Office))}
    department_by_code = {d.code: d for d in session.scalars(sa.select(Department))}
    seen: dict[tuple, int] = {}
    parsed: list[_Line] = []
    for index in range(header_at + 1, len(lines)):
        number, line = index + 1, lines[index]
        if progress is not None:
            progress(1)
        if not line.strip():
            continue
        cells = _parse_line(number, line)
        if isinstance(cells, str):
            errors[f"line_{number}"] = cells
            continue
        if len(cells) != len(COLUMNS):
            errors[f"line_{number}"] = str(_l("Expected %(n)d cells, found %(found)d.", n=len(COLUMNS),
                                              found=len(cells)))
            continue
        office_code, scope, value, department_code = (_cell(cells[position[name]]) for name in COLUMNS)
        check = validation.Collector()
        office = office_by_code.get(office_code)
        department = department_by_code.get(department_code)
        _check(check, office, scope, value, department, within)
        if check.errors:
            errors[f"line_{number}"] = _line_message(check.errors)
            continue
        key = (office.id, scope, check.values["value"])
        if key in seen:
            errors[f"line_{number}"] = str(_l("Repeats line %(n)d (the same office, scope and value).",
                                              n=seen[key]))
            continue
        seen[key] = number
        parsed.append(_Line(number, office, scope, check.values["value"], department))
    if errors:
        raise ValidationFailed(fields=errors)

    counts = ImportCounts(lines=len(parsed))
    # Every line's office is within `within` (checked above), so these are all the entries the file can name.
    existing = {(r.office_id, r.scope, r.value): r for r in session.scalars(rules_within(within))}
    now = clock.now()
    for line in parsed:
        rule = existing.pop((line.office.id, line.scope, line.value), None)
        if rule is None:
            session.add(DispatchRule(office_id=line.office.id, scope=line.scope, value=line.value,
                                     department_id=line.department.id, updated_at=now))
            counts.created += 1
        elif rule.department_id != line.department.id:
            rule.department_id, rule.updated_at = line.department.id, now
            counts.updated += 1
        else:
            counts.unchanged += 1
    if replace:
        for rule in existing.values():  # the entries of the subtree that the file did not name
            session.delete(rule)
            counts.removed += 1
    session.flush()
    return counts


def export_rows(session, within: Office | None = None):
    """The catalogue as CSV rows (header first), every cell guarded (`csv_cell`)."""
    codes = offices.codes(session)
    departments = dict(session.execute(sa.select(Department.id, Department.code)).all())
    yield list(COLUMNS)
    for rule in session.scalars(rules_within(within)):
        yield [csv_cell(codes.get(rule.office_id)), csv_cell(rule.scope), csv_cell(rule.value),
               csv_cell(departments.get(rule.department_id))]


def export_csv(session, within: Office | None = None, *, bom: bool = True) -> str:
    """The whole catalogue (or `within`'s subtree) as CSV text, starting with a byte order mark for Excel."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in export_rows(session, within):
        writer.writerow(row)
    return (BOM if bom else "") + out.getvalue()


# --- command line: flask dispatch import FILE [--replace] | export [-o FILE] ----------------------------------

dispatch_cli = AppGroup("dispatch", help="The dispatch catalogue (派单目录): import and export CSV.")


def _refused(error: ValidationFailed) -> click.ClickException:
    lines = [f"  {name}: {message}" for name, message in error.fields.items()]
    return click.ClickException("\n".join([str(error.message), *lines]))


@dispatch_cli.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--replace", is_flag=True, help="also remove the entries the file does not name")
@with_appcontext
def import_command(file, replace):
    """Import FILE (CSV: office_code,scope,value,department_code); nothing is written if a line is bad."""
    try:
        text = decode(file.read())
        with click.progressbar(length=len(split_lines(text)), label="reading", file=sys.stderr) as bar:
            counts = import_csv(db.session, text, replace=replace, progress=bar.update)
    except ValidationFailed as error:
        db.session.rollback()
        raise _refused(error) from None
    db.session.commit()
    click.echo("created {created}, updated {updated}, unchanged {unchanged}, removed {removed}"
               .format(**counts.as_dict()))


@dispatch_cli.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="file to write (default: stdout)")
@with_appcontext
def export_command(output):
    """Write the catalogue as CSV (UTF-8 with a byte order mark, cells guarded against formulas)."""
    if output is not None:
        writable_output(output)  # a directory that is not there: one line, before any work
    session = db.session
    total = session.scalar(sa.select(sa.func.count()).select_from(DispatchRule))
    if output is None:
        out = sys.stdout
        writer = csv.writer(out, lineterminator="\r\n")
        for row in export_rows(session):
            writer.writerow(row)
        return
    with open(output, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        rows = export_rows(session)
        writer.writerow(next(rows))
        with click.progressbar(rows, length=total, label="writing", file=sys.stderr) as bar:
            for row in bar:
                writer.writerow(row)
    click.echo(f"{total} entries written to {output}")


def register_cli(app) -> None:
    app.cli.add_command(dispatch_cli)
