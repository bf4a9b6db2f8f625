"""The SMS room at its edges: a re-drive on the command line while the provider fails, the new query code at night,
a text that keeps timing out, delivery reports that name a text another row owns or a row past the database's
integers, a reply posted twice at once, any signed Twilio post, webhook subscription ids that name no row, and a ladder
that names a text the sweeper cannot write. Through the real twilio SDK and the Twilio test server; on SQLite and
PostgreSQL."""
from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify.models import SmsMessage
from tests.helpers import examples, seed_world, sweep
from tests.sms_support import AUTH_TOKEN, messages, twilio_config
from tests.twilio_server import twilio_signature
from tickets.db import db

CITIZEN = "+8613800138000"


@pytest.fixture
def app(make_app, twilio):
    return make_app(**twilio_config(twilio, SMS_QUIET_HOURS="21:00-08:00", TWILIO_TIMEOUT_SECONDS=0.5))


def test_redrive_on_the_command_line_goes_on_when_the_provider_fails(world, twilio, clock):
    """`flask sms redrive --now` while Twilio answers 500: the text waits for its retry and the command says so,
    the next text is still sent; no traceback."""
    world.file()
    world.file(phone="13900139000")
    twilio.fail_next(1, status=500)
    clock.advance(minutes=5)
    result = world.app.test_cli_runner().invoke(args=["sms", "redrive", "--now"])
    assert result.exit_code == 0, result.output
    assert result.exception is None and "retry: 1" in result.output and "sent: 1" in result.output
    first, second = messages(world.app)
    assert (first.status, first.error_code) == ("pending", "20500") and second.status == "sent"
    assert len(twilio.messages) == 1


def test_a_new_query_code_reaching_the_worker_at_night_goes_at_once(world, twilio, clock):
    """找回查询码 at 23:30: the citizen is waiting for the code (`immediate`), so the worker does not hold it for the
    quiet hours either; the receipt written at the same time still waits for the morning."""
    clock.set(2026, 11, 23, 23, 30)
    filed = world.file(phone=CITIZEN)
    response = world.client.post("/api/v1/tickets/recover-code",
                                 json={"tracking_no": filed["tracking_no"], "phone": CITIZEN})
    assert response.status_code == 202
    (code,) = messages(world.app, template="query_code")
    (receipt,) = messages(world.app, template="receipt")
    with world.app.app_context():
        from notify import outbox
        assert outbox.deliver(code.id) == "sent"
        clock.advance(minutes=1)
        assert outbox.deliver(receipt.id) == "held"
    assert [m["body"] for m in twilio.messages] == [code.body]


@pytest.mark.slow  # real request timeouts
def test_a_text_whose_every_attempt_timed_out_is_not_sent_past_the_attempts(world, twilio, clock):
    """Every request to Twilio times out and none got through: SMS_MAX_ATTEMPTS requests, one more look at the
    provider, then failed; never a request past the attempts, never `sending` for ever."""
    from notify import outbox

    world.app.config["SMS_MAX_ATTEMPTS"] = 2
    twilio.hang_next(10, record_first=False)  # never accepted, never answered (until the server stops)
    world.file()
    (receipt,) = messages(world.app)
    results = []
    with world.app.app_context():
        for _ in range(6):
            row = db.session.get(SmsMessage, receipt.id)
            db.session.refresh(row)
            if row.status not in ("pending", "sending"):
                break
            clock.now = max(clock.now, row.not_before) + timedelta(seconds=1)
            db.session.rollback()
            try:
                results.append(outbox.deliver(receipt.id))
            except outbox.RetryLater:
                results.append("retry")
    (receipt,) = messages(world.app)
    assert receipt.status == "failed" and "gave up after" in receipt.error_message, results
    assert len([r for r in twilio.requests if r["path"].endswith("/Messages.json")]) == 2
    assert twilio.messages == []


def test_a_delivery_report_naming_a_text_another_row_owns_changes_nothing(world):
    """A signed status callback whose MessageSid belongs to another row, on a row that has no sid yet (`?m=`): a 200
    that changes nothing, not a 500 from the unique provider id."""
    with world.app.app_context():
        owner = SmsMessage(phone=CITIZEN, audience="citizen", template="opted_out", body="x", status="sent",
                           provider_sid="SMowned")
        waiting = SmsMessage(phone=CITIZEN, audience="citizen", template="opted_out", body="y", status="sending")
        db.session.add_all([owner, waiting])
        db.session.commit()
        owner_id, waiting_id = owner.id, waiting.id
    params = {"MessageSid": "SMowned", "MessageStatus": "delivered"}
    url = f"http://localhost/sms/status?m={waiting_id}"
    response = world.client.post(f"/sms/status?m={waiting_id}", data=params,
                                 headers={"X-Twilio-Signature": twilio_signature(url, params, AUTH_TOKEN)})
    assert response.status_code == 200
    with world.app.app_context():
        rows = {m.id: (m.status, m.provider_sid) for m in db.session.scalars(sa.select(SmsMessage))}
    assert rows == {owner_id: ("delivered", "SMowned"), waiting_id: ("sending", None)}


@pytest.mark.parametrize("template", ["no_such_text", "receipt", "report_ready", "contact_supervisor"])
def test_a_ladder_step_naming_a_text_the_sweeper_cannot_write_stops_start_up(make_app, template):
    """ESCALATION_LADDER's `template` must be a text whose variables the sweeper gives (a case's number, department,
    deadline, due time and days overdue; hours overdue for a deadline in working hours): otherwise the app does not
    start, with a message, rather than every sweep failing on that step for ever (with the other steps of its batch)."""
    ladder = ('{"handle": [{"step": "x", "level": 2, "offset": 0, "audience": "supervisor", "template": "%s"}]}'
              % template)
    with pytest.raises(ValueError, match=template):
        make_app(ESCALATION_LADDER=ladder)


def test_every_text_a_ladder_step_may_name_is_written_by_the_sweeper(make_app, clock):
    """The other side: each text the check lets through renders with what the sweeper gives, in both kinds of
    deadline (a step of the handling deadline, in working days, and of the first contact, in working hours)."""
    from escalation.ladder import ladder_from_config
    from notify.messages import KINDS

    allowed = {}
    for kind, unit in (("handle", '"offset": 0'), ("contact", '"share": 1')):
        allowed[kind] = []
        for key in KINDS:
            try:
                ladder_from_config('{"%s": [{"step": "x", "level": 2, %s, "audience": "supervisor", "template": "%s"}]}'
                                   % (kind, unit, key))
            except ValueError:
                continue
            allowed[kind].append(key)
    assert "escalation_supervisor" in allowed["handle"] and "contact_supervisor" not in allowed["handle"]
    assert "contact_supervisor" in allowed["contact"]
    steps = {kind: [{"step": key, "level": 2, "audience": "supervisor", "template": key,
                     **({"offset": 0} if kind == "handle" else {"share": 1})} for key in keys]
             for kind, keys in allowed.items()}
    app = make_app(ESCALATION_LADDER=json.dumps(steps))
    world = seed_world(app, app.test_client())
    case = world.file()["tracking_no"]
    world.act("office", case, "accept")
    world.act("office", case, "transfer", department_id=world.departments["A"])
    clock.set(2026, 11, 30, 10)
    result = sweep(world)
    assert sum(result.fired.values()) == len(allowed["handle"]) + len(allowed["contact"])


def test_a_reply_delivered_twice_at_the_same_moment_acts_once_and_both_get_twiml(world):
    """Twilio re-posts a reply whose first post is still being handled: the second insert of the same MessageSid
    meets the first one's row. The late one answers 200 and acts on nothing; the reply is recorded once."""
    from notify.models import InboundSms

    params = {"MessageSid": "SM-race", "From": CITIZEN, "To": "+15005550006", "Body": "1", "AccountSid": "AC"}
    headers = {"X-Twilio-Signature": twilio_signature("http://localhost/sms/inbound", params, AUTH_TOKEN)}
    with world.app.app_context():
        engine = db.engine

    raced = []

    def the_other_delivery(session, flush_context, instances):
        if not raced and any(isinstance(row, InboundSms) for row in session.new):
            raced.append(True)
            with engine.begin() as connection:  # it got there first and committed
                connection.execute(sa.insert(InboundSms).values(provider_sid="SM-race", phone=CITIZEN, body="1",
                                                                received_at=clock_now(world), outcome="no_survey"))

    from sqlmodel import Session
    sa.event.listen(Session, "before_flush", the_other_delivery)
    try:
        response = world.client.post("/sms/inbound", data=params, headers=headers)
    finally:
        sa.event.remove(Session, "before_flush", the_other_delivery)
    assert raced and response.status_code == 200 and b"<Response" in response.data
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(InboundSms)) == 1
    assert messages(world.app, template="survey_closed") == []


def clock_now(world):
    from tickets.clock import CLOCK
    return CLOCK.get(world.app)()


@pytest.mark.parametrize("row", ["2147483648", "99999999999", "0", "00000000001"])
def test_a_delivery_report_for_a_row_number_past_the_database_integers_is_answered(world, row):
    """`?m=` is ours, but the URL is the provider's to repeat: a number that names no row changes nothing, on
    PostgreSQL too (whose integers end at 2**31 - 1), and Twilio gets its 200."""
    report = {"MessageSid": "SM-unknown", "MessageStatus": "delivered"}
    url = f"http://localhost/sms/status?m={row}"
    response = world.client.post(f"/sms/status?m={row}", data=report,
                                 headers={"X-Twilio-Signature": twilio_signature(url, report, AUTH_TOKEN)})
    assert response.status_code == 200 and b"<Response" in response.data


# Any text a phone can send, any field Twilio (or a retry, or a proxy) can post: NUL aside (a 400 for every form,
# tests/test_hostile_input.py) and lone surrogates (not UTF-8 at all).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=2000)
_FIELD = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                                      max_size=80))


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_TEXT, sid=_FIELD,
       sender=st.one_of(_FIELD, st.sampled_from([CITIZEN, "+86 138 0013 8000", "+8613511112222"])),
       status=st.one_of(_FIELD, st.sampled_from(["delivered", "undelivered", "failed", "sent", "read", "DELIVERED"])),
       error=_FIELD, row=st.one_of(st.none(), _FIELD.filter(bool), st.integers(-2, 10**15).map(str)))
def test_any_signed_twilio_post_is_answered_never_a_500(world, body, sid, sender, status, error, row):
    """Survey replies and delivery reports with any body (emoji, full-width digits, 2,000 characters, empty), any or no
    MessageSid, From, MessageStatus, ErrorCode and `?m=`: TwiML and a 200, every time."""
    inbound = {k: v for k, v in {"MessageSid": sid, "From": sender, "Body": body}.items() if v is not None}
    url = "http://localhost/sms/inbound"
    response = world.client.post("/sms/inbound", data=inbound,
                                 headers={"X-Twilio-Signature": twilio_signature(url, inbound, AUTH_TOKEN)})
    assert response.status_code == 200 and b"<Response" in response.data
    report = {k: v for k, v in {"MessageSid": sid, "MessageStatus": status, "ErrorCode": error}.items()
              if v is not None}
    query = "" if row is None else "?" + urlencode({"m": row})
    url = f"http://localhost/sms/status{query}"
    response = world.client.post(f"/sms/status{query}", data=report,
                                 headers={"X-Twilio-Signature": twilio_signature(url, report, AUTH_TOKEN)})
    assert response.status_code == 200 and b"<Response" in response.data


@pytest.mark.parametrize("command", ["disable", "enable", "test"])
@pytest.mark.parametrize("number", ["99999999999999999999", "2147483648", "0"])
def test_a_webhook_subscription_number_that_names_no_row_is_refused_in_one_line(world, command, number):
    """`flask webhooks disable|enable|test ID` with an id past the database's integers: the same one-line refusal as
    any unknown id, not the database's traceback."""
    result = world.app.test_cli_runner().invoke(args=["webhooks", command, number])
    assert result.exit_code == 1 and result.output.strip() == f"Error: no webhook subscription {number}"


# --- survey replies and the quiet hours ----------------------------------------------------------------------------

def _closed_case(world) -> dict:
    filed = world.file(phone=CITIZEN)
    world.step("office", filed["tracking_no"], "accept")
    world.step("office", filed["tracking_no"], "transfer", department_id=world.departments["A"])
    world.step("dept_a", filed["tracking_no"], "reply", content="已为您办理完毕，营业执照已变更。")
    world.step("office", filed["tracking_no"], "approve")
    return filed


def _reply(world, body: str, sid: str):
    params = {"MessageSid": sid, "From": CITIZEN, "To": "+15005550006", "Body": body, "AccountSid": "AC"}
    return world.client.post("/sms/inbound", data=params, headers={
        "X-Twilio-Signature": twilio_signature("http://localhost/sms/inbound", params, AUTH_TOKEN)})


def test_a_reply_at_night_rates_the_survey_whose_question_was_sent_not_one_still_held(world, clock):
    """A case closed at 22:00 has its survey question held until 08:00; a reply at 22:30 answers the question the
    citizen has (the afternoon's case), never the newer one nothing has told them of yet."""
    from tickets.models import Survey, Ticket

    clock.set(2026, 11, 16, 15, 0)
    sent = _closed_case(world)["tracking_no"]
    clock.set(2026, 11, 16, 22, 0)
    held = _closed_case(world)["tracking_no"]
    clock.set(2026, 11, 16, 22, 30)
    _reply(world, "5", "SM-night")
    with world.app.app_context():
        rated = dict(db.session.execute(sa.select(Ticket.tracking_no, Survey.score).join(Ticket)).all())
    assert rated == {sent: 5, held: None}
    clock.set(2026, 11, 17, 8, 30)  # the held question went out in the morning: a reply now answers it
    _reply(world, "1", "SM-morning")
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score).join(Ticket).where(Ticket.tracking_no == held)) == 1


def test_a_reply_at_night_when_the_only_survey_is_held_rates_nothing_and_is_not_told_it_closed(world, clock):
    from tickets.models import Survey

    clock.set(2026, 11, 16, 22, 0)
    _closed_case(world)
    _reply(world, "2", "SM-early")
    with world.app.app_context():
        assert db.session.scalar(sa.select(Survey.score)) is None
    assert messages(world.app, template="survey_closed") == [] and messages(world.app, template="survey_thanks") == []


def test_a_survey_text_held_for_the_night_is_not_sent_after_the_number_opts_out(world, twilio, clock):
    """The question waits for 08:00; the citizen sends 退订 (to an earlier survey) at 23:00: in the morning the worker
    finds the number opted out and records the text as failed (`opted_out`), as `send_sms` would have written it."""
    from notify import outbox

    clock.set(2026, 11, 16, 22, 0)
    _closed_case(world)
    clock.set(2026, 11, 16, 23, 0)
    _reply(world, "退订", "SM-td")
    clock.set(2026, 11, 17, 8, 30)
    (question,) = messages(world.app, template="survey")
    with world.app.app_context():
        assert outbox.deliver(question.id) == "opted_out"
    (question,) = messages(world.app, template="survey")
    assert (question.status, question.error_code) == ("failed", "opted_out")
    assert not [m for m in twilio.messages if "回复1" in m["body"]]


# --- 补充材料: one text per handler for a burst ----------------------------------------------------------------------

def test_a_burst_of_supplements_texts_each_handler_once_and_the_case_lists_them_all(world, clock):
    """A citizen adding information ten times in an evening texts the department's handler once; after
    SUPPLEMENT_TEXT_INTERVAL the next addition texts again. The staff view lists every supplement."""
    from notify.hooks import SUPPLEMENT_TEXT_INTERVAL
    from tests.helpers import HANDLER_PHONE, give_phones

    give_phones(world)
    clock.set(2026, 11, 16, 10, 0)
    filed = world.file()
    no = filed["tracking_no"]
    world.step("office", no, "accept")
    world.step("office", no, "transfer", department_id=world.departments["A"])
    url = f"/api/v1/tickets/{no}/supplements?code={filed['query_code']}"
    for i in range(10):
        clock.advance(minutes=5)
        assert world.client.post(url, json={"content": f"补充第{i}次"}).status_code == 200
    texts = [m for m in messages(world.app, template="supplement_handler") if m.phone == HANDLER_PHONE]
    assert len(texts) == 1
    staff = world.ticket("dept_a", no)
    assert [i["content"] for i in staff["new_information"]] == [f"补充第{i}次" for i in range(10)]
    supplements = [e for e in staff["events"] if e["action"] == "supplement"]
    assert all(e["data"]["notified"]["handler"] >= 1 for e in supplements)  # told: no "nobody could be texted"
    clock.set(2026, 11, 16, 10, 5)
    clock.now += SUPPLEMENT_TEXT_INTERVAL  # as long after the text as the interval: it is not recent any more
    assert world.client.post(url, json={"content": "又补充了"}).status_code == 200
    assert len([m for m in messages(world.app, template="supplement_handler") if m.phone == HANDLER_PHONE]) == 2
