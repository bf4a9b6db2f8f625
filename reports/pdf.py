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
from tickets.labels import STATUS_LABELS, label, supervision_text

from . import charts, narrative
from .display import month_label, percent, show
from .formulas import CHANNEL_COUNTS, FORMULA_BY_KEY, FORMULA_VERSION, FORMULAS
from .markup import SafeParagraph, lines, markup, plain, text
from .metrics import had_cases

GRID = colors.HexColor("#b0b7c3")
HEAD = colors.HexColor("#e8eef7")
TOTAL = colors.HexColor("#fff4e0")
GOOD = colors.HexColor("#1b7f3b")
BAD = colors.HexColor("#c0392b")
DRAFT_MARK = colors.HexColor("#d0d0d0")
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
        self.h3 = ParagraphStyle("h3", **{**heading, "spaceBefore": 4, "spaceAfter": 2})  # a table's title in a section
        self.cover = ParagraphStyle("cover", **{**base, "fontSize": 18, "leading": 26, "alignment": TA_CENTER})
        self.center = ParagraphStyle("center", **{**base, "alignment": TA_CENTER})


MIN_ROWS = 3  # a table split across pages keeps at least this many rows (besides its header) on each side


def case_document(flow: list, *, font: str, title: str, footer: str, author: str, **options) -> bytes:
    """One case's A4 document (the 交办单, a citizen's copy of their data) as PDF bytes: 15 mm margins and, on every
    page, a footer line saying what it is and which page; a heading and the text or table after it are kept as the
    monthly report keeps them (`HeadingWithStart`). `options` go to SimpleDocTemplate."""
    options.setdefault("keepTogetherClass", HeadingWithStart)
    buffer = io.BytesIO()

    def draw_footer(canvas, doc):
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(15 * mm, 10 * mm, plain(footer, font))
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, plain(_("Page %(page)d", page=doc.page)))
        canvas.restoreState()

    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title=plain(title), author=plain(author), **options)
    doc.build(flow, onFirstPage=draw_footer, onLaterPages=draw_footer)
    return buffer.getvalue()


def _body_rows(part: Table) -> int:
    return len(part._cellvalues) - part.repeatRows


class HeadingWithStart(KeepTogether):
    """What keepWithNext groups: headings and the block after them.

    Kept whole on the page when it fits. When it does not and the block is a table or a paragraph,
    the block is split so that its start (a table's header and first rows) stays under the heading on
    this page, and the rest follows on the next one; only when not even that fits does it all move to
    the next page. (Plain KeepTogether would move a long table to a new page and leave half a page empty.)
    A table is split only with at least `MIN_ROWS` rows on each page: fewer at a page's foot move to the next page
    with the heading, and fewer left for the next page take rows from this one.
    """

    def split(self, available_width, available_height):
        *headings, block = self._content
        self.wrap(available_width, available_height)  # measures the whole group into self._H
        if headings and self._H > available_height and isinstance(block, (Table, SafeParagraph)):
            used = sum(h.wrap(available_width, available_height)[1] + h.getSpaceBefore() + h.getSpaceAfter()
                       for h in headings)
            room = available_height - used - block.getSpaceBefore()
            parts = block.split(available_width, room) if room > 0 else []  # a KeptTable keeps MIN_ROWS a side
            if len(parts) > 1:
                return [*headings, *parts]
        return super().split(available_width, available_height)


class KeptTable(Table):
    """A table that, split across pages, keeps at least MIN_ROWS rows (besides its repeated header) on each page, at
    every split: the first under its heading (`HeadingWithStart`) and each later one of a table longer than a page."""

    def split(self, available_width, available_height):
        parts = super().split(available_width, available_height)
        while len(parts) > 1 and _body_rows(parts[-1]) < MIN_ROWS and _body_rows(parts[0]) > MIN_ROWS:
            heights = parts[0]._rowHeights
            parts = super().split(available_width, sum(heights[:-1]) - 0.01)  # one row fewer on this page
        if len(parts) > 1 and (_body_rows(parts[0]) < MIN_ROWS or _body_rows(parts[-1]) < MIN_ROWS):
            return []  # no split keeps enough rows on both pages: the table moves on whole
        return parts


def _table(rows, widths, font, *, header=True, total_row=False, size=8):
    table = KeptTable(rows, colWidths=widths, repeatRows=1 if header else 0)
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


def _headline(figures, s: Styles, font: str):
    """The headline figures with 环比 and 同比: value, last month's, the change (▲▼), a year ago's, the change."""
    comparison = figures.get("comparison") or {}
    previous, year_ago = comparison.get("previous_month"), comparison.get("year_ago_month")
    head = [_("Figure"), _("This month"),
            _("Last month (%(month)s)", month=month_label(previous)) if previous else _("Last month"),
            _("Month on month"),
            _("A year ago (%(month)s)", month=month_label(year_ago)) if year_ago else _("A year ago"),
            _("Year on year")]
    rows = [[text(h, s.small) for h in head]]
    style = []
    for line, row in enumerate(comparison.get("rows", []), 1):
        key = row["key"]
        rows.append([text(FORMULA_BY_KEY[key].label, s.small), show(key, row["value"]), show(key, row["previous"]),
                     narrative.signed_change(key, row["mom"]), show(key, row["year_ago"]),
                     narrative.signed_change(key, row["yoy"])])
        for column, delta in ((3, row["mom"]), (5, row["yoy"])):
            if delta and row["better"] is not None:
                good = (delta > 0) == row["better"]
                style.append(("TEXTCOLOR", (column, line), (column, line), GOOD if good else BAD))
    table = _table(rows, [34 * mm, 20 * mm, 36 * mm, 27 * mm, 36 * mm, 27 * mm], font, size=8.5)
    table.setStyle(TableStyle(style + [("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
    return [text(_("Headline figures"), s.h2), table,
            text(_("Month on month and year on year: rates in percentage points, counts in cases; green is better, "
                   "red is worse."), s.note)]


def _boards(figures, s: Styles, font: str):
    """红榜 and 黑榜 of the departments, and of the windows below when the office has some, side by side."""
    flow = []
    for key, title in (("department_boards", _("Departments")), ("office_boards", _("Windows below"))):
        board = figures.get(key) or {}
        if key == "office_boards" and not figures.get("offices"):
            continue
        head = [_("Rank"), _("Name"), _("Score")]
        sides = []
        for side, label, colour in (("red", _("Top list"), GOOD), ("black", _("Bottom list"), BAD)):
            entries = board.get(side) or []
            rows = [[text(label, s.small), "", ""], [text(h, s.small) for h in head]]
            rows += [[cell if i != 1 else text(cell, s.small) for i, cell in enumerate(narrative.board_line(e))]
                     for e in entries]
            if not entries:
                rows.append(["", text(_("Too few units ranked for a list."), s.small), ""])
            table = _table(rows, [10 * mm, 56 * mm, 18 * mm], font, header=False)
            table.setStyle(TableStyle([("SPAN", (0, 0), (-1, 0)), ("BACKGROUND", (0, 0), (-1, 0), colour),
                                       ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                                       ("BACKGROUND", (0, 1), (-1, 1), HEAD)]))
            sides.append(table)
        pair = Table([sides], colWidths=[90 * mm, 90 * mm])
        pair.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        flow += [text(_("Top and bottom lists: %(units)s", units=title), s.h2), pair]
    scoring = figures.get("scoring") or {}
    if scoring:
        flow.append(text(_("Ranked by score (%(weights)s; a rate a unit had no case for leaves the mean); units with "
                           "fewer than %(n)d cases are listed in the tables but not ranked. “(2nd month)”: on the "
                           "bottom list last month too.", weights=weights_text(scoring["weights"]),
                           n=scoring["min_cases"]), s.note))
    return flow


def weights_text(weights: dict) -> str:
    return _(", ").join(_("%(figure)s %(weight)g", figure=FORMULA_BY_KEY[key].label, weight=weight)
                        for key, weight in weights.items())


def _narrative(figures, s: Styles):
    """总体情况, 主要问题, 下步工作."""
    found, more = narrative.problems(figures)
    flow = [text(_("Overall"), s.h2), text(narrative.overall(figures), s.body), text(_("Main problems"), s.h2)]
    if found:
        flow += [text(f"{number}. {line}", s.body) for number, line in enumerate(found, 1)]
        if more:
            flow.append(text(_("and %(n)d more (see the tables below).", n=more), s.note))
    else:
        flow.append(text(_("Every unit judged met the office's thresholds this month."), s.body))
    thresholds = (figures.get("scoring") or {}).get("thresholds") or {}
    if thresholds:
        flow.append(text(_("Thresholds: %(list)s.", list=_(", ").join(
            _("%(figure)s %(value)s", figure=FORMULA_BY_KEY[key].label, value=percent(value))
            for key, value in thresholds.items())), s.note))
    steps = narrative.next_steps(figures)
    flow += [text(_("Next steps"), s.h2),
             lines(steps, s.body) if steps else text(_("The office has not written its next steps yet."), s.note)]
    return flow


def _typical(figures, s: Styles, font: str, tz):
    cases = figures.get("typical_cases") or []
    flow = [text(_("Typical cases"), s.h2)]
    if not cases:
        return flow + [text(_("The office marked no case of this month as typical."), s.body)]
    rows = [[text(h, s.small) for h in (_("Tracking number"), _("Department"), _("Closed"), _("Summary"))]]
    rows += [[text(c["tracking_no"], s.small), text(c["department"] or "—", s.small), _local(c["closed_at"], tz),
              lines(c["summary"], s.small)] for c in cases]  # the office's words, line breaks kept
    return flow + [_table(rows, [32 * mm, 30 * mm, 28 * mm, 90 * mm], font)]


def _front(figures, s: Styles, font: str, office: str, title: str, generated: str, draft: bool):
    """The first page, read in a minute: the headline figures with their changes, 红黑榜, the narrative."""
    status = _("Draft: not published; the figures may still change.") if draft else _("Published")
    made = _("Generated %(at)s · formula version %(version)s", at=generated,
             version=figures.get("formula_version", FORMULA_VERSION))
    return [text(office, s.center), text(title, s.cover), text(status, s.center), text(made, s.center),
            Spacer(1, 2 * mm),
            *_headline(figures, s, font), *_boards(figures, s, font), *_narrative(figures, s)]


def _department_table(figures, s: Styles, font: str):
    """The ranked departments with the office total; those without a case in the month named below, unranked."""
    head = ([_("Rank"), _("Department"), _("Score")] + [str(FORMULA_BY_KEY[k].label) for k in DEPARTMENT_COLUMNS]
            + [_("Supervised")])
    rows = [[text(h, s.small) for h in head]]

    def line(rank, name, f):
        supervised = f"{f['supervised_1']}/{f['supervised_2']}/{f['supervised_3']}"
        # .get: a report kept under an earlier formula version has no figure a later one added
        return ([rank, text(name, s.small), show("score", f.get("score"))] + [show(k, f.get(k)) for k in DEPARTMENT_COLUMNS]
                + [supervised])

    listed = [row for row in figures["departments"] if had_cases(row)]
    idle = [row["name"] for row in figures["departments"] if not had_cases(row)]
    rows += [line(str(row["rank"]) if row.get("rank") is not None else "—", row["name"], row) for row in listed]
    if figures["unassigned"]["accepted"] or figures["unassigned"]["closed_in_month"]:
        rows.append(line("", _("Settled by the office itself"), figures["unassigned"]))
    rows.append(line("", _("Office total"), figures["office"]))
    first = [8 * mm, 26 * mm, 11 * mm]
    column = (TEXT_WIDTH - sum(first) - 17 * mm) / len(DEPARTMENT_COLUMNS)
    widths = first + [column] * len(DEPARTMENT_COLUMNS) + [17 * mm]
    flow = [
        text(_("Departments, ranked by score"), s.h2),
        _table(rows, widths, font, total_row=True, size=7.5),
        text(_("—: not ranked, with fewer than %(n)d cases this month (受理数 or 本月办结数, whichever is larger) or no "
               "rate to score.", n=(figures.get("scoring") or {}).get("min_cases", 1)), s.note),
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
        text(_("A bad rating whose appeal was upheld by the time this report was made is set aside: it leaves its "
               "department's bad ratings and satisfaction rate above, and stays in the office total."), s.note),
    ]


def _channels(figures, s: Styles, font: str):
    """受理渠道: the month's accepted cases by how they came in (网上, 窗口, 电话, 12345), per department with cases and
    per window below, with the office total. Nothing for a report kept before formula version 2026.4."""
    if figures["office"].get(CHANNEL_COUNTS[0]) is None:
        return []
    head = [text(h, s.small) for h in
            [_("Unit")] + [str(FORMULA_BY_KEY[k].label) for k in CHANNEL_COUNTS] + [str(FORMULA_BY_KEY["accepted"].label)]]

    def line(name, f):
        return [text(name, s.small)] + [str(f.get(k, 0)) for k in (*CHANNEL_COUNTS, "accepted")]

    units = [(row["name"], row) for row in figures["departments"] if row.get("accepted")]
    if figures["unassigned"].get("accepted"):
        units.append((_("Settled by the office itself"), figures["unassigned"]))
    windows = [(row["name"], row) for row in figures.get("offices") or [] if row.get("accepted")]
    if windows and (figures.get("own") or {}).get("accepted"):
        windows.append((_("Cases owned by this window itself"), figures["own"]))
    widths = [60 * mm] + [24 * mm] * (len(CHANNEL_COUNTS) + 1)  # 180 mm: the A4 text width
    flow = [text(_("Cases accepted by channel"), s.h2)]
    for title, rows in ((_("By department"), units), (_("By window below"), windows)):
        if rows:
            flow += [text(title, s.h3),
                     _table([head] + [line(name, row) for name, row in rows]
                            + [line(_("Office total"), figures["office"])], widths, font, total_row=True)]
    if len(flow) == 1:
        flow.append(text(_("No case was accepted this month."), s.body))
    flow.append(text(_("At the window, by phone and from the 12345 hotline: cases a window's staff filed for the "
                       "citizen (帮办代办)."), s.note))
    return flow


def _office_table(figures, s: Styles, font: str):
    """A parent office's child offices (同级比较), each with its whole subtree's figures, ranked as departments are;
    then the cases the office owns itself and the total (the sum of the rows above it). Nothing for a leaf office."""
    children = figures.get("offices") or []
    if not children:
        return []
    head = [_("Rank"), _("Window"), _("Score")] + [str(FORMULA_BY_KEY[k].label) for k in OFFICE_COLUMNS]
    rows = [[text(h, s.small) for h in head]]

    def line(rank, name, f):
        return [rank, text(name, s.small), show("score", f.get("score"))] + [show(k, f.get(k)) for k in OFFICE_COLUMNS]

    rows += [line(str(row["rank"]) if row.get("rank") is not None else "—", row["name"], row) for row in children]
    rows.append(line("", _("Cases owned by this window itself"), figures["own"]))
    rows.append(line("", _("Office total"), figures["office"]))
    first = [8 * mm, 33 * mm, 11 * mm]
    widths = first + [(TEXT_WIDTH - sum(first)) / len(OFFICE_COLUMNS)] * len(OFFICE_COLUMNS)
    return [
        text(_("Windows below, ranked by score (each with every window below it)"), s.h2),
        _table(rows, widths, font, total_row=True, size=7.5),
        text(_("A window with fewer than %(n)d cases this month, or no rate to score, is not ranked (—).",
               n=(figures.get("scoring") or {}).get("min_cases", 1)), s.note),
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


def _governance_cell(task, s: Styles):
    """What was done about a 一类事: its latest 主动治理 task (tracking number, department, status) and its answer."""
    if not task:
        return text(_("No proactive task yet"), s.small)
    head = _(", ").join(part for part in (task["tracking_no"], task.get("department") or "",
                                          label(STATUS_LABELS, task["status"])) if part)
    if not task.get("answer"):
        return text(head, s.small)
    told = _("linked cases told: %(n)d", n=task.get("linked", 0)) if task.get("notified") else ""
    return markup("%(head)s<br/>%(answer)s%(told)s", s.small, head=head,
                  answer=_("Answer: %(text)s", text=task["answer"]), told=f" ({told})" if told else "")


def _frequent(figures, s: Styles, font: str):
    """高频诉求: the month's largest 一类事 with last month's count (环比) and the 主动治理 task opened for each. Nothing for
    a report kept before the section existed."""
    listing = figures.get("clusters")
    if listing is None:
        return []
    flow = [text(_("Frequent requests (recurring problems)"), s.h2)]
    if not listing["items"]:
        return flow + [text(_("No recurring problem reached %(n)d cases this month.", n=listing["min_cases"]), s.body)]
    head = [_("Recurring problem"), _("Window"), _("This month"), _("Last month"), _("Month on month"),
            _("What was done")]
    rows = [[text(h, s.small) for h in head]]
    rows += [[text(i["title"], s.small), text(i["office_name"] or "—", s.small), str(i["count"]), str(i["previous"]),
              f"{i['mom']:+d}" if i["mom"] else "0", _governance_cell(i["governance"], s)] for i in listing["items"]]
    flow.append(_table(rows, [52 * mm, 28 * mm, 14 * mm, 14 * mm, 14 * mm, 58 * mm], font))
    if listing["total"] > len(listing["items"]):
        flow.append(text(_("The first %(shown)d of %(total)d are listed.", shown=len(listing["items"]),
                           total=listing["total"]), s.note))
    return flow + [text(_("Cases of one recurring problem (一类事: similar reports about one service item at one window) "
                          "filed in the month, at least %(n)d; last month's count of the same problem; the proactive "
                          "task (主动治理) the office opened for it, as it stood when this report was made.",
                          n=listing["min_cases"]), s.note)]


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
                   text(_level(i["level"]) if not i.get("instruction") else
                        _("Instruction (批示): %(text)s", text=i["instruction"]), s.small)],
        [30 * mm, 36 * mm, 42 * mm, 62 * mm], s, font, _("No case was escalated this month."))


def _appendix(figures, s: Styles, font: str, version: str):
    rows = [[text(_("Figure"), s.small), text(_("Definition"), s.small)]]
    rows += [[text(f.label, s.small), text(f.definition, s.small)] for f in FORMULAS]
    flow = [PageBreak(), text(_("Appendix: formulas (version %(version)s)", version=version), s.h1),
            text(_("Months are calendar months in local time. Working days follow the office's calendar, "
                   "including make-up working days."), s.body), Spacer(1, 3 * mm),
            _table(rows, [45 * mm, 125 * mm], font)]
    scoring = figures.get("scoring")
    if scoring:
        flow += [text(_("Score and ranking"), s.h2), text(_(
            "Score = Σ (weight × rate × 100) ÷ Σ weight, over the rates the unit has this month; weights: "
            "%(weights)s. A rate the unit had no case for (nothing closed, no survey answered, no first contact due) "
            "leaves the mean with its weight. Units with at least %(n)d cases (受理数 or 本月办结数, whichever is "
            "larger) and a score are ranked by score, then by 本月办结数; equal on both, they share a rank. Top list: "
            "the first three ranked, bottom list: the last three (with fewer than six ranked, half of them each, so "
            "no unit is on both). Month on month compares with last month, year on year with the same month a year "
            "earlier, each from its kept report when one was computed with the same formula version.",
            weights=weights_text(scoring["weights"]), n=scoring["min_cases"]), s.body)]
    return flow


# ReportLab keeps each embedded TrueType font's subsetting state on the font object, shared by every document
# being built in the process: two reports built at once in two threads (two people generating a month, a
# threaded server) corrupted each other's subsets (KeyError in makeSubset, a 500). One at a time, then.
_BUILDING = threading.Lock()


def build_pdf(figures: dict, *, office: str, generated_at: datetime, tz, font: str, draft: bool = False) -> bytes:
    """The report as PDF bytes, always in Chinese (leaders read it as a document of the office); a draft is marked
    草稿 on every page."""
    with force_locale("zh_CN"), _BUILDING:
        return _build(figures, office, local_text(generated_at, tz), tz, font, draft)


def _fit(value: str, font: str, size: float, width: float) -> str:
    """`value` cut (with an ellipsis) to fit `width` points in one line."""
    value = plain(value, font)
    if stringWidth(value, font, size) <= width:
        return value
    while value and stringWidth(value + "…", font, size) > width:
        value = value[:-1]
    return value + "…"


def _build(figures, office, generated, tz, font, draft) -> bytes:
    s = Styles(font)
    buffer = io.BytesIO()
    title = _("Monthly closure report, %(month)s", month=month_label(figures["month"]))

    def footer(canvas, doc):
        page = _("Page %(page)d · generated %(at)s", page=doc.page, at=generated)
        if draft:
            page = _("Draft") + " · " + page
        room = A4[0] - 36 * mm - stringWidth(page, font, 8) - 8 * mm
        canvas.saveState()
        if draft:  # across the page, light enough to read through
            canvas.setFont(font, 90)
            canvas.setFillColor(DRAFT_MARK)
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(40)
            canvas.drawCentredString(0, 0, _("Draft"))
            canvas.restoreState()
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
    flow = _front(figures, s, font, office, title, generated, draft)
    flow += [PageBreak(), *_typical(figures, s, font, tz)]
    flow += _department_table(figures, s, font)
    flow += _appeals(figures, s, font)
    flow += _channels(figures, s, font)
    flow += _office_table(figures, s, font)
    flow += [Spacer(1, 4 * mm), KeepTogether([charts.trend_chart(figures["trend"], trend_title, font)]),
             Spacer(1, 4 * mm), KeepTogether([charts.department_chart(figures["departments"], _("Departments"), font)])]
    flow += _figures_table(figures, s, font)
    flow += _recurring(figures, s, font)
    flow += _frequent(figures, s, font)
    flow += _overdue(figures, s, font, tz)
    flow += _escalations(figures, s, font, tz)
    flow += _appendix(figures, s, font, figures.get("formula_version", FORMULA_VERSION))
    doc.build(flow, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
