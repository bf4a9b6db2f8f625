"""The report's charts as ReportLab drawings: the PDF draws them, the console shows the same drawings as SVG."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from reportlab.graphics import renderSVG
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

from .formulas import FORMULA_BY_KEY

BLUE = colors.HexColor("#1f5fa8")
ORANGE = colors.HexColor("#e07b24")
MAX_DEPARTMENTS = 15


def _percent(value):
    return None if value is None else round(value * 100, 1)


def _legend(drawing: Drawing, right: float, top: float, font: str, keys: tuple[str, ...], palette) -> None:
    """Both series side by side, ending at `right`."""
    names = [str(FORMULA_BY_KEY[key].label) for key in keys]
    legend = Legend()
    legend.deltax = max(stringWidth(name, font, 8) for name in names) * 1.3 + 30  # browsers may draw SVG text wider
    legend.x, legend.y = right - legend.deltax * len(keys), top
    legend.fontName, legend.fontSize = font, 8
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.colorNamePairs = list(zip(palette, names))
    drawing.add(legend)


def _no_data(drawing: Drawing, font: str) -> Drawing:
    drawing.add(String(drawing.width / 2, drawing.height / 2, _("No data for this period."), fontName=font, fontSize=9,
                       textAnchor="middle", fillColor=colors.grey))
    return drawing


def _title(drawing: Drawing, text: str, font: str) -> None:
    drawing.add(String(0, drawing.height - 12, text, fontName=font, fontSize=10))


def trend_chart(trend: list[dict], title: str, font: str, width: float = 480, height: float = 200) -> Drawing:
    """Closure rate and satisfaction rate of the last twelve months, in percent (a month without data leaves a gap)."""
    drawing = Drawing(width, height)
    _title(drawing, title, font)
    keys = ("closure_rate", "satisfaction_rate")
    # ReportLab cannot draw a line without a single point: a series with no month of data is left out.
    series = [(key, color, [_percent(p[key]) for p in trend]) for key, color in zip(keys, (BLUE, ORANGE))]
    series = [(key, color, values) for key, color, values in series if any(v is not None for v in values)]
    if not series:
        return _no_data(drawing, font)
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 35, 30, width - 45, height - 75
    chart.data = [values for _, _, values in series]
    chart.categoryAxis.categoryNames = [p["month"][2:] for p in trend]
    chart.categoryAxis.labels.fontName, chart.categoryAxis.labels.fontSize = font, 7
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = font, 7
    chart.valueAxis.labelTextFormat = "%d%%"
    chart.valueAxis.visibleGrid, chart.valueAxis.gridStrokeColor = True, colors.HexColor("#dddddd")
    for index, (_, color, _) in enumerate(series):
        chart.lines[index].strokeColor, chart.lines[index].strokeWidth = color, 1.8
        chart.lines[index].symbol = makeMarker("FilledCircle", size=3)  # a lone month still shows
    chart.joinedLines = True
    drawing.add(chart)
    _legend(drawing, width - 10, height - 8, font, tuple(key for key, _, _ in series),
            tuple(color for _, color, _ in series))
    return drawing


def department_chart(departments: list[dict], title: str, font: str, width: float = 480) -> Drawing:
    """On-time closure rate and satisfaction rate per department, in the table's ranking (top first)."""
    shown = departments[:MAX_DEPARTMENTS]
    bar_space = 22
    height = 70 + bar_space * max(len(shown), 1)
    drawing = Drawing(width, height)
    _title(drawing, title, font)
    if not shown:
        return _no_data(drawing, font)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 130, 25, width - 150, height - 70
    # The category axis draws from the bottom up; reverse so the best department is on top.
    rows = list(reversed(shown))
    chart.data = [[_percent(r["on_time_rate"]) or 0 for r in rows], [_percent(r["satisfaction_rate"]) or 0 for r in rows]]
    chart.categoryAxis.categoryNames = [r["name"][:10] for r in rows] or [""]
    chart.categoryAxis.labels.fontName, chart.categoryAxis.labels.fontSize = font, 8
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = font, 7
    chart.valueAxis.labelTextFormat = "%d%%"
    chart.bars[0].fillColor, chart.bars[1].fillColor = BLUE, ORANGE
    chart.bars.strokeColor = None
    chart.barSpacing, chart.groupSpacing = 1, 6
    drawing.add(chart)
    _legend(drawing, width - 10, height - 8, font, ("on_time_rate", "satisfaction_rate"), (BLUE, ORANGE))
    return drawing


def to_svg(drawing: Drawing) -> str:
    """The drawing as an inline SVG element (no XML prolog), scaled by the page, with no style attributes."""
    svg = renderSVG.drawToString(drawing)
    start = svg.find("<svg")
    return _presentation_attributes(svg[start:] if start >= 0 else svg)


_STYLE = re.compile(r'\sstyle="([^"]*)"')


def _presentation_attributes(svg: str) -> str:
    """ReportLab writes `style="fill: …; stroke: …"`, which the console's CSP (no inline styles) blocks; SVG
    takes the same properties as presentation attributes (`fill="…"`), which no CSP restricts."""
    def attributes(match: re.Match) -> str:
        pairs = (part.split(":", 1) for part in match.group(1).split(";") if ":" in part)
        return "".join(f' {name.strip()}="{value.strip()}"' for name, value in pairs)

    return _STYLE.sub(attributes, svg)
