"""Every page works under the Content-Security-Policy in a real browser: no inline script, handler or style of
ours or of Flask-Admin's is blocked (tests/browser.py fails any browser test on a CSP violation)."""
from __future__ import annotations

import re

import pytest

from tests.browser import LiveServer, shot, sign_in


def menu_links(page, base):
    hrefs = page.eval_on_selector_all("nav a[href^='/admin/']", "links => links.map(a => a.getAttribute('href'))")
    return sorted({h for h in hrefs if not h.startswith("/admin/login")})


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_console_page_and_widget_under_the_csp(world, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    world.file(name="王芳", phone="139 1234 5678", description="社保转移接续材料来回跑了三趟还没办好。")
    world.console("admin")  # gives the account its test password
    with LiveServer(world.app) as server:
        url = server.url
        sign_in(page, url, "admin")

        # The month's report, generated from the reports page, puts its SVG charts on the dashboard.
        page.goto(url + "/admin/reports/")
        page.click("#generate-report button[type=submit]")
        page.wait_for_selector("#report-list")
        page.goto(url + "/admin/")
        charts = page.locator(".report-chart svg")
        assert charts.count() >= 2
        assert page.locator(".report-chart svg [style]").count() == 0
        assert page.locator(".report-chart svg [fill]").count() > 0
        shot(page, "csp-01-dashboard-charts")

        for link in menu_links(page, url):
            response = page.goto(url + link)
            assert response.status == 200, link
            assert "no-store" in response.headers["cache-control"], link
        # a list's filters: the dropdown, a filter with its select2 box, applying it
        page.goto(url + "/admin/cases/")
        page.click(".nav-item.dropdown:has(.field-filters) > a")
        page.click(".field-filters a.filter >> nth=1")
        page.wait_for_selector("#filter_form .filter-val")
        shot(page, "csp-02-filter")
        page.click("#filter_form button[type=submit]")
        page.wait_for_url(re.compile(r".*flt.*"))
        # the page-size menu and a javascript:void(0) tab link do nothing bad
        page.click("a.nav-link.active")
        # the whole-number export is a form: ticked without a reason, it stays on the list and says why
        page.click("#export-full > summary")
        page.check("#export-full-phones")
        page.click("#export-full-submit")
        page.wait_for_selector(".alert")
        assert "/admin/cases/" in page.url

        # select2 widgets on a form: the role starts empty, with a prompt
        page.goto(url + "/admin/users/new/")
        assert page.locator("#s2id_role .select2-chosen").inner_text().strip() == "请选择"
        page.click("#s2id_role")
        page.keyboard.type("受理")
        page.keyboard.press("Enter")
        assert page.locator("#s2id_role .select2-chosen").inner_text().strip() == "受理员"
        assert page.eval_on_selector("#role", "select => select.value") == "office"
        shot(page, "csp-03-user-form")

        # the SMS template editor, saved unchanged
        page.goto(url + "/admin/sms-templates/")
        page.click("#sms-templates a >> nth=0")
        page.click("#template-form button[type=submit]")
        page.wait_for_selector("text=已保存")
        shot(page, "csp-04-sms-template")

        # confirmation dialogs: revoking a token asks first
        page.goto(url + "/admin/api-tokens/")
        dialogs = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.click("form[data-confirm] button[type=submit] >> nth=0")
        assert dialogs and page.locator("form[data-confirm]").count() >= 1

        # the calendar editor
        page.goto(url + "/admin/calendar/2027")
        page.fill("#days", "2027-01-01,0,元旦\n")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("form[data-confirm] button[type=submit]")
        page.wait_for_selector("#calendar-days")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_public_lookup_under_the_csp(world, browser_page):
    page = browser_page
    filed = world.file()
    with LiveServer(world.app) as server:
        response = page.goto(server.url + "/track")
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
        page.fill("#tracking_no", filed["tracking_no"])
        page.fill("#code", filed["query_code"].lower())
        page.click("button[type=submit]")
        page.wait_for_url(f"**/track/{filed['tracking_no']}")
        assert page.locator(".status").inner_text() == "待受理"
        shot(page, "csp-05-public-case")
