"""A citizen files a grievance in a real browser, the office works it through the API, the case page shows each step."""
from __future__ import annotations

import pytest
import requests

from tests.browser import LiveServer, shot


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_citizen_files_and_follows_a_case(world, browser_page):
    page = browser_page
    with LiveServer(world.app) as server:
        page.goto(server.url + "/")
        assert page.locator("h1").inner_text().startswith("在政府办事")
        shot(page, "public-01-form")
        page.click("button[type=submit]")  # empty form: Chinese messages, nothing lost
        assert page.locator(".error-summary").is_visible()
        assert page.locator("text=此项为必填项。").count() >= 3
        shot(page, "public-02-errors")
        page.fill("#name", "张三")
        page.fill("#phone", "138 0013 8000")
        page.check("input[name=problem_type][value=too_slow]")
        page.select_option("#department_id", label="市场监督管理局")
        page.fill("#service_item", "食品经营许可证延续")
        page.fill("#description", "延续申请提交 20 天了系统一直显示审核中，证马上到期。")
        page.check("input[name=privacy]")
        page.click("button[type=submit]")
        page.wait_for_url("**/filed")
        tracking_no = page.locator("#tracking-no").inner_text()
        assert tracking_no.startswith("BJ20261116-") and len(page.locator("#query-code").inner_text()) == 8
        shot(page, "public-03-receipt")

        # the office and the department work the case through the API, over real HTTP
        for who, action, body in (
            ("office", "accept", {}),
            ("office", "transfer", {"department_id": world.departments["A"]}),
            ("dept_a", "reply", {"content": "许可证已延续，电子证照已推送至您的账户。"}),
            ("office", "approve", {}),
        ):
            response = requests.post(f"{server.url}/api/v1/staff/tickets/{tracking_no}/{action}", json=body,
                                     headers=world.headers(who), timeout=10)
            assert response.status_code == 200, response.text

        page.click("text=查看办理进度")
        page.wait_for_url(f"**/track/{tracking_no}")
        timeline = page.locator(".timeline").inner_text()
        for step in ("已提交", "已受理", "已转办", "部门已答复", "审核通过，已办结"):
            assert step in timeline
        assert page.locator(".status").inner_text() == "已办结"
        assert "电子证照已推送" in page.locator("#reply").inner_text()
        shot(page, "public-04-closed")
        page.check("input[name=score][value='2']")
        page.click("text=提交评价")
        page.wait_for_selector("text=感谢您的评价")
        shot(page, "public-05-rated")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_public_pages_load_everything_they_ask_for_and_the_receipt_prints(world, browser_page):
    """No public page asks for something that is not there (a missing script or style shows as a console error), each
    names an icon that exists (headless Chromium does not fetch icons, a desktop browser asks for /favicon.ico without
    one), and the confirmation page's print button and picture work after a reload."""
    page = browser_page
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    with LiveServer(world.app) as server:
        page.goto(server.url + "/")
        page.fill("#name", "李四")
        page.fill("#phone", "13900139000")
        page.check("input[name=problem_type][value=too_slow]")
        page.fill("#description", "营业执照变更跑了三次窗口都说材料不全。")
        page.check("input[name=privacy]")
        page.click("button[type=submit]")
        page.wait_for_url("**/filed")
        page.reload()
        code = page.locator("#query-code").inner_text()
        assert len(code) == 8
        page.evaluate("window.print = () => { window.__printed = true; }")
        page.click("#print-receipt")
        assert page.evaluate("window.__printed") is True
        picture = page.request.get(server.url + "/filed/receipt.png")
        assert picture.status == 200 and picture.headers["content-type"] == "image/png"
        shot(page, "public-05-receipt-reloaded")
        icon = page.locator("link[rel=icon]").get_attribute("href")
        assert page.request.get(server.url + icon).status == 200
        page.goto(server.url + "/track")
        page.click("#recover-link")
        page.wait_for_url("**/track/recover**")
        shot(page, "public-06-recover")
    assert failed == []
