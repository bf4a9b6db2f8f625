"""The monthly PDF (ReportLab platypus): cover, department ranking, charts, recurring matters, lists, formulas.

It reads only the figures dict `figures.monthly_figures` made, so a stored report renders the same again.
"""
from __future__ import annotations

import io
from datetime import datetime

from flask_babel import force_locale, gettext as _
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle,
)

from . import charts
from .formulas import FORMULA_BY_KEY, FORMULA_VERSION, FORMULAS

GRID = colors.HexColor("#b0b7c3")
HEAD = colors.HexColor("#e8eef7")
TOTAL = colors.HexColor("#fff4e0")
HEADLINE_KEYS = ("accepted", "closed", "closure_rate", "on_time_rate", "avg_handling_days", "overdue",
                 "satisfaction_rate", "good_rate", "bad")
DEPARTMENT_COLUMNS = ("accepted", "closed", "closure_rate", "on_time_rate", "avg_handling_days", "overdue",
                      "returned", "extended", "satisfaction_rate", "bad")


def percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def show(key: str, value) -> str:
    if key in FORMULA_BY_KEY and FORMULA_BY_KEY[key].rate:
        return percent(value)
    if value is None:
        return "—"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def month_title(month: str) -> str:
    year, number = month.split("-")
    return _("%(year)s-%(month)s", year=year, month=int(number))


class Styles:
    def __init__(self, font: str):
        base = dict(fontName=font, wordWrap="CJK", leading=14, fontSize=10)
        self.body = ParagraphStyle("body", **base)
        self.small = ParagraphStyle("small", **{**base, "fontSize": 8, "leading": 10})
        self.h1 = ParagraphStyle("h1", **{**base, "fontSize": 15, "leading": 20, "spaceBefore": 6, "spaceAfter": 8})
        self.h2 = ParagraphStyle("h2", **{**base, "fontSize": 12, "leading": 16, "spaceBefore": 8, "spaceAfter": 4})
        self.cover = ParagraphStyle("cover", **{**base, "fontSize": 22, "leading": 30, "alignment": TA_CENTER})
        self.center = ParagraphStyle("center", **{**base, "alignment": TA_CENTER})


def _table(rows, widths, font, *, header=True, total_row=False, size=8):
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [
        ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), size),
        ("GRID", (0, 0), (-1, -1), 0.4, GRID), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ALIGN", (1, 0), (-1, -1), "CENTER"),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HEAD))
    if total_row:
        style.append(("BACKGROUND", (0, -1), (-1, -1), TOTAL))
    table.setStyle(TableStyle(style))
    return table


def _cover(figures, s: Styles, office: str, generated: str, font: str):
    cells = [[Paragraph(str(FORMULA_BY_KEY[k].label), s.center) for k in HEADLINE_KEYS[i:i + 3]]
             for i in range(0, len(HEADLINE_KEYS), 3)]
    values = [[Paragraph(f'<font size="18">{show(k, figures["office"][k])}</font>', s.center)
               for k in HEADLINE_KEYS[i:i + 3]] for i in range(0, len(HEADLINE_KEYS), 3)]
    rows = [row for pair in zip(values, cells) for row in pair]
    grid = Table(rows, colWidths=[55 * mm] * 3, rowHeights=[12 * mm, 8 * mm] * (len(rows) // 2))
    grid.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.6, GRID), ("INNERGRID", (0, 0), (-1, -1), 0.3, GRID),
                              ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return [
        Spacer(1, 30 * mm), Paragraph(office, s.center), Spacer(1, 6 * mm),
        Paragraph(_("Monthly closure report, %(month)s", month=month_title(figures["month"])), s.cover),
        Spacer(1, 15 * mm), grid, Spacer(1, 15 * mm),
        Paragraph(_("Generated %(at)s · formula version %(version)s", at=generated,
                    version=figures.get("formula_version", FORMULA_VERSION)), s.center),
        PageBreak(),
    ]


def _department_table(figures, s: Styles, font: str):
    head = [_("Rank"), _("Department")] + [str(FORMULA_BY_KEY[k].label) for k in DEPARTMENT_COLUMNS] + [_("Supervised")]
    rows = [[Paragraph(h, s.small) for h in head]]

    def line(rank, name, f):
        supervised = f"{f['supervised_1']}/{f['supervised_2']}/{f['supervised_3']}"
        return [rank, Paragraph(name, s.small)] + [show(k, f[k]) for k in DEPARTMENT_COLUMNS] + [supervised]

    for rank, row in enumerate(figures["departments"], 1):
        rows.append(line(str(rank), row["name"], row))
    if figures["unassigned"]["accepted"] or figures["unassigned"]["closed_in_month"]:
        rows.append(line("", _("Settled by the office itself"), figures["unassigned"]))
    rows.append(line("", _("Office total"), figures["office"]))
    widths = [8 * mm, 28 * mm] + [12.5 * mm] * len(DEPARTMENT_COLUMNS) + [19 * mm]  # 180 mm: the A4 text width
    return [
        Paragraph(_("Departments, ranked by on-time closure rate, then satisfaction rate"), s.h2),
        _table(rows, widths, font, total_row=True, size=7.5),
        Paragraph(_("Supervised: cases reminded (level 1) / supervised (level 2) / listed (level 3)."), s.small),
    ]


def _figures_table(figures, s: Styles, font: str):
    rows = [[_("Figure"), _("Office")]]
    for formula in FORMULAS:
        rows.append([Paragraph(str(formula.label), s.small), show(formula.key, figures["office"].get(formula.key))])
    return [Paragraph(_("The month's figures"), s.h2), _table(rows, [90 * mm, 40 * mm], font)]


def _recurring(figures, s: Styles, font: str):
    flow = [Paragraph(_("Problem types"), s.h2)]
    rows = [[_("Problem type"), _("Cases")]] + [[p["label"], str(p["count"])] for p in figures["problem_types"]]
    flow.append(_table(rows, [60 * mm, 25 * mm], font) if len(rows) > 1 else Paragraph(_("No cases."), s.body))
    flow.append(Paragraph(_("Service items named most often (matters to fix at the root)"), s.h2))
    rows = [[_("Service item"), _("Cases")]] + [[Paragraph(i["name"], s.small), str(i["count"])]
                                               for i in figures["service_items"]]
    flow.append(_table(rows, [100 * mm, 25 * mm], font) if len(rows) > 1
                else Paragraph(_("No service item was named more than once."), s.body))
    return flow


def _listing(title, listing, head, line, widths, s: Styles, font: str, empty: str):
    flow = [Paragraph(title, s.h2)]
    if not listing["items"]:
        return flow + [Paragraph(empty, s.body)]
    rows = [head] + [line(item) for item in listing["items"]]
    flow.append(_table(rows, widths, font))
    if listing["total"] > len(listing["items"]):
        flow.append(Paragraph(_("The first %(shown)d of %(total)d are listed.", shown=len(listing["items"]),
                                total=listing["total"]), s.small))
    return flow


def _local(iso: str, tz) -> str:
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _level(level) -> str:
    return {1: _("Reminded"), 2: _("Supervised"), 3: _("Listed")}.get(level or 0, "—")


def _appendix(s: Styles, font: str, version: str):
    rows = [[_("Figure"), _("Definition")]]
    rows += [[Paragraph(str(f.label), s.small), Paragraph(str(f.definition), s.small)] for f in FORMULAS]
    return [PageBreak(), Paragraph(_("Appendix: formulas (version %(version)s)", version=version), s.h1),
            Paragraph(_("Months are calendar months in local time. Working days follow the office's calendar, "
                        "including make-up working days."), s.body), Spacer(1, 3 * mm),
            _table(rows, [45 * mm, 125 * mm], font)]


def build_pdf(figures: dict, *, office: str, generated_at: datetime, tz, font: str) -> bytes:
    """The report as PDF bytes, always in Chinese (leaders read it as a document of the office)."""
    with force_locale("zh_CN"):
        return _build(figures, office, generated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), tz, font)


def _build(figures, office, generated, tz, font) -> bytes:
    s = Styles(font)
    buffer = io.BytesIO()
    title = _("Monthly closure report, %(month)s", month=month_title(figures["month"]))

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(18 * mm, 10 * mm, f"{office}  {title}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm,
                               _("Page %(page)d · generated %(at)s", page=doc.page, at=generated))
        canvas.restoreState()

    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title=title, author=office)
    flow = _cover(figures, s, office, generated, font)
    flow += [Paragraph(title, s.h1)]
    flow += _department_table(figures, s, font)
    flow += [Spacer(1, 4 * mm),
             KeepTogether([charts.trend_chart(figures["trend"], _("Closure and satisfaction rates, last 12 months"), font)]),
             Spacer(1, 4 * mm),
             KeepTogether([charts.department_chart(figures["departments"], _("Departments"), font)])]
    flow += _figures_table(figures, s, font)
    flow += _recurring(figures, s, font)
    flow += _listing(
        _("Overdue at the end of the month"), figures["overdue"],
        [_("Tracking number"), _("Department"), _("Due"), _("Working days overdue"), _("Supervision")],
        lambda i: [i["tracking_no"], Paragraph(i["department"] or "—", s.small), _local(i["due_at"], tz),
                   str(i["days_overdue"]), _level(i["supervision_level"])],
        [38 * mm, 45 * mm, 32 * mm, 28 * mm, 22 * mm], s, font, _("Nothing was overdue at the end of the month."))
    flow += _listing(
        _("Escalations of the month"), figures["escalations"],
        [_("Time"), _("Tracking number"), _("Department"), _("Level")],
        lambda i: [_local(i["at"], tz), i["tracking_no"], Paragraph(i["department"] or "—", s.small), _level(i["level"])],
        [32 * mm, 38 * mm, 55 * mm, 25 * mm], s, font, _("No case was escalated this month."))
    flow += _appendix(s, font, figures.get("formula_version", FORMULA_VERSION))
    doc.build(flow, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
