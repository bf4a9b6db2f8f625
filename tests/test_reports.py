"""Monthly reports delivered: the PDF read back, the API (roles, bad months, JSON), the CLI, the console, the scheduler."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from reports import fonts, metrics, operations
from reports.formulas import FORMULA_VERSION
from reports.models import Report
from reports.tasks import SCHEDULE_KEY
from tests.helpers import ids_given_twice, page_csrf
from tests.sms_support import run_queue
from tests.report_month import A_NAME, B_NAME, MONTH, build_month
from tickets.broker import broker as broker_of
from tickets.db import db
from tickets.models import User
from tickets.schedule import JOBS

URL = f"/api/v1/reports/monthly/{MONTH}"


@pytest.fixture
def november(world, clock):
    return build_month(world, clock)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdf_has_chinese_headline_figures_and_departments(world, november):
    response = world.get("leader", URL + ".pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    for expected in ("2026年11月", "办结率", "71.4%", "按时办结率", "83.3%", "满意率", "50.0%", A_NAME, B_NAME,
                     "全窗口合计", "办不成事反映窗口", "第 1 页", "超期", november["T6"]["tracking_no"], "营业执照变更",
                     "附录", FORMULA_VERSION, "2025年12月", "部门排名（按综合得分）",
                     "本月无案件，不参与排名：住房和城乡建设局。"):
        assert expected in text, expected
    # the month's overdue figure (T4 answered late, T6) and the one case still overdue at its end (T6), explained
    flat = "".join(text.split())
    assert "共1件，含本月以前到期的。「超期数」（2件）口径不同" in flat
    assert len(PdfReader(io.BytesIO(response.data)).pages) >= 3


def test_an_empty_month_still_makes_a_report(world, clock):
    clock.set(2026, 12, 3, 10)
    response = world.get("leader", "/api/v1/reports/monthly/2026-10.pdf")
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert "本期无数据" in text and "全窗口合计" in text and "月末无超期案件" in text


def test_api_json_roles_and_bad_months(world, november):
    body = world.get("office", URL).get_json()
    assert body["formula_version"] == metrics.FORMULA_VERSION and body["month"] == MONTH
    assert body["office"]["closure_rate"] == 0.7143 and body["office"]["accepted"] == 7
    assert {"departments", "trend", "overdue", "escalations", "formulas", "generated_at"} <= set(body)
    assert len(body["trend"]) == 12
    for who in ("admin", "supervisor", "leader"):
        assert world.get(who, URL).status_code == 200
    assert world.get("dept_a", URL).get_json()["error"]["code"] == "forbidden"
    assert world.get(None, URL).status_code == 401
    for bad, status in (("2026-13", 422), ("2026-1", 422), ("november", 422), ("2026-12", 404), ("2030-01", 404)):
        response = world.get("office", f"/api/v1/reports/monthly/{bad}")
        assert response.status_code == status, bad
        assert "error" in response.get_json()
    assert world.get("office", "/api/v1/reports/monthly/2026-13.pdf").status_code == 422
    with world.app.app_context():  # asked twice, generated once and kept
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 1


def test_cli_writes_the_pdf_and_keeps_the_report(world, november, tmp_path):
    runner = world.app.test_cli_runner()
    out = tmp_path / "report.pdf"
    result = runner.invoke(args=["report", "monthly", MONTH, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "71.4%" in result.output and out.read_bytes().startswith(b"%PDF")
    assert B_NAME in pdf_text(out.read_bytes())
    bad = runner.invoke(args=["report", "monthly", "2026-13", "-o", str(out)])
    assert bad.exit_code != 0 and "YYYY-MM" in bad.output


def test_console_reports_page_generates_and_downloads(world, november):
    client = world.console("office")
    assert world.console("dept_a").get("/admin/reports/").status_code == 403
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert "2026年11月" in page and "尚未生成任何报告" in page
    assert client.post("/admin/reports/generate", data={"month": MONTH}).status_code == 400  # no CSRF token
    token = page_csrf(client, "/admin/reports/")
    response = client.post("/admin/reports/generate", data={"month": MONTH, "csrf_token": token})
    assert response.status_code == 302
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert "71.4%" in page and f"/admin/reports/{MONTH}.pdf" in page and "<td>2026年11月</td>" in page
    leader = world.console("leader")  # leaders read what the office generated
    download = leader.get(f"/admin/reports/{MONTH}.pdf")
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    # the dashboard shows last month's charts from the kept report; a department handler sees none
    home = leader.get("/admin/").get_data(as_text=True)
    assert 'id="report-charts"' in home and "<svg" in home and "71.4%" in home and "上月（2026年11月）" in home
    assert home.count("<svg") == 2 and ids_given_twice(home) == set()  # each chart clipped to its own rectangle
    # in fonts a browser knows (ReportLab's own name for the font, unknown to it, drew English pages in a serif)
    families = set(re.findall(r'font-family="([^"]*)"', home.split('id="report-charts"')[1]))
    assert families and all(f.endswith(", sans-serif") and "Banjie-" not in f for f in families), families
    assert 'id="report-charts"' not in world.console("dept_a").get("/admin/").get_data(as_text=True)


def test_scheduler_job_generates_a_draft_once_and_publishing_tells_the_leaders(world, november, clock):
    from notify.models import SmsMessage

    app = world.app
    with app.app_context():
        leader = db.session.get(User, world.users["leader"])
        leader.phone = "+8613900000009"
        db.session.commit()
    job = JOBS.get(app)[SCHEDULE_KEY]
    broker = broker_of(app)
    # five minutes before the 1st, November is not over: the month asked for is October
    assert job(clock.set(2026, 11, 30, 23, 55)) == "2026-10"
    broker.flush_all()
    assert job(clock.set(2026, 12, 1, 0, 5)) == MONTH  # just after midnight on the 1st, local time
    assert job(clock.now) is None  # enqueued already: not again while the worker runs
    run_queue(broker, "reports")
    with app.app_context():
        report = db.session.scalar(sa.select(Report))
        assert (report.month, report.trigger, report.status) == (MONTH, "auto", "draft")
        ready = sa.select(SmsMessage).where(SmsMessage.template == "report_ready")
        assert db.session.scalars(ready).all() == []  # a draft: nobody is told yet
        operations.publish(db.session, metrics.Month.parse(MONTH), user_id=world.users["office"])
        db.session.commit()
        sms = db.session.scalars(ready).all()
        assert [(m.phone, m.audience) for m in sms] == [("+8613900000009", "leader")]
        assert "2026年11月办结情况通报已发布，办结率71.4%" in sms[0].body
    job.enqueued.clear()
    assert job(clock.now) is None  # the report exists: nothing to do, however often the scheduler ticks
    assert broker.queues["reports"].qsize() == 0


def test_fonts_embed_a_configured_truetype_and_refuse_what_cannot_be_embedded(tmp_path):
    not_a_font = tmp_path / "x.ttf"
    not_a_font.write_bytes(b"nope")
    assert fonts._load(str(not_a_font)) is None
    cff = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"  # OpenType/CFF: ReportLab cannot embed it
    assert fonts._load(cff) is None
    dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not Path(dejavu).exists():
        pytest.skip("no TrueType font to embed on this machine")
    assert fonts.register(dejavu) == "Banjie-DejaVuSans"


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_the_report_plans_every_query_for_its_own_month(world, clock):
    """The report's transaction never runs a generic plan: the trend's cohort query, the same statement for twelve
    months in a row (psycopg prepares it after its fifth run), once ran one county's month for minutes with the plan
    PostgreSQL kept (tests/bench/README.md). Each run is planned with its own month's bounds."""
    from reports.figures import monthly_figures
    from tickets import offices

    clock.set(2026, 12, 3, 10)
    with world.app.app_context():
        monthly_figures(db.session, metrics.Month.parse("2026-11"), offices.root_id(db.session))
        settings = dict(db.session.execute(sa.text(
            "SELECT name, setting FROM pg_settings WHERE name IN ('plan_cache_mode', 'random_page_cost')")).all())
        db.session.rollback()
        after = db.session.scalar(sa.text("SHOW plan_cache_mode"))
    assert settings == {"plan_cache_mode": "force_custom_plan", "random_page_cost": "1.1"}
    assert after == "auto"  # SET LOCAL: the connection goes back to the pool as it was
