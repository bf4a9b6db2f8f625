"""Offices: a city's network of 「办不成事」windows in one deployment, and who sees what along the tree.

One definition of each idea, read by the API, the console, the reports and the CLI:

- `subtree(office_id)`: the ids of an office and every office below it, as an SQL subquery (the tree's
  materialised `path`), so visibility is enforced in the query;
- `ancestor_ids`: an office and the offices above it (a transfer may go to a department of any of them);
- `create_office`, `update_office`: the console's and the CLI's rules (one root; a parent one level up or more;
  no cycles; paths kept in step).
"""
from __future__ import annotations

import functools
import re

import sqlalchemy as sa
from flask import has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import aliased

from . import validation
from .db import db
from .models import Department, DispatchRule, DispatchScope, Office, OfficeLevel, Ticket

ROOT_CODE = "root"
LEVEL_ORDER = {OfficeLevel.city.value: 0, OfficeLevel.county.value: 1, OfficeLevel.township.value: 2}
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
AREA_CODE_PATTERN = re.compile(r"[0-9]{12}")


# --- reading the tree ---------------------------------------------------------------------------------------

def root(session) -> Office:
    return session.scalar(sa.select(Office).where(Office.parent_id.is_(None)).order_by(Office.id).limit(1))


def root_id_query() -> sa.Select:
    return sa.select(Office.id).where(Office.parent_id.is_(None)).order_by(Office.id).limit(1)


def root_id(session) -> int:
    return session.scalar(root_id_query())


def by_code(session, code: str | None, *, active_only: bool = False) -> Office | None:
    """The office of this code; None for anything that cannot be one (so no input reaches the query unchecked)."""
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code.strip()):
        return None
    query = sa.select(Office).where(Office.code == code.strip())
    if active_only:
        query = query.where(Office.active.is_(True))
    return session.scalar(query)


@functools.lru_cache(maxsize=4096)
def subtree(office_id: int) -> sa.Select:
    """SELECT of the ids of this office and of every office below it.

    Built once per office and shared (statements are immutable): it names the top office by id and reads its path
    in the query, so it stays true when offices move, and building it cost a list page more than running it."""
    top = aliased(Office)
    return (sa.select(Office.id).join(top, top.id == office_id)
            .where(Office.path.startswith(top.path)))


def subtree_ids(session, office_id: int) -> list[int]:
    return list(session.scalars(subtree(office_id).order_by(Office.id)))


def in_subtree(session, office_id: int, top_id: int) -> bool:
    """Whether `office_id` is `top_id` or below it."""
    office, top = session.get(Office, office_id), session.get(Office, top_id)
    return office is not None and top is not None and office.path.startswith(top.path)


def ancestor_ids(office: Office) -> list[int]:
    """This office and the offices above it, from the root down."""
    return [int(part) for part in office.path.split("/") if part]


def children(session, office_id: int | None) -> list[Office]:
    return list(session.scalars(sa.select(Office).where(Office.parent_id == office_id).order_by(Office.code)))


def tree(session, *, active_only: bool = False) -> list[Office]:
    """Every office, depth first (a parent before its children), siblings by code."""
    query = sa.select(Office)
    if active_only:
        query = query.where(Office.active.is_(True))
    rows = list(session.scalars(query))
    by_parent: dict[int | None, list[Office]] = {}
    for office in rows:
        by_parent.setdefault(office.parent_id, []).append(office)
    ordered: list[Office] = []

    def walk(parent_id):
        for office in sorted(by_parent.get(parent_id, []), key=lambda o: o.code):
            ordered.append(office)
            walk(office.id)
    known = {o.id for o in rows}
    for office in rows:  # the root, and the top of any branch whose parent was filtered out
        if office.parent_id is None or office.parent_id not in known:
            if office not in ordered:
                ordered.append(office)
                walk(office.id)
    return ordered


def depth(office: Office) -> int:
    return office.path.count("/") - 1


def names(session) -> dict[int, str]:
    return dict(session.execute(sa.select(Office.id, Office.name)).all())


def codes(session) -> dict[int, str]:
    return dict(session.execute(sa.select(Office.id, Office.code)).all())


# --- who sees which cases -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def ticket_in_subtree_statement(office_id: int):
    """WHERE clause: the ticket is owned by this office or one below it, as a subquery: for statements built once
    and kept (it reads the tree when it runs, so it stays true when offices are added or move)."""
    return Ticket.office_id.in_(subtree(office_id))


def ticket_in_subtree(office_id: int):
    """WHERE clause: the ticket is owned by this office or one below it.

    The offices' ids are read first (once per request, `flask.g`) and listed in the clause: with the subquery
    instead, PostgreSQL guessed one office for any subtree and, for the city's (every case), sorted 70,000 open cases
    through a nested loop to show the ten most overdue (104 ms of a 134 ms page)."""
    if not has_request_context():
        return ticket_in_subtree_statement(office_id)
    # Kept with the request, not in `g`: a test's (or a task's) app context can outlive many requests.
    memo = request.environ.setdefault("banjie.subtree_ids", {})
    if office_id not in memo:
        memo[office_id] = subtree_ids(db.session, office_id)
    return Ticket.office_id.in_(memo[office_id])


def transfer_departments(session, office: Office) -> sa.Select:
    """SELECT of the active departments a case owned by this office may be transferred to: the office's own
    and those of every office above it."""
    return (sa.select(Department).where(Department.active.is_(True), Department.office_id.in_(ancestor_ids(office)))
            .order_by(Department.code))


def parent(session, office: Office) -> Office | None:
    """The office above this one if it is active (where `refer_up` sends a case); None for the root."""
    if office.parent_id is None:
        return None
    above = session.get(Office, office.parent_id)
    return above if above is not None and above.active else None


def below(office: Office) -> sa.Select:
    """SELECT of the active offices strictly below this one (where `assign_down` may send its cases), depth first."""
    return (sa.select(Office).where(Office.active.is_(True), Office.path.startswith(office.path),
                                    Office.id != office.id)
            .order_by(Office.path))


def may_transfer_to(session, ticket: Ticket, department: Department) -> bool:
    office = session.get(Office, ticket.office_id)
    return office is not None and department.office_id in ancestor_ids(office)


def suggested_department(session, ticket: Ticket) -> Department | None:
    """The 派单目录's department for this case: the owning office's entry for its service item, else for its
    problem type; failing both, the parent's, up to the root. Only an active department is suggested."""
    office = session.get(Office, ticket.office_id)
    if office is None:
        return None
    chain = list(reversed(ancestor_ids(office)))  # the office itself first
    keys = []
    if ticket.service_item:
        keys.append((DispatchScope.service_item.value, ticket.service_item))
    keys.append((DispatchScope.problem_type.value, ticket.problem_type))
    rows = session.execute(
        sa.select(DispatchRule.office_id, DispatchRule.scope, DispatchRule.value, Department)
        .join(Department, Department.id == DispatchRule.department_id)
        .where(DispatchRule.office_id.in_(chain), Department.active.is_(True),
               sa.or_(*[sa.and_(DispatchRule.scope == s, DispatchRule.value == v) for s, v in keys]))
    ).all()
    found = {(office_id, scope, value): department for office_id, scope, value, department in rows}
    for office_id in chain:
        for scope, value in keys:
            if (office_id, scope, value) in found:
                return found[(office_id, scope, value)]
    return None


# --- changing the tree -----------------------------------------------------------------------------------------

FIELDS = ("code", "name", "level", "parent_code", "area_code", "active", "default_unanswered")


def _check(session, values: dict, editing: Office | None) -> dict:
    check = validation.Collector()
    code = check.field("code", validation.text, values.get("code"), required=True, max_len=32, single_line=True)
    if code is not None:
        if not CODE_PATTERN.fullmatch(code):
            check.fail("code", _l("Letters, digits, '.', '_' and '-' only, starting with a letter or digit."))
        else:
            other = by_code(session, code)
            if other is not None and (editing is None or other.id != editing.id):
                check.fail("code", _l("This code is taken."))
    check.field("name", validation.text, values.get("name"), required=True, max_len=100, single_line=True)
    level = values.get("level")
    if level not in LEVEL_ORDER:
        check.fail("level", _l("Choose city, county or township."))
    check.values["level"] = level
    area = check.field("area_code", validation.text, values.get("area_code"), required=False, max_len=12,
                       single_line=True)
    if area is not None and not AREA_CODE_PATTERN.fullmatch(area):
        check.fail("area_code", _l("An administrative area code has 12 digits."))
    parent_code = values.get("parent_code")
    parent = None
    existing_root = root(session)
    if parent_code in (None, ""):
        if existing_root is not None and (editing is None or editing.id != existing_root.id):
            check.fail("parent_code", _l("There is one root office; name the parent of this one."))
    else:
        parent = by_code(session, parent_code)
        if parent is None:
            check.fail("parent_code", _l("There is no office with this code."))
        elif editing is not None and parent.path.startswith(editing.path):
            check.fail("parent_code", _l("An office cannot be placed below itself."))
        elif editing is not None and existing_root is not None and editing.id == existing_root.id:
            check.fail("parent_code", _l("The root office has no parent."))
        elif level in LEVEL_ORDER and LEVEL_ORDER[level] <= LEVEL_ORDER[parent.level]:
            check.fail("level", _l("An office's level must be below its parent's."))
    check.values["parent"] = parent
    active = values.get("active", True)
    check.values["active"] = bool(active)
    if editing is not None and not active and existing_root is not None and editing.id == existing_root.id:
        check.fail("active", _l("The root office cannot be deactivated."))
    check.values["default_unanswered"] = bool(values.get("default_unanswered", True))
    return check.raise_if_errors()


def create_office(session, **values) -> Office:
    clean = _check(session, values, None)
    parent = clean["parent"]
    office = Office(code=clean["code"], name=clean["name"], level=clean["level"], area_code=clean["area_code"],
                    parent_id=parent.id if parent else None, active=clean["active"],
                    default_unanswered=clean["default_unanswered"], path="")
    session.add(office)
    session.flush()
    office.path = f"{parent.path if parent else ''}{office.id}/"
    session.flush()
    return office


def update_office(session, office: Office, **values) -> Office:
    given = {"code": office.code, "name": office.name, "level": office.level, "area_code": office.area_code,
             "active": office.active, "default_unanswered": office.default_unanswered,
             "parent_code": session.scalar(sa.select(Office.code).where(Office.id == office.parent_id))}
    given.update({k: v for k, v in values.items() if k in FIELDS})
    clean = _check(session, given, office)
    parent = clean["parent"]
    office.code, office.name, office.level = clean["code"], clean["name"], clean["level"]
    office.area_code, office.active = clean["area_code"], clean["active"]
    office.default_unanswered = clean["default_unanswered"]
    new_parent_id = parent.id if parent else None
    if new_parent_id != office.parent_id:
        old_path = office.path
        new_path = f"{parent.path if parent else ''}{office.id}/"
        office.parent_id = new_parent_id
        session.execute(
            sa.update(Office).where(Office.path.startswith(old_path))
            .values(path=sa.literal(new_path) + sa.func.substr(Office.path, len(old_path) + 1))
            .execution_options(synchronize_session="fetch"))
    session.flush()
    return office
