"""CSV exports of the console: inert in spreadsheets, readable by Excel on Chinese Windows, numbers masked.

Every value of every column passes the formula guard here, once, whatever the view's formatters do; the
file starts with a UTF-8 byte order mark, without which Excel reads UTF-8 as the local code page (GBK on
Chinese Windows) and shows mojibake; and phone numbers are masked unless the export asks for whole ones: a
separate form (POST, 「包含完整号码」 ticked and a reason given), for the roles that see whole numbers, each such
export a line of the access log (who, when, why, how many rows, the list's filters: tickets/privacy/access.py).
"""
from __future__ import annotations

import itertools

from flask import g, request

from tickets import phones
from tickets.db import db
from tickets.privacy import access as privacy
from tickets.spreadsheets import BOM, FORMULA_STARTS, csv_safe  # noqa: F401  (the guard is the tickets room's)

from .base import current_actor

FULL_FIELD = "full_phones"  # the form's checkbox 「包含完整号码」


def full_phones_requested() -> bool:
    """Whether this export was granted whole numbers (`SafeCsvExport.grant_full_phones`)."""
    return g.get("banjie_export_reason") is not None


class SafeCsvExport:
    """Mixin for a Flask-Admin model view (before ModelView in the bases) whose CSV export must be safe.

    `export_phone_columns` names the model's phone columns (stored E.164): masked (138****8000) by default,
    whole national numbers (13800138000, or 010-12345678 for a landline) only when the view granted them
    (`grant_full_phones`, from its own form: QueueView.export_full).
    """

    export_phone_columns: tuple[str, ...] = ()

    def get_export_value(self, model, name):
        if name in self.export_phone_columns:
            number = getattr(model, name)
            value = phones.national(number) if number and full_phones_requested() else phones.mask(number)
        else:
            value = super().get_export_value(model, name)
        return csv_safe(value)

    def grant_full_phones(self, reason: str) -> None:
        """This request's export carries whole numbers, for `reason` (already checked: `privacy.clean_reason`)."""
        g.banjie_export_reason = reason

    def _export_data(self):
        count, data = super()._export_data()
        g.banjie_export_rows = len(data)
        return count, data

    def _export_csv(self, return_url):
        response = super()._export_csv(return_url)  # the rows are read here; their cells as the file streams
        if full_phones_requested():
            # Who took whole numbers out of the system, how many and with which filters; never the numbers.
            privacy.record_export(db.session, user=current_actor(), what=self.endpoint,
                                  count=g.get("banjie_export_rows", 0), filters=privacy.export_filters(request.args),
                                  reason=g.banjie_export_reason)
            db.session.commit()
        response.response = itertools.chain([BOM], response.response)
        return response
