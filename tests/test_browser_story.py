"""Issue 15's story, in a real browser on a phone-sized page: an elderly citizen files in 长辈模式 with a photo, closes
the tab, gets a new query code by SMS, adds a document, and after the reply rates 不满意 and reads when the rework is
due; a landline caller's case is filed by the window and rated by phone. axe-core finds nothing on the way."""
from __future__ import annotations

import re

import pytest
import requests

from tests.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, shot, sign_in
from tests.sms_support import messages
from tests.test_attachments import jpeg, pdf
from tests.test_browser_accessibility import axe_violations


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("elder", [True, False], ids=["elder", "normal"])
def test_an_elderly_citizen_and_a_landline_caller_are_served_to_the_end(world, browser_page, tmp_path, elder):
    page = browser_page
    world.console("office")  # sets the console password
    photo, document = tmp_path / "窗口退回的表格.jpg", tmp_path / "医院证明.pdf"
    photo.write_bytes(jpeg(size=(1600, 1200), gps=True))
    document.write_bytes(pdf())
    violations = []
    with LiveServer(world.app) as server:
        url = server.url
        # 长辈模式, switched on the page itself, then the filing with a photo
        page.goto(url + "/")
        if elder:
            page.click(".elder-switch button")
            page.wait_for_selector("html.elder")
        page.fill("#name", "周大爷")
        page.fill("#phone", "138 0013 8000")
        page.check("input[name=problem_type][value=cannot_handle]")
        page.fill("#description", "办残疾证，窗口说要先去医院鉴定，医院又说要窗口开单子。")
        page.set_input_files("#files", [str(photo)])
        page.check("input[name=privacy]")
        violations += axe_violations(page)
        shot(page, f"story-01-form-{'elder' if elder else 'normal'}")
        page.click("#main button[type=submit]")
        page.wait_for_url("**/filed")
        no = page.locator("#tracking-no").inner_text()
        # the tab is closed: the browser's session ends (the 长辈模式 choice stays on the device)
        page.context.clear_cookies()
        if elder:
            page.goto(url + "/track")
            page.wait_for_selector("html.elder")  # put back from the device's storage
        page.goto(f"{url}/track/{no}")
        page.wait_for_url("**/track?no=*")
        # 忘记查询码: a new code by SMS to the filing number
        page.goto(f"{url}/track/recover?no={no}")
        page.fill("#phone", "13800138000")
        page.click("#main button[type=submit]")
        page.wait_for_selector("#recover-sent")
        violations += axe_violations(page)
        (sms,) = [m for m in messages(world.app, template="query_code") if no in m.body]
        code = re.search(r"新查询码为([A-Z0-9]+)", sms.body).group(1)
        page.goto(f"{url}/track?no={no}")
        page.fill("#code", code)
        page.click("#main button[type=submit]")
        page.wait_for_url(f"**/track/{no}")
        assert "窗口退回的表格.jpg" in page.locator("#case-files").inner_text()
        # 补充材料: a document
        page.fill("#content", "补充医院开具的证明。")
        page.set_input_files("#supplement-form input[type=file]", [str(document)])
        page.click("#supplement-form button[type=submit]")
        page.wait_for_selector(".flash-success")
        assert "医院证明.pdf" in page.locator("#case-files").inner_text()
        shot(page, "story-02-case-with-files")
        # the office and the department answer (API)
        for who, action, body in [("office", "accept", {}),
                                  ("office", "transfer", {"department_id": world.departments["A"]}),
                                  ("dept_a", "reply", {"content": "已协调医院当日开具鉴定单。"}),
                                  ("office", "approve", {})]:
            response = requests.post(f"{url}/api/v1/staff/tickets/{no}/{action}", json=body,
                                     headers=world.headers(who), timeout=10)
            assert response.status_code == 200, response.text
        page.reload()
        assert "15 个工作日" in page.locator("#rating-next").inner_text()
        violations += axe_violations(page)
        page.check("input[name=score][value='4']")  # 不满意
        page.click("form[action$='/rating'] button[type=submit]")
        rework = page.locator("#rework").inner_text()
        due = requests.get(f"{url}/api/v1/tickets/{no}", params={"code": code}, timeout=10).json()["due_at"]
        assert "市场监督管理局" in rework and due[:16].replace("T", " ") in rework
        violations += axe_violations(page)
        shot(page, "story-03-rework-due")

        # a landline caller: filed by the window in the console, answered, rated by phone
        sign_in(page, url, "office")
        page.goto(url + "/admin/intake/")
        page.select_option("#channel", "phone")
        page.fill("#name", "钱大妈")
        page.fill("#phone", "0571-8765 4321")
        page.check("#problem_type-too_hard")
        page.fill("#description", "打电话反映：老人不会用手机，社保认证办不了。")
        page.click("#intake-form button[type=submit]")
        page.wait_for_url("**/admin/intake/filed")
        assert page.locator("#landline-note").is_visible()
        caller = page.locator("#tracking-no").inner_text()
        for who, action, body in [("office", "accept", {}), ("office", "resolve", {"content": "已上门为老人完成认证。"})]:
            response = requests.post(f"{url}/api/v1/staff/tickets/{caller}/{action}", json=body,
                                     headers=world.headers(who), timeout=10)
            assert response.status_code == 200, response.text
        page.goto(f"{url}/admin/case/{caller}")
        form = page.locator("#action-record_rating")
        form.locator("input[name=score][value='2']").check()
        form.locator("textarea[name=comment]").fill("电话回访：满意。")
        page.on("dialog", lambda dialog: dialog.accept())
        form.locator("button[type=submit]").click()
        page.wait_for_selector("#surveys")
        assert "电话" in page.locator("#surveys").inner_text()
        shot(page, "story-04-rated-by-phone")
    assert [m for m in messages(world.app) if m.phone == "+8657187654321"] == []  # a landline is never texted
    assert violations == [], "\n".join(violations)
