"""The monthly PDF (ReportLab platypus): cover, department ranking, the child offices' ranking (a parent office's
report), charts, recurring matters, lists, formulas.

It reads only the figures dict `figures.monthly_figures` made, so a stored report renders the same again.
Every dynamic string (the office's name, department names, service items, labels, tracking numbers)
reaches a paragraph through `markup.text` or `markup.markup`, escaped: see `markup`.
"""
from __future__ import annotations

import io
import threading
from datetime import datetime

from flask_babel import force_locale, gettext as _
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import KeepTogether, PageBreak, SimpleDocTemplate, Spacer, Table, TableStyle

from tickets.clock import local_text
from tickets.labels import supervision_text

from . import charts
from .display import month_label, show
from .formulas import FORMULA_BY_KEY, FORMULA_VERSION, FORMULAS
from .markup import SafeParagraph, markup, plain, text

GRID = colors.HexColor("#b0b7c3")
HEAD = colors.HexColor("#e8eef7")
TOTAL = colors.HexColor("#fff4e0")
HEADLINE_KEYS = ("accepted", "closed", "closure_rate", "on_time_rate", "avg_handling_days", "overdue",
                 "satisfaction_rate", "good_rate", "bad")
OFFICE_COLUMNS = ("accepted", "closed", "closure_rate", "closed_in_month", "on_time_rate", "overdue", "returned",
                  "satisfaction_rate", "bad", "contact_rate")
DEPARTMENT_COLUMNS = ("accepted", "closed", "closure_rate", "on_time_rate", "avg_handling_days", "overdue",
                      "returned", "extended", "satisfaction_rate", "bad", "contact_rate")
TEXT_WIDTH = 180 * mm  # A4 less the margins


class Styles:
    def __init__(self, font: str):
        base = dict(fontName=font, wordWrap="CJK", leading=14, fontSize=10)
        self.body = ParagraphStyle("body", **base)
        self.small = ParagraphStyle("small", **{**base, "fontSize": 8, "leading": 10})
        self.note = ParagraphStyle("note", **{**base, "fontSize": 8, "leading": 11, "spaceBefore": 2})
        # Headings keep with what follows them (see HeadingWithStart): never alone at a page's foot.
        heading = {**base, "keepWithNext": 1}
        self.h1 = ParagraphStyle("h1", **{**heading, "fontSize": 15, "leading": 20, "spaceBefore": 6, "spaceAfter": 8})
        self.h2 = ParagraphStyle("h2", **{**heading, "fontSize": 12, "leading": 16, "spaceBefore": 8, "spaceAfter": 4})
        self.cover = ParagraphStyle("cover", **{**base, "fontSize": 22, "leading": 30, "alignment": TA_CENTER})
        self.center = ParagraphStyle("center", **{**base, "alignment": TA_CENTER})


class HeadingWithStart(KeepTogether):
    """What keepWithNext groups: headings and the block after them.

    Kept whole on the page when it fits. When it does not and the block is a table or a paragraph,
    the block is split so that its start (a table's header and first rows) stays under the heading on
    this page, and the rest follows on the next one; only when not even that fits does it all move to
    the next page. (Plain KeepTogether would move a long table to a new page and leave half a page empty.)
    """

    def split(self, available_width, available_height):
        *headings, block = self._content
        self.wrap(available_width, available_height)  # measures the whole group into self._H
        if headings and self._H > available_height and isinstance(block, (Table, SafeParagraph)):
            used = sum(h.wrap(available_width, available_height)[1] + h.getSpaceBefore() + h.getSpaceAfter()
                       for h in headings)
            room = available_height - used - block.getSpaceBefore()
            parts = block.split(available_width, room) if room > 0 else []
            if len(parts) > 1:
                return [*headings, *parts]
        return super().split(available_width, available_height)


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


def _cover(figures, s: Styles, office: str, generated: str, title: str):
    cells = [[text(FORMULA_BY_KEY[k].label, s.center) for k in HEADLINE_KEYS[i:i + 3]]
             for i in range(0, len(HEADLINE_KEYS), 3)]
    values = [[markup('<font size="18">%(value)s</font>', s.center, value=show(k, figures["office"][k]))
               for k in HEADLINE_KEYS[i:i + 3]] for i in range(0, len(HEADLINE_KEYS), 3)]
    rows = [row for pair in zip(values, cells) for row in pair]
    grid = Table(rows, colWidths=[55 * mm] * 3, rowHeights=[12 * mm, 8 * mm] * (len(rows) // 2))
    grid.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.6, GRID), ("INNERGRID", (0, 0), (-1, -1), 0.3, GRID),
                              ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return [
        Spacer(1, 30 * mm), text(office, s.center), Spacer(1, 6 * mm), text(title, s.cover),
        Spacer(1, 15 * mm), grid, Spacer(1, 15 * mm),
        text(_("Generated %(at)s · formula version %(version)s", at=generated,
               version=figures.get("formula_version", FORMULA_VERSION)), s.center),
        PageBreak(),
    ]


def _department_table(figures, s: Styles, font: str):
    """The ranked departments with the office total; those without a case in the month named below, unranked."""
    head = [_("Rank"), _("Department")] + [str(FORMULA_BY_KEY[k].label) for k in DEPARTMENT_COLUMNS] + [_("Supervised")]
    rows = [[text(h, s.small) for h in head]]

    def line(rank, name, f):
        supervised = f"{f['supervised_1']}/{f['supervised_2']}/{f['supervised_3']}"
        # .get: a report kept under an earlier formula version has no figure a later one added
        return [rank, text(name, s.small)] + [show(k, f.get(k)) for k in DEPARTMENT_COLUMNS] + [supervised]

    ranked = [row for row in figures["departments"] if row.get("rank") is not None]
    idle = [row["name"] for row in figures["departments"] if row.get("rank") is None]
    rows += [line(str(row["rank"]), row["name"], row) for row in ranked]
    if figures["unassigned"]["accepted"] or figures["unassigned"]["closed_in_month"]:
        rows.append(line("", _("Settled by the office itself"), figures["unassigned"]))
    rows.append(line("", _("Office total"), figures["office"]))
    first = [8 * mm, 28 * mm]
    column = (TEXT_WIDTH - sum(first) - 19 * mm) / len(DEPARTMENT_COLUMNS)
    widths = first + [column] * len(DEPARTMENT_COLUMNS) + [19 * mm]
    flow = [
        text(_("Departments, ranked by on-time closure rate, then satisfaction rate"), s.h2),
        _table(rows, widths, font, total_row=True, size=7.5),
    ]
    if idle:
        flow.append(text(_("No cases this month, so not ranked: %(names)s.", names=_(", ").join(idle)), s.note))
    flow += [
        text(_("Supervised: cases reminded (level 1) / supervised (level 2) / listed (level 3)."), s.note),
        text(_("Overdue cases: deadlines falling due in the month that were not met; the cases still overdue at "
               "the end of the month are listed separately."), s.note),
    ]
    return flow


APPEAL_COLUMNS = ("appeals", "appeals_upheld", "appeals_rejected")


def _appeals(figures, s: Styles, font: str):
    """申诉复核: the month's appeals by department, with the bad ratings an upheld appeal took out of its figures."""
    def counted(f):
        return [str(f.get(k, 0)) for k in APPEAL_COLUMNS] + [str(f.get("bad_upheld", 0))]

    rows = [row for row in figures["departments"] if any(row.get(k) for k in (*APPEAL_COLUMNS, "bad_upheld"))]
    flow = [text(_("Appeals of bad ratings"), s.h2)]
    if not rows:
        return flow + [text(_("No department appealed a bad rating this month."), s.body)]
    head = [_("Department")] + [str(FORMULA_BY_KEY[k].label) for k in APPEAL_COLUMNS] + [_("Bad ratings set aside")]
    table = [[text(h, s.small) for h in head]]
    table += [[text(row["name"], s.small)] + counted(row) for row in sorted(rows, key=lambda r: r["name"])]
    table.append([text(_("Office total"), s.small)] + counted(figures["office"]))
    return flow + [
        _table(table, [80 * mm] + [25 * mm] * 4, font, total_row=True),  # 180 mm: the A4 text width
        text(_("A bad rating whose appeal was upheld before the end of the month is set aside: it leaves its "
               "department's bad ratings and satisfaction rate above, and stays in the office total."), s.note),
    ]


def _office_table(figures, s: Styles, font: str):
    """A parent office's child offices (同级比较), each with its whole subtree's figures, ranked as departments are;
    then the cases the office owns itself and the total (the sum of the rows above it). Nothing for a leaf office."""
    children = figures.get("offices") or []
    if not children:
        return []
    head = [_("Rank"), _("Window")] + [str(FORMULA_BY_KEY[k].label) for k in OFFICE_COLUMNS]
    rows = [[text(h, s.small) for h in head]]

    def line(rank, name, f):
        return [rank, text(name, s.small)] + [show(k, f.get(k)) for k in OFFICE_COLUMNS]

    rows += [line(str(row["rank"]) if row.get("rank") is not None else "—", row["name"], row) for row in children]
    rows.append(line("", _("Cases owned by this window itself"), figures["own"]))
    rows.append(line("", _("Office total"), figures["office"]))
    first = [8 * mm, 37 * mm]
    widths = first + [(TEXT_WIDTH - sum(first)) / len(OFFICE_COLUMNS)] * len(OFFICE_COLUMNS)
    return [
        text(_("Windows below, ranked by on-time closure rate, then satisfaction rate (each with every window "
               "below it)"), s.h2),
        _table(rows, widths, font, total_row=True, size=7.5),
        text(_("A window without a case this month is not ranked (—)."), s.note),
        Spacer(1, 4 * mm),
        KeepTogether([charts.department_chart(children, _("Windows below"), font)]),
    ]


def _figures_table(figures, s: Styles, font: str):
    rows = [[text(_("Figure"), s.small), text(_("Office"), s.small)]]
    for formula in FORMULAS:
        rows.append([text(formula.label, s.small), show(formula.key, figures["office"].get(formula.key))])
    return [text(_("The month's figures"), s.h2), _table(rows, [90 * mm, 40 * mm], font)]


def _recurring(figures, s: Styles, font: str):
    flow = [text(_("Problem types"), s.h2)]
    rows = [[text(_("Problem type"), s.small), text(_("Cases"), s.small)]]
    rows += [[text(p["label"], s.small), str(p["count"])] for p in figures["problem_types"]]
    flow.append(_table(rows, [60 * mm, 25 * mm], font) if len(rows) > 1 else text(_("No cases."), s.body))
    flow.append(text(_("Service items named most often (matters to fix at the root)"), s.h2))
    rows = [[text(_("Service item"), s.small), text(_("Cases"), s.small)]]
    rows += [[text(i["name"], s.small), str(i["count"])] for i in figures["service_items"]]
    flow.append(_table(rows, [100 * mm, 25 * mm], font) if len(rows) > 1
                else text(_("No service item was named more than once."), s.body))
    return flow


def _listing(title, listing, head, line, widths, s: Styles, font: str, empty: str, note=None):
    """A list section: heading, the table (or `empty`), how many there are, and an optional note."""
    flow = [text(title, s.h2)]
    if not listing["items"]:
        flow.append(text(empty, s.body))
    else:
        flow.append(_table([[text(h, s.small) for h in head]] + [line(item) for item in listing["items"]], widths, font))
        if listing["total"] > len(listing["items"]):
            flow.append(text(_("The first %(shown)d of %(total)d are listed.", shown=len(listing["items"]),
                               total=listing["total"]), s.note))
    return flow + ([text(note, s.note)] if note else [])


def _local(iso: str, tz) -> str:
    return local_text(datetime.fromisoformat(iso), tz)


def _level(level) -> str:
    return supervision_text(level) or "—"


def _overdue(figures, s: Styles, font: str, tz):
    """The cases overdue at the month's end, and why their number differs from the month's overdue figure."""
    listing = figures["overdue"]
    note = _("This list holds the cases whose handling or rectification deadline had passed at the end of the month "
             "without a reply from the department: %(listed)d, including those due before this month. The figure "
             "“Overdue cases” (%(overdue)d) counts deadlines falling due in the month that were not met, including "
             "those answered late, which are not in this list.", listed=listing["total"],
             overdue=figures["office"]["overdue"])
    return _listing(
        _("Overdue at the end of the month"), listing,
        [_("Tracking number"), _("Department"), _("Due at"), _("Working days overdue"), _("Supervision")],
        lambda i: [text(i["tracking_no"], s.small), text(i["department"] or "—", s.small), _local(i["due_at"], tz),
                   str(i["days_overdue"]), text(_level(i["supervision_level"]), s.small)],
        [38 * mm, 45 * mm, 32 * mm, 28 * mm, 32 * mm], s, font, _("Nothing was overdue at the end of the month."),
        note)


def _escalations(figures, s: Styles, font: str, tz):
    return _listing(
        _("Escalations of the month"), figures["escalations"],
        [_("Time"), _("Tracking number"), _("Department"), _("Level")],
        lambda i: [_local(i["at"], tz), text(i["tracking_no"], s.small), text(i["department"] or "—", s.small),
                   text(_level(i["level"]), s.small)],
        [32 * mm, 38 * mm, 55 * mm, 32 * mm], s, font, _("No case was escalated this month."))


def _appendix(s: Styles, font: str, version: str):
    rows = [[text(_("Figure"), s.small), text(_("Definition"), s.small)]]
    rows += [[text(f.label, s.small), text(f.definition, s.small)] for f in FORMULAS]
    return [PageBreak(), text(_("Appendix: formulas (version %(version)s)", version=version), s.h1),
            text(_("Months are calendar months in local time. Working days follow the office's calendar, "
                   "including make-up working days."), s.body), Spacer(1, 3 * mm),
            _table(rows, [45 * mm, 125 * mm], font)]


# ReportLab keeps each embedded TrueType font's subsetting state on the font object, shared by every document
# being built in the process: two reports built at once in two threads (two people generating a month, a
# threaded server) corrupted each other's subsets (KeyError in makeSubset, a 500). One at a time, then.
_BUILDING = threading.Lock()


def build_pdf(figures: dict, *, office: str, generated_at: datetime, tz, font: str) -> bytes:
    """The report as PDF bytes, always in Chinese (leaders read it as a document of the office)."""
    with force_locale("zh_CN"), _BUILDING:
        return _build(figures, office, local_text(generated_at, tz), tz, font)


def _fit(value: str, font: str, size: float, width: float) -> str:
    """`value` cut (with an ellipsis) to fit `width` points in one line."""
    value = plain(value)
    if stringWidth(value, font, size) <= width:
        return value
    while value and stringWidth(value + "…", font, size) > width:
        value = value[:-1]
    return value + "…"


def _build(figures, office, generated, tz, font) -> bytes:
    s = Styles(font)
    buffer = io.BytesIO()
    title = _("Monthly closure report, %(month)s", month=month_label(figures["month"]))

    def footer(canvas, doc):
        page = _("Page %(page)d · generated %(at)s", page=doc.page, at=generated)
        room = A4[0] - 36 * mm - stringWidth(page, font, 8) - 8 * mm
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(18 * mm, 10 * mm, _fit(f"{office}  {title}", font, 8, room))
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, page)
        canvas.restoreState()

    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title=plain(title), author=plain(office),
                            keepTogetherClass=HeadingWithStart)
    trend_title = _("Closure and satisfaction rates, last 12 months")
    flow = _cover(figures, s, office, generated, title)
    flow += [text(title, s.h1)]
    flow += _department_table(figures, s, font)
    flow += _appeals(figures, s, font)
    flow += _office_table(figures, s, font)
    flow += [Spacer(1, 4 * mm), KeepTogether([charts.trend_chart(figures["trend"], trend_title, font)]),
             Spacer(1, 4 * mm), KeepTogether([charts.department_chart(figures["departments"], _("Departments"), font)])]
    flow += _figures_table(figures, s, font)
    flow += _recurring(figures, s, font)
    flow += _overdue(figures, s, font, tz)
    flow += _escalations(figures, s, font, tz)
    flow += _appendix(s, font, figures.get("formula_version", FORMULA_VERSION))
    doc.build(flow, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
