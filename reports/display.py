"""How the report writes its values for people: percentages, figures, months (the PDF, the charts and the console alike)."""
from __future__ import annotations

from flask_babel import gettext as _

from .formulas import FORMULA_BY_KEY


def percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def show(key: str, value) -> str:
    """A figure of `formulas.FORMULAS` as printed: rates as percentages, a missing figure as a dash."""
    if key in FORMULA_BY_KEY and FORMULA_BY_KEY[key].rate:
        return percent(value)
    if value is None:
        return "—"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def month_label(month) -> str:
    """A month (`YYYY-MM` or `metrics.Month`) as people write it: 2025年12月 (2025-12 in English)."""
    year, number = str(month).split("-")
    return _("%(year)d-%(month)02d", year=int(year), month=int(number))
