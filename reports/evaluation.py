"""The 好差评 export: a month's ratings as JSON lines, in the fields of the national platform's provincial interfaces.

One line per rated survey round whose rating time (`rated_at`; a default rating's is the survey's closing time)
falls in the month, local time, of the cases an office's subtree owns; every line is checked against the JSON
Schema kept beside this module (`schemas/evaluation.schema.json`, draft 2020-12) before anything is written.
The fields are documented in the schema and the README. The citizen's name and number leave only when the
deployment says so (`EVALUATION_EXPORT_IDENTITY`).

`rectification_status` has one definition (`rectification_status`), read from the history as the report's 差评
figures are (`metrics.rectified_by`, `metrics.visited_by`), as at the time of the export.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import jsonschema
import sqlalchemy as sa
from flask_babel import force_locale

from tickets import offices
from tickets.clock import iso
from tickets.labels import SCORE_LABELS, label
from tickets.models import Department, Office, ServiceItem, Survey, Ticket
from tickets.personal import is_token

from .metrics import Month, Scope, between, rectified_by, surveyed_case, visited_by

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "evaluation.schema.json"
RECTIFICATION_STATES = ("none", "rectifying", "rectified", "visited")


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


class InvalidRow(ValueError):
    """A row the schema refuses: the export stops before anything leaves."""

    def __init__(self, row: dict, error: jsonschema.ValidationError):
        where = "/".join(str(part) for part in error.absolute_path) or "(the row)"
        super().__init__(f"case {row.get('case_no')} round {row.get('round')}: {where}: {error.message}")


def rectification_status(at: datetime, case=None):
    """The state of a rating's rectification as an SQL expression over `Survey`, as at the instant `at`:

    - `none`: not a 差评 (1 to 3, a default rating included);
    - `rectifying`: a 差评 whose case has not been closed again since (rework approved, or explained);
    - `rectified`: closed again, and no return visit recorded for this round yet;
    - `visited`: closed again, and the return visit recorded.

    `case`: the id of the case the rating counts for (a merged case's: the one it joined, `metrics.surveyed_case`).
    """
    rectified = rectified_by(at, case)
    return sa.case(
        (sa.or_(Survey.score.is_(None), sa.not_(Survey.bad_rating)), "none"),
        (sa.and_(rectified, visited_by(at)), "visited"),
        (rectified, "rectified"),
        else_="rectifying",
    )


@dataclass(frozen=True)
class Rating:
    """What one line is made of, as read from the database."""

    case_no: str
    round: int
    service_item_code: str | None
    department_code: str | None
    office_id: int
    channel: str
    score: int
    defaulted: bool
    comment: str | None
    rated_at: datetime
    rectification_status: str
    citizen_name: str
    phone: str


def rating_labels() -> dict[int, str]:
    """The five ratings' names as the platform reads them: Chinese, whatever the caller's language."""
    with force_locale("zh_CN"):
        return {score: label(SCORE_LABELS, score) for score in SCORE_LABELS}


def line_breaks(text: str | None) -> str | None:
    """A text with each CRLF line break written LF. A form sends a line break as CRLF and the rating's limit
    (`validation.text`, as a browser's maxlength) counts it as one character; the schema's maxLength counts code
    points, so a comment the rating accepted (COMMENT_MAX counted characters) fits it only this way."""
    return text.replace("\r\n", "\n") if text else text


def row_of(rating: Rating, *, area_code: str | None, identity: bool, labels: dict[int, str]) -> dict:
    """One line's fields (the schema's shape); `labels`: `rating_labels()`."""
    row = {
        "case_no": rating.case_no,
        "round": rating.round,
        "service_item_code": rating.service_item_code,
        "department_code": rating.department_code,
        "area_code": area_code,
        "channel": rating.channel,
        "rating": rating.score,
        "rating_label": labels.get(rating.score),
        "defaulted": rating.defaulted,
        "comment": line_breaks(rating.comment),
        "rated_at": iso(rating.rated_at),
        "rectification_status": rating.rectification_status,
    }
    if identity and not is_token(rating.phone):  # an anonymised case has no identity left to give (personal.py)
        row["citizen_name"], row["phone"] = rating.citizen_name, rating.phone
    return row


def checked(row: dict) -> dict:
    """The row, or InvalidRow naming the first field the schema refuses."""
    error = jsonschema.exceptions.best_match(validator().iter_errors(row))
    if error is not None:
        raise InvalidRow(row, error)
    return row


# What JSON leaves raw with ensure_ascii=False but a reader may take for a line break or a control: DEL, the C1
# controls (U+0085 is a line break to Python's splitlines) and the Unicode line and paragraph separators.
_RAW_BREAKS = re.compile("[\x7f-\x9f\u2028\u2029]")


def line(row: dict) -> str:
    """A row as one JSON line: UTF-8 text, every control character and line break escaped (JSON's own escapes,
    and a `\\u` escape for each one JSON leaves raw), so nothing a citizen wrote can split a line."""
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    return _RAW_BREAKS.sub(lambda match: f"\\u{ord(match.group()):04x}", text) + "\n"


def area_codes(session) -> dict[int, str | None]:
    """{office id: its area code, else the nearest office's above it, else None}, for every office."""
    rows = {office_id: (code, path) for office_id, code, path in
            session.execute(sa.select(Office.id, Office.area_code, Office.path))}
    found = {}
    for office_id, (_code, path) in rows.items():
        chain = [int(part) for part in path.split("/") if part]  # root first, the office last
        found[office_id] = next((rows[i][0] for i in reversed(chain) if i in rows and rows[i][0]), None)
    return found


def ratings(session, month: Month, tz, office_id: int, now: datetime) -> Iterator[Rating]:
    """The month's ratings (by rating time, local), of `office_id`'s subtree, in time order, streamed."""
    start, end = month.bounds(tz)
    scope = Scope.of(session, office_id)
    # the department and window a rating counts for: the case's, or (并单) those of the case it joined
    case = Ticket.__table__.alias("rated_case")
    query = (
        sa.select(Ticket.tracking_no, Survey.round, ServiceItem.code, Department.code, case.c.office_id,
                  Survey.channel, Survey.score, Survey.defaulted, Survey.comment, Survey.rated_at,
                  rectification_status(now, case.c.id), Ticket.citizen_name, Ticket.phone)
        .select_from(Survey).join(Ticket, Ticket.id == Survey.ticket_id)
        .join(case, case.c.id == surveyed_case())
        .outerjoin(Department, Department.id == case.c.department_id)
        .outerjoin(ServiceItem, ServiceItem.name == Ticket.service_item)
        .where(Survey.score.is_not(None), between(Survey.rated_at, start, end), scope.owned(case.c.office_id))
        .order_by(Survey.rated_at, Survey.id)
        .execution_options(yield_per=1000)
    )
    for values in session.execute(query):
        yield Rating(*values)


def export_rows(session, month: Month, tz, *, office_id: int | None = None, identity: bool, now: datetime
                ) -> Iterator[dict]:
    """Every line of the month's export of `office_id`'s subtree (default: the root), each checked against the
    schema (InvalidRow at the first that fails)."""
    office_id = office_id if office_id is not None else offices.root_id(session)
    areas, labels = area_codes(session), rating_labels()
    for rating in ratings(session, month, tz, office_id, now):
        yield checked(row_of(rating, area_code=areas.get(rating.office_id), identity=identity, labels=labels))
