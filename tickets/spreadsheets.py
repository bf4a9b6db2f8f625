"""CSV that spreadsheets open safely: the one formula guard and byte order mark of every export and import.

A cell starting with one of FORMULA_STARTS would run as a formula in Excel or WPS; `csv_safe` puts an apostrophe
before it. The file starts with a UTF-8 byte order mark, without which Excel on Chinese Windows reads UTF-8 as GBK.
"""
from __future__ import annotations

BOM = "\ufeff"
# Spreadsheets run a cell starting with one of these as a formula (a tab or carriage return before one, too). The
# full-width forms are what a Chinese input method types: a spreadsheet may read them as the ASCII ones.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def csv_safe(value) -> str:
    """The cell's text, with a leading apostrophe when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
