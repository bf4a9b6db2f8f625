"""Accessibility in Chromium: WCAG 2.1 AA (and 2.2's target size) on every kind of public page, in the normal mode and
in 长辈模式, and on the console's main pages, in Chinese and in English, checked by axe-core (axe-playwright-python
bundles it: nothing is fetched); targets of 24 px (44 px in 长辈模式), a visible focus, errors announced once; the
长辈模式 switch with and without JavaScript, remembered on the device; on the console, a skip link first, titles that
say which page this is, no sideways scrolling, and no Chinese left in its chrome after the switch to English.

One app, one live server and one Chromium serve the whole module (each test opens its own browser context): starting
them is seconds each, and the tests share what they file."""
from __future__ import annotations

import contextlib
import re
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import sqlalchemy as sa
from axe_playwright_python.sync_playwright import Axe

from tests.browser import context_page, module_chromium, served_office, shot  # noqa: F401  (module_chromium: a fixture)
from tests.helpers import CONSOLE_PASSWORD, replied, transferred
from tests.test_attachments import jpeg
from tickets.db import db
from tickets.models import Department, Office, User

# WCAG 2.0 and 2.1 A and AA, 2.2 AA (target size), and axe's best practices (landmarks, one h1, headings in order).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]

# What a person can press or type in, for the size of its target: a radio button or a box counts as the label
# around it (the whole .choice label is clickable). The skip link is off screen until focused.
TARGETS_JS = """min => {
  const seen = new Set(), small = [];
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, label.choice')) {
    const target = el.closest('label.choice') || el;
    if (seen.has(target) || target.classList.contains('skip-link')) continue;
    seen.add(target);
    const box = target.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not shown (hidden, display: none)
    if (box.width < min || box.height < min) {
      small.push(`${target.outerHTML.slice(0, 90)}: ${Math.round(box.width)}x${Math.round(box.height)}`);
    }
  }
  return small;
}"""

# Errors announced once: the summary has the focus, no live region on the page says anything (one that a script fills
# later, e.g. the file check's, is empty), each field marked invalid is described by its message (a radio button by
# its group's), and each of the summary's links leads to a field.
ERRORS_JS = """() => {
  const problems = [];
  const summary = document.getElementById('error-summary');
  if (!summary) return ['no error summary'];
  if (document.activeElement !== summary) problems.push('the summary does not have the focus: ' + document.activeElement.outerHTML.slice(0, 80));
  for (const live of document.querySelectorAll('[role=alert], [role=status], [aria-live]')) {
    if (live.closest('main') && live.textContent.trim()) problems.push('a live region besides the summary: ' + live.outerHTML.slice(0, 80));
  }
  const invalid = document.querySelectorAll('[aria-invalid=true]');
  if (!invalid.length) problems.push('no field is marked aria-invalid');
  for (const field of invalid) {
    const group = field.closest('fieldset[aria-describedby]');
    const ids = [field, group].filter(Boolean).map(el => el.getAttribute('aria-describedby') || '').join(' ');
    const described = ids.split(/\\s+/).map(id => document.getElementById(id));
    if (!described.some(el => el && el.classList.contains('error') && el.textContent.trim())) {
      problems.push(field.id + ' is not described by its message');
    }
  }
  for (const link of summary.querySelectorAll('a')) {
    if (!document.getElementById(link.getAttribute('href').slice(1))) problems.push('a summary link leads nowhere: ' + link.href);
  }
  return problems;
}"""


# Only the violations come back: the details of every passing node were 40 % of a run's time, and nobody read them.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
AXE_SCRIPT = Axe().axe_script


def with_axe(page):
    """axe-core in every page the context opens from now on, loaded with the page (sending its 500 kB for each check
    was a sixth of a walk's time)."""
    page.context.add_init_script(AXE_SCRIPT)
    return page


def axe_violations(page) -> list[str]:
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    results = page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)
    return [f"{page.url}: {v['id']} ({v['impact']}) {v['help']} at "
            + "; ".join(" ".join(str(t) for t in node["target"]) for node in v["nodes"][:5])
            for v in results["violations"]]


def a_case_the_browser_follows(page, url, world, *, steps=(), rating=None) -> str:
    """A case filed through the API and worked by staff, looked up in the browser with its code (so it may open it)."""
    filed = world.file(phone="17000000101")
    no, code = filed["tracking_no"], filed["query_code"]
    for who, action, body in steps:
        response = requests.post(f"{url}/api/v1/staff/tickets/{no}/{action}", json=body, headers=world.headers(who),
                                 timeout=10)
        assert response.status_code == 200, response.text
    if rating:
        response = requests.post(f"{url}/api/v1/tickets/{no}/rating", params={"code": code}, json={"score": rating},
                                 timeout=10)
        assert response.status_code == 200, response.text
    page.goto(url + "/track")
    page.fill("#tracking_no", no)
    page.fill("#code", code)
    page.click("#main button[type=submit]")
    page.wait_for_url(f"**/track/{no}")
    return no


def visit_every_kind_of_public_page(page, url, world):
    """Each kind of public page in turn, as a citizen reaches it; yields the page's name once it is shown."""
    page.goto(url + "/")
    yield "form"
    photo = Path(tempfile.mkdtemp()) / "窗口拒收的表格.jpg"
    photo.write_bytes(jpeg(size=(400, 300)))
    page.set_input_files("#files", [str(photo)])
    page.click("#main button[type=submit]")  # nothing filled in but a photo chosen: it is held, with a box
    page.wait_for_selector("#error-summary")
    page.wait_for_selector("#held-files")
    yield "form-errors"
    page.fill("#name", "王芳")
    page.fill("#phone", "170 0000 0100")
    page.check("input[name=problem_type][value=too_slow]")
    page.fill("#description", "社保转移接续材料来回跑了三趟还没办好。")
    page.check("input[name=privacy]")
    page.click("#main button[type=submit]")
    page.wait_for_url("**/filed")
    yield "filed"
    page.click("a.button.primary")  # follow my case: waiting for acceptance, may be withdrawn or supplemented
    page.wait_for_selector("#withdraw-form")
    page.wait_for_selector("#case-files img.file-thumb")  # the photo, with its thumbnail
    yield "case-submitted"
    page.click("#withdraw-form button[type=submit]")  # without ticking the box: an error on the case page
    page.wait_for_selector(".flash-error, #withdraw-form .error")
    yield "case-step-refused"
    page.goto(url + "/track")
    yield "track"
    page.fill("#tracking_no", "BJ20990101-0001")
    page.fill("#code", "ABCDEFGH")
    page.click("#main button[type=submit]")
    page.wait_for_selector("#error-summary")
    yield "track-errors"
    page.goto(url + "/track/recover")
    yield "recover"
    page.click("#main button[type=submit]")
    page.wait_for_selector("#error-summary")
    yield "recover-errors"
    page.fill("#tracking_no", "BJ20990101-0001")
    page.fill("#phone", "170 0000 0100")
    page.click("#main button[type=submit]")
    page.wait_for_selector("#recover-sent")
    yield "recover-sent"
    closed = [("office", "accept", {}), ("office", "transfer", {"department_id": world.departments["A"]}),
              ("dept_a", "reply", {"content": "已为您办结，电子证照已推送。"}), ("office", "approve", {})]
    a_case_the_browser_follows(page, url, world, steps=closed)
    page.wait_for_selector("input[name=score]")
    yield "case-closed-survey-open"
    page.fill("#comment", "材料齐全了")
    page.click("#rating-form button[type=submit]")  # no rating chosen: back with the message, the comment kept
    page.wait_for_selector("#score-error")
    assert page.input_value("#comment") == "材料齐全了"
    assert page.evaluate("document.activeElement.id") == "error-summary"
    yield "case-rating-refused"
    a_case_the_browser_follows(page, url, world, steps=closed, rating=2)
    page.wait_for_selector("#rating")
    yield "case-rated"
    page.goto(url + "/no-such-page")
    yield "not-found"


@pytest.fixture(scope="module")
def site(sqlite_template, tmp_path_factory):
    """The module's office, served once: its url, `world`, the clock, and the cases the console walk shows."""
    with served_office(sqlite_template, tmp_path_factory.mktemp("accessibility")) as (url, world, clock):
        for who in ("office", "dept_a", "admin"):
            world.console(who)  # gives them their console password
        yield SimpleNamespace(url=url, world=world, clock=clock, cases=cases_of_every_state(world))


# --- the console ------------------------------------------------------------------------------------------------

def cases_of_every_state(world) -> dict[str, str]:
    """A case the office has to accept, one with its department (which has the reply's forms), one closed with its
    survey open."""
    submitted = world.file(name="赵敏", phone="17000000102",
                           description="办理不动产登记时，窗口要求提供已注销企业的证明，无法开具。")["tracking_no"]
    closed = replied(world, "A")
    world.act("office", closed, "approve")
    return {"submitted": submitted, "transferred": transferred(world, "A"), "closed": closed}


def signed_in(page, url, lang, who):
    """The page's context signed in as `who` (None: nobody) in `lang`, through the sign-in form's own request (its
    CSRF token, the answer's cookie) without showing the form or the dashboard: the walk shows those once."""
    form = page.request.get(f"{url}/admin/login?lang={lang}")  # the language is kept for the visit
    if who:
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form.text()).group(1)
        answer = page.request.post(f"{url}/admin/login", max_redirects=0,
                                   form={"username": who, "password": CONSOLE_PASSWORD, "csrf_token": token})
        assert answer.status == 302, (who, answer.status)
    return page


# The office's queues and the management lists: every one in Chinese. In English (on a phone) the pages whose words or
# layout are their own: a queue with its form for the selected cases, the whole list with its status column, the
# case pages, a management list; the other queues and lists are the same template with other rows (the module's
# time is CI's to spend: each page checked costs about a second).
QUEUES = {"zh_CN": ("queue-intake", "queue-accepted", "queue-in-progress", "queue-review", "queue-returned",
                    "queue-rectifying", "queue-closed", "queue-rejected", "queue-withdrawn", "cases"),
          "en": ("queue-intake", "cases")}
MANAGEMENT = {"zh_CN": ("users", "departments", "api-tokens", "departments/new"),
              "en": ("users", "calendar", "sms-templates", "policies", "problem-types")}  # the English run is 390 px wide


def visit_the_console(page_as, site, lang, part):
    """The console's main pages in turn, in `lang`; yields (page, the page's name) once it is shown. `page_as(who)`
    opens a page signed in as `who`. Two parts (two tests, which run side by side under xdist): the lists (sign-in,
    the dashboard, the queues), then the cases in each state, the SMS log, the reports and the management pages."""
    url, cases = site.url, site.cases
    if part == "lists":
        page = page_as(None)
        page.goto(f"{url}/admin/login")
        yield page, "login"
        page = page_as("office")
        page.goto(f"{url}/admin/")
        yield page, "dashboard"
        for queue in QUEUES[lang]:
            page.goto(f"{url}/admin/{queue}/")
            yield page, queue
        if lang == "zh_CN":
            page.goto(f"{url}/admin/queue-in-progress/?flt0_0=yes")  # the dashboard's 超期 card: a filter, by script
            yield page, "queue-in-progress (overdue only)"
        return
    page = page_as("office")
    page.goto(f"{url}/admin/case/{cases['submitted']}")
    yield page, "case-submitted"
    page.fill("#note-content", "已电话核实。")
    page.click("#action-note button[type=submit]")
    page.wait_for_selector("#main .alert-dismissible")
    yield page, "case-submitted (after an action)"
    page.goto(f"{url}/admin/case/{cases['closed']}")
    page.wait_for_selector("#surveys")
    yield page, "case-closed-survey-open"
    page.goto(f"{url}/admin/sms/")
    yield page, "sms-log"
    page.goto(f"{url}/admin/reports/")
    yield page, "reports"
    page = page_as("dept_a")
    page.goto(f"{url}/admin/case/{cases['transferred']}")
    page.wait_for_selector("#action-reply")
    yield page, "case-transferred-department"
    page = page_as("admin")
    for management in MANAGEMENT[lang]:
        page.goto(f"{url}/admin/{management}/")
        yield page, management


# What every console page has: its language, a skip link as the keyboard's first stop, leading to <main>, no id twice,
# nothing wider than the window (no sideways scrolling of the page: a wide table scrolls inside its box).
CONSOLE_PAGE_JS = """lang => {
  const problems = [];
  if (document.documentElement.lang !== lang) problems.push('<html lang="' + document.documentElement.lang + '">');
  const first = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
    .find(el => el.tabIndex >= 0 && !el.disabled && el.type !== 'hidden' && !el.closest('dialog:not([open])'));
  if (!first || !first.classList.contains('skip-link') || first.getAttribute('href') !== '#main')
    problems.push('the keyboard stops first elsewhere: ' + (first ? first.outerHTML.slice(0, 80) : 'nowhere'));
  const main = document.getElementById('main');
  if (!main || main.tagName !== 'MAIN') problems.push('no <main id="main">');
  if (document.documentElement.scrollWidth > window.innerWidth)
    problems.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + ' px in ' + window.innerWidth);
  const ids = new Set();
  document.querySelectorAll('[id]').forEach(e => {
    if (ids.has(e.id)) problems.push('#' + e.id + ' twice');
    ids.add(e.id);
  });
  return problems;
}"""

# The console's chrome (menus, headings, buttons, labels, column headings, badges, the list of keys), without the
# data in it (the office's name, the user's, the options of a select): the text a translation must cover.
CHROME_JS = """() => {
  const chrome = 'nav, h1, h2, h3, h4, h5, h6, button, .btn, th, label, legend, .nav-tabs, .pagination, footer, ' +
                 'dialog, .badge, .form-text, .alert, title';
  const data = '.navbar-brand, .console-user, .console-lang, option';
  const texts = [];
  for (const el of document.querySelectorAll(chrome)) {
    const copy = el.cloneNode(true);
    copy.querySelectorAll(data).forEach(d => d.remove());
    texts.push(copy.textContent.replace(/\\s+/g, ' ').trim());
  }
  return texts;
}"""
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")
# msgids that name a Chinese term on purpose: "I'll take it (我来办)", "Write an instruction (批示)", the section
# 典型案例 of the monthly report (a Chinese document) that a typical case is listed under, and the 12345 rules' terms
# of issue 17: "Recurring problems (一类事)", "Merge into another case (并单)", "Proactive task (主动治理)"
CHINESE_ON_PURPOSE = ("我来办", "批示", "典型案例", "一类事", "并单", "主动治理", "高频诉求")


def untranslated(page, data: set[str]) -> list[str]:
    left = []
    for text in page.evaluate(CHROME_JS):
        for name in sorted(data, key=len, reverse=True):
            text = text.replace(name, "")
        words = [w for w in CJK.findall(text) if w not in CHINESE_ON_PURPOSE]
        if words:
            left.append(f"{'、'.join(words)} in “{text[:120]}”")
    return sorted(set(left))


def data_names(world) -> set[str]:
    """What the console shows as data in its chrome: the names of offices, departments and people."""
    with world.app.app_context():
        names = set(db.session.scalars(sa.select(Office.name))) | set(db.session.scalars(sa.select(Department.name)))
        names |= {n for n in db.session.scalars(sa.select(User.display_name)) if n}
    return names | {world.app.config["OFFICE_NAME"]}


@pytest.mark.slow
@pytest.mark.parametrize("lang, part", [("zh_CN", "lists"), ("zh_CN", "cases"), ("en", "lists"), ("en", "cases")])
def test_the_main_console_pages_meet_wcag_21_aa_in_both_languages(module_chromium, site, lang, part):
    """Chinese at a desk's width, English on a phone's (its lists as cards): both layouts, both languages."""
    width, height = (1366, 900) if lang == "zh_CN" else (390, 844)
    html_lang = "zh-CN" if lang == "zh_CN" else "en"
    data = data_names(site.world)
    violations, problems, chinese, titles = [], [], [], {}
    with contextlib.ExitStack() as contexts:
        def page_as(who):
            page = contexts.enter_context(context_page(module_chromium, width=width, height=height))
            return signed_in(with_axe(page), site.url, lang, who)

        for page, name in visit_the_console(page_as, site, lang, part):
            violations += [f"[{name}] {v}" for v in axe_violations(page)]
            problems += [f"[{name}] {p}" for p in page.evaluate(CONSOLE_PAGE_JS, html_lang)]
            titles[name] = page.title()
            if lang == "en":
                chinese += [f"[{name}] {t}" for t in untranslated(page, data)]
    expected = 2 + len(QUEUES[lang]) + (lang == "zh_CN") if part == "lists" else 6 + len(MANAGEMENT[lang])
    assert len(titles) == expected, list(titles)
    assert not violations, f"axe-core: {len(violations)} violations ({lang}):\n" + "\n".join(violations)
    assert not problems, "\n".join(problems)
    said_twice = {name: title for name, title in titles.items()
                  if len(parts := [p.strip() for p in title.split("·")]) != len(set(parts))}
    assert not said_twice, f"titles that repeat themselves: {said_twice}"
    pages = {name.split(" (")[0]: title for name, title in titles.items()}  # "x (after an action)" is page x again
    shared = {title: [name for name in pages if pages[name] == title]
              for title, n in Counter(pages.values()).items() if n > 1}
    assert not shared, f"different pages with the same title: {shared}"
    assert not chinese, "Chinese left in the English console's chrome:\n" + "\n".join(chinese)


# --- the public pages -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("mode", ["normal", "elder"])
def test_every_public_page_meets_wcag_21_aa_in_both_modes(module_chromium, site, mode):
    violations, small, errors, seen, twice = [], [], [], [], []
    minimum = 44 if mode == "elder" else 24
    with context_page(module_chromium) as page:
        with_axe(page)
        if mode == "elder":
            page.goto(site.url + "/elder?on=1&next=/")  # the switch without a script: a cookie for every page
        for name in visit_every_kind_of_public_page(page, site.url, site.world):
            seen.append(name)
            assert page.evaluate("document.documentElement.lang") == "zh-CN", name
            assert page.evaluate("document.documentElement.classList.contains('elder')") == (mode == "elder"), name
            if mode == "elder":
                size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
                assert size >= 20, (name, size)
            violations += [f"[{name}] {v}" for v in axe_violations(page)]
            small += [f"[{name}] {s}" for s in page.evaluate(TARGETS_JS, minimum)]
            twice += [f"[{name}] #{i}" for i in page.evaluate(DUPLICATE_IDS_JS)]  # labels and links point at ids
            if name.endswith("-errors"):
                errors += [f"[{name}] {p}" for p in page.evaluate(ERRORS_JS)]
            shot(page, f"a11y-{mode}-{name}")
    assert len(seen) == 14, seen
    assert not violations, f"axe-core: {len(violations)} WCAG 2.1 AA violations ({mode} mode):\n" + "\n".join(violations)
    assert not small, f"targets smaller than {minimum}x{minimum} px ({mode} mode):\n" + "\n".join(small)
    assert not errors, "errors not announced once:\n" + "\n".join(errors)
    assert not twice, "ids used twice on a page:\n" + "\n".join(twice)


DUPLICATE_IDS_JS = """() => {
  const seen = new Set(), twice = new Set();
  document.querySelectorAll('[id]').forEach(e => { if (seen.has(e.id)) twice.add(e.id); seen.add(e.id); });
  return [...twice];
}"""


def pressed(page) -> str:
    return page.get_attribute(".elder-switch button", "aria-pressed")


@pytest.mark.slow
def test_the_elder_switch_changes_the_page_in_place_and_is_remembered_on_the_device(module_chromium, site):
    with context_page(module_chromium) as page:
        page.goto(site.url + "/")
        plain = page.locator(".intro .wording-plain")
        full = page.locator(".intro .wording-full")
        assert pressed(page) == "false" and full.is_visible() and plain.is_hidden()
        radio = page.locator("input[name=problem_type] >> nth=0").bounding_box()
        assert radio["width"] >= 24 and radio["height"] >= 24
        normal_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")

        page.click(".elder-switch button")  # in place: no navigation
        assert page.url == site.url + "/"
        assert pressed(page) == "true" and plain.is_visible() and full.is_hidden()
        assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= max(20, normal_size * 1.2)
        choice = page.locator("label.choice >> nth=0").bounding_box()
        assert choice["width"] >= 44 and choice["height"] >= 44
        page.click("label.choice >> nth=1")  # the whole label is the target, not only the radio button
        assert page.locator("input[name=problem_type] >> nth=1").is_checked()
        assert page.evaluate("localStorage.getItem('banjie-elder')") == "1"
        shot(page, "a11y-elder-switched-in-place")

        # the server renders the next page in the mode (no flash), from the cookie
        page.goto(site.url + "/track")
        assert "class=\"elder\"" in page.content()[:200] and pressed(page) == "true"

        # the browser dropped its cookies: localStorage brings the mode back and writes the cookie again
        page.context.clear_cookies()
        page.goto(site.url + "/track")
        assert page.evaluate("document.documentElement.classList.contains('elder')") and pressed(page) == "true"
        assert any(c["name"] == "banjie_elder" and c["value"] == "1" for c in page.context.cookies())

        # off again, and that sticks too
        page.click(".elder-switch button")
        assert pressed(page) == "false" and page.evaluate("localStorage.getItem('banjie-elder')") == "0"
        page.reload()
        assert pressed(page) == "false" and not page.evaluate("document.documentElement.classList.contains('elder')")


@pytest.mark.slow
def test_the_elder_switch_works_without_javascript(module_chromium, site):
    with context_page(module_chromium, java_script_enabled=False) as page:
        page.goto(site.url + "/track?no=BJ20261122-0001")
        assert pressed(page) == "false"
        page.click(".elder-switch button")  # a plain GET form: /elder sets the cookie and comes back here
        page.wait_for_url("**/track?no=BJ20261122-0001")
        assert pressed(page) == "true" and page.locator("html.elder").count() == 1
        assert page.locator("#tracking_no").input_value() == "BJ20261122-0001"
        page.click(".elder-switch button")
        page.wait_for_url("**/track?no=BJ20261122-0001")
        assert pressed(page) == "false" and page.locator("html.elder").count() == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["normal", "elder"])
def test_every_stop_of_the_keyboard_shows_where_the_focus_is(module_chromium, site, mode):
    with context_page(module_chromium) as page:
        if mode == "elder":
            page.goto(site.url + "/elder?on=1&next=/")
        page.goto(site.url + "/")
        page.click("#main button[type=submit]")  # the form with its errors: the summary has the focus
        page.wait_for_selector("#error-summary")
        stops, unseen = [], []
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate("""() => { const el = document.activeElement, style = getComputedStyle(el);
                return {what: el.outerHTML.slice(0, 80), outline: style.outlineStyle, width: parseFloat(style.outlineWidth)}; }""")
            if focused["what"] in [s["what"] for s in stops]:
                break
            stops.append(focused)
            if focused["outline"] in ("none", "") or focused["width"] < 2:
                unseen.append(focused["what"])
            if "type=\"submit\"" in focused["what"] and "primary" in focused["what"]:
                break
        assert len(stops) >= 8, stops
        assert not unseen, "focused without a visible outline:\n" + "\n".join(unseen)
