"""CSV exports of the console: inert in spreadsheets, readable by Excel on Chinese Windows, numbers masked.

Every value of every column passes the formula guard here, once, whatever the view's formatters do; the
file starts with a UTF-8 byte order mark, without which Excel reads UTF-8 as the local code page (GBK on
Chinese Windows) and shows mojibake; and phone numbers are masked unless the export asks for whole ones
(`?phones=full`, a separate button behind a confirmation).
"""
from __future__ import annotations

import itertools
import logging

from flask import request
from flask_login import current_user

from tickets import phones
from tickets.spreadsheets import BOM, FORMULA_STARTS, csv_safe  # noqa: F401  (the guard is the tickets room's)

log = logging.getLogger("banjie.export")

FULL_PHONES = ("phones", "full")  # the query argument that asks for whole numbers


def full_phones_requested() -> bool:
    return request.args.get(FULL_PHONES[0]) == FULL_PHONES[1]


class SafeCsvExport:
    """Mixin for a Flask-Admin model view (before ModelView in the bases) whose CSV export must be safe.

    `export_phone_columns` names the model's phone columns (stored E.164): masked (138****8000) by default,
    whole national numbers (13800138000, or 010-12345678 for a landline) only when the request asks for them.
    """

    export_phone_columns: tuple[str, ...] = ()

    def get_export_value(self, model, name):
        if name in self.export_phone_columns:
            number = getattr(model, name)
            value = phones.national(number) if number and full_phones_requested() else phones.mask(number)
        else:
            value = super().get_export_value(model, name)
        return csv_safe(value)

    def _export_csv(self, return_url):
        if full_phones_requested():
            # Who took whole numbers out of the system, never the numbers themselves.
            log.info("CSV export with full phone numbers: %s by user %s", self.endpoint, current_user.get_id())
        response = super()._export_csv(return_url)
        response.response = itertools.chain([BOM], response.response)
        return response
