"""Whom the office can text about a case: the mobile numbers on record for each audience, and the audiences
nobody can be texted in. One definition for the 督办 ladder, the 催办 and 差评 texts, the monthly report's
text to leaders and the console's warnings about them.

Audiences: `handler` (the department's active handlers), `supervisor` and `leader` (the numbers on the
department's record), `office` (active office staff), `parent_office` (the active supervisor accounts of the
parent of the case's owning office: 挂牌督办 tells the level above too; the root's cases have none). Monthly reports
go to accounts of role leader.
"""
from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from .models import Department, Office, Role, User

PARENT_OFFICE = "parent_office"  # the audience of the texts to the parent office's supervisors

_REACHABLE = (User.active.is_(True), User.phone.is_not(None), User.phone != "")


def staff_phones(session, department_ids, office_ids=()) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """In one query: the handlers' numbers of each of `department_ids`, and the office staff's numbers of each of
    `office_ids` (a window's reminder goes to its own staff, not to every window's)."""
    handlers, office = defaultdict(list), defaultdict(list)
    for department_id, office_id, role, phone in session.execute(
        sa.select(User.department_id, User.office_id, User.role, User.phone).where(
            *_REACHABLE,
            sa.or_(sa.and_(User.role == Role.department.value, User.department_id.in_(department_ids)),
                   sa.and_(User.role == Role.office.value, User.office_id.in_(office_ids))))
        .order_by(User.id)
    ):
        if role == Role.office.value:
            office[office_id].append(phone)
        else:
            handlers[department_id].append(phone)
    return handlers, office


def parent_supervisor_phones(session, office_ids) -> dict[int, tuple[int, list[str]]]:
    """In one query: for each of `office_ids` that has a parent, (the parent's id, the numbers of the parent's
    active supervisor accounts); offices without a parent (the root) are absent."""
    parents: dict[int, tuple[int, list[str]]] = {}
    for office_id, parent_id, phone in session.execute(
        sa.select(Office.id, Office.parent_id, User.phone)
        .outerjoin(User, sa.and_(User.office_id == Office.parent_id, User.role == Role.supervisor.value, *_REACHABLE))
        .where(Office.id.in_(office_ids), Office.parent_id.is_not(None))
        .order_by(Office.id, User.id)
    ):
        phones = parents.setdefault(office_id, (parent_id, []))[1]
        if phone:
            phones.append(phone)
    return parents


def handler_phones(session, department_id: int) -> list[str]:
    return list(session.scalars(sa.select(User.phone).where(
        *_REACHABLE, User.role == Role.department.value, User.department_id == department_id).order_by(User.id)))


def department_phone(department: Department | None, audience: str) -> str | None:
    """The supervisor's or leader's number on a department's record."""
    return (getattr(department, f"{audience}_phone", None) or None) if department is not None else None


def leader_account_phones(session, office_id: int | None = None) -> list[str]:
    """Numbers of the active accounts of role leader (a monthly report's audience): those of `office_id`, and for
    the root office (or None) also those of no office."""
    where = [*_REACHABLE, User.role == Role.leader.value]
    if office_id is not None:
        root = session.scalar(sa.select(Office.id).where(Office.parent_id.is_(None)))
        mine = User.office_id == office_id
        where.append(sa.or_(mine, User.office_id.is_(None)) if office_id == root else mine)
    return list(session.scalars(sa.select(User.phone).where(*where).order_by(User.id)))


def unreachable(session, department_ids=None) -> dict[int, list[str]]:
    """Department id → its audiences that nobody can be texted in (empty list: all reachable). Two queries."""
    where = [Department.id.in_(department_ids)] if department_ids is not None else []
    departments = session.execute(sa.select(Department.id, Department.supervisor_phone, Department.leader_phone)
                                  .where(*where)).all()
    ids = [row.id for row in departments]
    with_handlers = set(session.scalars(sa.select(User.department_id).where(
        *_REACHABLE, User.role == Role.department.value, User.department_id.in_(ids)).distinct()))
    missing = {}
    for row in departments:
        missing[row.id] = [audience for audience, absent in (
            ("handler", row.id not in with_handlers), ("supervisor", not row.supervisor_phone),
            ("leader", not row.leader_phone)) if absent]
    return missing


def roles_without_phone(session) -> list[str]:
    """Of the office-wide audiences (office staff, leader accounts), those with no active member with a number."""
    reachable = set(session.scalars(sa.select(User.role).where(
        *_REACHABLE, User.role.in_((Role.office.value, Role.leader.value))).distinct()))
    return [role for role in (Role.office.value, Role.leader.value) if role not in reachable]
