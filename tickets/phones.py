"""Mainland phone numbers: parse any common spelling, store E.164, show masked.

A citizen gives a mobile number or a fixed line (座机: area code and number); staff, supervisors and leaders, who
are texted, give mobile numbers. Only a mobile number can receive a text: `is_mobile` is the one test of that (the
SMS room writes no text to any other number).
"""
from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from .personal import is_token, shown

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_PHONE_TYPES = _MOBILE_TYPES | {PhoneNumberType.FIXED_LINE}
_MAX_LENGTH = 40


def _parse(raw) -> tuple[phonenumbers.PhoneNumber | None, PhoneNumberType]:
    """A valid mainland number (of any type) in any common spelling and its type, else (None, UNKNOWN); never raises.

    Accepts spaces, dashes, dots, brackets, full-width digits, the +86 / 0086 / 86 prefixes and a fixed line's
    trunk 0 (010-12345678, (0755)8888 8888). A number with an extension is refused: E.164 cannot keep it.
    The metadata is matched once: for a +86 number, `phonenumbers.is_valid_number` is exactly "its type is known"
    (both read `number_type`'s match): parsing is on filing's hot path (issue 11, item 20), whose second look at the
    number (the stored one, before the receipt is texted) is a lookup in `_KNOWN_KINDS`.
    """
    unknown = None, PhoneNumberType.UNKNOWN
    if not isinstance(raw, str) or len(raw) > _MAX_LENGTH:
        return unknown
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    # "8613800138000" without a plus is common on forms; phonenumbers would read it as a national number.
    if not text.startswith(("+", "＋")) and len(digits) == 13 and digits.startswith("86"):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, "CN")
    except (NumberParseException, ValueError, IndexError):
        return unknown
    if number.country_code != 86 or number.extension:
        return unknown
    kind = phonenumbers.number_type(number)
    return (None if kind == PhoneNumberType.UNKNOWN else number), kind


# The type of each number `_e164` wrote last, by its E.164: filing parses the citizen's number, then asks of the stored
# one whether a text can reach it (`is_mobile`, before the receipt, in the same request); that second parse is a lookup
# here. Only the last few numbers are kept, in memory and never written anywhere (a citizen's number is personal
# information): when full it starts again, and a number not found is parsed, as before.
_KNOWN_KINDS: dict[str, PhoneNumberType] = {}
_KNOWN_MAX = 64


def _e164(raw, types) -> str | None:
    number, kind = _parse(raw)
    if number is None or kind not in types:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(_KNOWN_KINDS) >= _KNOWN_MAX:
        _KNOWN_KINDS.clear()
    _KNOWN_KINDS[e164] = kind
    return e164


def normalise_mobile(raw: str) -> str | None:
    """E.164 (+8613800138000) for a valid mainland mobile number, else None (for numbers that are texted)."""
    return _e164(raw, _MOBILE_TYPES)


def normalise_phone(raw: str) -> str | None:
    """E.164 for a valid mainland mobile number or fixed line (+861012345678 for 010-12345678), else None: what a
    citizen may give. A fixed line gets no text (`is_mobile`)."""
    return _e164(raw, _PHONE_TYPES)


def is_mobile(e164) -> bool:
    """Whether a stored number (E.164) is a mainland mobile number, the only kind a text can reach. False for a
    fixed line, None, or anything that is not a number; never raises."""
    if not isinstance(e164, str):
        return False
    known = _KNOWN_KINDS.get(e164)
    if known is not None:
        return known in _MOBILE_TYPES
    return normalise_mobile(e164) == e164


def phone_type(e164) -> str | None:
    """"mobile" or "landline" for a stored number (None for none): how the staff views name it."""
    if not e164 or is_token(e164):
        return None  # none, or an anonymised case's token (personal.py)
    return "mobile" if is_mobile(e164) else "landline"


def _fixed_line_parts(e164: str) -> tuple[str, str] | None:
    """(area code with its trunk 0, subscriber number) of a mainland fixed line: ("010", "12345678")."""
    if len(e164) == 14 and e164.startswith("+861"):
        return None  # a mobile number's shape (a fixed line of Beijing, 010, has one digit fewer): no parsing
    number, kind = _parse(e164)
    if number is None or kind != PhoneNumberType.FIXED_LINE:
        return None
    national = str(number.national_number)
    area = phonenumbers.length_of_geographical_area_code(number)
    if not area or area >= len(national):
        return None
    return "0" + national[:area], national[area:]


def national(e164: str) -> str:
    """How people write the number: 13800138000 for a mobile, 010-12345678 for a fixed line."""
    if is_token(e164):
        return shown(e164)  # 已匿名化: an anonymised case's number is gone
    parts = _fixed_line_parts(e164) if e164 else None
    if parts is not None:
        return "-".join(parts)
    return e164[3:] if e164.startswith("+86") else e164


def mask(e164: str | None) -> str:
    """138****8000, or 010****5678 for a fixed line (the area code kept): enough to recognise, not enough to call."""
    if not e164:
        return ""
    if is_token(e164):
        return shown(e164)  # 已匿名化: an anonymised case's number is gone
    parts = _fixed_line_parts(e164)
    if parts is not None:
        area, local = parts
        return f"{area}****{local[-4:]}"
    number = national(e164)
    if len(number) < 8:
        return "*" * len(number)
    return f"{number[:3]}****{number[-4:]}"
