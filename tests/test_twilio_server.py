"""The Twilio test server, exercised through the official twilio SDK over real HTTP."""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import flask
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.twilio_server import (
    TwilioTestServer,
    count_segments,
    max_events_in_window,
    signed_post,
    twilio_signature,
)

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "banjie-test-token"
SENDER = "+15005550006"
CITIZEN = "+8613800138000"
OTHER_CITIZEN = "+8613900139000"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def server():
    with TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN, callback_delay=0.01, clock=lambda: NOW) as srv:
        yield srv


@pytest.fixture
def make_client(server):
    clients = []

    def build(auth_token: str = AUTH_TOKEN, timeout: float = 5.0) -> Client:
        client = Client(ACCOUNT_SID, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        client.api.base_url = server.url
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.http_client.session.close()


@pytest.fixture
def twilio(make_client) -> Client:
    return make_client()


@pytest.fixture
def receiver():
    """A tiny webhook endpoint that checks signatures the way the app does."""
    received = []
    validator = RequestValidator(AUTH_TOKEN)

    def app(environ, start_response):
        request = Request(environ)
        signature = request.headers.get("X-Twilio-Signature", "")
        received.append({"url": request.url, "form": request.form.to_dict(),
                         "valid": validator.validate(request.url, request.form, signature)})
        return Response("", status=204)(environ, start_response)

    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}", received
    http.shutdown()
    http.server_close()
    thread.join()


def test_create_fetch_and_list_through_the_sdk(server, twilio):
    body = "您好，您反映的问题已受理，" * 6 + "请留意后续短信。"
    body = body[:80]
    message = twilio.messages.create(to=CITIZEN, from_=SENDER, body=body)
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.num_segments, message.direction) == ("queued", "2", "outbound-api")
    assert (message.to, message.from_, message.body, message.account_sid) == (CITIZEN, SENDER, body, ACCOUNT_SID)
    assert message.date_created == NOW and message.error_code is None and message.num_media == "0"
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"

    fetched = twilio.messages(message.sid).fetch()
    assert (fetched.sid, fetched.body) == (message.sid, body)
    with pytest.raises(TwilioRestException) as missing:
        twilio.messages("SM" + "0" * 32).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)

    later = [twilio.messages.create(to=CITIZEN, from_=SENDER, body=f"第{i}条") for i in range(2)]
    twilio.messages.create(to=OTHER_CITIZEN, from_=SENDER, body="其他")
    listed = twilio.messages.list(to=CITIZEN, date_sent_after=NOW - timedelta(days=1), page_size=2)
    assert [m.sid for m in listed] == [later[1].sid, later[0].sid, message.sid]  # newest first, two pages
    assert twilio.messages.list(to=CITIZEN, date_sent_after=NOW + timedelta(seconds=1)) == []
    assert len(twilio.messages.list(date_sent="2026-11-23")) == 4
    assert twilio.messages.list(date_sent_before="2026-11-22") == []
    assert [m.to for m in twilio.messages.list(from_=SENDER, to=OTHER_CITIZEN)] == [OTHER_CITIZEN]
    assert server.count_for(CITIZEN) == 3 and server.duplicates() == {}


def test_messaging_service_sender(server, twilio):
    message = twilio.messages.create(to=CITIZEN, messaging_service_sid="MG" + "b2" * 16, body="hello")
    assert (message.from_, message.messaging_service_sid, message.num_segments) == (None, "MG" + "b2" * 16, "1")


def test_segment_counting_follows_twilio():
    assert [count_segments("a" * n) for n in (160, 161, 306, 307)] == [1, 2, 2, 3]
    assert [count_segments("中" * n) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    assert count_segments("€" * 80) == 1 and count_segments("€" * 81) == 2  # escape chars take two septets


def test_wrong_token_and_unknown_account(server, make_client):
    with pytest.raises(TwilioRestException) as denied:
        make_client(auth_token="wrong").messages.create(to=CITIZEN, from_=SENDER, body="x")
    assert (denied.value.status, denied.value.code) == (401, 20003)
    with pytest.raises(TwilioRestException) as unknown:
        make_client().api.v2010.accounts("AC" + "c3" * 16).messages.create(to=CITIZEN, from_=SENDER, body="x")
    assert (unknown.value.status, unknown.value.code) == (404, 20404)
    assert server.messages == []
    assert [entry["status"] for entry in server.requests] == [401, 404]


@pytest.mark.parametrize("arguments, code", [
    ({"to": "+8613700000000", "from_": SENDER, "body": "x"}, 21211),
    ({"to": "not-a-number", "from_": SENDER, "body": "x"}, 21211),
    ({"to": "+8613600000000", "from_": SENDER, "body": "x"}, 21610),
    ({"to": CITIZEN, "from_": SENDER}, 21602),
    ({"to": CITIZEN, "body": "x"}, 21603),
    ({"to": "", "from_": SENDER, "body": "x"}, 21604),
    ({"to": CITIZEN, "from_": SENDER, "body": "长" * 1601}, 21617),
])
def test_rejected_messages(server, twilio, arguments, code):
    server.invalid_numbers.add("+8613700000000")
    server.opted_out.add("+8613600000000")
    with pytest.raises(TwilioRestException) as rejected:
        twilio.messages.create(**arguments)
    assert (rejected.value.status, rejected.value.code) == (400, code)
    assert server.messages == [] and server.requests[0]["status"] == 400


def test_fail_next_answers_errors_then_recovers(server, twilio):
    server.fail_next(2, status=429, retry_after=3)
    server.fail_next(1, status=503)
    with requests.post(f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", auth=(ACCOUNT_SID, AUTH_TOKEN),
                       data={"To": CITIZEN, "From": SENDER, "Body": "重试"}, timeout=5) as raw:
        assert (raw.status_code, raw.headers["Retry-After"]) == (429, "3")
        assert raw.json() == {"code": 20429, "message": "Too Many Requests", "status": 429,
                              "more_info": "https://www.twilio.com/docs/errors/20429"}
    for status, code in [(429, 20429), (503, 20503)]:
        with pytest.raises(TwilioRestException) as failed:
            twilio.messages.create(to=CITIZEN, from_=SENDER, body="重试")
        assert (failed.value.status, failed.value.code) == (status, code)
    assert server.messages == []
    twilio.messages.create(to=CITIZEN, from_=SENDER, body="重试")
    assert server.count_for(CITIZEN) == 1
    assert [entry["status"] for entry in server.requests] == [429, 429, 503, 201]


def test_client_timeout_leaves_a_sent_message(server, make_client):
    impatient = make_client(timeout=0.5)
    server.delay_next(1, 2.0)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        impatient.messages.create(to=CITIZEN, from_=SENDER, body="受理回执")
    assert time.monotonic() - started < 2.0  # it gave up before the server answered
    assert server.count_for(CITIZEN) == 1  # "Twilio" accepted it even though the client gave up
    impatient.messages.create(to=CITIZEN, from_=SENDER, body="受理回执")  # a naive retry...
    assert server.duplicates() == {(CITIZEN, "受理回执"): 2}  # ...is caught


def test_status_callbacks_are_signed_and_ordered(server, twilio, receiver):
    base_url, received = receiver
    callback = base_url + "/twilio/status?ticket=42"
    server.undeliverable.add(OTHER_CITIZEN)
    delivered = twilio.messages.create(to=CITIZEN, from_=SENDER, body="a", status_callback=callback)
    undelivered = twilio.messages.create(to=OTHER_CITIZEN, from_=SENDER, body="b", status_callback=callback)
    twilio.messages.create(to=CITIZEN, from_=SENDER, body="no callback")

    outcomes = server.wait_for_callbacks(4, timeout=5)
    assert [outcome["status"] for outcome in outcomes] == [204] * 4
    assert all(hit["valid"] and hit["url"] == callback for hit in received)
    by_sid = {}
    for hit in received:
        by_sid.setdefault(hit["form"]["MessageSid"], []).append(hit["form"])
    assert [form["MessageStatus"] for form in by_sid[delivered.sid]] == ["sent", "delivered"]
    assert [form["SmsStatus"] for form in by_sid[undelivered.sid]] == ["sent", "undelivered"]
    final = by_sid[undelivered.sid][-1]
    assert final["ErrorCode"] == "30003" and "ErrorCode" not in by_sid[delivered.sid][-1]
    assert {final["AccountSid"], final["From"], final["To"], final["ApiVersion"], final["SmsSid"]} == {
        ACCOUNT_SID, SENDER, OTHER_CITIZEN, "2010-04-01", undelivered.sid}
    assert twilio.messages(undelivered.sid).fetch().error_code == 30003


def test_callback_connection_errors_are_recorded_not_raised(server, twilio):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{unused.getsockname()[1]}/status"
    twilio.messages.create(to=CITIZEN, from_=SENDER, body="x", status_callback=dead_url)
    outcomes = server.wait_for_callbacks(2, timeout=5)
    assert all(outcome["status"] is None and outcome["error"] for outcome in outcomes)


def test_callbacks_can_be_disabled(server, twilio, receiver):
    server.callbacks_enabled = False
    message = twilio.messages.create(to=CITIZEN, from_=SENDER, body="x", status_callback=receiver[0] + "/s")
    deadline = time.monotonic() + 5
    while twilio.messages(message.sid).fetch().status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.messages[0]["status"] == "delivered" and server.callbacks == [] and receiver[1] == []


def test_rate_window_is_exact():
    stamps = [3.0, 0.0, 0.2, 0.5, 0.99, 1.0, 1.1]
    assert max_events_in_window(stamps, 1.0) == 5  # [0.2, 1.2) holds 0.2 0.5 0.99 1.0 1.1
    assert max_events_in_window(stamps, 0.5) == 3
    assert max_events_in_window([0.0, 1.0, 2.0], 1.0) == 1  # half-open windows
    assert max_events_in_window([], 1.0) == 0


def test_concurrent_senders_are_all_recorded(server, make_client):
    clients = [make_client() for _ in range(4)]

    def send(index: int, client: Client):
        for n in range(5):
            client.messages.create(to=CITIZEN, from_=SENDER, body=f"{index}-{n}")

    threads = [threading.Thread(target=send, args=pair) for pair in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.count_for(CITIZEN) == 20 and server.duplicates() == {}
    assert len({message["sid"] for message in server.messages}) == 20
    assert 1 <= server.max_in_window(60.0) == 20
    server.reset()
    assert (server.messages, server.requests, server.arrivals) == ([], [], [])


def test_signed_post_satisfies_request_validator(server):
    app = flask.Flask("inbound")

    @app.post("/sms/inbound")
    def inbound():
        valid = RequestValidator(AUTH_TOKEN).validate(
            flask.request.url, flask.request.form, flask.request.headers.get("X-Twilio-Signature", ""))
        return ("ok", 200) if valid else ("forged", 403)

    params = {"From": CITIZEN, "To": SENDER, "Body": "我要反映", "MessageSid": "SM" + "d4" * 16}
    with app.test_client() as client:
        assert signed_post(client, "http://localhost/sms/inbound", params, AUTH_TOKEN).status_code == 200
        assert client.post("/sms/inbound", data=params, headers={
            "X-Twilio-Signature": twilio_signature("http://localhost/sms/inbound", params, AUTH_TOKEN)}
        ).status_code == 200
        assert signed_post(client, "http://localhost/sms/inbound", params, "wrong").status_code == 403
