"""The report's charts as ReportLab drawings: the PDF draws them, the console shows the same drawings as SVG.

The drawings are sized in points for the PDF (one unit is 1 pt, printed at 1:1 on A4) and in CSS pixels
for the console (the SVG is shown at its own size, never scaled down), so `PRINT` and `SCREEN` give the
text sizes that read well in each. Text is drawn as text, never parsed as markup: a department name
is shown as written (ReportLab's SVG renderer escapes it).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from flask_babel import gettext as _
from reportlab.graphics import renderSVG
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth

from . import fonts
from .display import month_label, percent
from .formulas import FORMULA_BY_KEY
from .metrics import had_cases

BLUE = colors.HexColor("#1f5fa8")
ORANGE = colors.HexColor("#e07b24")
MAX_DEPARTMENTS = 15
NAME_CHARACTERS = 10  # a longer department name is cut, with an ellipsis
MONTH_ANGLE = 35      # the trend's month labels (2025年12月) are too wide to stand upright side by side


@dataclass(frozen=True)
class TextSizes:
    title: float
    text: float  # axis labels, department names, legend
    # Room between the value axis and its right-aligned labels. ReportLab's SVG places such text by its own
    # font metrics; a browser drawing it in another font may draw it wider, into the axis.
    label_gap: float = 5
    width: float = 480
    # Drawn in the chart's font alone (the PDF): a character it lacks is marked (`_short`). A browser (the console)
    # draws the SVG with the console's fonts after it (`WEB_FONTS`) and finds one for an emoji or a rare 汉字.
    one_font: bool = True


PRINT = TextSizes(title=10, text=8)                   # points on paper: 8 pt reads well printed
SCREEN = TextSizes(title=14, text=12, label_gap=12, one_font=False)  # CSS pixels in the console: 12 px at least


def _percent(value):
    return None if value is None else round(value * 100, 1)


def _legend(drawing: Drawing, top: float, font: str, sizes: TextSizes, keys: tuple[str, ...], palette) -> None:
    """The series' names side by side under the title, from the left edge."""
    names = [str(FORMULA_BY_KEY[key].label) for key in keys]
    legend = Legend()
    legend.deltax = max(stringWidth(name, font, sizes.text) for name in names) * 1.3 + 30  # browsers may draw SVG text wider
    legend.x, legend.y = 10, top
    legend.fontName, legend.fontSize = font, sizes.text
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.colorNamePairs = list(zip(palette, names))
    drawing.add(legend)


def _no_data(drawing: Drawing, font: str, sizes: TextSizes) -> Drawing:
    drawing.add(String(drawing.width / 2, drawing.height / 2, _("No data for this period."), fontName=font,
                       fontSize=sizes.text + 1, textAnchor="middle", fillColor=colors.grey))
    return drawing


def _title(drawing: Drawing, text: str, font: str, sizes: TextSizes) -> float:
    """Draw the title at the top; returns where the legend's top goes."""
    drawing.add(String(0, drawing.height - sizes.title, text, fontName=font, fontSize=sizes.title))
    return drawing.height - sizes.title - 8


def _short(name: str, font: str, sizes: TextSizes = PRINT) -> str:
    """A department's or a window's name as its axis label: cut to `NAME_CHARACTERS`; in a chart drawn in one font
    (the PDF's), each character the font lacks as 〓 (`reports.fonts.drawable`)."""
    if sizes.one_font:
        name = fonts.drawable(name, font)
    return name if len(name) <= NAME_CHARACTERS else name[:NAME_CHARACTERS] + "…"


def trend_chart(trend: list[dict], title: str, font: str, sizes: TextSizes = PRINT, plot_height: float = 120) -> Drawing:
    """Closure rate and satisfaction rate of the last twelve months, in percent (a month without data leaves a gap)."""
    months = [month_label(p["month"]) for p in trend]
    angle = math.radians(MONTH_ANGLE)
    label_height = (max((stringWidth(m, font, sizes.text) for m in months), default=0) * math.sin(angle)
                    + sizes.text * math.cos(angle))
    bottom = label_height + 10
    height = bottom + plot_height + sizes.title + sizes.text + 30
    drawing = Drawing(sizes.width, height)
    legend_top = _title(drawing, title, font, sizes)
    keys = ("closure_rate", "satisfaction_rate")
    # ReportLab cannot draw a line without a single point: a series with no month of data is left out.
    series = [(key, color, [_percent(p[key]) for p in trend]) for key, color in zip(keys, (BLUE, ORANGE))]
    series = [(key, color, values) for key, color, values in series if any(v is not None for v in values)]
    if not series:
        return _no_data(drawing, font, sizes)
    chart = HorizontalLineChart()
    axis_room = stringWidth("100%", font, sizes.text) + sizes.label_gap + 5
    chart.x, chart.y, chart.width, chart.height = axis_room, bottom, sizes.width - axis_room - 10, plot_height
    chart.data = [values for _, _, values in series]
    chart.categoryAxis.categoryNames = months
    labels = chart.categoryAxis.labels
    labels.fontName, labels.fontSize, labels.angle, labels.boxAnchor = font, sizes.text, MONTH_ANGLE, "ne"
    labels.dx, labels.dy = -sizes.label_gap / 2, -sizes.label_gap / 2
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = font, sizes.text
    chart.valueAxis.labels.dx = -sizes.label_gap
    chart.valueAxis.labelTextFormat = "%d%%"
    chart.valueAxis.visibleGrid, chart.valueAxis.gridStrokeColor = True, colors.HexColor("#dddddd")
    for index, (_key, color, _values) in enumerate(series):
        chart.lines[index].strokeColor, chart.lines[index].strokeWidth = color, 1.8
        chart.lines[index].symbol = makeMarker("FilledCircle", size=3)  # a lone month still shows
    chart.joinedLines = True
    drawing.add(chart)
    _legend(drawing, legend_top, font, sizes, tuple(key for key, _, _ in series), tuple(color for _, color, _ in series))
    return drawing


def department_chart(departments: list[dict], title: str, font: str, sizes: TextSizes = PRINT) -> Drawing:
    """On-time closure rate and satisfaction rate of the ranked departments, in the table's order (top first).

    Departments without a case in the month have no bars to draw and are left out. Each bar is labelled with its
    rate as the table prints it; a rate with nothing to count (no case closed, none rated) gets the table's dash
    beside a bar of nothing, so it does not read as 0 %.
    """
    shown = [row for row in departments if had_cases(row)][:MAX_DEPARTMENTS]
    bar_space = sizes.text * 2.75
    top_room = sizes.title + sizes.text + 30
    height = top_room + 25 + bar_space * max(len(shown), 1)
    drawing = Drawing(sizes.width, height)
    legend_top = _title(drawing, title, font, sizes)
    if not shown:
        return _no_data(drawing, font, sizes)
    names = [_short(r["name"], font, sizes) for r in shown]
    label_room = min(max(stringWidth(name, font, sizes.text) for name in names) + sizes.label_gap + 7,
                     sizes.width * 0.45)
    value_room = stringWidth(percent(1.0), font, sizes.text) * 1.2 + sizes.label_gap  # a full bar's label, 100.0%
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = (label_room, 25, sizes.width - label_room - value_room,
                                                   height - top_room - 25)
    # The category axis draws from the bottom up; reverse so the best department is on top.
    rows = list(reversed(shown))
    keys = ("on_time_rate", "satisfaction_rate")
    chart.data = [[_percent(r[key]) or 0 for r in rows] for key in keys]
    chart.barLabelFormat, chart.barLabelArray = "values", [[percent(r[key]) for r in rows] for key in keys]
    chart.barLabels.fontName, chart.barLabels.fontSize = font, sizes.text
    chart.barLabels.boxAnchor, chart.barLabels.dx = "w", sizes.label_gap / 2
    chart.categoryAxis.categoryNames = list(reversed(names))
    chart.categoryAxis.labels.fontName, chart.categoryAxis.labels.fontSize = font, sizes.text
    chart.categoryAxis.labels.boxAnchor, chart.categoryAxis.labels.dx = "e", -sizes.label_gap
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = font, sizes.text
    chart.valueAxis.labelTextFormat = "%d%%"
    chart.bars[0].fillColor, chart.bars[1].fillColor = BLUE, ORANGE
    chart.bars.strokeColor = None
    chart.barSpacing, chart.groupSpacing = 1, sizes.text * 0.75
    drawing.add(chart)
    _legend(drawing, legend_top, font, sizes, keys, (BLUE, ORANGE))
    return drawing


def to_svg(drawing: Drawing, name: str) -> str:
    """The drawing as an inline SVG element (no XML prolog), drawn at its own size, with no style attributes.

    `name` prefixes the element ids ReportLab writes (`clip`, `group`, the same in every drawing): two charts in
    one page would otherwise share them, and the second would be cut to the first's clip rectangle (its title
    and legend were not drawn)."""
    svg = renderSVG.drawToString(drawing)
    start = svg.find("<svg")
    return _web_fonts(_presentation_attributes(_own_ids(svg[start:] if start >= 0 else svg, name)))


_ID = re.compile(r'(\sid="|url\(#|href="#)([^")]+)')


def _own_ids(svg: str, name: str) -> str:
    """Every id of the SVG, and every reference to one, prefixed with `name-`."""
    return _ID.sub(lambda match: f"{match.group(1)}{name}-{match.group(2)}", svg)


# The console's own font stack (static/console.css), after the font the chart was measured with.
WEB_FONTS = "system-ui, 'PingFang SC', 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif"
_FONT_FAMILY = re.compile(r'\sfont-family="([^"]*)"')
_FAMILY_NAME = re.compile(r"[^\w \-]")


def _web_fonts(svg: str) -> str:
    """ReportLab names the font it registered (`Banjie-wqy-microhei`), which no browser knows: it then draws the text
    in its default font, a serif one on an English page. Each font becomes its family name (the one the chart was
    measured with, where the browser has it) and the console's fonts after it."""
    def family(match: re.Match) -> str:
        try:
            name = getattr(pdfmetrics.getFont(match.group(1)).face, "familyName", b"")
        except KeyError:
            name = b""
        name = _FAMILY_NAME.sub("", name.decode("utf-8", "ignore") if isinstance(name, bytes) else str(name)).strip()
        stack = f"'{name}', {WEB_FONTS}" if name else WEB_FONTS
        return f' font-family="{stack}"'

    return _FONT_FAMILY.sub(family, svg)


_STYLE = re.compile(r'\sstyle="([^"]*)"')


def _presentation_attributes(svg: str) -> str:
    """ReportLab writes `style="fill: …; stroke: …"`, which the console's CSP (no inline styles) blocks; SVG
    takes the same properties as presentation attributes (`fill="…"`), which no CSP restricts."""
    def attributes(match: re.Match) -> str:
        pairs = (part.split(":", 1) for part in match.group(1).split(";") if ":" in part)
        return "".join(f' {name.strip()}="{value.strip()}"' for name, value in pairs)

    return _STYLE.sub(attributes, svg)
