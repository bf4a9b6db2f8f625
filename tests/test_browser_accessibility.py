"""Accessibility of the public pages in Chromium: WCAG 2.1 AA (and 2.2's target size) on every kind of public page,
in the normal mode and in 长辈模式, checked by axe-core (axe-playwright-python bundles it: nothing is fetched);
targets of 24 px (44 px in 长辈模式), a visible focus, errors announced once; the 长辈模式 switch with and without
JavaScript, remembered on the device."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from tests.browser import LiveServer, shot
from tests.test_attachments import jpeg

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


def axe_violations(page) -> list[str]:
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}}).response
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
    a_case_the_browser_follows(page, url, world, steps=closed, rating=2)
    page.wait_for_selector("#rating")
    yield "case-rated"
    page.goto(url + "/no-such-page")
    yield "not-found"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["normal", "elder"])
def test_every_public_page_meets_wcag_21_aa_in_both_modes(world, browser_page, mode):
    page = browser_page
    violations, small, errors, seen, twice = [], [], [], [], []
    minimum = 44 if mode == "elder" else 24
    with LiveServer(world.app) as server:
        if mode == "elder":
            page.goto(server.url + "/elder?on=1&next=/")  # the switch without a script: a cookie for every page
        for name in visit_every_kind_of_public_page(page, server.url, world):
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
    assert len(seen) == 13, seen
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
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_elder_switch_changes_the_page_in_place_and_is_remembered_on_the_device(world, browser_page):
    page = browser_page
    with LiveServer(world.app) as server:
        page.goto(server.url + "/")
        plain = page.locator(".intro .wording-plain")
        full = page.locator(".intro .wording-full")
        assert pressed(page) == "false" and full.is_visible() and plain.is_hidden()
        radio = page.locator("input[name=problem_type] >> nth=0").bounding_box()
        assert radio["width"] >= 24 and radio["height"] >= 24
        normal_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")

        page.click(".elder-switch button")  # in place: no navigation
        assert page.url == server.url + "/"
        assert pressed(page) == "true" and plain.is_visible() and full.is_hidden()
        assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= max(20, normal_size * 1.2)
        choice = page.locator("label.choice >> nth=0").bounding_box()
        assert choice["width"] >= 44 and choice["height"] >= 44
        page.click("label.choice >> nth=1")  # the whole label is the target, not only the radio button
        assert page.locator("input[name=problem_type] >> nth=1").is_checked()
        assert page.evaluate("localStorage.getItem('banjie-elder')") == "1"
        shot(page, "a11y-elder-switched-in-place")

        # the server renders the next page in the mode (no flash), from the cookie
        page.goto(server.url + "/track")
        assert "class=\"elder\"" in page.content()[:200] and pressed(page) == "true"

        # the browser dropped its cookies: localStorage brings the mode back and writes the cookie again
        page.context.clear_cookies()
        page.goto(server.url + "/track")
        assert page.evaluate("document.documentElement.classList.contains('elder')") and pressed(page) == "true"
        assert any(c["name"] == "banjie_elder" and c["value"] == "1" for c in page.context.cookies())

        # off again, and that sticks too
        page.click(".elder-switch button")
        assert pressed(page) == "false" and page.evaluate("localStorage.getItem('banjie-elder')") == "0"
        page.reload()
        assert pressed(page) == "false" and not page.evaluate("document.documentElement.classList.contains('elder')")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_elder_switch_works_without_javascript(world, browser_page):
    browser = browser_page.context.browser
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844}, locale="zh-CN")
    page = context.new_page()
    try:
        with LiveServer(world.app) as server:
            page.goto(server.url + "/track?no=BJ20261122-0001")
            assert pressed(page) == "false"
            page.click(".elder-switch button")  # a plain GET form: /elder sets the cookie and comes back here
            page.wait_for_url("**/track?no=BJ20261122-0001")
            assert pressed(page) == "true" and page.locator("html.elder").count() == 1
            assert page.locator("#tracking_no").input_value() == "BJ20261122-0001"
            page.click(".elder-switch button")
            page.wait_for_url("**/track?no=BJ20261122-0001")
            assert pressed(page) == "false" and page.locator("html.elder").count() == 0
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["normal", "elder"])
def test_every_stop_of_the_keyboard_shows_where_the_focus_is(world, browser_page, mode):
    page = browser_page
    with LiveServer(world.app) as server:
        if mode == "elder":
            page.goto(server.url + "/elder?on=1&next=/")
        page.goto(server.url + "/")
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
