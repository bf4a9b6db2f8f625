"""The 通报's words: 总体情况, 主要问题 and 下步工作 written from the figures dict, in plain Chinese (English too).

Pure functions of the report's JSON (`figures.monthly_figures`), so a kept report reads the same whenever it is
rendered. They return plain text: the PDF escapes it on the way into ReportLab (`markup.text`) like every other
string; names in it are the units' names exactly as written.
"""
from __future__ import annotations

from flask_babel import get_locale, gettext as _

from .display import month_label, percent, show
from .formulas import FORMULA_BY_KEY

MAX_PROBLEMS = 6  # on the first page; the rest are counted


def signed_change(key: str, delta) -> str:
    """A change as the headline table prints it: ▲ 2.3 个百分点 / ▼ 5 / 持平 (— when unknown)."""
    if delta is None:
        return "—"
    if delta == 0:
        return _("unchanged")
    arrow = "▲" if delta > 0 else "▼"
    size = abs(delta)
    if key.endswith("_rate"):
        return _("%(arrow)s %(points).1f points", arrow=arrow, points=size)
    return f"{arrow} {size}"


def _against(row: dict, which: str) -> str:
    """How a rate moved against last month (`mom`) or last year (`yoy`), as a clause."""
    delta = row[which]
    if delta is None:
        return ""
    if delta == 0:
        return _("level with last month") if which == "mom" else _("level with a year ago")
    if which == "mom":
        return (_("up %(points).1f points on last month", points=delta) if delta > 0
                else _("down %(points).1f points on last month", points=-delta))
    return (_("up %(points).1f points on a year ago", points=delta) if delta > 0
            else _("down %(points).1f points on a year ago", points=-delta))


def overall(figures: dict) -> str:
    """总体情况: the month's cases, closure, timeliness and satisfaction, with their 环比 and 同比."""
    office = figures["office"]
    rows = {row["key"]: row for row in (figures.get("comparison") or {}).get("rows", [])}
    parts = [_("In %(month)s %(accepted)d cases were accepted and %(closed)d of them closed (closure rate "
               "%(rate)s).", month=month_label(figures["month"]), accepted=office["accepted"], closed=office["closed"],
               rate=percent(office["closure_rate"]))]
    by_channel = channels(office)
    if by_channel:
        parts.append(by_channel)
    for key in ("on_time_rate", "satisfaction_rate", "contact_rate"):
        if office.get(key) is None:
            continue
        moves = [clause for clause in (_against(rows[key], "mom"), _against(rows[key], "yoy")) if clause] \
            if key in rows else []
        value = _("%(figure)s %(value)s", figure=FORMULA_BY_KEY[key].label, value=percent(office[key]))
        parts.append(_("%(value)s (%(moves)s).", value=value, moves=_(", ").join(moves)) if moves
                     else _("%(value)s.", value=value))
    parts.append(_("%(overdue)d deadlines were missed and %(bad)d bad ratings given.", overdue=office["overdue"],
                   bad=office["bad"]))
    return sentences(parts)


def channels(office: dict) -> str | None:
    """受理渠道 as a sentence: the month's accepted cases by how they came in (`formulas.ACCEPTED_BY_CHANNEL`); None
    without accepted cases, or for a report kept before formula version 2026.4, which has no such figures."""
    if office.get("accepted_online") is None or not office.get("accepted"):
        return None
    return _("By channel: %(online)d online, %(window)d at the window, %(phone)d by phone and %(hotline)d from the "
             "12345 hotline (the last three filed by the window's staff for the citizens).",
             online=office["accepted_online"], window=office["accepted_window"], phone=office["accepted_phone"],
             hotline=office["accepted_hotline"])


def sentences(parts: list[str]) -> str:
    """Sentences run on: with no space between them in Chinese, one in English."""
    locale = get_locale()
    return ("" if locale is not None and locale.language == "zh" else " ").join(parts)


def problem_text(problem: dict) -> str:
    """One 主要问题 (`scores.problems`) as a sentence."""
    kind = problem["kind"]
    if kind == "black_again":
        return _("%(unit)s is on the bottom list for the second month running.", unit=problem["unit"])
    if kind == "overdue_at_end":
        return _("%(count)d cases were still overdue at the end of the month (listed below).", count=problem["value"])
    figure = FORMULA_BY_KEY[problem["key"]].label
    values = dict(figure=figure, value=percent(problem["value"]), threshold=percent(problem["threshold"]))
    if kind == "office":
        return _("The office's %(figure)s was %(value)s, below the %(threshold)s it aims for.", **values)
    return _("%(unit)s: %(figure)s %(value)s, below %(threshold)s.", unit=problem["unit"], **values)


def problems(figures: dict) -> tuple[list[str], int]:
    """主要问题 as sentences (at most `MAX_PROBLEMS`) and how many more there are."""
    found = figures.get("problems") or []
    return [problem_text(p) for p in found[:MAX_PROBLEMS]], max(0, len(found) - MAX_PROBLEMS)


def next_steps(figures: dict) -> str | None:
    """下步工作: the office's own words, or None when it wrote none."""
    written = (figures.get("next_steps") or "").strip()
    return written or None


def board_line(entry: dict) -> list[str]:
    """A 红黑榜 entry's cells: rank, name (a 黑榜 unit there two months running marked), score."""
    name = entry["name"] + (_(" (2nd month)") if entry.get("again") else "")
    return [str(entry["rank"]), name, show("score", entry["score"])]
