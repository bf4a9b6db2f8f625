"""Field rules shared by the JSON API, the public form and the workflow. Pure: values in, values or messages out."""
from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l

from .errors import ValidationFailed

# Control characters other than tab and newlines, and lone surrogates: PostgreSQL refuses NUL and
# unpaired surrogates, and nothing a person types contains them.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
UNSTORABLE = _l("Contains characters that cannot be stored.")


def storable(value: str) -> bool:
    """Whether a text holds none of the characters `text` refuses (the database cannot keep them, nobody types them)."""
    return not _FORBIDDEN.search(value)


class FieldError(Exception):
    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def text(value, *, required: bool, max_len: int, min_len: int = 1, single_line: bool = False) -> str | None:
    """The string as written but for surrounding white space; None when optional and empty; or FieldError.

    No Unicode normalisation: NFC would rewrite CJK compatibility ideographs, and a name must stay as written.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(_l("This field is required."))
        return None
    if not isinstance(value, str):
        raise FieldError(_l("Must be text."))
    if not storable(value):
        raise FieldError(UNSTORABLE)
    value = value.strip()
    if single_line and ("\n" in value or "\r" in value):
        raise FieldError(_l("Must be on one line."))
    # counted as a browser's maxlength counts (a form sends each line break as CRLF, two characters, which the page's
    # limit counted as one), the text kept as written
    length = len(value) - value.count("\r\n")
    if length < min_len:
        raise FieldError(_l("Must be at least %(n)d characters.", n=min_len))
    if length > max_len:
        raise FieldError(_l("Must be at most %(n)d characters.", n=max_len))
    return value


def integer(value, *, required: bool, minimum: int | None = None, maximum: int | None = None) -> int | None:
    if value is None or value == "":
        if required:
            raise FieldError(_l("This field is required."))
        return None
    if isinstance(value, bool):
        raise FieldError(_l("Must be a whole number."))
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise FieldError(_l("Must be a whole number."))
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise FieldError(_l("Must be between %(lo)d and %(hi)d.", lo=minimum, hi=maximum))
    if minimum is not None and value < minimum:
        raise FieldError(_l("Must be at least %(lo)d.", lo=minimum))
    if maximum is not None and value > maximum:
        raise FieldError(_l("Must be at most %(hi)d.", hi=maximum))
    return value


ID_MAX = 2**31 - 1  # ids are 32-bit integers in the database; anything larger names no row


def identifier(value, *, required: bool) -> int | None:
    """A row id: a whole number from 1 to ID_MAX; other numbers name nothing, whatever the database."""
    number = integer(value, required=required)
    if number is not None and not 1 <= number <= ID_MAX:
        raise FieldError(_l("No record has this id."))
    return number


def boolean(value, *, required: bool) -> bool | None:
    if value is None:
        if required:
            raise FieldError(_l("This field is required."))
        return None
    if not isinstance(value, bool):
        raise FieldError(_l("Must be true or false."))
    return value


def calendar_date(value, *, required: bool):
    """A day written YYYY-MM-DD."""
    from datetime import date

    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(_l("This field is required."))
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise FieldError(_l("Must be a date written YYYY-MM-DD."))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise FieldError(_l("Must be a date written YYYY-MM-DD.")) from None


# The years a date or a time given to Banjie may fall in (cases, logs, cut-offs); outside them Python's dates overflow
# when moved between time zones or a day is added.
FIRST_YEAR, LAST_YEAR = 2000, 2100

_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")


def moment(value, *, required: bool, tz):
    """A date and time written ISO 8601, `YYYY-MM-DDTHH:MM[:SS][±HH:MM]`, as an aware datetime in UTC; without an
    offset it is local time in `tz` (the console's date-and-time field). Years 2000 to 2100."""
    from datetime import datetime, timezone

    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(_l("This field is required."))
        return None
    message = _l("Must be a date and time written YYYY-MM-DDTHH:MM (with an offset such as +08:00, or local time).")
    if not isinstance(value, str) or not _MOMENT.fullmatch(value.strip()):
        raise FieldError(message)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
            raise ValueError(parsed.year)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise FieldError(message) from None


def integer_list(value, *, max_items: int) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > max_items:
        raise FieldError(_l("Must be a list of at most %(n)d ids.", n=max_items))
    items = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= ID_MAX:
            raise FieldError(_l("Must be a list of at most %(n)d ids.", n=max_items))
        if item not in items:
            items.append(item)
    return items


class Collector:
    """Runs field rules and gathers every message, so the caller hears about all bad fields at once."""

    def __init__(self):
        self.errors: dict[str, object] = {}
        self.values: dict[str, object] = {}

    def field(self, name: str, rule, *args, **kwargs):
        try:
            self.values[name] = rule(*args, **kwargs)
        except FieldError as exc:
            self.errors[name] = exc.message
            self.values[name] = None
        return self.values[name]

    def fail(self, name: str, message) -> None:
        self.errors.setdefault(name, message)

    def raise_if_errors(self) -> dict:
        if self.errors:
            raise ValidationFailed(fields=self.errors)
        return self.values
