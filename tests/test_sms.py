"""The SMS room end to end: outbox rows written with the change, sent after the commit by a worker through
the real twilio SDK to a Twilio-compatible test server, retries, permanent failures, delivery callbacks,
survey replies by SMS, opt-outs, and the 差评 loop. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from notify.models import InboundSms, SmsMessage, SmsOptOut
from notify.state import ENQUEUE
from tests.sms_support import AUTH_TOKEN, drain, messages, served, twilio_config
from tests.twilio_server import twilio_signature
from tickets.broker import broker as broker_of
from tickets.clock import set_clock
from tickets.db import db
from tickets.models import ReturnVisit, Survey, Ticket

CITIZEN = "+8613800138000"
SUPERVISOR = "+8613900000001"


@pytest.fixture
def app(make_app, twilio):
    app = make_app(**twilio_config(twilio, TWILIO_TIMEOUT_SECONDS=0.5))
    set_clock(app, None)  # retries wait real seconds: the outbox must see them pass
    return app


def close_case(world, **filing) -> str:
    tracking_no = world.file(**filing)["tracking_no"]
    world.act("office", tracking_no, "accept")
    world.act("office", tracking_no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", tracking_no, "reply", content="已为您办理完毕，营业执照已变更。")
    world.act("office", tracking_no, "approve")
    return tracking_no


def inbound(world, body, *, sid, phone="+8613800138000", token=AUTH_TOKEN, signature=None):
    params = {"MessageSid": sid, "From": phone, "To": "+15005550006", "Body": body, "AccountSid": "AC"}
    url = "http://localhost/sms/inbound"
    headers = {"X-Twilio-Signature": signature if signature is not None else twilio_signature(url, params, token)}
    return world.client.post("/sms/inbound", data=params, headers=headers)


# --- the loop's messages, sent after the commit --------------------------------------------------------

def test_each_step_of_the_loop_texts_the_citizen_and_twilio_gets_each_once(world, twilio):
    tracking_no = close_case(world)
    rows = messages(world.app)
    assert [m.template for m in rows] == ["receipt", "transferred", "closed", "survey"]
    assert all(m.status == "pending" for m in rows)  # written with the change, nothing sent inside the request
    drain(world.app)
    rows = messages(world.app)
    assert all(m.status == "sent" and m.provider_sid.startswith("SM") for m in rows), [(m.status, m.error_code) for m in rows]
    sent = {m["sid"]: m for m in twilio.messages}
    assert [sent[m.provider_sid]["body"] for m in rows] == [m.body for m in rows]  # each row is its own message
    assert {m["to"] for m in twilio.messages} == {CITIZEN} and len(sent) == 4
    receipt, transferred, closed, survey = (m.body for m in rows)
    assert receipt.startswith("【办不成事反映窗口】") and tracking_no in receipt and "查询码" in receipt
    assert "市场监督管理局" in transferred
    assert "营业执照已变更" in closed
    assert "回复1非常满意 2满意 3基本满意 4不满意 5非常不满意" in survey
    assert twilio.duplicates() == {}


def test_a_refused_action_writes_no_message(world):
    tracking_no = world.file()["tracking_no"]
    world.act("office", tracking_no, "reject", expect=422)  # no reason given
    assert [m.template for m in messages(world.app)] == ["receipt"]


def test_rejection_tells_the_reason(world):
    tracking_no = world.file()["tracking_no"]
    world.act("office", tracking_no, "reject", reason="属于涉法涉诉信访，请通过司法途径解决。")
    assert "涉法涉诉" in messages(world.app, template="rejected")[0].body


def test_delivery_callbacks_mark_messages_delivered(make_app, twilio):
    app = make_app(**twilio_config(twilio))
    set_clock(app, None)
    with served(app) as base_url:
        app.config["PUBLIC_BASE_URL"] = base_url
        twilio.undeliverable.add("+8613700000303")
        with app.app_context():
            from notify import send_sms
            send_sms(CITIZEN, "opted_out", {})
            send_sms("+8613700000303", "opted_out", {})
            db.session.commit()
        drain(app)
        twilio.wait_for_callbacks(4, timeout=10)
    assert [c["status"] for c in twilio.callbacks] == [200, 200, 200, 200]
    delivered, lost = messages(app)
    assert delivered.status == "delivered" and delivered.status_at is not None
    assert lost.status == "undelivered" and lost.error_code == "30003"


def test_a_late_callback_never_moves_a_status_back(world):
    with world.app.app_context():
        from notify.models import SmsStatus
        from notify.outbox import record_provider_status

        message = SmsMessage(phone=CITIZEN, audience="citizen", template="opted_out", body="x", status="sent",
                             provider_sid="SM1")
        db.session.add(message)
        db.session.commit()
        assert record_provider_status("SM1", SmsStatus.delivered, message.created_at)
        assert not record_provider_status("SM1", SmsStatus.sent, message.created_at)
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(SmsMessage, message.id).status == "delivered"


# --- failures ---------------------------------------------------------------------------------------

@pytest.mark.slow  # real backoff between retries
def test_rate_limited_and_server_errors_are_retried_with_backoff(world, twilio):
    twilio.fail_next(1, status=429)
    twilio.fail_next(1, status=503)
    world.file()
    drain(world.app)
    (receipt,) = messages(world.app)
    assert receipt.status == "sent" and receipt.attempts == 3
    assert len(twilio.messages) == 1 and [r["status"] for r in twilio.requests] == [429, 503, 201]


def test_invalid_numbers_fail_at_once_and_show_why(world, twilio):
    twilio.invalid_numbers.add(CITIZEN)
    world.file()
    drain(world.app)
    (receipt,) = messages(world.app)
    assert (receipt.status, receipt.error_code, receipt.attempts) == ("failed", "invalid_number", 1)
    assert len(twilio.requests) == 1
    # Twilio's own words name the number: kept and shown masked, as the number is everywhere in the console
    assert "number *** is not a valid" in receipt.error_message and "13800138000" not in receipt.error_message
    page = world.console("office").get(f"/admin/sms/message/{receipt.id}").get_data(as_text=True)
    assert "138****8000" in page and "13800138000" not in page


@pytest.mark.slow  # a real request timeout
def test_a_timeout_after_the_provider_accepted_does_not_send_twice(world, twilio):
    twilio.delay_next(1, seconds=1.5, record_first=True)  # accepted, but the answer comes after our 0.5 s timeout
    world.file()
    drain(world.app)
    (receipt,) = messages(world.app)
    assert receipt.status == "sent" and receipt.provider_sid == twilio.messages[0]["sid"]
    assert len(twilio.messages) == 1 and len(twilio.requests) == 1


@pytest.mark.slow  # a real request timeout, then backoff
def test_a_failed_look_at_the_provider_leaves_the_text_for_another_look(world, twilio):
    """After a timeout the next attempt first asks the provider whether the text got through; when that question
    fails too, the text is neither sent blind nor lost: a later attempt asks again and adopts the one sent."""
    twilio.delay_next(1, seconds=1.5, record_first=True)  # accepted, but the answer comes after our 0.5 s timeout
    twilio.fail_list_next(1, status=500)                  # and the look that follows gets a server error
    world.file()
    drain(world.app)
    (receipt,) = messages(world.app)
    assert receipt.status == "sent" and receipt.provider_sid == twilio.messages[0]["sid"]
    assert len(twilio.messages) == 1 and len(twilio.requests) == 1 and receipt.attempts == 3


@pytest.mark.slow  # a real request timeout and a retry
def test_a_timeout_before_the_provider_accepted_sends_once_on_retry(world, twilio):
    twilio.delay_next(1, seconds=1.5, record_first=False)
    world.file()
    drain(world.app)
    (receipt,) = messages(world.app)
    assert receipt.status == "sent" and receipt.attempts == 2
    assert len(twilio.messages) == 1


@pytest.mark.slow  # real backoff between attempts
def test_giving_up_after_the_configured_attempts(world, twilio):
    world.app.config["SMS_MAX_ATTEMPTS"] = 2
    twilio.fail_next(5, status=500)
    world.file()
    drain(world.app)
    (receipt,) = messages(world.app)
    assert receipt.status == "failed" and receipt.attempts == 2 and "gave up" in receipt.error_message


def test_a_broker_outage_loses_nothing_and_the_sweep_sends_it(world, twilio):
    ENQUEUE.set(world.app, lambda message_id: (_ for _ in ()).throw(ConnectionError("down")))
    world.file()
    (receipt,) = messages(world.app)
    assert receipt.status == "pending"
    with world.app.app_context():
        from notify import outbox
        from tickets import clock
        assert outbox.redrive(clock.now() + timedelta(minutes=1)) == [receipt.id]
        assert outbox.deliver(receipt.id) == "sent"
        assert outbox.deliver(receipt.id) == "done"  # a second copy of the task does nothing
    assert len(twilio.messages) == 1


def test_two_workers_given_the_same_row_send_it_once(world, twilio):
    ENQUEUE.set(world.app, lambda message_id: None)
    world.file()
    (receipt,) = messages(world.app)
    tasks = broker_of(world.app).get_actor("deliver_sms")
    for _ in range(4):
        tasks.send(receipt.id)
    drain(world.app)
    assert len(twilio.messages) == 1


# --- survey replies by SMS ---------------------------------------------------------------------------

@pytest.mark.parametrize("body, score", [("1", 1), ("２", 2), ("基本满意", 3), (" 满意。", 2), ("5", 5),
                                         ("非常不满意", 5), ("４", 4)])
def test_signed_replies_rate_the_newest_open_survey(world, body, score):
    tracking_no = close_case(world)
    response = inbound(world, body, sid=f"SM-in-{score}")
    assert response.status_code == 200 and response.mimetype in ("application/xml", "text/xml")
    with world.app.app_context():
        survey = db.session.scalar(sa.select(Survey))
        assert (survey.score, survey.channel) == (score, "sms")
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
        assert ticket.status == ("rectifying" if score >= 4 else "closed")
    assert messages(world.app)[-1].template == ("survey_thanks_bad" if score >= 4 else "survey_thanks")


@pytest.mark.parametrize("signature", ["", "forged-signature", None])
def test_unsigned_or_forged_webhooks_are_refused(world, signature):
    close_case(world)
    if signature is None:  # signed, but with another account's token
        response = inbound(world, "1", sid="SM-x", token="someone-elses-token")
    else:
        response = inbound(world, "1", sid="SM-x", signature=signature)
    assert response.status_code == 403
    status = world.client.post("/sms/status", data={"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert status.status_code == 403
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) is None


def test_webhooks_refuse_everything_when_no_auth_token_is_configured(world):
    world.app.config["TWILIO_AUTH_TOKEN"] = ""
    assert inbound(world, "1", sid="SM-x", token="").status_code == 403


def test_a_webhook_delivered_twice_acts_once(world):
    close_case(world)
    assert inbound(world, "hello", sid="SM-dup").status_code == 200
    assert inbound(world, "hello", sid="SM-dup").status_code == 200
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(InboundSms)) == 1
    assert len(messages(world.app, template="survey_unclear")) == 1


def test_an_unclear_reply_is_asked_once_and_never_guessed(world):
    close_case(world)
    for n, body in enumerate(["还行", "嗯嗯", "4满意"]):
        inbound(world, body, sid=f"SM-u{n}")
    assert len(messages(world.app, template="survey_unclear")) == 1
    inbound(world, "3", sid="SM-u9")
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) == 3
        outcomes = list(db.session.scalars(sa.select(InboundSms.outcome).order_by(InboundSms.id)))
    assert outcomes == ["unclear", "unclear", "unclear", "rated"]


def test_replies_from_unknown_numbers_change_nothing_and_get_no_answer(world):
    close_case(world)
    before = len(messages(world.app))
    assert inbound(world, "5", sid="SM-stranger", phone="+8613511112222").status_code == 200
    assert inbound(world, "5", sid="SM-abroad", phone="+14155550100").status_code == 200
    assert len(messages(world.app)) == before
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) is None


def test_two_open_surveys_on_one_number_the_newest_is_rated(world):
    first = close_case(world)
    second = close_case(world)
    inbound(world, "2", sid="SM-two")
    with world.app.app_context():
        rated = dict(db.session.execute(sa.select(Ticket.tracking_no, Survey.score).join(Ticket)).all())
    assert rated == {first: None, second: 2}


def test_a_reply_after_the_survey_closed_is_told_so_once(world):
    close_case(world)
    with world.app.app_context():
        survey = db.session.scalar(sa.select(Survey))
        survey.closes_at = survey.opened_at  # the three days are over
        db.session.commit()
    inbound(world, "1", sid="SM-late-1")
    inbound(world, "1", sid="SM-late-2")
    assert len(messages(world.app, template="survey_closed")) == 1
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) is None


def test_a_second_rating_of_the_same_round_is_not_taken(world):
    close_case(world)
    inbound(world, "1", sid="SM-r1")
    inbound(world, "5", sid="SM-r2")
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) == 1


@pytest.mark.parametrize("body", ["TD", "退订", "td"])
def test_opting_out_stops_surveys_but_not_case_notices(world, body):
    close_case(world)
    inbound(world, body, sid="SM-td")
    inbound(world, body, sid="SM-td-again")
    assert len(messages(world.app, template="opted_out")) == 1
    close_case(world)
    survey = messages(world.app, template="survey")[-1]
    assert (survey.status, survey.error_code) == ("failed", "opted_out")
    assert messages(world.app, template="closed")[-1].status == "pending"
    with world.app.app_context():
        assert db.session.get(SmsOptOut, CITIZEN) is not None


def _claim_after_staff_acted(monkeypatch, times: int | None = None) -> None:
    """A staff action commits on the case between the reply reading it and the rating claiming it (the first `times`
    claims, or all): the case's version has moved on, and `claim` raises Conflict."""
    import tickets.workflow.survey as survey_module

    real_claim, raced = survey_module.claim, []

    def claim(session, ticket, now):
        if times is None or len(raced) < times:
            raced.append(True)
            session.execute(sa.text("UPDATE ticket SET version = version + 1 WHERE id = :id"), {"id": ticket.id})
        return real_claim(session, ticket, now)

    monkeypatch.setattr(survey_module, "claim", claim)


def test_a_reply_that_keeps_meeting_staff_actions_keeps_nothing_and_the_survey_stays_open(world, monkeypatch):
    """The round is claimed before the case: a rating the case then refuses (409) must give the round back, or the
    survey stays taken and unscored for ever (no reply can rate it, the closing sweep never defaults it)."""
    close_case(world)
    _claim_after_staff_acted(monkeypatch)
    assert inbound(world, "2", sid="SM-busy").status_code == 200
    with world.app.app_context():
        survey = db.session.scalar(sa.select(Survey))
        assert (survey.rated_at, survey.score, survey.channel) == (None, None, None)
        assert db.session.scalar(sa.select(InboundSms.outcome)) == "conflict"
    assert [m.template for m in messages(world.app) if m.template.startswith("survey_")] == []
    monkeypatch.undo()
    inbound(world, "2", sid="SM-again")  # the citizen tries again: the round is still theirs to rate
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) == 2
    assert messages(world.app)[-1].template == "survey_thanks"


def test_a_reply_that_met_one_staff_action_is_rated_on_the_case_as_it_is_now(world, monkeypatch):
    tracking_no = close_case(world)
    _claim_after_staff_acted(monkeypatch, times=1)
    inbound(world, "4", sid="SM-once")
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) == 4
        assert db.session.scalar(sa.select(InboundSms.outcome)) == "rated"
    assert world.ticket("office", tracking_no)["status"] == "rectifying"
    assert [m.template for m in messages(world.app)][-2:] == ["bad_rating_supervisor", "survey_thanks_bad"]


def test_a_rating_refused_after_it_was_applied_leaves_no_trace(world, monkeypatch):
    """A Conflict after the rating was written (as a merged case's 差评 meets the case it joined being claimed by
    someone else, `merging.reopen_for_joined_rating`): the score, the reopening, the supervisor's text all go."""
    import tickets.workflow.survey as survey_module
    from tickets.errors import Conflict

    tracking_no = close_case(world)
    real_apply = survey_module.apply_rating

    def apply_then_conflict(*args, **kwargs):
        real_apply(*args, **kwargs)
        raise Conflict()

    monkeypatch.setattr(survey_module, "apply_rating", apply_then_conflict)
    inbound(world, "5", sid="SM-joined")
    with world.app.app_context():
        survey = db.session.scalar(sa.select(Survey))
        assert (survey.rated_at, survey.score) == (None, None)
    assert world.ticket("office", tracking_no)["status"] == "closed"
    assert not [m for m in messages(world.app) if m.template in ("bad_rating_supervisor", "survey_thanks_bad")]


def test_every_text_is_chinese_whatever_language_the_request_speaks(world):
    """The thanks for an SMS rating (Twilio's webhook may carry any Accept-Language) and the supervisor's 差评 text
    (written while an English-speaking citizen rates on the web) read their labels in Chinese, as every text does."""
    english = {"Accept-Language": "en-US,en;q=0.9"}
    close_case(world)
    params = {"MessageSid": "SM-en", "From": CITIZEN, "To": "+15005550006", "Body": "2", "AccountSid": "AC"}
    signature = twilio_signature("http://localhost/sms/inbound", params, AUTH_TOKEN)
    world.client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signature, **english})
    (thanks,) = messages(world.app, template="survey_thanks")
    assert "（满意）" in thanks.body and "Satisfied" not in thanks.body, thanks.body
    filed = world.file(phone="13800138001")
    for who, action, body in (("office", "accept", {}), ("office", "transfer", {"department_id": world.departments["A"]}),
                              ("dept_a", "reply", {"content": "已办结。"}), ("office", "approve", {})):
        world.act(who, filed["tracking_no"], action, **body)
    response = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                                 json={"score": 4}, headers=english)
    assert response.status_code == 200, response.get_json()
    (alert,) = messages(world.app, template="bad_rating_supervisor")
    assert "不满意" in alert.body and "Dissatisfied" not in alert.body, alert.body


# --- the 差评 loop --------------------------------------------------------------------------------------

def test_a_bad_rating_reopens_tells_the_supervisor_and_every_round_is_kept(world, twilio):
    tracking_no = close_case(world)
    inbound(world, "4", sid="SM-bad")
    ticket = world.ticket("office", tracking_no)
    assert ticket["status"] == "rectifying"
    rectify = [d for d in ticket["deadlines"] if d["kind"] == "rectify"]
    assert len(rectify) == 1 and rectify[0]["working_days"] == 15
    (alert,) = messages(world.app, template="bad_rating_supervisor")
    assert alert.phone == SUPERVISOR and "不满意" in alert.body and tracking_no in alert.body
    assert "record_visit" in ticket["allowed_actions"]

    # the return visit
    world.act("office", tracking_no, "record_visit", expect=422, contacted=True, outcome="")
    world.act("office", tracking_no, "record_visit", expect=422, visited_on="2999-01-01", contacted=True,
              outcome="x")
    world.act("dept_a", tracking_no, "record_visit", expect=403, visited_on="2026-11-16", contacted=True,
              outcome="x")
    world.act("office", tracking_no, "record_visit", visited_on="2026-11-16", contacted=True,
              outcome="已电话回访，群众对整改时限表示理解。")
    world.act("office", tracking_no, "record_visit", expect=409, visited_on="2026-11-16", contacted=True,
              outcome="again")

    # rework, approval and a second survey round
    world.act("dept_a", tracking_no, "reply", content="已重新核实并上门办理。")
    world.act("office", tracking_no, "approve")
    inbound(world, "1", sid="SM-good")
    with world.app.app_context():
        rounds = list(db.session.execute(sa.select(Survey.round, Survey.score).order_by(Survey.round)).all())
        visits = db.session.scalar(sa.select(sa.func.count()).select_from(ReturnVisit))
    assert rounds == [(1, 4), (2, 1)] and visits == 1
    assert world.ticket("office", tracking_no)["status"] == "closed"
    drain(world.app)
    assert twilio.count_for(SUPERVISOR) == 1


def test_explaining_a_bad_rating_closes_without_a_new_survey(world):
    tracking_no = close_case(world)
    inbound(world, "5", sid="SM-bad5")
    world.act("office", tracking_no, "explain", content="该事项受政策限制，已向您说明原因。")
    assert world.ticket("office", tracking_no)["status"] == "closed"
    assert len(messages(world.app, template="survey")) == 1
    assert "受政策限制" in messages(world.app, template="closed")[-1].body


def test_the_web_rating_and_the_sms_rating_share_one_round(world):
    tracking_no = close_case(world)
    with world.app.app_context():
        pass
    filed = world.client.get(f"/api/v1/tickets/{tracking_no}?code=wrong")
    assert filed.status_code == 404
    inbound(world, "2", sid="SM-first")
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.channel)) == "sms"
