"""交办单: one case on paper, for a department that still signs and seals what it receives (ReportLab, A4).

The case's facts with the citizen's phone masked (the sheet travels between offices), the lead department and the
co-departments, the handling deadline, the office's transfer instructions, leaders' instructions (批示), the
supervision level, and the lines the department signs. In the language of the request (the console's, or the API
caller's Accept-Language), unlike the monthly report, which is always Chinese.

`facts` reads the case through `tickets.presenters.staff_view` (so the slip shows what the case page shows) into a
dict of strings; `render` draws that dict. Every string of the case reaches a paragraph escaped (`markup`), so a
description holding `<b>&amp;</font>` prints as typed.
"""
from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import quote

from flask import Response, current_app
from flask_babel import gettext as _
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Spacer, Table, TableStyle

from tickets import clock, phones
from tickets.clock import local_text
from tickets.labels import supervision_text
from tickets.presenters import staff_view

from . import fonts
from .markup import lines, plain, text
# _BUILDING: the monthly report's lock, since both documents share the embedded font's subsetting state
from .pdf import _BUILDING, GRID, HEAD, TEXT_WIDTH, Styles, case_document

INSTRUCT = "instruct"  # 批示: a leader's (or the supervisor's) instruction on a case
DEPARTMENT_DEADLINES = ("handle", "rectify")  # what the department must meet, the one the slip is about
# The file is named for what it is, in every language; a client without RFC 5987 gets the ASCII fallback.
FILENAME = "交办单-{}.pdf"
FALLBACK_FILENAME = "slip-{}.pdf"
LABEL_WIDTH = 34 * mm


def _local(iso: str | None, tz) -> str:
    return local_text(datetime.fromisoformat(iso), tz) if iso else ""


def _deadline(deadlines: list[dict], tz) -> dict | None:
    """The department's running deadline (handling, or rectification after a 差评); else the last handling one,
    ended; None when the case never reached a department."""
    running = [d for d in deadlines if d["kind"] in DEPARTMENT_DEADLINES and not d["ended_at"]]
    handled = [d for d in deadlines if d["kind"] == "handle"]
    chosen = running[-1] if running else handled[-1] if handled else None
    if chosen is None:
        return None
    return {"kind": chosen["kind"], "label": chosen["label"], "due_at": _local(chosen["due_at"], tz),
            "working_days": chosen["working_days"], "extended_days": chosen["extended_days"] or 0,
            "provisional": bool(chosen["provisional"]), "ended_at": _local(chosen["ended_at"], tz)}


def facts(session, ticket, actor, now: datetime, tz) -> dict:
    """What the slip prints of the case, as strings in local time; the phone masked whoever prints it."""
    view = staff_view(session, ticket, actor, now)
    events = view["events"]
    transfer = next((e for e in reversed(events) if e["action"] == "transfer"), None)
    return {
        "office_name": view.get("office_name") or "",
        "tracking_no": view["tracking_no"],
        "printed_at": local_text(now, tz),
        "citizen_name": view["citizen_name"],
        "phone": phones.mask(ticket.phone),
        "problem_type": view["problem_type_label"],
        "service_item": view.get("service_item") or "",
        "filed_at": _local(view["created_at"], tz),
        "description": view["description"] or "",
        "department": view.get("department_name") or "",
        "co_departments": [name for name in view.get("co_department_names") or [] if name],
        "deadline": _deadline(view["deadlines"], tz),
        "transfer": {"note": transfer["note"] or "", "at": _local(transfer["at"], tz), "by": transfer["actor"] or ""}
        if transfer is not None else None,
        "instructions": [{"note": e["note"] or "", "at": _local(e["at"], tz), "by": e["actor"] or ""}
                         for e in events if e["action"] == INSTRUCT],
        "supervision": supervision_text(ticket.supervision_level),
    }


def _label_style(s: Styles) -> ParagraphStyle:
    """A field's name: short Chinese, or English wrapped between words (the body's CJK wrap breaks inside them)."""
    return ParagraphStyle("label", parent=s.body, wordWrap=None)


def _deadline_text(deadline: dict | None) -> str:
    if deadline is None:
        return _("Not transferred yet")
    days = (_("%(n)d working days + %(extra)d extended", n=deadline["working_days"], extra=deadline["extended_days"])
            if deadline["extended_days"] else _("%(n)s working days", n=deadline["working_days"]))
    line = _("%(due)s (%(days)s)", due=deadline["due_at"], days=days)
    if deadline["kind"] != "handle":
        line = _("%(deadline)s: %(due)s", deadline=deadline["label"], due=line)
    if deadline["ended_at"]:
        line = _("%(due)s; ended %(at)s", due=line, at=deadline["ended_at"])
    if deadline["provisional"]:
        line = _("%(due)s; provisional: the working-day calendar of that year is not published yet", due=line)
    return line


def _facts_table(f: dict, s: Styles) -> Table:
    def cell(value):
        return text(value or "—", s.body)

    label = _label_style(s)
    value_width = (TEXT_WIDTH - 2 * LABEL_WIDTH) / 2
    rows = [
        [text(_("Tracking number"), label), cell(f["tracking_no"]), text(_("Printed"), label), cell(f["printed_at"])],
        [text(_("Citizen"), label), cell(f["citizen_name"]), text(_("Phone number"), label), cell(f["phone"])],
        [text(_("Problem type"), label), cell(f["problem_type"]),
         text(_("Service item"), label), cell(f["service_item"])],
        [text(_("Filed at"), label), cell(f["filed_at"]), text(_("Supervision"), label),
         cell(f["supervision"] or _("None"))],
        [text(_("Lead department"), label), cell(f["department"]), "", ""],
        [text(_("Co-departments"), label), cell(_(", ").join(f["co_departments"])), "", ""],
        [text(_("Handling deadline"), label), cell(_deadline_text(f["deadline"])), "", ""],
    ]
    table = Table(rows, colWidths=[LABEL_WIDTH, value_width, LABEL_WIDTH, value_width])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, GRID), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("BACKGROUND", (0, 0), (0, -1), HEAD), ("BACKGROUND", (2, 0), (2, 3), HEAD),
        *[("SPAN", (1, row), (3, row)) for row in (4, 5, 6)],
    ]))
    return table


def _notes(f: dict, s: Styles) -> list:
    """The office's transfer instructions and the leaders' instructions, each with who wrote it and when."""
    transfer = f["transfer"]
    flow = [text(_("Transfer instructions"), s.h2)]
    if transfer is None:
        flow.append(text(_("Not transferred yet"), s.body))
    else:
        flow += [lines(transfer["note"] or _("None"), s.body),
                 text(" · ".join(v for v in (transfer["by"], transfer["at"]) if v), s.note)]
    flow.append(text(_("Leaders' instructions"), s.h2))
    if not f["instructions"]:
        flow.append(text(_("None"), s.body))
    for item in f["instructions"]:
        flow += [lines(item["note"], s.body), text(" · ".join(v for v in (item["by"], item["at"]) if v), s.note)]
    return flow


def _signatures(s: Styles, font: str) -> KeepTogether:
    """承办单位（盖章）, 承办人签字, 签收日期, 办理结果, 审核人签字: blank boxes the department fills in by hand."""
    label = _label_style(s)
    blank = " " * 8
    date = _("Year %(blank)s Month %(blank)s Day %(blank)s", blank=blank)
    value_width = (TEXT_WIDTH - 2 * LABEL_WIDTH) / 2
    rows = [
        [text(_("Handling department (seal)"), label), "", "", ""],
        [text(_("Handler's signature"), label), "", text(_("Date received"), label), plain(date)],
        [text(_("Result of the handling"), label), "", "", ""],
        [text(_("Reviewer's signature"), label), "", text(_("Date"), label), plain(date)],
    ]
    table = Table(rows, colWidths=[LABEL_WIDTH, value_width, LABEL_WIDTH, value_width],
                  rowHeights=[20 * mm, 12 * mm, 36 * mm, 12 * mm])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, GRID), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 10),
        ("ALIGN", (3, 1), (3, 1), "RIGHT"), ("ALIGN", (3, 3), (3, 3), "RIGHT"),
        ("BACKGROUND", (0, 0), (0, -1), HEAD),
        ("BACKGROUND", (2, 1), (2, 1), HEAD), ("BACKGROUND", (2, 3), (2, 3), HEAD),
        ("SPAN", (1, 0), (3, 0)), ("SPAN", (1, 2), (3, 2)),
    ]))
    return KeepTogether([text(_("Receipt and result"), s.h2), table])


def render(f: dict, *, font: str) -> bytes:
    """The slip as PDF bytes, in the current locale."""
    with _BUILDING:
        return _render(f, font)


def _render(f: dict, font: str) -> bytes:
    s = Styles(font)
    title = _("Transfer slip")
    flow = [text(f["office_name"], s.center), text(title, s.cover), Spacer(1, 4 * mm), _facts_table(f, s),
            text(_("What the citizen reported"), s.h2), lines(f["description"], s.body),
            *_notes(f, s), Spacer(1, 2 * mm), _signatures(s, font)]
    return case_document(flow, font=font, title=f"{title} {f['tracking_no']}", footer=f"{title} {f['tracking_no']}",
                         author=f["office_name"])


def pdf_response(session, ticket, actor) -> Response:
    """GET …/slip.pdf: the slip of a case the caller may see, shown in the browser, named 交办单-<tracking no>.pdf."""
    tz = clock.local_tz()
    font = fonts.register(current_app.config["REPORT_FONT"])
    data = render(facts(session, ticket, actor, clock.now(), tz), font=font)
    fallback = FALLBACK_FILENAME.format(re.sub(r"[^A-Za-z0-9._-]", "", ticket.tracking_no))
    disposition = f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(FILENAME.format(ticket.tracking_no))}"
    # no-store and nosniff come with every answer (tickets/headers.py): the slip holds a citizen's name and words
    return Response(data, mimetype="application/pdf", headers={"Content-Disposition": disposition})
