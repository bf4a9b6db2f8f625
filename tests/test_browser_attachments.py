"""附件 in a real browser: a citizen files with a phone photo and a PDF, corrects a field without choosing the files
again, sees them on the case page; the handler opens them in the console."""
from __future__ import annotations

import pytest

from tests.browser import LiveServer, loaded_width, shot, sign_in, watch_csp
from tests.test_attachments import jpeg, pdf


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_citizen_files_with_a_photo_and_a_pdf_and_loses_nothing_on_a_field_error(world, browser_page, tmp_path):
    page = browser_page
    blocked = watch_csp(page)
    world.console("office")  # sets the console password
    photo, notice = tmp_path / "窗口拒收的表格.jpg", tmp_path / "不予受理通知书.pdf"
    photo.write_bytes(jpeg(size=(1200, 900), gps=True))
    notice.write_bytes(pdf())
    with LiveServer(world.app) as server:
        page.goto(server.url + "/")
        page.fill("#phone", "138 0013 8000")
        page.check("input[name=problem_type][value=cannot_handle]")
        page.fill("#description", "窗口说材料不全，不给受理，也不说缺什么。")
        page.check("input[name=privacy]")
        page.set_input_files("#files", [str(photo), str(notice)])
        page.click("button[type=submit]")  # the name is missing
        assert page.locator(".error-summary").is_visible()
        held = page.locator("#held-files")
        assert "窗口拒收的表格.jpg" in held.inner_text() and "不予受理通知书.pdf" in held.inner_text()
        shot(page, "attachments-01-held")
        page.fill("#name", "钱七")
        page.click("button[type=submit]")
        page.wait_for_url("**/filed")
        tracking_no = page.locator("#tracking-no").inner_text()
        page.goto(f"{server.url}/track/{tracking_no}")
        files = page.locator("#case-files")
        assert "窗口拒收的表格.jpg" in files.inner_text() and "不予受理通知书.pdf" in files.inner_text()
        assert loaded_width(page.locator("#case-files img.file-thumb")) > 0  # the thumbnail loads
        shot(page, "attachments-02-case-page")
        # too many files are flagged before anything is sent
        many = [tmp_path / f"{n}.jpg" for n in range(6)]
        for path in many:
            path.write_bytes(jpeg())
        page.set_input_files("#supplement-form input[type=file]", [str(p) for p in many])
        assert page.locator("#supplement-form .file-check").is_visible()
        sign_in(page, server.url, "office")
        page.goto(f"{server.url}/admin/case/{tracking_no}")
        assert loaded_width(page.locator("#attachments img.attachment-thumb")) > 0
        shot(page, "attachments-03-console")
    assert blocked == []
