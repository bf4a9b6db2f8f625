"""Staff work a case from 待受理 to 已办结 in the console, in a real browser, in Chinese."""
from __future__ import annotations

import pytest

from tests.browser import LiveServer, shot, sign_in, sign_out


def submit(page, action, done, status):
    """Press an action's button and wait for the console to confirm it and show the new status."""
    page.click(f"#action-{action} button[type=submit]")
    page.wait_for_selector(f"text={done}：已完成。")
    assert page.locator(".case-status").inner_text() == status


def open_from_queue(page, queue, no):
    page.click(f"nav >> text={queue}")
    page.click(f"text={no}")
    page.wait_for_url(f"**/admin/case/{no}?queue=*")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_case_from_intake_to_closed_in_the_console(world, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    no = world.file(name="李梅", phone="139 1234 5678", problem_type="too_hard",
                    description="办理居住证要求提供的房东证明，房东在外地无法到场，来回跑了四次。")["tracking_no"]
    for who in ("office", "dept_a"):
        world.console(who)  # gives the test users their password
    with LiveServer(world.app) as server:
        url = server.url
        page.goto(url + "/admin/login?next=//evil.example/")
        shot(page, "console-01-login")
        sign_in(page, url, "office")
        assert page.locator("#stat-new_today .stat-number").inner_text() == "1"
        shot(page, "console-02-dashboard-office")

        page.click("nav >> text=待受理")
        assert "139****5678" in page.locator("table.model-list").inner_text()
        shot(page, "console-03-queue-intake")
        page.click(f"text={no}")
        page.wait_for_url(f"**/admin/case/{no}?queue=*")
        assert page.locator(".case-status").inner_text() == "待受理"
        assert page.locator(".case-phone").inner_text() == "139****5678"  # whole on request (查看完整号码)
        shot(page, "console-04-case-submitted")

        page.fill("#accept-note", "属实，材料已核对")
        submit(page, "accept", "受理", "已受理")

        page.click("#action-transfer button[type=submit]")  # no department chosen: a Chinese message, not a 500
        page.wait_for_selector("#action-transfer .invalid-feedback")
        assert "此项为必填项" in page.locator("#action-transfer").inner_text()
        page.select_option("#transfer-department_id", label="市场监督管理局")
        page.fill("#transfer-working_days", "3")
        page.fill("#transfer-instructions", "请与房东电子签核实，三日内答复")
        shot(page, "console-05-transfer-form")
        submit(page, "transfer", "转办", "办理中")
        shot(page, "console-06-case-transferred")
        sign_out(page)

        sign_in(page, url, "dept_a")
        shot(page, "console-07-dashboard-department")
        open_from_queue(page, "办理中", no)
        assert "#action-accept" not in page.content()
        page.fill("#reply-content", "已协调房东通过线上电子签完成证明，居住证已于今日办结，可到社区领取。")
        submit(page, "reply", "提交答复审核", "待审核")
        shot(page, "console-08-case-replied")
        sign_out(page)

        sign_in(page, url, "office")
        open_from_queue(page, "待审核", no)
        dialogs = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        submit(page, "approve", "审核通过并办结", "已办结")
        assert dialogs and "群众将看到该答复" in dialogs[0]
        timeline = page.locator("#timeline").inner_text()
        for step in ("已提交", "已受理", "已转办", "部门已答复", "审核通过，已办结"):
            assert step in timeline
        shot(page, "console-09-case-closed")

        page.click("text=English")
        page.wait_for_selector(".case-status >> text=Closed")  # "Closed" is also a (folded) menu entry
        shot(page, "console-10-case-closed-english")

    detail = world.ticket("office", no)
    assert detail["status"] == "closed"
    assert [e["action"] for e in detail["events"]] == ["file", "accept", "transfer", "reply", "approve"]
