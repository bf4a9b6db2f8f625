"""A citizen's copy of what Banjie holds about them in one case, as a PDF (PIPL Art. 45): the drawing and what it holds.

`held` gathers it: their name and whole number (it is theirs), what they reported and added, the window and the
departments that handled the case, the public history, the answers, the texts sent to them (their bodies, but a
text that carried the query code says so instead of repeating it), the surveys and ratings, the files they
attached (names and sizes), how long it is kept, and whom to ask for its deletion. `render` draws it with the
report's Chinese font; every string reaches ReportLab escaped (`markup`), and the paragraphs parse with the
report's resource-free parser, so a description holding `<para>`, `<b>` or `&` prints as typed.

The tickets room authorises the download and logs it (tickets/privacy/export.py); `init_app` hands it `copy`.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from reportlab.lib.units import mm
from reportlab.platypus import Spacer, Table, TableStyle

from notify.messages import KINDS as SMS_KINDS
from notify.models import SmsMessage
from tickets import clock, phones
from tickets.personal import shown
from tickets.labels import (CHANNEL_LABELS, PROBLEM_TYPE_LABELS, RATING_CHANNEL_LABELS, SCORE_LABELS, STATUS_LABELS,
                            label)
from tickets.models import (FINAL_STATUSES, Attachment, AttachmentSource, Deadline, Department, Event, Office,
                            Survey, Ticket, TicketCoDepartment)
from tickets.presenters import ANSWER_SHOWN, public_timeline
from tickets.workflow import SUPPLEMENT

from . import fonts
from .markup import lines, text
# _BUILDING: the monthly report's lock, since every document shares the embedded font's subsetting state
from .pdf import _BUILDING, GRID, HEAD, TEXT_WIDTH, Styles, case_document

LABEL_WIDTH = 34 * mm


def _local(value: datetime | None, tz) -> str:
    return clock.local_text(value, tz) if value else ""


def _departments(session, ticket: Ticket) -> list[str]:
    """Every department the case went to (each transfer's deadline names one), the co-departments, in that order."""
    ids = list(session.scalars(sa.select(Deadline.department_id).where(
        Deadline.ticket_id == ticket.id, Deadline.department_id.is_not(None)).order_by(Deadline.id)))
    ids += [ticket.department_id] if ticket.department_id else []
    ids += list(session.scalars(sa.select(TicketCoDepartment.department_id)
                                .where(TicketCoDepartment.ticket_id == ticket.id)))
    ordered = list(dict.fromkeys(ids))
    names = dict(session.execute(sa.select(Department.id, Department.name).where(Department.id.in_(ordered))).all()) \
        if ordered else {}
    return [names[i] for i in ordered if i in names]


def _sms_body(message: SmsMessage) -> str:
    kind = SMS_KINDS.get(message.template)
    if kind is not None and kind.secret:
        return _("(This text carried your query code; it is not repeated here.)")
    return message.body


def retention(ticket: Ticket, tz) -> str:
    """How long the case is kept: RETENTION_DAYS after it ends (tickets/privacy/retention.py), else the archive rules."""
    days = current_app.config.get("RETENTION_DAYS") or 0
    if days <= 0:
        return _("Your case is kept according to the office's archive rules for complaint records; you may ask for "
                 "your personal information in it to be deleted (anonymised) at any time.")
    if ticket.closed_at is not None and ticket.status in FINAL_STATUSES:
        return _("Your name and phone number in this case will be anonymised (replaced so that nobody can read them "
                 "back) %(days)d days after the case ended, that is around %(date)s.", days=days,
                 date=clock.local(ticket.closed_at + timedelta(days=days)).strftime("%Y-%m-%d"))
    return _("Your name and phone number in this case will be anonymised (replaced so that nobody can read them "
             "back) %(days)d days after the case ends.", days=days)


def held(session, ticket: Ticket, now: datetime, tz) -> dict:
    """Everything the copy shows, as strings in local time."""
    office = session.get(Office, ticket.office_id)
    office_name = office.name if office is not None else ""
    events = list(session.scalars(sa.select(Event).where(Event.ticket_id == ticket.id).order_by(Event.at, Event.id)))
    texts = session.scalars(sa.select(SmsMessage).where(SmsMessage.ticket_id == ticket.id,
                                                        SmsMessage.audience == "citizen").order_by(SmsMessage.id))
    surveys = session.scalars(sa.select(Survey).where(Survey.ticket_id == ticket.id).order_by(Survey.round))
    files = session.scalars(sa.select(Attachment).where(Attachment.ticket_id == ticket.id,
                                                        Attachment.source == AttachmentSource.citizen.value)
                            .order_by(Attachment.id))
    return {
        "site": current_app.config["OFFICE_NAME"],
        "office_name": office_name,
        "tracking_no": ticket.tracking_no,
        "made_at": _local(now, tz),
        "name": shown(ticket.citizen_name) or "",  # 已匿名化 for an anonymised case, as its number
        "phone": phones.national(ticket.phone) if ticket.phone else "",
        "status": label(STATUS_LABELS, ticket.status),
        "problem_type": label(PROBLEM_TYPE_LABELS, ticket.problem_type),
        "service_item": ticket.service_item or "",
        "channel": label(CHANNEL_LABELS, ticket.channel),
        "filed_at": _local(ticket.created_at, tz),
        "closed_at": _local(ticket.closed_at, tz),
        "description": ticket.description or "",
        "added": [{"at": _local(e.at, tz), "text": e.note or ""} for e in events if e.action == SUPPLEMENT],
        "departments": _departments(session, ticket),
        "timeline": [{"at": clock.iso_text(step["at"]), "label": step["label"], "note": step["note"] or ""}
                     for step in public_timeline(session, ticket)],
        "reply": ticket.public_reply if ticket.status in ANSWER_SHOWN and ticket.public_reply else "",
        "texts": [{"at": _local(m.created_at, tz), "body": _sms_body(m)} for m in texts],
        "surveys": [{"round": s.round, "opened_at": _local(s.opened_at, tz),
                     "score": label(SCORE_LABELS, s.score) if s.score is not None else "",
                     "defaulted": bool(s.defaulted), "comment": s.comment or "", "rated_at": _local(s.rated_at, tz),
                     "channel": label(RATING_CHANNEL_LABELS, s.channel) if s.channel else ""} for s in surveys],
        "files": [{"name": f.name, "size": f.size} for f in files],
        "retention": retention(ticket, tz),
        "deletion": _("To have your personal information in this case deleted (anonymised), ask for it on your case's "
                      "page under Track my case (tracking number %(no)s and your query code), or ask %(office)s; it is "
                      "carried out once the case has ended.",
                      office=office_name or current_app.config["OFFICE_NAME"], no=ticket.tracking_no),
    }


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, round(n / 1024))} KB"


def _facts(h: dict, s: Styles) -> Table:
    rows = [(_("Tracking number"), h["tracking_no"]), (_("Your name"), h["name"]), (_("Phone number"), h["phone"]),
            (_("Status"), h["status"]), (_("Problem type"), h["problem_type"]),
            (_("Service item"), h["service_item"]), (_("How it came in"), h["channel"]), (_("Filed"), h["filed_at"]),
            (_("Closed"), h["closed_at"]), (_("Window"), h["office_name"]),
            (_("Departments that handled it"), _(", ").join(h["departments"]))]
    table = Table([[text(name, s.body), text(value or "—", s.body)] for name, value in rows],
                  colWidths=[LABEL_WIDTH, TEXT_WIDTH - LABEL_WIDTH])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, GRID), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                               ("BACKGROUND", (0, 0), (0, -1), HEAD)]))
    return table


def _section(title: str, s: Styles, items: list, empty: str | None = None) -> list:
    flow = [text(title, s.h2)]
    return flow + (items if items else [text(empty or _("None"), s.body)])


def render(h: dict, *, font: str) -> bytes:
    """The copy as PDF bytes, in the current locale."""
    with _BUILDING:
        return _render(h, font)


def _render(h: dict, font: str) -> bytes:
    s = Styles(font)
    title = _("What we hold about you")
    flow = [text(h["site"], s.center), text(title, s.cover),
            text(_("Made for you on %(at)s, at your request with your tracking number and query code.",
                   at=h["made_at"]), s.center), Spacer(1, 4 * mm), _facts(h, s),
            text(_("What you reported"), s.h2), lines(h["description"], s.body)]
    flow += _section(_("What you added"), s, [p for item in h["added"] for p in (
        text(item["at"], s.note), lines(item["text"], s.body))])
    flow += _section(_("Progress"), s, [p for step in h["timeline"] for p in (
        text(f"{step['at']} · {step['label']}", s.note), *([lines(step["note"], s.body)] if step["note"] else []))])
    flow += _section(_("Reply"), s, [lines(h["reply"], s.body)] if h["reply"] else [], _("No reply yet."))
    flow += _section(_("Text messages sent to you"), s, [p for m in h["texts"] for p in (
        text(m["at"], s.note), lines(m["body"], s.body))])
    survey_lines = []
    for survey in h["surveys"]:
        rating = (_("%(score)s (recorded by default: no rating was given)", score=survey["score"])
                  if survey["defaulted"] else survey["score"]) or _("not rated")
        survey_lines.append(text(_("Round %(n)d, sent %(at)s: %(rating)s", n=survey["round"], at=survey["opened_at"],
                                   rating=rating), s.body))
        if survey["comment"]:
            survey_lines.append(lines(survey["comment"], s.body))
    flow += _section(_("Satisfaction surveys and ratings"), s, survey_lines)
    flow += _section(_("Files you attached"), s, [text(f"{f['name']} ({_size(f['size'])})", s.body)
                                                  for f in h["files"]])
    flow += [text(_("How long it is kept"), s.h2), text(h["retention"], s.body),
             text(_("Deletion"), s.h2), text(h["deletion"], s.body)]
    return case_document(flow, font=font, title=f"{title} {h['tracking_no']}",
                         footer=f"{title} · {h['tracking_no']} · {h['made_at']}", author=h["site"])


def copy(session, ticket: Ticket) -> bytes:
    """What tickets/privacy/export.py calls: the case's copy, drawn now."""
    tz = clock.local_tz()
    return render(held(session, ticket, clock.now(), tz), font=fonts.register(current_app.config["REPORT_FONT"]))
