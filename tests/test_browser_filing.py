"""The public form's window picker by area and the console's 登记来访/来电 page, in a real browser."""
from __future__ import annotations

import pytest

from tests.browser import LiveServer, shot, sign_in


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_citizen_picks_a_township_by_area_and_files_there(world, network, browser_page):
    page = browser_page
    with LiveServer(world.app) as server:
        page.goto(server.url + "/")
        # the single select of every window gives way to one select per level, the root preselected
        assert page.locator("#office_code").is_hidden()
        assert page.locator("#office-area-0").is_visible()
        assert page.locator("label[for=office-area-1]").inner_text() == "所在区县"
        assert page.locator("#office-area-2").count() == 0
        page.select_option("#office-area-1", label="东湖县办不成事窗口")
        assert page.locator("label[for=office-area-2]").inner_text() == "所在乡镇（街道）"
        page.select_option("#office-area-2", label="青石镇便民服务中心")
        assert page.locator("#office_code").input_value() == "t11"
        shot(page, "filing-01-area-picker")
        # a county without townships chosen files at the county; choosing another county drops the township level
        page.select_option("#office-area-1", label="西山县办不成事窗口")
        assert page.locator("#office_code").input_value() == "c2"
        page.select_option("#office-area-1", label="东湖县办不成事窗口")
        page.select_option("#office-area-2", label="青石镇便民服务中心")
        page.fill("#name", "赵六")
        page.fill("#phone", "138 0013 8000")
        page.check("input[name=problem_type][value=cannot_handle]")
        page.fill("#description", "在镇上办低保认定，说要去县里，县里又说回镇上。")
        page.check("input[name=privacy]")
        page.click("button[type=submit]")
        page.wait_for_url("**/filed")
        tracking_no = page.locator("#tracking-no").inner_text()
        assert page.locator("#window").inner_text() == "青石镇便民服务中心"
        shot(page, "filing-02-receipt")
    assert network.office_of(tracking_no) == "t11"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_field_error_keeps_the_chosen_township_in_the_picker(world, network, browser_page):
    page = browser_page
    with LiveServer(world.app) as server:
        page.goto(server.url + "/")
        page.select_option("#office-area-1", label="东湖县办不成事窗口")
        page.select_option("#office-area-2", label="白沙镇便民服务中心")
        page.click("button[type=submit]")  # nothing else filled in
        assert page.locator(".error-summary").is_visible()
        assert page.locator("#office-area-2").input_value() == "t12"
        assert page.locator("#office_code").input_value() == "t12"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_county_clerk_files_a_phone_call_for_a_township(world, network, browser_page):
    page = browser_page
    world.console("office_c1")  # sets the console password
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "office_c1")
        menu = page.locator('a[href="/admin/intake/"]')  # under 案件查询 (the menu is collapsed on a phone)
        assert menu.count() == 1 and menu.text_content().strip() == "登记来访/来电"
        page.goto(server.url + "/admin/intake/")
        assert page.locator("h1").inner_text() == "登记来访/来电"
        assert page.locator("#office_code").input_value() == "c1"
        page.select_option("#channel", label="电话来电")
        page.select_option("#office_code", label="\u3000青石镇便民服务中心")
        page.fill("#name", "钱七")
        page.fill("#phone", "13900139000")
        page.check("#problem_type-too_slow")
        page.fill("#description", "来电反映：医保报销材料交了两个月还没到账。")
        page.click("#intake-form button[type=submit]")
        page.wait_for_url("**/admin/intake/filed")
        tracking_no = page.locator("#tracking-no").inner_text()
        assert len(page.locator("#query-code").inner_text()) == 8
        shot(page, "filing-03-console-receipt")
        page.click("#case-link")
        page.wait_for_url(f"**/admin/case/{tracking_no}")
        assert page.locator(".case-channel").inner_text() == "电话来电"
        assert page.locator(".case-office").inner_text() == "青石镇便民服务中心"
        shot(page, "filing-04-console-case")
    assert network.office_of(tracking_no) == "t11"
