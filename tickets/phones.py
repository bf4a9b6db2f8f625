"""Mainland mobile numbers: parse any common spelling, store E.164, show masked."""
from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalise_mobile(raw: str) -> str | None:
    """E.164 (+8613800138000) for a valid mainland mobile number, else None.

    Accepts spaces, dashes, dots, brackets, full-width digits, and the +86 / 0086 / 86 prefixes.
    """
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    # "8613800138000" without a plus is common on forms; phonenumbers would read it as a national number.
    if not text.startswith(("+", "＋")) and len(digits) == 13 and digits.startswith("86"):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, "CN")
    except NumberParseException:
        return None
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def national(e164: str) -> str:
    """13800138000: how people write a mainland mobile number."""
    return e164[3:] if e164.startswith("+86") else e164


def mask(e164: str | None) -> str:
    """138****8000: enough to recognise, not enough to call."""
    if not e164:
        return ""
    number = national(e164)
    if len(number) < 8:
        return "*" * len(number)
    return f"{number[:3]}****{number[-4:]}"
