"""A month's figures dict built by hand (the shape `reports.figures.monthly_figures` returns), for PDF tests without a database;
the text of a PDF read back (and what it should read: `drawable`), and a server that counts who fetched its image."""
from __future__ import annotations


import http.server
import io
import unicodedata

from pypdf import PdfReader
from reportlab.pdfbase import pdfmetrics

from reports import fonts, markup, metrics, scores

MONTH = "2026-11"
DUE = "2026-11-12T15:59:00+00:00"


def counts(accepted: int, **more) -> dict:
    """Figures with rates for a department (or the office) that accepted `accepted` cases."""
    closed = max(accepted - 1, 0)
    base = {**metrics.empty_counts(), "accepted": accepted, "closed": closed, "closed_in_month": closed,
            "closed_on_time": max(closed - 1, 0), "handling_days": 3 * closed, "overdue": 1 if accepted else 0,
            "surveys": closed, "rated": closed, "satisfied": closed, "good": max(closed - 1, 0)}
    return metrics.with_rates({**base, **more})


def figures_with(*, departments=("市场监督管理局", "人力资源和社会保障局"), idle=("住房和城乡建设局",),
                 service_items=("营业执照变更",), problem_labels=("办得慢", "办不了"), tracking_numbers=("BJ20261105-0001",),
                 month=MONTH) -> dict:
    """Figures of a month in which `departments` had cases and `idle` had none, naming the given strings."""
    rows = [{"id": i, "name": name, **counts(i + 2)} for i, name in enumerate(departments)]
    rows += [{"id": 100 + i, "name": name, **counts(0)} for i, name in enumerate(idle)]
    first = departments[0] if departments else None
    parsed = metrics.Month.parse(month)
    rules = {"weights": scores.weights_from(scores.DEFAULT_WEIGHTS), "min_cases": 1,
             "thresholds": scores.thresholds_from(scores.DEFAULT_THRESHOLDS)}
    office = counts(sum(i + 2 for i in range(len(departments))) + 1)
    ranked = scores.rank(rows, weights=rules["weights"], min_cases=1)
    figures = {
        "month": month,
        "formula_version": metrics.FORMULA_VERSION,
        "scoring": rules,
        "office": office,
        "departments": ranked,
        "offices": [],
        "department_boards": scores.boards(ranked),
        "office_boards": scores.boards([]),
        "comparison": {"previous_month": str(parsed.shift(-1)), "year_ago_month": str(parsed.shift(-12)),
                       "rows": scores.comparison(office, counts(3), None)},
        # 高频诉求: a recurring problem per service item, named by it, its task answered in words naming it too
        "clusters": {"min_cases": 5, "total": len(service_items), "items": [
            {"cluster_id": i + 1, "title": name, "service_item": name, "office_code": "root", "office_name": first,
             "count": 6, "previous": 2, "mom": 4,
             "governance": {"tracking_no": no, "status": "closed", "department": first, "opened_at": DUE,
                            "closed_at": DUE, "answer": f"已整改{name}", "linked": 6, "notified": True}}
            for i, (name, no) in enumerate(zip(service_items, [*tracking_numbers, *service_items]))]},
        "typical_cases": [{"tracking_no": no, "summary": f"{first}的典型案例", "closed_at": DUE, "department": first}
                          for no in tracking_numbers],
        "next_steps": "下月重点督办超期件。",
        "unassigned": counts(1),
        "problem_types": [{"code": f"t{i}", "label": label, "count": 5 - i} for i, label in enumerate(problem_labels)],
        "service_items": [{"name": name, "count": 2} for name in service_items],
        "overdue": {"total": len(tracking_numbers), "items": [
            {"tracking_no": no, "department": first, "kind": "handle", "due_at": DUE, "days_overdue": 3,
             "supervision_level": 2} for no in tracking_numbers]},
        "escalations": {"total": len(tracking_numbers), "items": [
            {"at": DUE, "tracking_no": no, "department": first, "action": "escalate", "level": 3}
            for no in tracking_numbers]},
        "trend": [{"month": str(parsed.shift(-back)), "closure_rate": 0.5 + back / 40, "satisfaction_rate": 0.9}
                  for back in range(11, -1, -1)],
        "generated_at": "2026-12-01T01:00:00+00:00",
    }
    figures["problems"] = scores.problems(figures, rules["thresholds"])
    return figures


def pdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def pdf_text(data: bytes) -> str:
    return "\n".join(pdf_pages(data))


# Where ReportLab breaks a line at a zero-width space, the space goes with the break (as a space does), so a long text
# gives it back only where no line ended: like whitespace, it is left out on both sides of a comparison.
LINE_BREAKS_IT_EATS = "\u200b"


def squash(value: str) -> str:
    """Text as the PDF can give it back: control characters dropped, no whitespace (lines wrap anywhere)."""
    return "".join(ch for ch in markup.plain(value) if not ch.isspace() and ch not in LINE_BREAKS_IT_EATS)


# pypdf gives a run of right-to-left letters (Arabic, Hebrew) back in the order it stands on the page, with the digits
# and signs beside it moved too ("ـف" drawn comes back "فـ"), so a text holding one cannot be found as typed: a test
# that reads a PDF back draws its texts without them (`left_to_right`).
RIGHT_TO_LEFT = frozenset({"R", "AL", "AN", "RLE", "RLO", "RLI"})


def left_to_right(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.bidirectional(ch) not in RIGHT_TO_LEFT)


def drawable(value: str) -> str:
    """`value` as a PDF gives it back (`squash`ed): each character the report's font draws, or another font of this
    machine draws (`fonts.fallback`), as itself; one no font here draws as 〓, or left out when it has no form of its
    own (a joiner, a variation selector)."""
    face = getattr(pdfmetrics.getFont(fonts.register()), "face", None)
    if face is None:
        return squash(value)

    def drawn(ch: str) -> str:
        if face.charToGlyph.get(ord(ch)) or fonts.fallback(ord(ch)):
            return ch
        return "" if fonts._invisible(ch) else fonts.PLACEHOLDER

    return "".join(drawn(ch) for ch in squash(value))


class CountingServer(http.server.ThreadingHTTPServer):
    """Serves one PNG on a free local port and counts who fetched it."""

    def __init__(self, png_bytes):
        self.requests = 0
        body = png_bytes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805
                self.requests += 1
                handler.send_response(200)
                handler.send_header("Content-Type", "image/png")
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
