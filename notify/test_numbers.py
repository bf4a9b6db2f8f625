"""Test numbers: mobile numbers Banjie reserves for demos and tests. Pure: no clock, no configuration.

Mainland China has no officially reserved range of fictional mobile numbers (like the UK's 07700 900xxx),
so Banjie reserves one itself: by default the thousand numbers +86 170 0000 0000 to +86 170 0000 0999
(`SMS_TEST_NUMBERS`). `normalise_mobile` accepts them like any other mobile number, so they work in every
form and the demo's staff and citizens use them; but the SMS room never hands a text to one of them to a
provider, whatever `SMS_BACKEND` says: it is recorded in the SMS log as a test number instead. Such a
number may well belong to someone in real life, which is exactly why nothing is ever sent to it.
"""
from __future__ import annotations

import re

DEFAULT_TEST_NUMBERS = "+8617000000"
_PREFIX = re.compile(r"^\+[1-9]\d{0,14}$")


def parse_test_numbers(spec: str | None) -> tuple[str, ...]:
    """'+86 170 0000 0, +8613912345678' → ('+8617000000', '+8613912345678'); empty → () (no test numbers).

    Entries are separated by commas; each is an E.164 prefix (a whole number is a prefix too), in which
    spaces and dashes are ignored. ValueError for anything else.
    """
    prefixes = []
    for entry in (spec or "").split(","):
        compact = re.sub(r"[\s-]", "", entry)
        if not compact:
            continue
        if not _PREFIX.match(compact):
            raise ValueError(f"SMS_TEST_NUMBERS takes E.164 prefixes such as +8617000000, not {entry.strip()!r}")
        prefixes.append(compact)
    return tuple(prefixes)


def is_test_number(phone: str | None, prefixes: tuple[str, ...]) -> bool:
    """Whether an E.164 number (as stored) lies in the reserved test range."""
    return bool(prefixes and phone and phone.startswith(prefixes))
