"""Issue 16 done as its users would, in Chromium: the office's clerk clears 待受理 with the keyboard alone in one pass
(j and Enter open the first case; t, an arrow and Ctrl+Enter 受理并转办 each, and the console opens the next); a bulk
transfer in which a colleague changed one case first (that one refused with the reason, the others done); a leader
writes a 批示 on a 挂牌督办 case, and the department's handler finds it at the top of the case and in a text.

One app and one live server for the module; each test has its own browser context."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.browser import context_page, module_chromium, served_office, shot  # noqa: F401  (module_chromium: a fixture)
from tests.helpers import CONSOLE_PASSWORD, supervise
from tickets.db import db
from tickets.models import Ticket

DESK = {"width": 1366, "height": 900}
DEPARTMENT = "市场监督管理局"


@pytest.fixture(scope="module")
def site(sqlite_template, tmp_path_factory):
    with served_office(sqlite_template, tmp_path_factory.mktemp("clerk")) as (url, world, clock):
        for who in ("office", "dept_a", "leader"):
            world.console(who)  # their console passwords
        yield SimpleNamespace(url=url, world=world)


def sign_in(page, url, who):
    page.goto(url + "/admin/login")
    page.fill("#username", who)
    page.fill("#password", CONSOLE_PASSWORD)
    page.click("#main button[type=submit]")
    page.wait_for_url(url + "/admin/")


def keys(page, counter, *presses):
    for key in presses:
        page.keyboard.press(key)
        counter.append(key)


@pytest.mark.slow
def test_a_clerk_clears_the_intake_queue_with_the_keyboard_in_one_pass(site, module_chromium):
    world = site.world
    numbers = [world.file(name=f"市民{n}", phone=f"1700000{n:04d}",
                          description=f"第{n + 1}件：营业执照变更跑了三次窗口都说材料不全，没有一次性告知。")["tracking_no"]
               for n in range(10)]
    pressed: list[str] = []
    with context_page(module_chromium, **DESK) as page:
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, site.url, "office")
        page.goto(site.url + "/admin/queue-intake/")
        page.wait_for_load_state("load")
        keys(page, pressed, "j", "Enter")
        for no in numbers:
            page.wait_for_selector(f"h1:has-text('{no}')")
            page.wait_for_load_state("load")  # console.js, which the keys need, comes last
            keys(page, pressed, "t")
            assert page.evaluate("document.activeElement.id") == "accept_and_transfer-department_id"
            while page.evaluate("document.activeElement.selectedOptions[0].text") != DEPARTMENT:
                keys(page, pressed, "ArrowDown")
            keys(page, pressed, "Control+Enter")
            page.wait_for_load_state()
        page.wait_for_selector("#queue-done")
        shot(page, "clerk-keyboard-queue-done")
        assert "受理并转办：已完成。" in page.locator(".alert-success").first.inner_text()
        page.goto(site.url + "/admin/queue-intake/")
        assert page.locator("table.model-list a.case-link").count() == 0
    for no in numbers:
        view = world.ticket("office", no)
        assert view["status"] == "transferred" and view["department_name"] == DEPARTMENT
        assert [e["action"] for e in view["events"]][-2:] == ["accept", "transfer"]
        assert view["owner_name"] == "office"
    # two to open the first case, then t, one arrow and Ctrl+Enter per case: 850 presses before issue 16
    assert len(pressed) <= 2 + 3 * len(numbers), pressed


@pytest.mark.slow
def test_bulk_transfer_with_a_stale_case_and_a_leaders_instruction(site, module_chromium):
    world = site.world
    numbers = [world.file(description=f"批量转办的第{n + 1}件：不动产登记排队三天。")["tracking_no"] for n in range(4)]
    for no in numbers:
        world.act("office", no, "accept")
    with context_page(module_chromium, **DESK) as page:
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, site.url, "office")
        page.goto(site.url + "/admin/queue-accepted/")
        for no in numbers:
            page.check(f"input.bulk-select[value^='{no}:']")
        world.act("office", numbers[2], "remind", note="同事先动了这一件")  # the page's version of it is stale now
        page.select_option("#bulk-action", "transfer")
        page.select_option("#bulk-department", label=DEPARTMENT)
        page.click("#bulk-form button[type=submit]")
        page.wait_for_selector("#bulk-results")
        shot(page, "clerk-bulk-results")
        assert page.locator("#bulk-results tr.bulk-done").count() == 3
        refused = page.locator("#bulk-results tr.bulk-refused")
        assert refused.count() == 1 and numbers[2] in refused.inner_text() and "已被他人修改" in refused.inner_text()
    statuses = {no: world.ticket("office", no)["status"] for no in numbers}
    assert statuses == {no: "accepted" if no == numbers[2] else "transferred" for no in numbers}

    # 挂牌督办 of one of them; its leader writes a 批示 in the console; the department's handler sees it and is texted
    listed = numbers[0]
    supervise(world, listed, level=3)
    with world.app.app_context():
        from tickets.models import User

        db.session.scalar(sa.select(User).where(User.username == "dept_a")).phone = "+8613911110000"
        db.session.commit()
    with context_page(module_chromium, **DESK) as page:
        sign_in(page, site.url, "leader")
        page.goto(f"{site.url}/admin/case/{listed}")
        page.fill("#instruct-content", "请分管负责同志牵头，三个工作日内办结并回复群众。")
        page.click("#action-instruct button[type=submit]")
        page.wait_for_selector("#instructions")
    with context_page(module_chromium, **DESK) as page:
        sign_in(page, site.url, "dept_a")
        page.goto(f"{site.url}/admin/case/{listed}")
        top = page.locator("#instructions")
        assert "三个工作日内办结" in top.inner_text()
        assert page.evaluate("document.querySelector('#instructions').getBoundingClientRect().top < "
                             "document.querySelector('#description').getBoundingClientRect().top")
        shot(page, "clerk-instruction-seen-by-handler")
    from notify.models import SmsMessage

    with world.app.app_context():
        ticket_id = db.session.scalar(sa.select(Ticket.id).where(Ticket.tracking_no == listed))
        texts = db.session.scalars(sa.select(SmsMessage).where(SmsMessage.ticket_id == ticket_id,
                                                               SmsMessage.template == "instruction_handler")).all()
    assert [m.phone for m in texts] == ["+8613911110000"] and "三个工作日内办结" in texts[0].body
