"""The console for a clerk who works a hundred cases a day, in Chromium on a phone's width (390 px): a queue is one card
per case, its values labelled, and no page scrolls sideways; a skip link leads past the menu; the keys of
static/console.js: j/k choose a case of a list and Enter opens it, / goes to the search box, where a j stays a letter,
? lists the keys in a dialog that Esc closes; on a case, a, t and r go to their forms, n to the next case, and
Ctrl+Enter sends the form it is typed in, asking first when the form asks.

One app and one live server for the module; each test has its own browser context."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.browser import context_page, module_chromium, served_office, shot  # noqa: F401  (module_chromium: a fixture)
from tests.helpers import CONSOLE_PASSWORD

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(sqlite_template, tmp_path_factory):
    """Three new cases waiting in 待受理, filed one after the other (the queue lists them in that order)."""
    with served_office(sqlite_template, tmp_path_factory.mktemp("keyboard")) as (url, world, clock):
        world.console("office")  # gives the office its console password
        cases = [world.file(name=name, phone=phone, description=text)["tracking_no"] for name, phone, text in (
            ("周琳", "17000000111", "新生儿落户要求先办出生医学证明，医院说要先落户，两边互相推。"),
            ("吴刚", "17000000112", "个体户注销在网上提交了三次都被退回，没有说明原因。"),
            ("郑雪", "17000000113", "公积金提取到窗口被告知系统升级，已经等了两个星期。"),
        )]
        yield SimpleNamespace(url=url, world=world, cases=cases)


def sign_in(page, url, who="office"):
    page.goto(url + "/admin/login")
    page.fill("#username", who)
    page.fill("#password", CONSOLE_PASSWORD)
    page.click("#main button[type=submit]")
    page.wait_for_url(url + "/admin/")


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def chosen(page) -> str | None:
    """The case of the row j/k chose, if any."""
    return page.evaluate("(document.querySelector('tr.kb-current td.col-tracking_no') || {}).textContent || null")


def focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.tagName")


# Each row of the queue as shown: whether it is a card (a block as wide as the screen at most), and each value's
# label (the ::before of its cell) beside the column heading that the cell's data-label repeats.
CARDS_JS = """() => [...document.querySelectorAll('table.model-list tbody tr')].map(row => {
  const box = row.getBoundingClientRect();
  return {display: getComputedStyle(row).display, left: box.left, right: box.right, top: box.top, bottom: box.bottom,
          cells: [...row.querySelectorAll('td[data-label]')].filter(td => td.textContent.trim()).map(td => ({
            name: td.className, label: td.dataset.label, shown: getComputedStyle(td, '::before').content,
            heading: (document.querySelector('thead th.' + td.className.split(' ')[0]) || {}).textContent}))};
})"""


@pytest.mark.slow
def test_on_a_phone_a_queue_is_a_card_per_case_and_no_page_scrolls_sideways(module_chromium, site):
    with context_page(module_chromium, **PHONE) as page:
        sign_in(page, site.url)
        assert page_width(page) <= 390, "the dashboard scrolls sideways"
        shot(page, "keyboard-phone-dashboard")

        page.goto(site.url + "/admin/queue-intake/")
        assert page_width(page) <= 390, "the queue scrolls sideways"
        rows = page.evaluate(CARDS_JS)
        assert len(rows) == 3
        for row in rows:
            assert row["display"] == "block" and row["left"] >= 0 and row["right"] <= 390, row
            assert len(row["cells"]) >= 6, row
            for cell in row["cells"]:
                if "col-tracking_no" in cell["name"]:
                    continue  # the card's title: the number says what it is
                assert cell["shown"] == f'"{cell["label"]}"', cell  # each value is labelled...
                assert cell["label"] == cell["heading"].strip(), cell  # ...with its column's heading
        assert all(above["bottom"] <= below["top"] for above, below in zip(rows, rows[1:])), "cards overlap"
        shot(page, "keyboard-phone-queue-cards")

        page.goto(f"{site.url}/admin/case/{site.cases[0]}")
        assert page_width(page) <= 390, "the case page scrolls sideways"
        shot(page, "keyboard-phone-case")

        # the skip link: the first stop of the keyboard, shown when focused, and it leads past the menu
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.classList.contains('skip-link')")
        box = page.locator(".skip-link").bounding_box()
        assert box["y"] >= 0 and box["height"] >= 24
        page.keyboard.press("Enter")
        assert focused(page) == "main"


@pytest.mark.slow
def test_the_keys_choose_and_open_a_case_and_never_take_a_letter_being_typed(module_chromium, site):
    first, second, _third = site.cases
    with context_page(module_chromium, **PHONE) as page:
        sign_in(page, site.url)
        page.goto(site.url + "/admin/queue-intake/")

        # ? lists the keys in a modal dialog that takes the focus; no other key works meanwhile; Esc closes it
        page.keyboard.press("?")
        dialog = page.locator("dialog#shortcuts")
        assert dialog.is_visible() and dialog.get_attribute("aria-modal") == "true"
        assert page.evaluate("document.activeElement.closest('dialog') !== null")
        page.keyboard.press("j")
        assert chosen(page) is None
        page.keyboard.press("Escape")
        assert dialog.is_hidden()
        # the hint at the bottom opens it too, and Esc gives the focus back to the hint
        page.click("#shortcuts-open")
        assert dialog.is_visible()
        shot(page, "keyboard-phone-shortcuts")
        page.keyboard.press("Escape")
        assert dialog.is_hidden() and focused(page) == "shortcuts-open"

        # j and k choose a case (its link has the focus)
        page.keyboard.press("j")
        assert chosen(page) == first and page.evaluate("document.activeElement.textContent") == first
        page.keyboard.press("j")
        assert chosen(page) == second
        page.keyboard.press("k")
        assert chosen(page) == first
        page.keyboard.press("j")

        # / goes to the search box, where j and k are letters
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.name") == "search"
        page.keyboard.type("jk")
        assert page.input_value("input[name=search]") == "jk" and chosen(page) == second
        page.fill("input[name=search]", "")
        page.keyboard.press("Control+j")  # a modifier: the browser's key, not ours
        assert chosen(page) == second

        # Enter opens the chosen case
        page.locator("h1").click()  # the focus leaves the box (for the page's <main>)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert f"/admin/case/{second}" in page.url

        # a, t, r go to the forms of accepting, transferring and replying, if this case has them
        def expected(forms, field):
            return page.evaluate("""([forms, field]) => {
              for (const id of forms) { const form = document.querySelector('#action-' + id + ' form');
                if (form) return (form.querySelector(field) || form.querySelector('input:not([type=hidden]), select,'
                  + ' textarea, button')).id || 'BUTTON'; }
              return document.activeElement.id || document.activeElement.tagName; }""", [forms, field])

        first_field = "input:not([type=hidden]), select, textarea"
        for key, forms, field in (("a", ["accept_and_transfer", "accept"], first_field),
                                  ("t", ["accept_and_transfer", "transfer"], "select[name=department_id]"),
                                  ("r", ["reply", "resolve", "explain"], "textarea")):
            page.locator("h1").click()
            target = expected(forms, field)
            page.keyboard.press(key)
            assert focused(page) == target, key
        assert page.evaluate("document.querySelector('#action-accept_and_transfer, #action-accept') !== null")

        # Ctrl+Enter sends the form it is typed in, through the question a form with data-confirm asks first
        page.fill("#reject-reason", "属于司法程序中的事项，请向法院反映。")
        asked = []
        page.once("dialog", lambda question: (asked.append(question.message), question.dismiss()))
        page.focus("#reject-reason")
        page.keyboard.press("Control+Enter")
        page.wait_for_timeout(200)
        assert asked and asked[0] == page.get_attribute("#action-reject form", "data-confirm")
        assert f"/admin/case/{second}" in page.url and page.input_value("#reject-reason")  # refused: nothing sent
        page.fill("#note-content", "已电话联系申请人，约定明日来窗口。")
        with page.expect_navigation():
            page.keyboard.press("Control+Enter")  # the focus is still in the note's box
        assert "已电话联系申请人" in page.locator("#timeline").inner_text()

        # n opens the next case (the 「下一件」 link, when the page has one)
        if not page.locator("#next-case").count():
            page.evaluate("""url => { const link = document.createElement('a'); link.id = 'next-case';
                                      link.href = url; link.textContent = 'next'; document.body.append(link); }""",
                          f"/admin/case/{first}")
        target = page.get_attribute("#next-case", "href")
        with page.expect_navigation():
            page.keyboard.press("n")
        assert page.url.endswith(target)
