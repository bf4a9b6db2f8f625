"""The report charts on the console's home page, measured in Chromium: their text is at least 12 px wherever shown,
and none of it is cut away (each chart clipped to its own rectangle)."""
from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, LiveServer, sign_in
from tests.report_month import MONTH, small_month

# The size each SVG text is drawn at on screen: its font size times the scale of its transform (rotation included).
TEXT_SIZES = """() => Array.from(document.querySelectorAll('#report-charts svg text')).map(text => {
    const m = text.getScreenCTM();
    return [text.textContent, Math.round(parseFloat(getComputedStyle(text).fontSize) * Math.hypot(m.a, m.b) * 100) / 100];
})"""

# The chart texts that are not drawn where they stand (the element found at their centre is not them): cut away
# by a clip path, or covered.
HIDDEN_TEXTS = """() => Array.from(document.querySelectorAll('#report-charts svg text')).filter(text => {
    text.scrollIntoView({block: 'center', inline: 'center'});
    const box = text.getBoundingClientRect();
    const found = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    return !(found === text || text.contains(found));
}).map(text => text.textContent)"""

# The clipped elements whose clip path is not their own chart's (ids are one namespace for the whole page): the
# department chart, taller than the trend with five departments or more, lost its title and legend to the trend's.
FOREIGN_CLIPS = """() => Array.from(document.querySelectorAll('#report-charts svg [clip-path]')).filter(element => {
    const clip = document.getElementById(element.getAttribute('clip-path').replace(/^url\\(#|\\)$/g, ''));
    return !clip || clip.closest('svg') !== element.closest('svg');
}).length"""


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dashboard_chart_text_is_at_least_12_px(world, clock, browser_page):
    page = browser_page
    small_month(world, clock, items=("营业执照变更", "社保转移", "公积金提取"), to="AB")
    assert world.get("office", f"/api/v1/reports/monthly/{MONTH}").get_json()["kept"]
    world.console("leader")  # gives the test user its password
    with LiveServer(world.app) as server:
        sign_in(page, server.url, "leader")
        for width, height in ((1366, 900), (1920, 1080), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(server.url + "/admin/")
            sizes = page.evaluate(TEXT_SIZES)
            texts = {text for text, _size in sizes}
            assert {"2025年12月", "2026年11月", "市场监督管理局", "100%"} <= texts
            assert min(size for _text, size in sizes) >= 12, sorted(sizes, key=lambda pair: pair[1])[:3]
            assert {"部门", "按时办结率", "满意率"} <= texts  # the department chart's title and legend
            assert page.evaluate(HIDDEN_TEXTS) == []
            assert page.evaluate(FOREIGN_CLIPS) == 0
            page.locator("#report-charts").screenshot(path=str(ARTIFACTS / f"report-charts-{width}.png"))
