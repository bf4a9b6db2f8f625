"""Making a month's report in a real database: hostile names end to end, two at once, and who may keep one.

Every test runs on SQLite and PostgreSQL (the `database_url` fixture behind `world`).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from reports import operations
from reports.metrics import Month
from reports.models import Report
from reports.tasks import SCHEDULE_KEY
from tests.helpers import page_csrf
from tests.sms_support import run_queue
from tests.report_figures import CountingServer, pdf_text, squash
from tests.report_month import MONTH, small_month
from tickets.broker import broker as broker_of
from tickets.db import db
from tickets.schedule import JOBS

URL = f"/api/v1/reports/monthly/{MONTH}"
MARKUP_DEPARTMENT = "规划<b>自然资源局"
SCRIPT_DEPARTMENT = "<script>alert(1)</script>局"
FILE_ITEM = '<img src="/etc/passwd"/>'


def report_rows(app) -> list[Report]:
    """The kept reports, by month (PostgreSQL returns a table's rows in no set order: an updated row moves)."""
    with app.app_context():
        return db.session.scalars(sa.select(Report).order_by(Report.month, Report.id)).all()


def forget_reports(app) -> None:
    with app.app_context():
        db.session.execute(sa.delete(Report))
        db.session.commit()


def run_scheduled_job(world, clock) -> None:
    """The scheduler's tick on the 1st, and a worker doing what it enqueued."""
    broker = broker_of(world.app)
    job = JOBS.get(world.app)[SCHEDULE_KEY]
    assert job(clock.set(2026, 12, 1, 0, 5)) == MONTH
    run_queue(broker, "reports")
    clock.set(2026, 12, 3, 10)


# --- item 6: names with markup, end to end --------------------------------------------------------------

def test_markup_in_names_and_items_reaches_every_report_as_text(world, clock, png_server):
    server, image_url = png_server
    url_item = f'<img src="{image_url}"/>'
    small_month(world, clock, items=(FILE_ITEM, FILE_ITEM, url_item, url_item),
                names={"A": MARKUP_DEPARTMENT, "B": SCRIPT_DEPARTMENT}, to="AAAB")
    expected = (MARKUP_DEPARTMENT, FILE_ITEM, url_item)

    def check(pdf: bytes):
        text = squash(pdf_text(pdf))
        assert all(squash(value) in text for value in expected) and "root:" not in text

    # the API (the office's reading keeps the month's report)
    body = world.get("office", URL).get_json()
    assert body["kept"] is True and MARKUP_DEPARTMENT in [d["name"] for d in body["departments"]]
    check(world.get("office", URL + ".pdf").data)
    # the console, generating it again
    office = world.console("office")
    response = office.post("/admin/reports/generate",
                           data={"month": MONTH, "csrf_token": page_csrf(office, "/admin/reports/")})
    assert response.status_code == 302
    check(office.get(f"/admin/reports/{MONTH}.pdf").data)
    # the scheduled run on the 1st
    forget_reports(world.app)
    run_scheduled_job(world, clock)
    [report] = report_rows(world.app)
    assert report.trigger == "auto"
    check(report.pdf)
    assert server.requests == 0  # no report fetched the image
    # the dashboard's charts (SVG in the page): department names are text, not markup
    home = world.console("leader").get("/admin/").get_data(as_text=True)
    assert 'id="report-charts"' in home and "<script>al" not in home and "&lt;script&gt;al" in home


@pytest.fixture
def png_server(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(tmp_path / "x.png")
    server = CountingServer((tmp_path / "x.png").read_bytes())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_port}/x.png"
    server.shutdown()
    server.server_close()


# --- item 7: two at once ------------------------------------------------------------------------------

@pytest.fixture
def inserts_meet(world):
    """Hold every INSERT of a report until two are about to run: both callers found no report, both insert."""
    barrier = threading.Barrier(2, timeout=60)

    def hold(_connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("INSERT INTO REPORT"):
            barrier.wait()

    with world.app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", hold)
    yield barrier
    sa.event.remove(engine, "before_cursor_execute", hold)


def at_once(*calls):
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


@pytest.mark.slow
def test_two_people_generate_a_new_month_at_once_in_the_console(world, clock, inserts_meet):
    small_month(world, clock)
    clients = [world.console("office"), world.console("admin")]
    tokens = [page_csrf(client, "/admin/reports/") for client in clients]
    responses = at_once(*[
        (lambda c=client, t=token: c.post("/admin/reports/generate", data={"month": MONTH, "csrf_token": t}))
        for client, token in zip(clients, tokens)])
    assert [r.status_code for r in responses] == [302, 302]
    assert inserts_meet.n_waiting == 0 and not inserts_meet.broken  # both did reach the insert together
    [report] = report_rows(world.app)
    assert report.month == MONTH and report.pdf.startswith(b"%PDF")
    for client in clients:  # each was told it is ready
        assert "2026年11月的报告已生成。" in client.get("/admin/reports/").get_data(as_text=True)


@pytest.mark.slow
def test_two_office_readings_of_a_new_month_at_once_keep_one_report(world, clock, inserts_meet):
    small_month(world, clock)
    responses = at_once(lambda: world.get("office", URL), lambda: world.get("admin", URL))
    bodies = [r.get_json() for r in responses]
    assert [r.status_code for r in responses] == [200, 200] and all(b["kept"] for b in bodies)
    assert bodies[0]["generated_at"] == bodies[1]["generated_at"]  # the loser answers with the winner's report
    assert len(report_rows(world.app)) == 1


# --- item 8: leaders and supervisors read, the office and admins keep ----------------------------------

def test_readers_get_a_month_never_generated_without_keeping_it(world, clock):
    small_month(world, clock)
    for who in ("leader", "supervisor"):
        body = world.get(who, URL).get_json()
        assert body["kept"] is False and body["trigger"] is None and body["office"]["accepted"] == 1
        pdf = world.get(who, URL + ".pdf")
        assert pdf.status_code == 200 and pdf.headers["X-Report-Kept"] == "false" and "2026年11月" in pdf_text(pdf.data)
        assert world.console(who).get(f"/admin/reports/{MONTH}.pdf").status_code == 404  # nothing kept to download
    assert report_rows(world.app) == []
    kept = world.get("office", URL).get_json()
    assert kept["kept"] is True and len(report_rows(world.app)) == 1
    again = world.get("leader", URL)
    assert again.get_json()["kept"] is True and again.get_json()["generated_at"] == kept["generated_at"]
    assert world.get("leader", URL + ".pdf").headers["X-Report-Kept"] == "true"


def test_only_the_office_and_admins_generate_in_the_console(world, clock):
    small_month(world, clock)
    for who in ("leader", "supervisor"):
        client = world.console(who)
        page = client.get("/admin/reports/").get_data(as_text=True)
        assert 'id="generate-report"' not in page and "立即生成" not in page
        token = page_csrf(client, "/admin/")  # any page's token: the form is not offered to them
        response = client.post("/admin/reports/generate", data={"month": MONTH, "csrf_token": token})
        assert response.status_code == 403
    assert report_rows(world.app) == []
    for who in ("office", "admin"):
        client = world.console(who)
        page = client.get("/admin/reports/").get_data(as_text=True)
        assert 'id="generate-report"' in page and '<option value="2026-11">2026年11月</option>' in page
        response = client.post("/admin/reports/generate",
                               data={"month": MONTH, "csrf_token": page_csrf(client, "/admin/reports/")})
        assert response.status_code == 302
        assert "2026年11月的报告已生成" in client.get("/admin/reports/").get_data(as_text=True)
    [report] = report_rows(world.app)  # generated twice, kept once (the second replaced the first)
    assert report.trigger == "manual"


# --- the scheduler's job after an outage --------------------------------------------------------------------

def test_the_job_generates_the_months_a_scheduler_outage_missed_oldest_first(world, clock):
    """Down over the first days of September to November, the scheduler comes back on December 2nd: its job makes
    September's, October's and November's reports, one per tick, oldest first, then nothing; a report that was never
    kept (a new deployment) starts with last month only; and it looks back a year at most."""
    small_month(world, clock)
    broker, job = broker_of(world.app), JOBS.get(world.app)[SCHEDULE_KEY]

    def tick(*at):
        month = job(clock.set(*at))
        run_queue(broker, "reports")
        return month

    assert tick(2026, 9, 1, 0, 5) == "2026-08"  # the first report this deployment keeps: last month's only
    assert tick(2026, 9, 1, 0, 6) is None
    assert [tick(2026, 12, 2, 9, minute) for minute in range(5)] == ["2026-09", "2026-10", MONTH, None, None]
    assert [r.month for r in report_rows(world.app)] == ["2026-08", "2026-09", "2026-10", MONTH]
    november = world.get("office", URL).get_json()
    assert november["kept"] and november["office"]["accepted"] == 1  # the month's one case

    forget_reports(world.app)
    with world.app.app_context():  # the only report kept is of March 2024
        operations.get_or_generate(db.session, Month.parse("2024-03"), trigger=operations.MANUAL)
        db.session.commit()
    # at most CATCH_UP_MONTHS back: from December 2025 (the twelfth month before December 2026), not April 2024
    assert tick(2026, 12, 2, 10) == "2025-12"
