"""What a citizen's personal data looks like in text, written once: the patterns of phone and ID card numbers, and the
token an anonymised case holds instead of a name or a number.

- **Numbers in text** (`NUMBERS`): mainland mobile numbers however written (13812345678, +86 138 1234 5678,
  0086-138-1234-5678, full-width digits, %2B in an address), any other E.164 number, fixed lines with their area code
  (010-12345678, (0755)8888 8888) and 18-digit ID card numbers (the last character a digit or X, spaces or dashes
  allowed between digits). The log redaction (`tickets.logs.redact`) and the anonymisation of a case's free text
  (`mask_text`, `mask_value`) read the same patterns.
- **Tokens** (`new_token`, `is_token`): an anonymised case's name and number are replaced by 「已匿名-」 and a random
  part, never derived from what they replace (irreversible) and different for each case (so no two anonymised cases
  look like one citizen's). Pages, lists, exports and the PDFs show 「已匿名化」 instead (`shown`, `phones.mask`).
"""
from __future__ import annotations

import base64
import re
import secrets

from flask_babel import lazy_gettext as _l

MASK = "***"
# What people put between the digit groups of a number: ASCII space, tab, dot, plus and hyphen, and what a Chinese
# keyboard in full-width mode or a word processor types instead: the ideographic space, a no-break or thin space, a
# soft hyphen or an invisible break, the dashes and the minus sign, the full-width hyphen, dot, slash, the tildes, ー:
# every mark the phone parser (`phones.normalise_phone`, phonenumbers) reads between digits, brackets aside.
SEPARATORS = (" \t.+-" "\u3000\u00a0\u2009\u202f\u00ad\u200b\u2060"  # spaces, invisible breaks
              "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d"  # hyphens, dashes, minus, full-width hyphen
              "\uff0e/\uff0f~\uff5e\u2053\u223c\u30fc")  # full-width dot, slashes, tildes, ー
SEP = "(?:[" + re.escape(SEPARATORS) + "]|%20)?"  # between digits, in text and in addresses; \d takes full-width digits

# An 18-digit ID card number (6 digits of area, 8 of birth date, 3 of sequence, a check digit or X). First: a number
# of Hebei (13…) written in groups would otherwise be taken for a mobile number and half of it left.
ID_CARD = rf"(?<!\d)[1-9１-９](?:{SEP}\d){{16}}{SEP}[\dXxＸｘ](?!\d)"
# a mainland mobile number, however written: 13812345678, +86 138 1234 5678, 0086-138-1234-5678, %2B8613812345678
MOBILE = rf"(?<!\d)(?:(?:[+＋]|00|００)?[8８][6６]{SEP})?[1１][3-9３-９]\d(?:{SEP}\d){{8}}(?!\d)"
# any other E.164 number (+ and 7 to 15 digits)
E164 = rf"[+＋][1-9](?:{SEP}\d){{6,14}}(?!\d)"
# a fixed line with its area code: 010-12345678, (0755)8888 8888, （0755）8888 8888
LANDLINE = rf"(?<!\d)(?:[(（][0０]\d{{2,3}}[)）]|[0０]\d{{2,3}}){SEP}\d{{3,4}}{SEP}\d{{4}}(?!\d)"
NUMBERS = (ID_CARD, MOBILE, E164, LANDLINE)  # in this order: an ID number before a mobile one it may start with

# The lookahead lets the scan skip, cheaply, every position at which no number can start.
_NUMBERS_IN_TEXT = re.compile("(?=[\\d+＋(（])(?:" + "|".join(NUMBERS) + ")")


def mask_text(text: str) -> str:
    """`text` with every phone and ID card number in it replaced by *** (the rest kept as it is)."""
    return _NUMBERS_IN_TEXT.sub(MASK, text)


def mask_value(value):
    """A stored value with the numbers in its text masked: a string, or the strings inside a JSON value (an event's
    data: keys and non-text values are kept)."""
    if isinstance(value, str):
        return mask_text(value) if value else value
    if isinstance(value, dict):
        return {key: mask_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_value(item) for item in value]
    return value


# --- tokens -----------------------------------------------------------------------------------------------------------

TOKEN_PREFIX = "已匿名-"
SHOWN = _l("Anonymised")  # 已匿名化: what pages show instead of a token


def new_token() -> str:
    """An irreversible token: the prefix and 40 random bits in base 32 (a-z, 2-7: nothing a phone pattern takes)."""
    return TOKEN_PREFIX + base64.b32encode(secrets.token_bytes(5)).decode().lower()


def is_token(value) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def shown(value):
    """What a page shows of a stored name or number: 「已匿名化」 for a token, else the value itself."""
    return str(SHOWN) if is_token(value) else value
