"""Scores, ranks, 红黑榜 and 环比/同比 of the monthly 通报, written down once: pure functions of the figures.

Nothing here reads the database: `figures.monthly_figures` hands in the rows (`metrics.with_rates`) and the earlier
months' figures, and stores what these functions return in the report's JSON, so the PDF, the console and the API
show the same ranks.

- **Score** (综合得分, 0-100): the weighted mean of a unit's rates that exist, `REPORT_SCORE_WEIGHTS` (default
  按时办结率 40, 满意率 40, 先行联系及时率 20). A rate a unit has no case for (no case closed, no survey answered, no
  first contact due) leaves the mean, and its weight with it: a unit is never scored on what it did not have to do.
- **Ranked**: units with at least `REPORT_MIN_CASES` cases in the month (受理数 or 本月办结数, whichever is
  larger) and a score. Ranked by score, then by 本月办结数 (more work first); units equal on both share a rank, and
  are listed by name. The others are listed after them, unranked, with the reason.
- **红榜 / 黑榜**: the first and the last three ranked units; with fewer than six ranked units, each list takes
  half of them (rounded down), so no unit is on both. A unit on the 黑榜 that was also on the previous month's is
  marked (`again`).
- **环比 / 同比**: each headline figure against the previous month and the same month a year earlier; a rate's
  change in percentage points, a count's as a difference.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

DEFAULT_WEIGHTS = "on_time_rate=40,satisfaction_rate=40,contact_rate=20"
DEFAULT_THRESHOLDS = "on_time_rate=90,satisfaction_rate=90,contact_rate=90"
DEFAULT_MIN_CASES = 5
SCORED_RATES = ("on_time_rate", "satisfaction_rate", "contact_rate", "closure_rate", "participation_rate",
                "good_rate", "bad_rectified_rate", "return_visit_rate")
LIST_SIZE = 3
# The headline figures compared with the previous month and the year before, and whether a rise is good.
COMPARED = (("accepted", None), ("closure_rate", True), ("on_time_rate", True), ("satisfaction_rate", True),
            ("contact_rate", True), ("participation_rate", True), ("overdue", False), ("bad", False))
RATE_KEYS = frozenset(key for key, _better in COMPARED if key.endswith("_rate"))
UNRANKED_REASONS = {
    "no_cases": _l("no cases this month"),
    "few_cases": _l("fewer than %(n)d cases"),
    "no_score": _l("no rate to score"),
}


class BadSetting(ValueError):
    pass


def parse_rates(text: str, *, name: str, maximum: float | None = None) -> dict[str, float]:
    """`key=number,...` (keys among `SCORED_RATES`) as {key: number}: the weights and thresholds settings."""
    values = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, _sep, number = part.partition("=")
        key = key.strip()
        if key not in SCORED_RATES:
            raise BadSetting(f"{name}: {key!r} is not a rate the report has (one of {', '.join(SCORED_RATES)})")
        try:
            value = float(number)
        except ValueError:
            raise BadSetting(f"{name}: {part.strip()!r} is not key=number") from None
        if value < 0 or (maximum is not None and value > maximum) or value != value:
            raise BadSetting(f"{name}: {key} must be between 0 and {maximum if maximum is not None else 'more'}")
        values[key] = value
    if not values:
        raise BadSetting(f"{name}: give at least one rate, like {DEFAULT_WEIGHTS}")
    return values


def weights_from(text: str) -> dict[str, float]:
    weights = parse_rates(text, name="REPORT_SCORE_WEIGHTS")
    if not sum(weights.values()) > 0:
        raise BadSetting("REPORT_SCORE_WEIGHTS: the weights must not all be 0")
    return weights


def thresholds_from(text: str) -> dict[str, float]:
    """Thresholds written in percent (`on_time_rate=90`) as fractions ({"on_time_rate": 0.9})."""
    return {key: value / 100 for key, value in parse_rates(text, name="REPORT_THRESHOLDS", maximum=100).items()}


def score(row: dict, weights: dict[str, float]) -> float | None:
    """The unit's score (0-100, two decimals): Σ weight × rate × 100 ÷ Σ weight, over the rates it has."""
    present = [(weight, row.get(key)) for key, weight in weights.items() if row.get(key) is not None and weight]
    total = sum(weight for weight, _rate in present)
    if not total:
        return None
    return round(sum(weight * rate for weight, rate in present) * 100 / total, 2)


def cases(row: dict) -> int:
    """A unit's cases in the month, for whether it is ranked: 受理数 or 本月办结数, whichever is larger."""
    return max(row.get("accepted") or 0, row.get("closed_in_month") or 0)


def rank(rows: list[dict], *, weights: dict[str, float], min_cases: int) -> list[dict]:
    """The rows with `score`, `rank` (None: not ranked) and `unranked` (None, or why not: `UNRANKED_REASONS`), in
    report order: ranked ones by score, then 本月办结数, then name; the others by name."""
    for row in rows:
        row["score"] = score(row, weights)
        if not cases(row):
            row["unranked"] = "no_cases"
        elif cases(row) < min_cases:
            row["unranked"] = "few_cases"
        elif row["score"] is None:
            row["unranked"] = "no_score"
        else:
            row["unranked"] = None

    def standing(row):
        return (-row["score"], -(row.get("closed_in_month") or 0))

    ranked = sorted((r for r in rows if r["unranked"] is None), key=lambda r: (standing(r), r["name"]))
    for place, row in enumerate(ranked, 1):
        tied = place > 1 and standing(row) == standing(ranked[place - 2])
        row["rank"] = ranked[place - 2]["rank"] if tied else place
    others = sorted((r for r in rows if r["unranked"] is not None), key=lambda r: r["name"])
    for row in others:
        row["rank"] = None
    return ranked + others


def unit_key(row: dict):
    """What identifies a unit from one month to the next: a department's id, an office's code."""
    return row.get("code") or row.get("id")


def boards(rows: list[dict], previous_black: list | None = None) -> dict:
    """红榜 and 黑榜 of ranked rows (in rank order): {"red": [...], "black": [...]}, the black list worst first.

    Each entry: the unit's `id`, `code` (offices), `name`, `rank`, `score`; a 黑榜 entry also `again` (on the
    previous month's 黑榜 too: `previous_black`, that month's entries, None when there was none)."""
    ranked = [row for row in rows if row.get("rank") is not None]
    size = min(LIST_SIZE, len(ranked) // 2)
    before = {unit_key(entry) for entry in previous_black or ()}

    def entry(row):
        return {key: row.get(key) for key in ("id", "code", "name", "rank", "score")}

    red = [entry(row) for row in ranked[:size]]
    black = [{**entry(row), "again": unit_key(row) in before} for row in reversed(ranked[-size:])] if size else []
    return {"red": red, "black": black}


def change(key: str, now, then) -> float | None:
    """`now` against `then`: a rate's change in percentage points (one decimal), a count's difference; None when
    either is missing."""
    if now is None or then is None:
        return None
    if key in RATE_KEYS:
        return round((now - then) * 100, 1)
    return now - then


def comparison(office: dict, previous: dict | None, year_ago: dict | None) -> list[dict]:
    """The headline figures with 环比 (`mom`, against `previous`) and 同比 (`yoy`, against `year_ago`): one entry
    per `COMPARED` key, with the earlier values and `better` (True: a rise is good; False: a fall is; None: neither)."""
    rows = []
    for key, better in COMPARED:
        value = office.get(key)
        last = (previous or {}).get(key)
        before = (year_ago or {}).get(key)
        rows.append({"key": key, "value": value, "previous": last, "year_ago": before, "better": better,
                     "mom": change(key, value, last), "yoy": change(key, value, before)})
    return rows


def problems(figures: dict, thresholds: dict[str, float]) -> list[dict]:
    """主要问题: the office's and each ranked or listed unit's rates below the office's thresholds, worst first within
    the office total, the departments and the windows below; then the units on the 黑榜 two months running and the
    cases still overdue at the month's end. Each: {"kind", "unit", "key", "value", "threshold"} (plain data: the
    narrative writes it)."""
    found = []

    def below(kind, row):
        for key, threshold in thresholds.items():
            value = row.get(key)
            if value is not None and value < threshold:
                found.append({"kind": kind, "unit": row.get("name"), "key": key, "value": value,
                              "threshold": threshold})

    below("office", figures["office"])
    for kind, rows in (("department", figures.get("departments") or []), ("window", figures.get("offices") or [])):
        start = len(found)
        for row in rows:
            if row.get("unranked") in (None, "no_score"):  # units with enough cases to be judged
                below(kind, row)
        found[start:] = sorted(found[start:], key=lambda p: (p["value"] - p["threshold"], p["unit"] or ""))
    for board in ("department_boards", "office_boards"):
        for entry in (figures.get(board) or {}).get("black", []):
            if entry.get("again"):
                found.append({"kind": "black_again", "unit": entry["name"], "key": None, "value": None,
                              "threshold": None})
    overdue = (figures.get("overdue") or {}).get("total") or 0
    if overdue:
        found.append({"kind": "overdue_at_end", "unit": None, "key": None, "value": overdue, "threshold": None})
    return found
