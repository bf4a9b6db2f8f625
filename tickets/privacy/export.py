"""A citizen's copy of what Banjie holds about them in one case (PIPL Art. 45), as a PDF they download.

Authorised as the look-up is: the tracking number and the query code (`intake.find_for_citizen`), posted, never in
an address; rate limited with the look-up (tickets/views.py `my_data`). Each download is a line of the access log
(`citizen_export`, actor "citizen"). What the copy holds and how it is drawn is the reports room's
(reports/citizen_copy.py: it reads the texts the SMS room sent, and draws with the report's Chinese font and its
escaping), put into `COPY` by that room's init_app: this room does not import the rooms built on it.
"""
from __future__ import annotations

import re
from typing import Callable
from urllib.parse import quote

from flask import Response

from ..models import AccessKind, Ticket
from ..slots import AppSlot
from .access import record

COPY: AppSlot[Callable[..., bytes]] = AppSlot(
    "banjie.citizen_copy", "draws a citizen's copy of one case as PDF bytes: (session, ticket) → bytes")
FILENAME = "我的信息-{}.pdf"
FALLBACK_FILENAME = "my-data-{}.pdf"


def citizen_copy(session, ticket: Ticket) -> bytes:
    """The PDF of what is held about the citizen of `ticket`, and its line in the access log (not committed)."""
    data = COPY.get()(session, ticket)
    record(session, AccessKind.citizen_export, actor="citizen", ticket_id=ticket.id)
    return data


def pdf_response(data: bytes, tracking_no: str) -> Response:
    """The copy as a download named 我的信息-<tracking no>.pdf (no-store and nosniff come with every answer)."""
    fallback = FALLBACK_FILENAME.format(re.sub(r"[^A-Za-z0-9._-]", "", tracking_no))
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(FILENAME.format(tracking_no))}"
    return Response(data, mimetype="application/pdf", headers={"Content-Disposition": disposition})
