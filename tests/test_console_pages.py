"""What every console page says and how: its language, one title and one heading, Chinese punctuation, and no
developer commands; the Chinese catalog held to the same rules."""
from __future__ import annotations

import difflib
import re
from html.parser import HTMLParser
from pathlib import Path

import flask_admin
import pytest
from babel.messages.pofile import read_po

from tests.helpers import page_csrf

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("admin", "office", "dept_a", "supervisor", "leader")
CJK = "[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]"  # Chinese characters and full-width punctuation
HALF_WIDTH_AFTER_CJK = re.compile(CJK + r"[:;?!]")
SPACE_BETWEEN_CJK = re.compile(CJK + r"\s+" + CJK)
# Commands of the developer's shell (README's command line), never something to tell a clerk.
COMMAND = re.compile(r"\bflask\s+(--app|[a-z]+)|\bmake\s+(run|test|bench\S*|messages|install)\b|\bpybabel\b|"
                     r"\bpip\s+install\b|\balembic\b|\bdramatiq\s+\w|\.venv/")
# Catalog entries that must keep a half-width sign after Chinese: the CSV format a clerk types, where the
# commas are the file's syntax. Nothing else.
CATALOG_ALLOWED = {
    "Days, one per line: date,workday,name",
    "Line %(line)d: expected date,workday[,name].",
}


class Page(HTMLParser):
    """The parts of a page these rules read: <html lang>, <title>, headings, and the text of each element."""

    def __init__(self, markup: str):
        super().__init__()
        self.lang, self.title, self.headings, self.texts = None, "", [], []
        self._stack, self._heading = [], None
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._heading = [tag, ""]
        if tag not in ("br", "img", "input", "meta", "link", "hr"):
            self._stack.append(tag)

    def handle_endtag(self, tag):
        if self._heading and tag == self._heading[0]:
            self.headings.append((tag, " ".join(self._heading[1].split())))
            self._heading = None
        if tag in self._stack:
            while self._stack.pop() != tag:
                pass

    def handle_data(self, data):
        inside = self._stack[-1] if self._stack else ""
        if inside == "title":
            self.title += data
        if self._heading:
            self._heading[1] += data
        if inside not in ("script", "style", "textarea", "code"):
            self.texts.append(data)


def console_pages(client) -> list[str]:
    """Every page the menu of this user leads to, as a browser would find them."""
    dashboard = client.get("/admin/").get_data(as_text=True)
    links = re.findall(r'<a class="(?:nav-link|dropdown-item)[^"]*" href="(/admin/[^"?#]*)"', dashboard)
    return ["/admin/"] + sorted({link for link in links if link != "/admin/"})


def a_case(world) -> str:
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已联系申请人，材料已补正。")
    world.act("office", no, "approve")
    return no


def pages_of_every_kind(world):
    """(client, path, expected status) for the menu of each role, a case page, the sign-in page and error pages."""
    no = a_case(world)
    for who in ROLES:
        client = world.console(who)
        for path in console_pages(client) + [f"/admin/case/{no}"]:
            yield client, path, 200
        yield client, "/admin/case/BJ20000101-0001", 404
    yield world.console("dept_a"), "/admin/users/", 403
    yield world.console("office"), "/admin/calendar/2027", 200
    yield world.console("admin"), "/admin/api-tokens/issue/", 200
    yield world.app.test_client(), "/admin/login", 200


@pytest.mark.parametrize("lang, html_lang", [("zh_CN", "zh-CN"), ("en", "en")])
def test_every_console_page_states_its_language_and_has_one_title(world, lang, html_lang):
    seen, titles = 0, {}
    for client, path, status in pages_of_every_kind(world):
        response = client.get(path, query_string={"lang": lang})
        assert response.status_code == status, path
        page = Page(response.get_data(as_text=True))
        assert page.lang == html_lang, path
        segments = [s.strip() for s in page.title.split("·")]
        assert all(segments) and len(segments) == len(set(segments)), (path, page.title)
        if status == 200:  # each page of a user's console has a title of its own (a tab, the history, a bookmark)
            other = titles.setdefault((client, page.title), path)
            assert other == path, (page.title, other, path)
        first_level = [text for tag, text in page.headings if tag == "h1"]
        assert len(first_level) == 1, (path, page.headings)
        texts = [text for _tag, text in page.headings]
        assert len(texts) == len(set(texts)), (path, page.headings)  # no heading said twice
        seen += 1
    assert seen > 50


def test_console_text_has_chinese_punctuation_and_no_developer_commands(world, clock):
    clock.set(2026, 12, 1, 9)  # December: next year's calendar is not published, so its banner shows too
    for client, path, _status in pages_of_every_kind(world):
        page = Page(client.get(path, query_string={"lang": "zh_CN"}).get_data(as_text=True))
        for text in page.texts:
            assert not HALF_WIDTH_AFTER_CJK.search(text), (path, text)
            assert not SPACE_BETWEEN_CJK.search(text), (path, text)
            assert not COMMAND.search(text), (path, text)
        english = Page(client.get(path, query_string={"lang": "en"}).get_data(as_text=True))
        for text in english.texts:
            assert not COMMAND.search(text), (path, text)


def test_banners_read_as_chinese_sentences(world, clock):
    clock.set(2026, 12, 1, 9)
    page = world.console("office").get("/admin/").get_data(as_text=True)
    banner = " ".join(re.search(r'id="scheduler-banner">(.*?)</div>', page, re.S).group(1).split())
    assert "期限监控已停止。</strong>自动督办从未运行。在后台服务恢复运行之前" in banner
    calendar = re.search(r'id="calendar-banner-2027">(.*?)</div>', page, re.S).group(1)
    assert "2027年工作日历尚未发布" in calendar and "标注为暂定。<a" in calendar
    english = world.console("office").get("/admin/?lang=en").get_data(as_text=True)
    assert "Deadlines are not being watched.</strong> The escalation sweeper has never run. No warnings" in english


def test_wording_of_labels_and_lists(world):
    admin = world.console("admin")
    types = admin.get("/admin/problem-types/").get_data(as_text=True)
    assert "<th>显示名称</th>" in types and "用途" not in types and "接口约定" not in types
    assert 'placeholder="用户名或显示名称"' in admin.get("/admin/users/").get_data(as_text=True)
    queue = " ".join(" ".join(Page(admin.get("/admin/cases/").get_data(as_text=True)).texts).split())
    assert "20 条/页" in queue and "每页50条" in queue and not re.search(r"\d+ (项目|items)", queue)
    assert "50 per page" in admin.get("/admin/cases/?lang=en").get_data(as_text=True)
    assert 'placeholder="Username or Display name"' in admin.get("/admin/users/?lang=en").get_data(as_text=True)
    assert "命令行" not in admin.get("/admin/departments/new/?lang=zh_CN").get_data(as_text=True)
    calendar = admin.get("/admin/calendar/").get_data(as_text=True)
    assert "chinese_calendar" not in calendar and "系统内置" in calendar
    issued = admin.post("/admin/api-tokens/issue/", data={
        "csrf_token": page_csrf(admin, "/admin/api-tokens/issue/"), "user_id": world.users["office"],
        "label": "12345热线平台"})
    assert "用途：12345热线平台" in issued.get_data(as_text=True)


def test_calendar_file_mistakes_are_explained_in_the_pages_language(world):
    office = world.console("office")
    for lang, expected in (("zh_CN", "第2行：“2027-02-30”不是日期"), ("en", "Line 2: “2027-02-30” is not a date")):
        response = office.post(f"/admin/calendar/2027?lang={lang}", data={
            "csrf_token": page_csrf(office, "/admin/calendar/2027"), "days": "2027-01-01,0,元旦\n2027-02-30,0,x\n"})
        assert response.status_code == 400
        assert expected in response.get_data(as_text=True)


def catalog_entries():
    with (ROOT / "translations/zh_Hans_CN/LC_MESSAGES/messages.po").open("rb") as handle:
        for message in read_po(handle):
            if message.id:
                msgid = message.id if isinstance(message.id, str) else message.id[0]
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                yield msgid, strings


def test_the_chinese_catalog_uses_chinese_punctuation():
    problems = []
    for msgid, strings in catalog_entries():
        for text in strings:
            if msgid not in CATALOG_ALLOWED and (HALF_WIDTH_AFTER_CJK.search(text) or re.search(CJK + ",", text)):
                problems.append(("half-width sign after Chinese", msgid, text))
            if SPACE_BETWEEN_CJK.search(text):
                problems.append(("space between Chinese characters", msgid, text))
            if COMMAND.search(text) or COMMAND.search(msgid):
                problems.append(("a developer command", msgid, text))
            if re.search(r"\)d 年|\d 年", text):
                problems.append(("a space before 年", msgid, text))
    assert problems == []
    assert all(msgid in dict(catalog_entries()) for msgid in CATALOG_ALLOWED)  # the allow-list is not stale


def test_console_base_template_is_flask_admins_with_the_language():
    """templates/admin/base.html is a copy of Flask-Admin's layout that adds <html lang>; it must stay a copy."""
    ours = (ROOT / "templates/admin/base.html").read_text().split("#}\n", 1)[1].splitlines()  # after our comment
    theirs = (Path(flask_admin.__file__).parent / "templates/bootstrap4/admin/base.html").read_text().splitlines()
    changes = [line for line in difflib.unified_diff(theirs, ours, lineterm="", n=0)
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changes == ["-<html>", '+<html lang="{{ html_lang }}">'], changes


def test_every_console_table_scrolls_in_its_own_box():
    """A table wider than a phone (390 px; English words are longer) scrolls inside a .table-responsive box instead of
    widening the page: each <table> of the console's templates is in such a box (the nearest <div> opened before it)."""
    unboxed = []
    for template in sorted((ROOT / "templates/admin").rglob("*.html")):
        text = template.read_text()
        for table in re.finditer(r"<table\b", text):
            opened = re.findall(r"<div\b[^>]*>", text[:table.start()])
            if not opened or "table-responsive" not in opened[-1]:
                unboxed.append(f"{template.relative_to(ROOT)}:{text[:table.start()].count(chr(10)) + 1}")
    assert unboxed == []
