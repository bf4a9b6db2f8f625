"""受理渠道 in the monthly figures (issue 15, item 5): the month's accepted cases by how they came in (网上, 窗口, 电话,
12345), per department, per window and for the office, in the JSON, the PDF and the console; and a case a window files
for a walk-in or a caller gets the same texts as one filed online."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
import sqlalchemy as sa

from notify.models import SmsMessage
from reports import fonts, metrics, narrative
from reports.figures import monthly_figures
from reports.formulas import ACCEPTED_BY_CHANNEL, CHANNEL_COUNTS, FORMULA_BY_KEY, FORMULA_VERSION
from tests.helpers import TZ, csrf_of, file_by_form
from tests.report_figures import figures_with, pdf_pages, pdf_text, squash
from tickets.db import db
from tickets.models import Channel, Ticket

MONTH = "2026-11"


def test_every_channel_is_counted_in_exactly_one_figure_with_its_formula():
    counted = [channel for _key, channels in ACCEPTED_BY_CHANNEL for channel in channels]
    # none missed, none twice; a 主动治理 case is the office's own task, not a citizen's report: in no figure
    assert sorted(counted) == sorted(c.value for c in Channel if c != Channel.proactive)
    assert metrics.CITIZEN_CASES.compare(Ticket.channel != Channel.proactive.value)
    assert CHANNEL_COUNTS == ("accepted_online", "accepted_window", "accepted_phone", "accepted_hotline")
    for key in CHANNEL_COUNTS:
        assert key in metrics.COUNTS and FORMULA_BY_KEY[key].definition and not FORMULA_BY_KEY[key].rate
    assert FORMULA_VERSION == "2026.7"


def intake(world, client, channel: str, phone: str = "139 1234 5678", **more) -> str:
    """File for a walk-in or a caller from the console; the tracking number."""
    page = client.get("/admin/intake/").get_data(as_text=True)
    response = client.post("/admin/intake/", data={
        "name": "王五", "phone": phone, "problem_type": "too_slow", "channel": channel,
        "description": f"{channel} 登记的案件。", "csrf_token": csrf_of(page), **more})
    assert response.status_code == 303, response.get_data(as_text=True)
    receipt = client.get("/admin/intake/filed").get_data(as_text=True)
    return re.search(r'id="tracking-no">([^<]+)<', receipt).group(1)


@pytest.fixture
def november(world, clock):
    """Filed and accepted in November 2026 (the clock starts on Monday the 16th):
    api (A), web by the public form (B), and by the office's staff: window (A), phone with a landline (not
    transferred), hotline (A), web (B); a phone case rejected and a hotline case withdrawn count nowhere."""
    office = world.console("office")
    A, B = world.departments["A"], world.departments["B"]
    cases = {"api": world.file()["tracking_no"]}
    file_by_form(world.client)
    with world.app.app_context():
        cases["web"] = db.session.scalar(sa.select(Ticket.tracking_no).where(Ticket.channel == "web"))
    cases["window"] = intake(world, office, "window")
    cases["phone"] = intake(world, office, "phone", phone="010-6512 3456")
    cases["hotline"] = intake(world, office, "hotline")
    cases["staff_web"] = intake(world, office, "web")
    rejected = intake(world, office, "phone")
    withdrawn = world.file()
    for name, department in (("api", A), ("web", B), ("window", A), ("phone", None), ("hotline", A),
                             ("staff_web", B)):
        world.act("office", cases[name], "accept")
        if department is not None:
            world.act("office", cases[name], "transfer", department_id=department)
    world.act("office", rejected, "reject", reason="属于民事纠纷。")
    world.client.post(f"/api/v1/tickets/{withdrawn['tracking_no']}/withdraw?code={withdrawn['query_code']}", json={})
    clock.set(2026, 12, 3, 10)
    return cases


def test_the_months_cases_by_channel_for_the_office_its_departments_and_the_json(world, november):
    with world.app.app_context():
        figures = monthly_figures(db.session, metrics.Month.parse(MONTH))
    office = figures["office"]
    assert figures["formula_version"] == "2026.7"
    assert {key: office[key] for key in ("accepted", *CHANNEL_COUNTS)} == {
        "accepted": 6, "accepted_online": 3, "accepted_window": 1, "accepted_phone": 1, "accepted_hotline": 1}
    assert sum(office[key] for key in CHANNEL_COUNTS) == office["accepted"]
    rows = {row["name"]: row for row in figures["departments"]}
    a, b = rows["市场监督管理局"], rows["人力资源和社会保障局"]
    assert [a[k] for k in CHANNEL_COUNTS] == [1, 1, 0, 1] and [b[k] for k in CHANNEL_COUNTS] == [2, 0, 0, 0]
    assert [figures["unassigned"][k] for k in CHANNEL_COUNTS] == [0, 0, 1, 0]  # the landline caller's, not transferred
    assert [figures["own"][k] for k in CHANNEL_COUNTS] == [3, 1, 1, 1]  # one window: every case is its own
    # the API's JSON carries them, with their formulas
    body = world.get("office", f"/api/v1/reports/monthly/{MONTH}").get_json()
    assert body["formula_version"] == "2026.7"
    assert [body["office"][k] for k in CHANNEL_COUNTS] == [3, 1, 1, 1]
    formulas = {f["key"]: f for f in body["formulas"]}
    assert set(CHANNEL_COUNTS) <= set(formulas) and "帮办代办" in formulas["accepted_window"]["definition"]


def test_the_pdf_shows_the_channels_on_the_first_page_and_in_a_table(world, november):
    response = world.get("office", f"/api/v1/reports/monthly/{MONTH}.pdf")
    assert response.status_code == 200
    flat = squash(pdf_text(response.data))
    # 总体情况 on the first page says it in a sentence; a table by department follows, with the office total
    first = squash(pdf_pages(response.data)[0])
    assert "按受理渠道：网上3件，窗口1件，电话1件，12345热线1件" in first
    assert "受理渠道" in flat and "受理数（网上）" in flat and "受理数（12345）" in flat
    table = flat.split("受理渠道")[-1]
    assert re.search(r"市场监督管理局1101(3)", table) and re.search(r"全窗口合计31116", table), table[:400]


def test_a_report_kept_before_the_channels_still_renders_without_them(app):
    from reports.pdf import build_pdf

    figures = figures_with()
    for row in [figures["office"], figures["unassigned"], *figures["departments"]]:
        for key in CHANNEL_COUNTS:
            row.pop(key, None)
    figures["formula_version"] = "2026.3"
    with app.app_context():
        data = build_pdf(figures, office="办不成事反映窗口", generated_at=datetime(2026, 12, 1, 0, 5, tzinfo=TZ), tz=TZ,
                         font=fonts.register())
    text = squash(pdf_text(data))
    assert "部门排名" in text and "全窗口合计" in text
    assert "受理渠道" not in text  # neither the sentence nor the table (the month's figures show — for them)
    assert narrative.channels(figures["office"]) is None


def test_the_console_shows_the_channels_of_a_kept_report(world, november):
    client = world.console("office")
    world.get("office", f"/api/v1/reports/monthly/{MONTH}")  # the office's first reading keeps the month
    page = client.get("/admin/reports/?lang=en").get_data(as_text=True)
    cell = re.search(r'<td class="report-channels small">(.*?)</td>', page, re.S).group(1)
    assert re.sub(r"\s+", " ", cell) == "Online 3 · Walk-in at the window 1 · Phone call 1 · 12345 hotline 1"


# --- 帮办代办: a case filed by a window for a walk-in or a caller is texted like any other ----------------------------

@pytest.mark.parametrize("channel", ["window", "phone", "hotline"])
def test_a_case_filed_by_staff_for_a_mobile_gets_the_receipt_the_updates_and_the_survey(world, channel):
    office = world.console("office")
    no = intake(world, office, channel, phone="139 1234 5678")
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已为您办理完毕。")
    world.act("office", no, "approve")
    with world.app.app_context():
        texts = list(db.session.scalars(sa.select(SmsMessage).order_by(SmsMessage.id)))
    assert [(m.template, m.phone, m.audience) for m in texts] == [
        (template, "+8613912345678", "citizen") for template in ("receipt", "transferred", "closed", "survey")]
    assert no in texts[0].body and "回复1非常满意" in texts[-1].body
