"""SMS around the edges: quiet hours and the sweep that sends held messages, the send rate (in memory and
shared through Redis), a real Redis broker, and the console's SMS log, resend page, template editor and
survey results."""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime

import dramatiq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify.models import SmsMessage, SmsTemplate
from notify.ratelimit import LocalRateLimiter, RedisRateLimiter
from tests.helpers import TZ, examples, page_csrf, stop_worker
from tests.sms_support import AUTH_TOKEN, messages, twilio_config
from tests.twilio_server import TwilioTestServer, max_events_in_window, twilio_signature
from tickets.broker import broker as broker_of
from tickets.clock import set_clock
from tickets.db import db
from tickets.schedule import JOBS


def _case(world) -> str:
    tracking_no = world.file()["tracking_no"]
    world.act("office", tracking_no, "accept")
    world.act("office", tracking_no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", tracking_no, "reply", content="已办结。")
    world.act("office", tracking_no, "approve")
    return tracking_no


# --- quiet hours -----------------------------------------------------------------------------------------

def test_a_message_written_at_night_waits_for_the_morning(world, clock):
    clock.set(2026, 11, 16, 22, 30)
    world.file()
    (receipt,) = messages(world.app)
    assert receipt.not_before == datetime(2026, 11, 17, 8, 0, tzinfo=TZ)
    with world.app.app_context():
        from notify import outbox
        assert outbox.deliver(receipt.id) == "held"
        assert outbox.redrive(clock()) == []
        clock.set(2026, 11, 17, 7, 59)
        assert outbox.redrive(clock()) == []
        clock.set(2026, 11, 17, 8, 1)
        assert outbox.redrive(clock()) == [receipt.id]
        assert outbox.deliver(receipt.id) == "sent"
    assert messages(world.app)[0].status == "recorded"  # the default outbox backend records, never sends


def test_a_queued_message_reaching_the_worker_in_quiet_hours_is_held(world, clock):
    world.file()
    (receipt,) = messages(world.app)
    clock.set(2026, 11, 16, 21, 0)
    with world.app.app_context():
        from notify import outbox
        assert outbox.deliver(receipt.id) == "held"
    assert messages(world.app)[0].not_before == datetime(2026, 11, 17, 8, 0, tzinfo=TZ)


def test_the_scheduler_job_re_drives_the_outbox(world):
    assert "sms-outbox" in JOBS.get(world.app)


def test_flask_sms_commands(world, clock):
    world.file()
    runner = world.app.test_cli_runner()
    assert "pending" in runner.invoke(args=["sms", "status"]).output
    clock.advance(minutes=5)
    result = runner.invoke(args=["sms", "redrive", "--now"])
    assert result.exit_code == 0 and "sent: 1" in result.output
    assert "recorded" in runner.invoke(args=["sms", "status"]).output


# --- the send rate ------------------------------------------------------------------------------------

def _burst(limiter, n: int, threads: int = 4) -> list[float]:
    starts, lock = [], threading.Lock()

    def run(count):
        for _ in range(count):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    workers = [threading.Thread(target=run, args=(n // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return starts


@pytest.mark.slow  # sends through the real one-second window
def test_local_rate_limit_holds_in_every_window():
    starts = _burst(LocalRateLimiter(5), 12)
    # the promise is five in any second; the limiter keeps WINDOW_SECONDS (1.1 s) for the jitter between a permit
    # and the moment it is used, which this test's own timestamps have too
    assert len(starts) == 12 and max_events_in_window(starts, 1.0) <= 5


def test_redis_rate_limit_is_shared_by_every_limiter(redis_url):
    limiters = [RedisRateLimiter(5, redis_url, key="banjie:test:rate") for _ in range(3)]
    starts, lock = [], threading.Lock()

    def run(limiter):
        for _ in range(4):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    workers = [threading.Thread(target=run, args=(limiter,)) for limiter in limiters]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for limiter in limiters:
        limiter.client.close()
    assert len(starts) == 12 and max_events_in_window(starts, 1.0) <= 5


# --- a real Redis broker -------------------------------------------------------------------------------

def test_sending_through_a_redis_broker(make_app, redis_url):
    with TwilioTestServer("AC" + "b2" * 16, AUTH_TOKEN) as twilio:
        app = make_app(BROKER_URL=redis_url, **twilio_config(twilio, SMS_RATE_PER_SECOND=50))
        set_clock(app, None)
        broker = broker_of(app)
        worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=2)
        worker.start()
        try:
            with app.app_context():
                from notify import send_sms
                for n in range(5):
                    send_sms(f"+861380013800{n}", "opted_out", {})
                db.session.commit()
            deadline = time.monotonic() + 20
            while len(twilio.messages) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop_worker(worker)
            broker.close()
        assert len(twilio.messages) == 5 and twilio.duplicates() == {}
        assert {m.status for m in messages(app)} == {"sent"}


# --- the console ---------------------------------------------------------------------------------------

def test_sms_log_masks_numbers_hides_query_codes_and_is_for_the_office(world):
    tracking_no = _case(world)
    office = world.console("office")
    page = office.get("/admin/sms/").get_data(as_text=True)
    assert "138****8000" in page and "13800138000" not in page and tracking_no in page
    with world.app.app_context():
        receipt = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.template == "receipt"))
        survey = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.template == "survey"))
    detail = office.get(f"/admin/sms/message/{receipt.id}").get_data(as_text=True)
    code = re.search(r"查询码([0-9A-Z]+)", receipt.body).group(1)
    assert code not in detail and code not in page and "138****8000" in detail
    # a new code (找回查询码) is as secret as the receipt's
    assert world.client.post("/api/v1/tickets/recover-code",
                             json={"tracking_no": tracking_no, "phone": "13800138000"}).status_code == 202
    with world.app.app_context():
        renewed = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.template == "query_code"))
    new_code = re.search(r"新查询码为([0-9A-Z]+)", renewed.body).group(1)
    assert new_code not in office.get(f"/admin/sms/message/{renewed.id}").get_data(as_text=True)
    assert new_code not in office.get("/admin/sms/").get_data(as_text=True)
    assert "回复1非常满意" in office.get(f"/admin/sms/message/{survey.id}").get_data(as_text=True)
    for who in ("dept_a", "supervisor", "leader"):
        assert world.console(who).get("/admin/sms/").status_code == 403
    assert world.client.get("/admin/sms/").status_code == 302


def test_resending_a_failed_message(world):
    world.file()
    with world.app.app_context():
        failed = db.session.scalar(sa.select(SmsMessage))
        failed.status, failed.error_code = "failed", "invalid_number"
        db.session.commit()
        failed_id = failed.id
    office = world.console("office")
    page = office.get(f"/admin/sms/message/{failed_id}").get_data(as_text=True)
    assert "invalid_number" in page and 'id="resend"' in page
    # without the CSRF token: refused
    assert office.post(f"/admin/sms/message/{failed_id}/resend").status_code == 400
    token = page_csrf(office, f"/admin/sms/message/{failed_id}")
    response = office.post(f"/admin/sms/message/{failed_id}/resend", data={"csrf_token": token})
    assert response.status_code == 302
    rows = messages(world.app)
    assert [(m.status, m.resent_from_id) for m in rows] == [("failed", None), ("pending", failed_id)]
    assert rows[1].body == rows[0].body
    # a message that did not fail cannot be resent
    token = page_csrf(office, f"/admin/sms/message/{rows[1].id}")
    office.post(f"/admin/sms/message/{rows[1].id}/resend", data={"csrf_token": token})
    assert len(messages(world.app)) == 2


def test_a_text_that_was_never_to_go_is_not_sent_again(world):
    """A survey text held back because the number opted out (TD/退订), a text failed when its case was anonymised (its
    number is now the case's token), and a failed survey text to a number that opted out since: no 重新发送 button,
    and a post anyway is refused with a message and writes nothing. A case notice to that number may still go again."""
    from notify.models import SmsOptOut
    from tickets import clock

    _case(world)
    with world.app.app_context():
        survey = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.template == "survey"))
        receipt = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.template == "receipt"))
        phone = survey.phone
        survey.status, survey.error_code = "failed", "invalid_number"
        receipt.status, receipt.error_code = "failed", "invalid_number"
        anonymised = SmsMessage(ticket_id=survey.ticket_id, phone="anon-0001", audience="citizen", template="closed",
                                body="x", status="failed", error_code="anonymised")
        db.session.add(anonymised)
        db.session.add(SmsOptOut(phone=phone, number=phone, opted_out_at=clock.now(), source="sms"))
        db.session.commit()
        survey_id, receipt_id, anonymised_id = survey.id, receipt.id, anonymised.id
    world.file()  # a second case: its survey text (after closing) would be written as failed, opted_out
    tracking_no = world.file()["tracking_no"]
    for who, action, body in (("office", "accept", {}), ("office", "transfer", {"department_id": world.departments["A"]}),
                              ("dept_a", "reply", {"content": "已办结。"}), ("office", "approve", {})):
        world.act(who, tracking_no, action, **body)
    opted_out = messages(world.app, template="survey")[-1]
    assert (opted_out.status, opted_out.error_code) == ("failed", "opted_out")
    office = world.console("office")
    before = len(messages(world.app))
    for message_id in (opted_out.id, anonymised_id, survey_id):
        page = office.get(f"/admin/sms/message/{message_id}").get_data(as_text=True)
        assert 'id="resend"' not in page, message_id
        token = page_csrf(office, f"/admin/sms/message/{message_id}")
        response = office.post(f"/admin/sms/message/{message_id}/resend", data={"csrf_token": token},
                               follow_redirects=True)
        assert "不能重新发送" in response.get_data(as_text=True) or "cannot be sent again" in response.get_data(
            as_text=True), message_id
    assert len(messages(world.app)) == before
    assert 'id="resend"' in office.get(f"/admin/sms/message/{receipt_id}").get_data(as_text=True)


def test_template_editor(world):
    admin = world.console("admin")
    listing = admin.get("/admin/sms-templates/").get_data(as_text=True)
    assert "满意度调查" in listing or "Satisfaction survey" in listing
    token = page_csrf(admin, "/admin/sms-templates/receipt")
    bad = admin.post("/admin/sms-templates/receipt", data={"csrf_token": token, "body": "{{ tracking_no "})
    assert bad.status_code == 422
    too_long = admin.post("/admin/sms-templates/receipt", data={"csrf_token": token, "body": "长" * 300})
    assert too_long.status_code == 422
    good = admin.post("/admin/sms-templates/receipt",
                      data={"csrf_token": token, "body": "已收到，编号{{ tracking_no }}，查询码{{ query_code }}。"})
    assert good.status_code == 302
    world.file()
    assert messages(world.app)[-1].body.startswith("【办不成事反映窗口】已收到，编号BJ")
    token = page_csrf(admin, "/admin/sms-templates/receipt")
    assert admin.post("/admin/sms-templates/receipt/reset", data={"csrf_token": token}).status_code == 302
    with world.app.app_context():
        assert db.session.get(SmsTemplate, "receipt") is None
    assert world.console("office").get("/admin/sms-templates/").status_code == 403
    office = world.console("office")
    token = page_csrf(office, "/admin/departments/new/")
    assert office.post("/admin/sms-templates/receipt", data={"body": "x", "csrf_token": token}).status_code == 403


def test_survey_results_in_the_console_and_on_the_case(world):
    tracking_no = _case(world)
    office = world.console("office")
    assert "评价截止" in office.get(f"/admin/case/{tracking_no}").get_data(as_text=True)  # the open round
    world.client.post(f"/api/v1/tickets/{tracking_no}/rating?code=nope", json={"score": 4})  # wrong code: 404
    with world.app.app_context():
        from tickets import workflow
        from tickets.models import Ticket
        ticket = db.session.scalar(sa.select(Ticket))
        workflow.rate(db.session, ticket, 4, "办理太慢了", channel="web")
        db.session.commit()
    surveys = office.get("/admin/surveys/").get_data(as_text=True)
    assert tracking_no in surveys and "不满意" in surveys
    case = office.get(f"/admin/case/{tracking_no}").get_data(as_text=True)
    assert 'id="surveys"' in case and "办理太慢了" in case and 'id="case-sms"' in case
    assert 'action="/admin/case/' + tracking_no + '/record_visit"' in case
    handler = world.console("dept_a").get(f"/admin/case/{tracking_no}").get_data(as_text=True)
    assert 'id="surveys"' in handler and 'id="case-sms"' not in handler
    assert world.console("dept_a").get("/admin/surveys/").status_code == 403


def test_return_visit_from_the_console_form(world):
    tracking_no = _case(world)
    with world.app.app_context():
        from tickets import workflow
        from tickets.models import Ticket
        workflow.rate(db.session, db.session.scalar(sa.select(Ticket)), 5, channel="web")
        db.session.commit()
    office = world.console("office")
    token = page_csrf(office, f"/admin/case/{tracking_no}")
    version = world.ticket("office", tracking_no)["version"]
    bad = office.post(f"/admin/case/{tracking_no}/record_visit",
                      data={"csrf_token": token, "version": version, "visited_on": "2026-13-01", "contacted": "yes",
                            "outcome": "已回访"})
    assert bad.status_code == 422 and "请按 YYYY-MM-DD 格式填写日期。" in bad.get_data(as_text=True)
    ok = office.post(f"/admin/case/{tracking_no}/record_visit",
                     data={"csrf_token": token, "version": version, "visited_on": "2026-11-16", "contacted": "no",
                           "outcome": "两次致电未接通，已发短信说明整改安排。"})
    assert ok.status_code == 302
    page = office.get(f"/admin/case/{tracking_no}").get_data(as_text=True)
    assert "两次致电未接通" in page


# --- bad input on the webhooks ----------------------------------------------------------------------------

@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(max_size=200), sender=st.text(max_size=30), sid=st.text(max_size=80))
def test_any_signed_inbound_text_is_answered_without_error(world, body, sender, sid):
    params = {"MessageSid": sid, "From": sender, "Body": body}
    if any("\x00" in v for v in params.values()):
        return
    signature = twilio_signature("http://localhost/sms/inbound", params, AUTH_TOKEN)
    world.app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    response = world.client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
