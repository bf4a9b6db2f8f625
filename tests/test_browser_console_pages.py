"""The dashboard in a real browser: each card opens a list with as many cases as it says, for the office and
for a department; the page states its language, in Chinese and after the switch to English."""
from __future__ import annotations

import pytest

from tests.browser import LiveServer, shot, sign_in, sign_out
from tests.helpers import an_office_in_every_state


def case_rows(page) -> int:
    return page.locator("table.model-list tbody tr a[href^='/admin/case/']").count()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dashboard_cards_open_what_they_count(world, clock, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    an_office_in_every_state(world, clock)
    for who in ("office", "dept_b"):
        world.console(who)  # gives the test users their password
    with LiveServer(world.app) as server:
        for who in ("office", "dept_b"):
            sign_in(page, server.url, who)
            assert page.evaluate("document.documentElement.lang") == "zh-CN"
            assert page.locator("nav .navbar-nav").first.bounding_box()["height"] < 60  # the menu fits on one line
            shot(page, f"console-pages-dashboard-{who}")
            cards = page.locator("a.stat-card")
            checked = 0
            for index in range(cards.count()):
                card = cards.nth(index)
                name = card.locator(".text-muted").inner_text()
                number = int(card.locator(".stat-number").inner_text())
                card.click()
                page.wait_for_load_state()
                assert case_rows(page) == number, (who, name)
                assert page.evaluate("document.documentElement.lang") == "zh-CN"
                checked += number
                page.go_back()
            assert checked > 5
            page.click("nav >> text=English")
            page.wait_for_selector("text=New today")
            assert page.evaluate("document.documentElement.lang") == "en"
            shot(page, f"console-pages-dashboard-{who}-english")
            page.click("nav >> text=中文")
            page.wait_for_selector("text=今日新增")
            sign_out(page)
