"""A case printed from the console in a real browser (print media, static/print.css), read back from the PDF Chromium
makes; a list in print media; and the case's 交办单 fetched through the page's link. The PDFs and pictures of their
first pages are kept in test-artifacts/ to look at."""
from __future__ import annotations

import io
import shutil
import subprocess
import unicodedata

import pytest
from pypdf import PdfReader

from tests.browser import ARTIFACTS, LiveServer, sign_in

DESCRIPTION = "办理居住证要求提供的房东证明，房东在外地无法到场，来回跑了四次。"


def squash(value: str) -> str:
    """Text as Chromium's PDF gives it back, comparable: no whitespace, and NFKC (its text layer writes some
    characters as their compatibility forms: ⼝ for 口, ﬃ for ffi)."""
    return "".join(unicodedata.normalize("NFKC", value).split())


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_printed_case_shows_the_case_and_none_of_the_controls(world, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    no = world.file(name="李梅", phone="139 1234 5678", problem_type="too_hard", description=DESCRIPTION)["tracking_no"]
    world.act("office", no, "accept", note="属实，材料已核对。")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=3,
              instructions="请与房东电子签核实，三日内答复。")
    world.console("office")  # gives the test user its password
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "office")
        page.goto(f"{server.url}/admin/case/{no}")
        page.click("#reveal-phone-button")  # the clerk who accepted it works it: the whole number at once (logged)
        page.wait_for_selector(".case-phone-full")
        buttons = page.locator("#actions button[type=submit]").all_inner_texts()
        print_controls = page.locator(".case-print a, .case-print button").all_inner_texts()  # 打印, 交办单 PDF
        assert len(print_controls) == 2
        on_screen = squash(page.locator(".case-main").inner_text())
        assert buttons and page.locator("[data-print]").is_visible()
        page.evaluate("window.print = function () { window.printAsked = true; }")  # the dialog would wait for a person
        page.click("[data-print]")
        assert page.evaluate("window.printAsked === true")  # 打印 opens the browser's print dialog (static/console.js)
        slip = page.request.get(server.url + page.locator("#slip-link").get_attribute("href"))  # signed in, as a click
        assert slip.status == 200 and slip.headers["content-type"] == "application/pdf"

        page.emulate_media(media="print")
        assert not page.locator("#actions").is_visible() and not page.locator("nav.navbar").is_visible()
        main = page.locator(".case-main").bounding_box()
        frame = page.locator(".container, .container-fluid").first.bounding_box()
        assert main["width"] > 0.95 * frame["width"]  # the case takes the whole width of the sheet
        printed = page.pdf(format="A4")

        page.goto(f"{server.url}/admin/cases/")  # a list prints its table without the toolbar and the filters
        assert page.locator("table.model-list").is_visible()
        assert not page.locator(".nav-tabs").is_visible() and not page.locator("nav.navbar").is_visible()

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "print-case.pdf").write_bytes(printed)
    (ARTIFACTS / "print-slip.pdf").write_bytes(slip.body())
    if shutil.which("pdftoppm"):  # pictures to look at: the printed page and the slip
        for name in ("print-case", "print-slip"):
            subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", str(ARTIFACTS / f"{name}.pdf"),
                            str(ARTIFACTS / name)], check=True, timeout=60)
    text = squash("".join(p.extract_text() for p in PdfReader(io.BytesIO(printed)).pages))
    for fact in (no, "市场监督管理局", "李梅", "13912345678", DESCRIPTION, "请与房东电子签核实，三日内答复。", "已转办"):
        assert squash(fact) in text, fact
    assert text.startswith(squash(f"办不成事反映窗口{no}"))  # the header line: the window and the tracking number
    for control in [b for b in buttons if squash(b) not in on_screen] + print_controls + ["退出", "English"]:
        assert squash(control) not in text, control
    assert "/admin/" not in text and "http" not in text  # links print as their text, without their address
    assert no in "".join(p.extract_text() for p in PdfReader(io.BytesIO(slip.body())).pages)
