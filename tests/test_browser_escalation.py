"""The office enters next year's calendar from the console's warning, in a real browser, in Chinese."""
from __future__ import annotations

import pytest

from tests.browser import LiveServer, browser_page, shot  # noqa: F401  (fixture)
from tests.test_browser_console import sign_in


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_office_publishes_next_year_from_the_warning(world, browser_page):
    page = browser_page
    world.console("office")  # gives the account its test password
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "office")
        assert page.locator("#scheduler-banner").is_visible()  # no sweep has run in this test
        banner = page.locator("#calendar-banner-2027")
        assert "2027年工作日历尚未发布" in banner.inner_text()
        banner.locator("a").click()
        page.wait_for_url("**/admin/calendar/2027")
        page.fill("#notice", "国办发明电〔2026〕样例")
        page.fill("#days", "2027-01-01,0,元旦\n2027-02-06,1,春节\n2027-02-08,0,春节\n")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#days ~ button[type=submit], form button.btn-primary")
        page.wait_for_selector("text=2027年日历已发布")
        assert page.locator("#calendar-days tbody tr").count() == 3
        assert page.locator("#calendar-banner-2027").count() == 0
        shot(page, "escalation-calendar-2027")
