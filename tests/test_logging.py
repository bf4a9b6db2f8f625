"""Log lines: the redaction of phone numbers, query codes and tokens (by hand, by property, and over a whole run of the
product whose every log line is captured at DEBUG), the request id (from the request or made up, returned, on every
line, carried into the Dramatiq messages it causes and onto the actor's lines), and the JSON format (gunicorn's
access log included). Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, quote_plus

import dramatiq
import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.helpers import examples, stop_worker
from tests.sms_support import AUTH_TOKEN, drain, messages, served, twilio_config
from tests.twilio_server import twilio_signature
from tickets import logs
from tickets.broker import broker as broker_of
from tickets.clock import set_clock
from tickets.db import db

# --- redaction by hand and by property ----------------------------------------------------------------------------

MOBILE = "13800138000"
SPELLINGS = [MOBILE, "+8613800138000", "8613800138000", "008613800138000", "+86 138 0013 8000", "138 0013 8000",
             "138-0013-8000", "+86-138-0013-8000", "138.0013.8000", "１３８００１３８０００", "%2B8613800138000"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_mobile_number_is_masked(spelling):
    for text in (spelling, f"sms to {spelling} failed", f"GET /x?phone={spelling}&y=1", f"号码:{spelling}。"):
        masked = logs.redact(text)
        assert not re.search(r"0013.?8000|００１３８０００", masked), masked


@pytest.mark.parametrize("text, expected", [
    ("GET /api/v1/tickets/BJ1?code=ABCD2345&lang=en HTTP/1.1", "GET /api/v1/tickets/BJ1?code=***&lang=en HTTP/1.1"),
    ('{"tracking_no": "BJ1", "query_code": "ABCD2345"}', '{"tracking_no": "BJ1", "query_code": "***"}'),
    ("Authorization: Bearer bj_abc-DEF_123", "Authorization: Bearer ***"),
    ("token=bj_Secret_1 given", "token=bj_*** given"),
    ("the landline 010-12345678 and (0755)8888 8888", "the landline *** and ***"),
    ("a sender +1 415 555 0100", "a sender ***"),
    ("GET /admin/cases/?search=%E5%BC%A0%E4%B8%89%E4%B8%B0&page=2", "GET /admin/cases/?search=***&page=2"),
    ("/api/v1/staff/tickets?status=open&q=138%E3%80%800013%E3%80%808000", "/api/v1/staff/tickets?status=open&q=***"),
])
def test_codes_tokens_and_other_numbers_are_masked(text, expected):
    assert logs.redact(text) == expected


@pytest.mark.parametrize("text", [
    "2026-12-01T10:00:00.123Z escalation sweep: fired 3 step(s); 1 batch(es) in 120 ms",
    "sms 1234 failed after 8 attempts", "pid 12345 message 5f1e0c9a-2b7d-4e42-9d0e-1c2b3a4d5e6f",
    "error_code=invalid_number", "office_code=root", "ticket BJ20261201000123 accepted", "/admin/faq=1?research=2",
])
def test_ordinary_log_text_is_left_alone(text):
    assert logs.redact(text) == text


separators = st.sampled_from(["", " ", "-", ".", "\t"])


@settings(max_examples=examples(200), deadline=None)
@given(prefix=st.sampled_from(["", "+86", "86", "0086", "+86 ", "86-"]), second=st.sampled_from("3456789"),
       digits=st.text("0123456789", min_size=9, max_size=9), gaps=st.lists(separators, min_size=3, max_size=3),
       before=st.text(st.characters(blacklist_categories=("Nd",)), max_size=20),
       after=st.text(st.characters(blacklist_categories=("Nd",)), max_size=20))
def test_property_a_mobile_number_in_any_text_never_survives(prefix, second, digits, gaps, before, after):
    number = "1" + second + digits  # 11 digits, a mainland mobile number's shape
    written = f"{prefix}{number[:3]}{gaps[0]}{number[3:7]}{gaps[1]}{number[7:]}"
    masked = logs.redact(f"{before}{written}{after}")
    assert number[3:] not in re.sub(r"\D", "", masked), (written, masked)


@settings(max_examples=examples(200), deadline=None)
@given(term=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
       name=st.sampled_from(["search", "q"]), encode=st.sampled_from([quote, quote_plus]),
       path=st.sampled_from(["/admin/cases/", "/admin/sms/", "/api/v1/staff/tickets"]), first=st.booleans())
def test_property_no_search_term_survives_in_an_address(term, name, encode, path, first):
    """What staff search for (a name, or a number in a spelling the number patterns do not know: 138　0013　8000,
    138/0013/8000) is in the address of a list and of the pages opened from it (Referer): masked whole."""
    written = encode(term, safe="")
    query = f"{name}={written}&page=2" if first else f"page=2&{name}={written}"
    masked = logs.redact(f"GET {path}?{query} HTTP/1.1")
    expected = f"{name}=***&page=2" if first else f"page=2&{name}=***"
    assert masked == f"GET {path}?{expected} HTTP/1.1"


# --- the filter on records ----------------------------------------------------------------------------------------

@pytest.fixture
def captured():
    """Every log line of this process at DEBUG, in text or JSON (logs.configure with a handler to a buffer), and the
    process's logging as it was afterwards."""
    root = logging.getLogger()
    saved = (root.level, {name: logging.getLogger(name).level for name in logs.QUIET})
    handlers = []

    def capture(log_format: str = "text") -> io.StringIO:
        buffer = io.StringIO()
        handlers.append(logging.StreamHandler(buffer))
        logs.configure(log_format, logging.DEBUG, handler=handlers[-1])
        return buffer

    yield capture
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_arguments_tracebacks_and_extras_are_redacted(captured, log_format):
    buffer = captured(log_format)
    log = logging.getLogger("banjie.test")
    log.info("texted %s about %s", "+8613800138000", {"phone": "13900139000"})
    log.info("extra fields too", extra={"phone": "13700137000", "case": {"phone": "13400134000"}})
    try:
        raise ValueError("bad number 13600136000 with code=ABCD2345")
    except ValueError:
        log.exception("it failed for %s", "13500135000")
    text = buffer.getvalue()
    for number in ("0013.?8000", "0013.?9000", "0013.?7000", "0013.?6000", "0013.?5000", "0013.?4000", "ABCD2345"):
        assert not re.search(number, text), text
    assert "Traceback" in text and "ValueError: bad number *** with code=***" in text
    if log_format == "json":
        extra = json.loads(text.splitlines()[1])
        assert extra["phone"] == "***" and extra["case"] == "{'phone': '***'}"


def test_json_lines_carry_time_level_logger_pid_request_id_and_message(captured):
    buffer = captured("json")
    with logs.request_id("req-1"):
        logging.getLogger("banjie.test").warning("办结 %s", "+8613800138000", extra={"ticket_id": 7})
    (line,) = [json.loads(text) for text in buffer.getvalue().splitlines()]
    assert line["level"] == "WARNING" and line["logger"] == "banjie.test" and line["request_id"] == "req-1"
    assert line["message"] == "办结 ***" and line["ticket_id"] == 7 and isinstance(line["pid"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_gunicorns_access_log_is_json_with_the_request_id_and_no_query_code(captured, tmp_path):
    from datetime import timedelta as elapsed

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    logger = Logger(config)  # gunicorn's own access log, as a worker has it
    captured("json")  # what create_app does in each worker: gunicorn's handlers get the format and the filters

    class Response:
        status, sent, headers = "200 OK", 42, [("X-Request-ID", "req-2"), ("Content-Type", "application/json")]

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/api/v1/tickets/BJ1?code=ABCD2345", "PATH_INFO":
               "/api/v1/tickets/BJ1", "QUERY_STRING": "code=ABCD2345", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "probe", "HTTP_AUTHORIZATION": "Bearer bj_secret"}
    logger.access(Response(), [("Authorization", "Bearer bj_secret")], environ, elapsed(milliseconds=12))
    for handler in logger.access_log.handlers:
        handler.flush()
    (line,) = [json.loads(text) for text in (tmp_path / "access.log").read_text().splitlines()]
    assert line["request_id"] == "req-2" and line["status"] == "200" and line["path"] == "/api/v1/tickets/BJ1"
    assert line["query"] == "code=***" and line["duration_ms"] == 12 and line["method"] == "GET"
    assert "ABCD2345" not in json.dumps(line) and "bj_secret" not in json.dumps(line)
    for each in (logger.access_log, logger.error_log):
        for handler in each.handlers[:]:
            handler.close()
            each.removeHandler(handler)


# --- the request id -----------------------------------------------------------------------------------------------

def test_the_request_id_is_taken_when_sane_made_up_otherwise_and_returned(client):
    assert client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42:1"}).headers["X-Request-ID"] == "lb-7f3a.42:1"
    made_up = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[a-z2-7]{24}", made_up)
    for insane in ("x" * 129, "<script>", "a b", "-leading-dash", "é", "", "req-13800138000", "0571-88888888"):
        answered = client.get("/healthz", headers={"X-Request-ID": insane}).headers["X-Request-ID"]
        assert answered != insane and re.fullmatch(r"[a-z2-7]{24}", answered)
    assert client.get("/no-such-page").headers["X-Request-ID"]  # errors too


def test_made_up_ids_never_look_like_a_phone_number():
    ids = [logs.new_request_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids) and all(logs.redact(each) == each == logs.sane_request_id(each) for each in ids)


@settings(max_examples=examples(50), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=200))
def test_property_any_request_id_header_gives_a_sane_one_back(app, value):
    try:
        response = app.test_client().get("/healthz", headers={"X-Request-ID": value})
    except ValueError:  # the test client refuses to send a header with a line break; a server never receives one
        return
    assert response.status_code == 200
    assert logs.sane_request_id(response.headers["X-Request-ID"]) == response.headers["X-Request-ID"]


def test_a_requests_log_lines_carry_its_id_and_its_messages_carry_it_to_the_worker(app, captured):
    buffer = captured("json")
    got = []

    @dramatiq.actor(queue_name="logging-test", max_retries=0)
    def note(number):
        logging.getLogger("banjie.test").info("working on %s", number)
        got.append(logs.current_request_id())

    broker = broker_of(app)
    note.broker = broker
    broker.declare_actor(note)

    @app.get("/test-enqueue")
    def enqueue():
        logging.getLogger("banjie.test").info("enqueueing")
        note.send(1)
        return "ok"

    response = app.test_client().get("/test-enqueue", headers={"X-Request-ID": "filing-123"})
    assert response.headers["X-Request-ID"] == "filing-123"
    (message,) = [dramatiq.Message.decode(raw) for raw in broker.queues["logging-test"].queue]
    assert message.options["request_id"] == "filing-123"
    # In one CI run (4 test processes on 2 cores) this test took 600.1 s, Worker.stop()'s default timeout: a thread of
    # the worker did not stop (which one is not known; alone it takes 0.1 s). Only this test's queue (2 consumer
    # threads, not 14), one worker thread, and a bounded stop (`stop_worker`): what is tested is the request id.
    worker = dramatiq.Worker(broker, queues={"logging-test"}, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join("logging-test", timeout=10_000, fail_fast=True)
        worker.join()
    finally:
        stop_worker(worker)
    assert got == ["filing-123"] and logs.current_request_id() is None
    lines = [json.loads(text) for text in buffer.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"] == "banjie.test"]
    assert [(line["message"], line["request_id"]) for line in ours] == [("enqueueing", "filing-123"),
                                                                        ("working on 1", "filing-123")]


def test_the_schedulers_tick_has_an_id_of_its_own(app, captured):
    from escalation.scheduler import tick
    from tickets.schedule import schedule

    buffer = captured("text")
    schedule(app, "test-log", lambda now: logging.getLogger("banjie.test").info("tick job"))
    tick(app)
    (line,) = [text for text in buffer.getvalue().splitlines() if "tick job" in text]
    assert re.search(r"\[tick-[a-z2-7]{24}\] tick job$", line), line


# --- a whole run, captured at DEBUG -------------------------------------------------------------------------------

NAMES = ("张三丰", "李四光", "王五常")
CODE = re.compile(r"查询码[:：]?\s*([23456789A-HJ-NP-Z]{8})")


def spellings(e164: str) -> set[str]:
    """The ways the run writes (or a log line could write) a mainland mobile number, in text and in addresses."""
    national = e164.removeprefix("+86")
    a, b, c = national[:3], national[3:7], national[7:]
    written = {national, e164, e164[1:], f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {a} {b} {c}", f"+86-{a}-{b}-{c}"}
    return written | {quote(each) for each in written} | {quote_plus(each) for each in written}


@pytest.mark.slow  # a real Twilio timeout, the app served over HTTP, a worker
def test_a_full_run_logs_no_number_name_code_or_token(make_app, twilio, captured):
    buffer = captured("json")
    app = make_app(**twilio_config(twilio, TWILIO_TIMEOUT_SECONDS=0.5, METRICS_TOKEN="metrics-secret-token"))
    set_clock(app, None)
    from tests.helpers import give_phones, seed_world
    world = seed_world(app, app.test_client())
    give_phones(world)
    citizen_api, citizen_form = "+86 138 0013 8000", "139-1234-5678"
    twilio.delay_next(1, seconds=1.5, record_first=True)  # the first text times out: the retry looks it up by number

    with served(app) as base:
        app.config["PUBLIC_BASE_URL"] = base  # Twilio's callbacks and the signed reply come here
        http = requests.Session()
        filed = http.post(f"{base}/api/v1/tickets", json={
            "name": NAMES[0], "phone": citizen_api, "problem_type": "too_slow",
            "description": f"我叫{NAMES[0]}，电话{citizen_api}，营业执照变更一个月没结果。"}).json()
        no, code = filed["tracking_no"], filed["query_code"]
        form = app.test_client()
        from tests.helpers import file_by_form
        assert file_by_form(form, name=NAMES[1], phone=citizen_form).status_code == 303
        token = {"Authorization": f"Bearer {world.tokens['office']}"}
        handler = {"Authorization": f"Bearer {world.tokens['dept_a']}"}
        for action, who, body in (("accept", token, {}),
                                  ("transfer", token, {"department_id": world.departments["A"]}),
                                  ("reply", handler, {"content": f"已联系{NAMES[0]}（{citizen_api}），办理完毕。"}),
                                  ("approve", token, {})):
            answer = http.post(f"{base}/api/v1/staff/tickets/{no}/{action}", json=body, headers=token
                               if who is token else who)
            assert answer.status_code == 200, (action, answer.text)
        assert http.get(f"{base}/api/v1/tickets/{no}", params={"code": code}).status_code == 200
        assert http.get(f"{base}/api/v1/staff/tickets", params={"q": citizen_api}, headers=token).status_code == 200
        assert http.get(f"{base}/metrics", headers={"Authorization": "Bearer metrics-secret-token"}).ok
        assert http.get(f"{base}/metrics", headers={"Authorization": "Bearer bj_wrong_token"}).status_code == 401
        drain(app)
        # the survey's reply by SMS, signed as Twilio signs it
        params = {"MessageSid": "SM-in-1", "From": "+8613800138000", "To": "+15005550006", "Body": "2",
                  "AccountSid": "AC"}
        signature = twilio_signature(f"{base}/sms/inbound", params, AUTH_TOKEN)
        assert http.post(f"{base}/sms/inbound", data=params, headers={"X-Twilio-Signature": signature}).ok

        # a case left to go overdue, and the sweep that texts its supervisor and leader
        late = world.file(name=NAMES[2], phone="13700137000")["tracking_no"]
        world.act("office", late, "accept")
        world.act("office", late, "transfer", department_id=world.departments["A"])
        frozen = datetime.now(timezone.utc) + timedelta(days=30)
        set_clock(app, lambda: frozen)
        from escalation.sweeper import sweep
        with app.app_context():
            assert sum(sweep(db.session, frozen).fired.values()) > 0
        drain(app)

    codes = {code} | {match for m in messages(app) for match in CODE.findall(m.body)}
    assert len(codes) >= 2  # the API's and the form's (from their receipts)
    assert any(m.template == "survey_thanks" for m in messages(app))
    assert messages(app, audience="supervisor")  # the sweep texted the department's 督办负责人
    text = buffer.getvalue()
    lines = text.splitlines()
    assert len(lines) > 20 and all(json.loads(line) for line in lines)  # the run did log, every line JSON
    assert "code=***" in text and "%2B***" in text  # what would have leaked was masked: an address, the SDK's look-up
    phones = {"+8613800138000", "+8613912345678", "+8613700137000", "+8613900000001", "+8613900000002",
              "+8613800000011", "+8613800000012"}
    secrets = [*NAMES, *codes, *world.tokens.values(), AUTH_TOKEN, "metrics-secret-token", "bj_wrong_token",
               *(spelling for phone in phones for spelling in spellings(phone))]
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, (leaked, [line for line in lines if any(secret in line for secret in leaked)][:5])
