"""Staff accounts and their API tokens: one set of rules for making and changing them, whoever does it (console,
CLI, demo, tests).

Every rule about an account's values lives here and answers with the contract's ValidationFailed and one
message per field, so the console shows field errors and the command line a clear error from the same text.
A change of what an account may do or prove (password, role, department, office, deactivation) ends every console
session of that account (tickets/logins.py). Operations flush and never commit.
"""
from __future__ import annotations

import re

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from werkzeug.security import generate_password_hash

from . import logins, offices, validation
from .models import OFFICE_MEMBER_ROLES, ApiToken, Department, Office, Role, TokenScope, User
from .phones import normalise_mobile
from .secrets import hash_api_token, new_api_token
from .validation import Collector, FieldError, identifier, storable

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PASSWORD_MIN, PASSWORD_MAX = 8, 200
DISPLAY_NAME_MAX = 64
TOKEN_LABEL_MAX = 64
# Changing one of these changes what the account may do or how it proves who it is: its sessions end.
SESSION_ENDING = ("password_hash", "role", "department_id", "office_id", "active")


def create_user(session, username: str, role: str | None, *, department_code: str | None = None,
                department_id: int | None = None, password: str | None = None, phone: str | None = None,
                display_name: str | None = None, active: bool = True, require_password: bool = False,
                office_code: str | None = None, office_id: int | None = None) -> User:
    """A new staff account, or ValidationFailed naming every bad field.

    Office, supervisor and leader accounts belong to one office (the root when none is named); administrators
    and department handlers to none (a handler's office is its department's).

    `require_password=False` allows an account without one (it cannot sign in to the console; integrations
    use it through API tokens); the console and the CLI ask for a password unless told otherwise.
    """
    check = Collector()
    values = _check(session, check, username=username, role=role, department_code=department_code,
                    department_id=department_id, password=password, phone=phone, display_name=display_name,
                    office_code=office_code, office_id=office_id)
    if require_password and not password:
        check.fail("password", _l("Set a password for the new account."))
    check.raise_if_errors()
    user = User(username=values["username"], role=values["role"], department_id=values["department_id"],
                office_id=values["office_id"], phone=values["phone"], display_name=values["display_name"], active=active,
                password_hash=_hash(password))
    session.add(user)
    session.flush()
    return user


_UNSET = object()


def update_user(session, user: User, *, by: User | None = None, username=_UNSET, role=_UNSET,
                department_id=_UNSET, password: str | None = None, phone=_UNSET, display_name=_UNSET,
                active=_UNSET, office_id=_UNSET) -> User:
    """Change an account with the rules of `create_user`; what is not given stays. An empty password keeps it.

    `by` is who makes the change (the console's user): nobody may take away their own administrator role
    or deactivate their own account, so that the last administrator cannot shut everyone out.
    """
    current = {"username": user.username, "role": user.role, "department_id": user.department_id,
               "phone": user.phone, "display_name": user.display_name, "active": user.active,
               "office_id": user.office_id}
    given = {"username": username, "role": role, "department_id": department_id, "phone": phone,
             "display_name": display_name, "active": active, "office_id": office_id}
    wanted = {key: current[key] if value is _UNSET else value for key, value in given.items()}
    check = Collector()
    values = _check(session, check, username=wanted["username"], role=wanted["role"],
                    department_id=wanted["department_id"], password=password or None, phone=wanted["phone"],
                    display_name=wanted["display_name"], office_id=wanted["office_id"], editing=user)
    if by is not None and by.id == user.id:
        if values["role"] is not None and values["role"] != Role.admin.value and user.role == Role.admin.value:
            check.fail("role", _l("You cannot remove your own administrator role."))
        if not wanted["active"]:
            check.fail("active", _l("You cannot deactivate your own account."))
    check.raise_if_errors()
    changed = {
        "role": values["role"] != _value(user.role),
        "department_id": values["department_id"] != user.department_id,
        "office_id": values["office_id"] != user.office_id,
        "active": bool(user.active) and not wanted["active"],  # reactivating finds no session to end
        "password_hash": bool(password),
    }
    user.username, user.role, user.department_id = values["username"], values["role"], values["department_id"]
    user.office_id = values["office_id"]
    user.phone, user.display_name, user.active = values["phone"], values["display_name"], bool(wanted["active"])
    if password:
        user.password_hash = _hash(password)
    reasons = [name for name in SESSION_ENDING if changed[name]]
    if reasons:
        session.flush()
        logins.revoke_all(session, user.id, reason=_reason(reasons))
    return user


def issue_token(session, user: User, label: str | None = None, scope: str | None = None) -> str:
    """A new API token of an active account, to be shown once (only its hash is stored); or ValidationFailed.
    `scope` (a TokenScope value: file, read, act) limits it to that (tickets/access.py); None: all its user may do."""
    check = Collector()
    label = check.field("label", validation.text, label, required=False, max_len=TOKEN_LABEL_MAX, single_line=True)
    if scope in ("", None):
        scope = None
    elif scope not in TokenScope.__members__:
        check.fail("scope", _l("Choose one of the listed scopes."))
    if not user.active:
        check.fail("user_id", _l("Inactive accounts can neither sign in nor use their API tokens."))
    check.raise_if_errors()
    token = new_api_token()
    session.add(ApiToken(user_id=user.id, token_hash=hash_api_token(token), label=label, scope=scope))
    return token


def revoke_token(session, token: ApiToken, now) -> bool:
    """Revoke a token for good; False when it already was."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = now
    return True


# --- the rules -----------------------------------------------------------------------------------------------

def _check(session, check: Collector, *, username, role, department_code=None, department_id=None, password=None,
           phone=None, display_name=None, office_code=None, office_id=None, editing: User | None = None) -> dict:
    """Every field rule at once; the cleaned values (None where a rule failed)."""
    name = username.strip() if isinstance(username, str) else ""
    if not USERNAME.fullmatch(name):
        check.fail("username", _l("Use 1 to 64 letters, digits, dots, dashes or underscores, starting with a "
                                  "letter or digit."))
    elif _username_taken(session, name, editing):
        check.fail("username", _l("This username is already in use."))
    check.values["username"] = name

    role_value = _value(role)
    if not role_value:
        check.fail("role", _l("Choose a role."))
        role_value = None
    elif role_value not in Role.__members__:
        check.fail("role", _l("Unknown role."))
        role_value = None
    check.values["role"] = role_value

    department = _department(session, check, department_code, department_id)
    if role_value == Role.department.value and department is None and "department_id" not in check.errors:
        check.fail("department_id", _l("A department handler needs a department."))
    if role_value not in (None, Role.department.value) and department is not None:
        check.fail("department_id", _l("Only department handlers belong to a department."))
    check.values["department_id"] = department.id if department is not None else None

    office = _office(session, check, office_code, office_id)
    if role_value in OFFICE_MEMBER_ROLES:
        if office is None and "office_id" not in check.errors:
            office = offices.root(session)
    elif office_code:  # named on the command line for a role that has none; a form's leftover choice is dropped
        check.fail("office_id", _l("Only office, supervisor and leader accounts belong to an office."))
    check.values["office_id"] = office.id if office is not None and role_value in OFFICE_MEMBER_ROLES else None

    if password is not None and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        check.fail("password", _l("Use between 8 and 200 characters."))

    number = None
    if phone not in (None, ""):
        number = normalise_mobile(phone)
        if number is None:
            check.fail("phone", _l("Enter a valid mainland mobile number, e.g. 138 0013 8000."))
    check.values["phone"] = number

    shown = display_name.strip() if isinstance(display_name, str) else None
    if shown and len(shown) > DISPLAY_NAME_MAX:
        check.fail("display_name", _l("Use at most 64 characters."))
    check.values["display_name"] = shown or None
    return check.values


def _username_taken(session, name: str, editing: User | None) -> bool:
    """Usernames differing only in case would be told apart by nobody: they count as the same."""
    query = sa.select(User.id).where(sa.func.lower(User.username) == name.lower())
    if editing is not None and editing.id is not None:
        query = query.where(User.id != editing.id)
    return session.scalar(query.limit(1)) is not None


def _row(session, model, value):
    """The row a number names (`validation.identifier`: a whole number the database holds), or None."""
    try:
        return session.get(model, identifier(value, required=True))
    except FieldError:
        return None


def _department(session, check: Collector, code, department_id) -> Department | None:
    if code:  # a code the database cannot compare (not text, a NUL, a lone surrogate) names no department
        department = session.scalar(sa.select(Department).where(Department.code == code)) if (
            isinstance(code, str) and storable(code)) else None
        if department is None:
            check.fail("department_id", _l("There is no department with this code."))
        return department
    if department_id in (None, ""):
        return None
    department = _row(session, Department, department_id)
    if department is None:
        check.fail("department_id", _l("Unknown department."))
    return department


def _office(session, check: Collector, code, office_id) -> Office | None:
    if code:
        office = offices.by_code(session, code)
        if office is None:
            check.fail("office_id", _l("There is no office with this code."))
        return office
    if office_id in (None, ""):
        return None
    office = _row(session, Office, office_id)
    if office is None:
        check.fail("office_id", _l("Unknown office."))
    return office


def _value(role) -> str | None:
    return role.value if isinstance(role, Role) else role


def _hash(password: str | None) -> str | None:
    return generate_password_hash(password) if password else None


def _reason(changed: list[str]) -> str:
    """The first of what changed, in SESSION_ENDING's order, as the revocation's recorded reason."""
    return {"password_hash": "password", "role": "role", "department_id": "role", "office_id": "role",
            "active": "deactivated"}[changed[0]]
