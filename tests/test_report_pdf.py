"""The monthly PDF as a document: any text in any field, nothing loaded from markup, layout and wording.

Built from hand-made figures (tests/report_figures.py), so no database is needed; read back with pypdf.
"""
from __future__ import annotations

import ast
import io
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from reportlab import rl_config
from reportlab.graphics.shapes import String, UserNode
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Paragraph, SimpleDocTemplate

from app import create_app
from reports import charts, fonts, markup
from reports import scores
from reports.pdf import build_pdf
from tests.helpers import BASE_CONFIG, TZ, examples, service_missing
from tests.report_figures import (
    CountingServer,
    counts,
    drawable,
    figures_with,
    left_to_right,
    pdf_pages,
    pdf_text,
    squash,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATED = datetime(2026, 12, 1, 0, 5, tzinfo=TZ)
HEADINGS = ("2026年11月办结情况月报", "部门排名", "本月指标", "问题类型", "反映最多的办理事项", "月末超期案件",
            "本月督办情况", "附录", "受理渠道", "按部门", "按下级窗口")


@pytest.fixture(scope="module")
def app():
    return create_app({**BASE_CONFIG, "DATABASE_URL": "sqlite://"})


def build(app, figures, office="办不成事反映窗口") -> bytes:
    with app.app_context():
        return build_pdf(figures, office=office, generated_at=GENERATED, tz=TZ, font=fonts.register())


# --- 1. any string in any field ---------------------------------------------------------------------

HOSTILE = st.sampled_from([
    "<b>", "</b>", '<img src="/etc/passwd"/>', '<img src="http://127.0.0.1:9/x.png"/>', "<", ">", "&", "&amp;",
    "&lt;", "&#0;", "&nbsp;", "</para>", "<para>", "<!--", "]]>", "<![CDATA[", '<font face="/etc/passwd">',
    "<a href='file:///etc/passwd'>", "<br/>", "<onDraw name='x'/>", '"', "'", "%s", "%(x)s", "\\",
])
CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=12)
# any character but right-to-left letters, which pypdf reads back reordered (`report_figures.left_to_right`)
ANY = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
              max_size=6).map(left_to_right)


def texts(max_size: int):
    """Names as people and attackers type them: markup, ampersands, CJK, any unicode, up to `max_size` characters."""
    pieces = st.lists(st.one_of(HOSTILE, CJK, ANY), min_size=1, max_size=8).map("".join)
    return st.one_of(pieces, st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=max_size // 2,
                                     max_size=max_size)).map(lambda s: s[:max_size]).filter(lambda s: squash(s))


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(office=texts(200), departments=st.lists(texts(100), min_size=1, max_size=3),
       idle=st.lists(texts(100), max_size=2), service_items=st.lists(texts(100), max_size=3),
       problem_labels=st.lists(texts(20), min_size=1, max_size=2), tracking_numbers=st.lists(texts(24), max_size=2))
def test_any_text_in_any_field_builds_and_reads_back(app, office, departments, idle, service_items, problem_labels,
                                                      tracking_numbers):
    figures = figures_with(departments=departments, idle=idle, service_items=service_items,
                           problem_labels=problem_labels, tracking_numbers=tracking_numbers)
    text = squash(pdf_text(build(app, figures, office)))
    for value in [office, *departments, *idle, *service_items, *problem_labels, *tracking_numbers]:
        assert drawable(value) in text, value
    for name in service_items:  # 高频诉求: the task's answer, a text people wrote, in a cell of its own
        assert drawable(f"已整改{name}") in text, name


def test_a_department_with_markup_and_a_service_item_naming_a_file(app):
    """The two strings of the issue: shown as written; the file is not read."""
    figures = figures_with(departments=["规划<b>自然资源局"], service_items=['<img src="/etc/passwd"/>'])
    text = pdf_text(build(app, figures, office="市<i>政务</i>服务中心 & 12345"))
    for expected in ("规划<b>自然资源局", '<img src="/etc/passwd"/>', "市<i>政务</i>服务中心 & 12345"):
        assert expected in text
    assert "root:" not in text


def test_characters_above_the_basic_plane_read_back_as_drawn(app):
    """A character beyond U+FFFF that the font draws (a rare 汉字 of a name, in a font that has it) is in the PDF's
    text as well: ReportLab's ToUnicode map spells it as the standard asks (reports/fonts.py), so copying and
    extracting find it. The font's own such characters, in every kind of field."""
    face = getattr(pdfmetrics.getFont(fonts.register()), "face", None)
    if face is None:
        pytest.skip("the fallback CID font embeds no subset")
    beyond = "".join(chr(code) for code in sorted(face.charToGlyph) if code > 0xFFFF)[:40]
    if not beyond:
        pytest.skip("this font draws nothing above U+FFFF")
    office, department, item = f"市{beyond}中心", f"{beyond}局", f"办{beyond}"
    text = squash(pdf_text(build(app, figures_with(departments=[department], service_items=[item]), office)))
    for value in (office, department, item):
        assert value in text, [hex(ord(ch)) for ch in value]


NO_FONT_HAS = "\U0010FFFD"  # plane 16's private use: no font of any machine here draws it


def _ink(pdf: bytes, tmp_path) -> int:
    """Dark pixels on the first page, rendered by poppler (what a reader sees, not what the text layer says)."""
    if shutil.which("pdftoppm") is None:
        service_missing("pdftoppm (poppler-utils)", "not installed")
    (tmp_path / "page.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "72", "-png", "-f", "1", "-l", "1", "-singlefile", str(tmp_path / "page.pdf"),
                    str(tmp_path / "page")], check=True, timeout=60)
    picture = Image.open(tmp_path / "page.png").convert("L")
    return sum(1 for value in picture.tobytes() if value < 128)


def _alone(paragraph) -> bytes:
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer).build([paragraph])
    return buffer.getvalue()


@pytest.mark.parametrize("character", ["😀", "☃", "\U00020000"])
def test_a_character_the_report_font_lacks_is_drawn_or_marked_never_blank(app, character, tmp_path):
    """An emoji in a citizen's description, a rare 汉字 of a name: the CJK font has no glyph, and ReportLab alone draws
    a blank where it stood. The report's paragraphs draw it with a font of this machine that has it, else print 〓;
    either way there is ink on the page and the character (or the mark) in the PDF's text."""
    font = fonts.register()
    if fonts.glyphs(font) is None:
        pytest.skip("the fallback CID font: ReportLab cannot tell what it draws")
    if ord(character) in fonts.glyphs(font):
        pytest.skip(f"this machine's report font draws {character} itself")
    style = ParagraphStyle("t", fontName=font, fontSize=24)
    assert _ink(_alone(Paragraph(character, style)), tmp_path) == 0  # the blank the report would have printed
    pdf = _alone(markup.text(character, style))
    assert _ink(pdf, tmp_path) > 20
    expected = character if fonts.fallback(ord(character)) else fonts.PLACEHOLDER
    assert squash(pdf_text(pdf)) == expected


def test_a_character_no_font_has_is_marked_in_every_kind_of_field(app):
    """〓 where no font here draws a character, in a paragraph (names, descriptions), a table, the footer and the
    chart's labels alike."""
    name, item = f"环保{NO_FONT_HAS}局", f"证照{NO_FONT_HAS}办理"
    office = f"市{NO_FONT_HAS}中心"
    pdf = build(app, figures_with(departments=[name], service_items=[item]), office)
    text = squash(pdf_text(pdf))
    for value in ("环保〓局", "证照〓办理", "市〓中心"):
        assert value in text
    assert NO_FONT_HAS not in text
    label = charts._short(name, fonts.register())
    assert label.startswith("环保〓")


def test_a_chart_on_the_console_shows_every_character_as_written(app):
    """The console's dashboard shows the report's charts as SVG, whose text the browser draws with the chart's font
    and the console's fonts after it (`charts.WEB_FONTS`), finding one for an emoji or a rare 汉字 where the
    report's font has none: there a name is written as it is, not marked 〓 as in the PDF, whose chart has one
    font. The dashboard's own route: tests/test_browser_reports.py."""
    name = f"环保😀{NO_FONT_HAS}局"
    office = "王𠀀中心"
    figures = figures_with(departments=[name, office])
    font = fonts.register()
    with app.test_request_context():
        svg = charts.to_svg(charts.department_chart(figures["departments"], "部门", font, charts.SCREEN), "chart")
        printed = {s.text for s in strings(charts.department_chart(figures["departments"], "部门", font))}
    assert name in svg and office in svg and fonts.PLACEHOLDER not in svg
    assert name not in printed
    assert any(text.startswith("环保") and fonts.PLACEHOLDER in text for text in printed)


@settings(max_examples=examples(200), deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_every_run_is_drawn_by_the_font_it_names(app, value):
    """`fonts.runs`, the kind: every character lands in a run whose font has its glyph, or is whitespace, or became 〓
    (one for one), or, having no form of its own, is left out; nothing else is added, dropped or reordered."""
    font = fonts.register()
    have = fonts.glyphs(font)
    if have is None:
        pytest.skip("the fallback CID font")
    parts = fonts.runs(value, font)
    assert "".join(run for run, _ in parts) == "".join(
        ch if ord(ch) in have or ch.isspace() or fonts.fallback(ord(ch)) else "" if fonts._invisible(ch)
        else fonts.PLACEHOLDER for ch in value)
    for run, face in parts:
        glyphs = have if face is None else fonts.glyphs(face)
        assert all(ord(ch) in glyphs or ch.isspace() for ch in run), (run, face)
    assert fonts.drawable(value, font) == "".join(
        ch if ord(ch) in have or ch.isspace() else "" if fonts._invisible(ch) else fonts.PLACEHOLDER for ch in value)


def test_a_font_name_in_paragraph_markup_must_be_one_the_report_registered():
    """`<font name>` exists for `fonts.runs`; a name that slipped past escaping (a file, a font never registered)
    is refused like any other markup the report does not write."""
    for attack in ('<font name="/etc/passwd">x</font>', '<font name="Helvetica">x</font>'):
        with pytest.raises(markup.RefusedMarkup):
            markup.SafeParagraph(attack, STYLE)
    for name in fonts.fallback_names():
        markup.SafeParagraph(f'<font name="{name}">x</font>', STYLE)


def test_a_fallback_fonts_name_is_safe_in_markup_whatever_its_file_is_called(tmp_path, monkeypatch):
    """A host's font file may be called anything (`My "Emoji" <Font>.ttf`): the name a paragraph's markup gives it is
    letters, digits and `._-` only, so the paragraph that names it parses and draws."""
    dejavu = shutil.which("fc-match") and subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans"],
                                                         capture_output=True, text=True).stdout
    if not dejavu or not dejavu.endswith(".ttf"):
        pytest.skip("no DejaVu Sans here")
    odd = tmp_path / 'My "Emoji" <Font> & co.ttf'
    shutil.copy(dejavu, odd)
    font = fonts._load(str(odd))
    assert re.fullmatch(r"Banjie-[A-Za-z0-9._-]+", font.fontName), font.fontName
    pdfmetrics.registerFont(font)
    monkeypatch.setattr(fonts, "fallback_names", lambda: frozenset({font.fontName}))
    assert squash(pdf_text(_alone(markup.SafeParagraph(f'<font name="{font.fontName}">☃</font>', STYLE)))) == "☃"


# --- 2. markup that slips past escaping still loads nothing --------------------------------------------

STYLE = ParagraphStyle("t", fontName="Helvetica")


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "seen.png"
    Image.new("RGB", (4, 4), "red").save(path)
    return path


def test_reportlab_paragraphs_would_open_the_file_report_paragraphs_refuse(png):
    attack = f'<img src="{png}" width="4" height="4"/>'
    opened = Paragraph(attack, STYLE)  # plain ReportLab opens it: the danger is real
    assert any(getattr(getattr(f, "cbDefn", None), "kind", None) == "img" for f in opened.frags)
    for refused in (attack, '<img src="/etc/passwd"/>', f'<font face="{png}">x</font>', f'<span face="{png}">x</span>',
                    '<a href="file:///etc/passwd">x</a>', '<link href="http://x">x</link>', "<onDraw name='x'/>",
                    "<unknown>x</unknown>", '<para style="x">y</para>'):
        with pytest.raises(markup.RefusedMarkup):
            markup.SafeParagraph(refused, STYLE)
    # what the report writes itself still works
    paragraph = markup.SafeParagraph('<font size="18" color="red"><b>1</b></font><br/><i>2</i><u>3</u>', STYLE)
    assert [f.text for f in paragraph.frags if f.text] == ["1", "2", "3"]


def test_no_paragraph_and_no_reportlab_reader_fetches_a_url(png):
    server = CountingServer(png.read_bytes())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/x.png"
    try:
        with urllib.request.urlopen(url) as answer:  # the server answers whoever asks
            assert answer.read() == png.read_bytes()
        assert server.requests == 1
        with pytest.raises(markup.RefusedMarkup):
            markup.SafeParagraph(f'<img src="{url}"/>', STYLE)
        # ReportLab's own reader, which a plain Paragraph's <img> uses, trusts no host or scheme once reports is loaded
        assert rl_config.trustedHosts is None and rl_config.trustedSchemes == []
        for source in (url, f"file://{png}".replace("file://", "file://localhost")):
            with pytest.raises(OSError):
                ImageReader(source)
        with pytest.raises(OSError):
            Paragraph(f'<img src="{url}"/>', STYLE)
        assert server.requests == 1
    finally:
        server.shutdown()
        server.server_close()


def test_nothing_in_the_app_builds_a_reportlab_paragraph_but_the_safe_one():
    offenders = []
    sources = [ROOT / "app.py", ROOT / "worker.py"]
    for room in ("tickets", "escalation", "notify", "reports", "admin"):
        sources += (ROOT / room).rglob("*.py")
    for path in sources:
        if path == ROOT / "reports/markup.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            module = getattr(node, "module", "") or ""
            if any(name.endswith("Paragraph") and not name.startswith("Safe") for name in names) \
                    or "paragraph" in module.split(".") or (isinstance(node, ast.Attribute) and node.attr == "Paragraph"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# --- 3. layout and wording ---------------------------------------------------------------------------

@pytest.mark.slow  # builds a PDF for every place a heading can fall
def test_no_heading_is_left_alone_at_the_foot_of_a_page(app):
    """Whatever the number of departments and service items pushes where, a page never ends with a heading."""
    endings = []
    for departments in range(1, 30, 3):
        for items in (0, 6):
            figures = figures_with(departments=[f"第{n}部门" for n in range(departments)], idle=(),
                                   service_items=[f"事项{n}" for n in range(items)],
                                   tracking_numbers=[f"BJ2026110{n}-0001" for n in range(1 + departments % 5)])
            for page in pdf_pages(build(app, figures))[1:-1]:
                last = page.strip().splitlines()[-1]
                endings.append(last)
                assert not last.startswith(HEADINGS), (departments, items, last)
    assert len(set(endings)) > 8  # the pages did end in many different places


def test_months_the_ranking_title_and_unranked_departments(app):
    text = pdf_text(build(app, figures_with(idle=("住房和城乡建设局", "税务局"))))
    assert "2026年11月办结情况月报" in text and "2025年12月" in text and "2026年6月" in text  # cover, trend axis
    assert not re.search(r"(?<![\d-])\d{2}-\d{2}(?![\d-])", text)  # no "25-12" month labels left
    assert "部门排名（按综合得分）" in text and "按按时" not in text
    assert "本月无案件，不参与排名：住房和城乡建设局、税务局。" in text
    assert text.count("住房和城乡建设局") == 1  # neither in the ranked table nor in the chart


def test_overdue_figure_and_overdue_list_are_explained_side_by_side(app):
    figures = figures_with(tracking_numbers=("BJ20261105-0001",))
    figures["office"]["overdue"] = 4
    text = squash(pdf_text(build(app, figures)))
    assert squash("共1件，含本月以前到期的。「超期数」（4件）口径不同") in text
    assert squash("超期数：办理或整改时限在本月到期、到期时仍未答复的案件数") in text


def strings(drawing) -> list[String]:
    found = []

    def walk(node):
        if isinstance(node, UserNode):  # a chart, an axis, a label: what it draws
            node = node.provideNode()
        if isinstance(node, String):
            found.append(node)
        for child in getattr(node, "contents", []):
            walk(child)

    walk(drawing)
    assert found
    return found


@pytest.mark.parametrize("sizes, smallest", [(charts.PRINT, 8), (charts.SCREEN, 12)])
def test_chart_text_is_large_enough_on_paper_and_on_screen(app, sizes, smallest):
    figures = figures_with()
    font = fonts.register()
    with app.test_request_context():
        for drawing, label in ((charts.trend_chart(figures["trend"], "趋势", font, sizes), "2025年12月"),
                               (charts.department_chart(figures["departments"], "部门", font, sizes), "市场监督管理局")):
            drawn = strings(drawing)
            assert {"100%", label} <= {s.text for s in drawn}  # the axes' labels are among them
            assert min(s.fontSize for s in drawn) >= smallest


def test_department_chart_draws_only_ranked_departments(app):
    figures = figures_with(departments=("甲局",), idle=("乙局",))
    with app.test_request_context():
        drawn = {s.text for s in strings(charts.department_chart(figures["departments"], "部门", fonts.register()))}
    assert "甲局" in drawn and "乙局" not in drawn


@pytest.mark.parametrize("sizes", [charts.PRINT, charts.SCREEN])
def test_department_chart_labels_every_bar_and_tells_no_figure_from_zero(app, sizes):
    """A department with cases but no closure in the month has no on-time rate (and none rated, no satisfaction
    rate): its bars are labelled with the table's dash, not drawn as a 0 % a reader cannot tell from a real one."""
    figures = figures_with(departments=("甲局", "乙局", "丙局"))
    rows = figures["departments"]
    rows[0]["on_time_rate"], rows[0]["satisfaction_rate"] = 1.0, 0.875
    rows[1]["on_time_rate"], rows[1]["satisfaction_rate"] = None, None
    rows[2]["on_time_rate"], rows[2]["satisfaction_rate"] = 0.0, 0.5
    with app.test_request_context():
        drawing = charts.department_chart(rows, "部门", fonts.register(), sizes)
        drawn = strings(drawing)
    texts = [s.text for s in drawn]
    assert sorted(t for t in texts if t.endswith("%") and "." in t) == ["0.0%", "100.0%", "50.0%", "87.5%"]
    assert texts.count("—") == 2
    label = next(s for s in drawn if s.text == "100.0%")  # the widest label still ends inside the drawing
    assert label.x + pdfmetrics.stringWidth(label.text, label.fontName, label.fontSize) <= drawing.width
    assert min(s.fontSize for s in drawn) >= (8 if sizes is charts.PRINT else 12)


# --- 4. the ranking ------------------------------------------------------------------------------------

RATES = st.sampled_from([None, 0.0, 0.5, 0.8, 1.0])
WEIGHTS = scores.weights_from(scores.DEFAULT_WEIGHTS)


@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8), RATES, RATES, RATES), max_size=14),
       st.integers(1, 6))
def test_scores_rank_units_with_enough_cases_and_boards_never_share_a_unit(specs, min_cases):
    rows = []
    for i, (accepted, closed, on_time, satisfied, contact) in enumerate(specs):
        row = {"id": i, "name": f"部门{i:02d}", **counts(accepted)}
        row["closed_in_month"] = closed
        row["on_time_rate"], row["satisfaction_rate"], row["contact_rate"] = on_time, satisfied, contact
        rows.append(row)
    ranked = scores.rank(rows, weights=WEIGHTS, min_cases=min_cases)
    judged = [r for r in ranked if r["rank"] is not None]
    assert ranked[:len(judged)] == judged and all(r["rank"] is None for r in ranked[len(judged):])
    for row in ranked:
        present = [(w, row[k]) for k, w in WEIGHTS.items() if row[k] is not None]
        expected = round(sum(w * v for w, v in present) * 100 / sum(w for w, _v in present), 2) if present else None
        assert row["score"] == expected
        enough = max(row["accepted"], row["closed_in_month"]) >= min_cases
        assert (row["rank"] is not None) == (enough and expected is not None)
    for row in judged:  # competition ranking on (score, closed in the month): 1 + how many did strictly better
        better = [o for o in judged if (o["score"], o["closed_in_month"]) > (row["score"], row["closed_in_month"])]
        assert row["rank"] == 1 + len(better)
    board = scores.boards(ranked)
    size = min(3, len(judged) // 2)
    assert [e["id"] for e in board["red"]] == [r["id"] for r in judged[:size]]
    assert [e["id"] for e in board["black"]] == [r["id"] for r in judged[::-1][:size]]
    assert not {e["id"] for e in board["red"]} & {e["id"] for e in board["black"]}


def test_reports_built_in_several_threads_at_once_all_read_back(app):
    """ReportLab keeps a TrueType font's subsets on the shared font object: reports built at once in two
    threads (two people generating a month in a threaded server) must not corrupt each other."""
    from concurrent.futures import ThreadPoolExecutor

    departments = [f"部门{chr(0x4E00 + n * 37)}{chr(0x5000 + n * 53)}" for n in range(12)]  # many distinct glyphs
    jobs = [figures_with(departments=departments[n:] + departments[:n]) for n in range(12)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a loaded server does, so that the builds interleave
    try:
        with ThreadPoolExecutor(4) as pool:
            pdfs = list(pool.map(lambda figures: build(app, figures), jobs))
    finally:
        sys.setswitchinterval(interval)
    for pdf in pdfs:
        text = squash(pdf_text(pdf))
        assert all(squash(name) in text for name in departments)


# --- 5. the 通报's first page -----------------------------------------------------------------------------------

def test_the_first_page_holds_figures_changes_boards_and_narrative(app):
    departments = [f"第{n}部门" for n in range(7)]
    figures = figures_with(departments=departments)
    figures["department_boards"]["black"][0]["again"] = True
    figures["problems"] = [{"kind": "black_again", "unit": figures["department_boards"]["black"][0]["name"],
                            "key": None, "value": None, "threshold": None}]
    draft, published = (pdf_pages(build_draft(app, figures, draft)) for draft in (True, False))
    first = squash(draft[0])
    for expected in ("2026年11月办结情况月报", "主要指标", "上月（2026年10月）", "去年同月（2025年11月）", "环比", "同比",
                     "红黑榜：部门", "红榜", "黑榜", "综合得分", "（连续两月）", "总体情况", "主要问题", "连续两个月列入黑榜",
                     "下步工作", "下月重点督办超期件。", "草稿", "2026年11月共受理"):
        assert squash(expected) in first, expected
    assert "▲" in first or "▼" in first
    # 7 ranked departments: the first three on the 红榜, the last three on the 黑榜 (worst first), none on both
    red, black = figures["department_boards"]["red"], figures["department_boards"]["black"]
    assert len(red) == len(black) == 3 and not {e["name"] for e in red} & {e["name"] for e in black}
    assert "典型案例" in squash(draft[1]) and "的典型案例" in squash(draft[1])
    # the mark on every page of a draft (its footer), on none of a published report (the appendix's formulas may name
    # drafts)
    assert all("草稿 · 第" in page for page in draft) and not any("草稿 · 第" in page for page in published)
    assert "草稿" not in published[0]
    assert "已发布" in squash(published[0])


def test_the_offices_own_texts_keep_their_line_breaks(app):
    """下步工作 and a 典型案例's summary are written in text boxes, line by line: the PDF prints each line as a line
    (escaped, as every text), not the lines run together into one."""
    figures = figures_with(tracking_numbers=["BJ20261102-0001"])
    figures["next_steps"] = "一、加强督办超期件。\n二、整改<b>差评</b>。\r\n三、回访群众。"
    figures["typical_cases"][0]["summary"] = "群众反映营业执照变更慢。\n窗口协调当日办结。"
    text = pdf_text(build(app, figures))
    assert "一、加强督办超期件。\n二、整改<b>差评</b>。\n三、回访群众。" in text
    assert "一、加强督办超期件。 二、" not in text
    assert "群众反映营业执照变更慢。\n窗口协调当日办结。" in text


def test_tables_split_across_pages_keep_three_rows_on_each_side(app):
    """However long the overdue list, a page never ends with a table's header and one or two rows, nor starts with
    its last one or two."""
    for count in range(20, 60, 3):
        figures = figures_with(tracking_numbers=[f"BJ202611{n:02d}-0001" for n in range(count)])
        for page in pdf_pages(build(app, figures))[1:-1]:
            lines = [line for line in page.strip().splitlines()[1:] if line.strip()]
            # a page whose only table rows are 1-2 listed cases after a header would hold "受理编号" then <3 numbers
            numbers = [line for line in lines if line.strip().startswith("BJ202611")]
            assert not (0 < len(numbers) < 3 and len(lines) < 12), (count, lines)


def build_draft(app, figures, draft: bool) -> bytes:
    with app.app_context():
        return build_pdf(figures, office="办不成事反映窗口", generated_at=GENERATED, tz=TZ, font=fonts.register(),
                         draft=draft)
