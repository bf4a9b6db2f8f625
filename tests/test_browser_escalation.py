"""The office enters next year's calendar from the console's warning, in a real browser, in Chinese."""
from __future__ import annotations

import pytest

from tests.browser import LiveServer, shot, sign_in


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


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_late_sweep_and_a_held_text_as_the_office_sees_them(world, clock, browser_page):
    """A case left four working days overdue, swept once at night: one history line, the warning called off
    with its reason, the handler nobody could text, and the texts held by quiet hours with their time."""

    from escalation import sweeper
    from tests.test_escalation import transferred_case
    from tickets.db import db
    from tickets.models import Department

    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    with world.app.app_context():
        db.session.get(Department, world.departments["A"]).leader_phone = None
        db.session.commit()
    case = transferred_case(world, clock)  # due Monday 2026-11-23; dept A's handler has no mobile
    clock.set(2026, 11, 27, 22, 30)  # Friday night: Tuesday to Thursday after the deadline are over
    with world.app.app_context():
        sweeper.sweep(db.session, clock())
    world.console("office")
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "office")
        page.goto(f"{server.url}/admin/case/{case}")
        history = page.locator("#timeline")
        assert history.locator("li", has_text="自动督办").count() == 1
        line = history.locator("li", has_text="自动督办").inner_text()
        assert "督办级别：挂牌督办。" in line and "告知督办人（督办）：短信1条" in line
        assert "告知领导（挂牌督办）：未发送：该部门没有登记分管领导手机号。" in line
        assert "预警承办人已取消：时机已过（期限已届满）" in line
        ladder = page.locator("#escalation-history").inner_text()
        assert "时机已过（期限已届满）" in ladder and "未发送：该部门没有登记分管领导手机号。" in ladder
        texts = page.locator("#case-sms").inner_text()
        assert "免打扰时段，暂缓至2026-11-28 08:00发送" in texts
        page.locator("#escalation-history").scroll_into_view_if_needed()
        shot(page, "escalation-late-sweep-case")

        page.goto(f"{server.url}/admin/sms/")
        assert "免打扰时段，暂缓至2026-11-28 08:00发送" in page.locator("table.model-list").inner_text()
        shot(page, "escalation-held-sms-log")
        page.click("table.model-list tbody tr >> nth=0 >> a >> nth=0")
        page.wait_for_url("**/admin/sms/message/**")
        assert "暂缓至2026-11-28 08:00" in page.locator("#sms-hold").inner_text()
        body = page.locator("#sms-body").inner_text()
        assert "已超期3个工作日" in body
        shot(page, "escalation-held-sms-message")

        page.goto(f"{server.url}/admin/departments/")
        assert "没有分管领导手机号" in page.locator("table.model-list").inner_text()
        assert page.locator(".role-unreachable").count() == 2
        shot(page, "escalation-department-reach")
