"""Departments: the rules for making one, whoever does it (the command line; the console's form keeps its own
field validators). An operation: it flushes and never commits."""
from __future__ import annotations

import re

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from . import offices, validation
from .models import Department
from .phones import normalise_mobile

CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
PHONE_MESSAGE = _l("Enter a valid mainland mobile number, e.g. 138 0013 8000.")


def create_department(session, code: str, name: str, *, office_code: str | None = None,
                      supervisor_name: str | None = None, supervisor_phone: str | None = None,
                      leader_name: str | None = None, leader_phone: str | None = None) -> Department:
    """A new active department of that office (default: the root), or ValidationFailed naming every bad field;
    mobile numbers in any common spelling are stored as E.164."""
    check = validation.Collector()
    code = check.field("code", validation.text, code, required=True, max_len=32, single_line=True)
    if code is not None:
        if not CODE.fullmatch(code):
            check.fail("code", _l("Letters, digits, '.', '_' and '-' only, starting with a letter or digit."))
        elif session.scalar(sa.select(Department.id).where(Department.code == code)) is not None:
            check.fail("code", _l("This code is taken."))
    name = check.field("name", validation.text, name, required=True, max_len=100, single_line=True)
    office = offices.root(session) if office_code in (None, "") else offices.by_code(session, office_code)
    if office is None:
        check.fail("office_code", _l("There is no office with this code."))
    people = {}
    for role, person, phone in (("supervisor", supervisor_name, supervisor_phone),
                                ("leader", leader_name, leader_phone)):
        people[f"{role}_name"] = check.field(f"{role}_name", validation.text, person, required=False, max_len=50,
                                             single_line=True)
        number = None
        if phone not in (None, ""):
            number = normalise_mobile(phone) if isinstance(phone, str) else None
            if number is None:
                check.fail(f"{role}_phone", PHONE_MESSAGE)
        people[f"{role}_phone"] = number
    check.raise_if_errors()
    department = Department(code=code, name=name, office_id=office.id, active=True, **people)
    session.add(department)
    session.flush()
    return department
