"""找回查询码: a new query code by SMS to the number the case was filed with; the same answer whether or not the
tracking number and the number match; at most three a day to a number; limited per client like the lookup."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import page_csrf
from tests.sms_support import messages

PHONE = "13800138000"
RECOVER = "/api/v1/tickets/recover-code"


def new_code(app, tracking_no) -> str:
    (text,) = [m for m in messages(app, template="query_code") if tracking_no in m.body][-1:]
    return re.search(r"新查询码为([A-Z0-9]+)", text.body).group(1)


def looks_up(client, no, code) -> int:
    return client.get(f"/api/v1/tickets/{no}?code={code}").status_code


def test_a_new_code_goes_to_the_filing_number_at_once_and_the_old_one_stops(world, clock):
    clock.set(2026, 11, 23, 23, 30)  # quiet hours (21:00-08:00): the receipt waits, the new code does not
    filed = world.file(phone=PHONE)
    no, old = filed["tracking_no"], filed["query_code"]
    response = world.client.post(RECOVER, json={"tracking_no": no.lower(), "phone": "+86 138-0013-8000"})
    assert response.status_code == 202
    answer = response.get_json()["message"]
    (text,) = messages(world.app, template="query_code")
    assert text.phone == "+8613800138000" and text.not_before == text.created_at  # not held for the quiet hours
    (receipt,) = messages(world.app, template="receipt")
    assert receipt.not_before > receipt.created_at
    code = new_code(world.app, no)
    assert code != old and looks_up(world.client, no, old) == 404 and looks_up(world.client, no, code) == 200
    # the history says a code was sent, never the code itself; the citizen's timeline does not show it
    staff = world.ticket("office", no)
    (event,) = [e for e in staff["events"] if e["action"] == "recover_code"]
    assert code not in str(event)
    assert all(e.get("action") != "recover_code" for e in world.client.get(
        f"/api/v1/tickets/{no}?code={code}").get_json().get("events", []))
    # a wrong number, an unknown case: the same answer, nothing sent, the code unchanged
    for body in ({"tracking_no": no, "phone": "13900139000"}, {"tracking_no": "BJ20991231-9999", "phone": PHONE}):
        response = world.client.post(RECOVER, json=body)
        assert (response.status_code, response.get_json()["message"]) == (202, answer)
    assert len(messages(world.app, template="query_code")) == 1 and looks_up(world.client, no, code) == 200


def test_at_most_three_codes_a_day_to_one_number(world, clock):
    clock.set(2026, 11, 23, 10)
    cases = [world.file(phone=PHONE)["tracking_no"] for _ in range(2)]
    for attempt in range(5):
        assert world.client.post(RECOVER, json={"tracking_no": cases[attempt % 2], "phone": PHONE}).status_code == 202
    assert len(messages(world.app, template="query_code")) == 3  # across both of the number's cases
    clock.set(2026, 11, 24, 10, 1)
    assert world.client.post(RECOVER, json={"tracking_no": cases[0], "phone": PHONE}).status_code == 202
    assert len(messages(world.app, template="query_code")) == 4


def test_malformed_input_is_422_in_the_error_shape(world):
    for body in ({}, {"tracking_no": "BJ1", "phone": "12345"}, {"tracking_no": "", "phone": PHONE},
                 {"tracking_no": ["x"], "phone": PHONE}, {"tracking_no": "BJ1", "phone": 13800138000}):
        response = world.client.post(RECOVER, json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["code"] == "validation_error"
    assert world.client.post(RECOVER, data="not json", content_type="application/json").status_code == 400


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["tracking_no", "phone", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=60),
                                 st.lists(st.text(max_size=5), max_size=2))))
def test_any_body_is_answered_never_a_500(world, body):
    assert world.client.post(RECOVER, json=body).status_code in (202, 422)


def test_the_page_from_the_lookup_form(world, clock):
    clock.set(2026, 11, 23, 10)
    filed = world.file(phone=PHONE)
    no = filed["tracking_no"]
    client = world.app.test_client()
    track = client.get(f"/track?no={no}").get_data(as_text=True)
    assert "忘记查询码？" in track and f"/track/recover?no={no}" in track
    page = client.get(f"/track/recover?no={no}").get_data(as_text=True)
    assert "找回查询码" in page and no in page
    assert client.post("/track/recover", data={"tracking_no": no, "phone": PHONE}).status_code == 400  # no CSRF
    bad = client.post("/track/recover", data={"tracking_no": no, "phone": "123",
                                              "csrf_token": page_csrf(client, "/track/recover")})
    assert bad.status_code == 422 and "请输入反映问题时填写的手机号码。" in bad.get_data(as_text=True)
    done = client.post("/track/recover", data={"tracking_no": no, "phone": PHONE,
                                               "csrf_token": page_csrf(client, "/track/recover")})
    assert done.status_code == 200 and "新的查询码已通过短信发送到该号码" in done.get_data(as_text=True)
    code = new_code(world.app, no)
    assert looks_up(client, no, code) == 200 and looks_up(client, no, filed["query_code"]) == 404


def test_recovery_is_limited_per_client(make_app):
    app = make_app(RATELIMIT_PUBLIC="30/minute", RATELIMIT_LOOKUP="2/minute")
    client = app.test_client()
    body = {"tracking_no": "BJ20261123-0001", "phone": PHONE}
    assert [client.post(RECOVER, json=body).status_code for _ in range(3)] == [202, 202, 429]
    assert client.post(RECOVER, json=body).get_json()["error"]["code"] == "rate_limited"


def test_the_confirmation_says_when_a_receipt_held_by_the_quiet_hours_arrives(world, clock):
    from tests.helpers import file_by_form

    clock.set(2026, 11, 23, 23, 30)
    file_by_form(world.client)
    page = world.client.get("/filed").get_data(as_text=True)
    assert 'id="receipt-held"' in page and "2026-11-24 08:00" in page and "保存为图片" in page
    clock.set(2026, 11, 24, 10)
    other = world.app.test_client()
    file_by_form(other)
    page = other.get("/filed").get_data(as_text=True)
    assert 'id="receipt-sent"' in page and 'id="receipt-held"' not in page


def test_a_new_code_shuts_out_every_browser_that_knew_only_the_old_one(world, clock):
    """「旧查询码失效」: a browser that proved the old code (a shared computer, whoever saw it) loses the case page, its
    files and every citizen's step; the filing browser's confirmation stops showing the dead code; proving the new code
    opens the case again."""
    from tests.helpers import file_by_form

    clock.set(2026, 11, 23, 10)
    filer = world.app.test_client()
    assert file_by_form(filer, phone=PHONE).status_code == 303
    confirmation = filer.get("/filed").get_data(as_text=True)
    no = re.search(r"BJ\d{8}-\d{4}", confirmation).group(0)
    old = re.search(r'id="query-code">([A-Z0-9]+)<', confirmation).group(1)
    other = world.app.test_client()
    assert other.post("/track", data={"tracking_no": no, "code": old,
                                      "csrf_token": page_csrf(other, "/track")}).status_code == 303
    csrf = {other: page_csrf(other, f"/track/{no}"), filer: page_csrf(filer, f"/track/{no}")}

    assert world.client.post(RECOVER, json={"tracking_no": no, "phone": PHONE}).status_code == 202
    code = new_code(world.app, no)
    for client in (other, filer):
        response = client.get(f"/track/{no}")
        assert response.status_code == 302 and response.headers["Location"] == f"/track?no={no}"
        for step, data in (("withdraw", {"confirm": "y", "reason": "不需要了"}), ("supplement", {"text": "补充"}),
                           ("rating", {"score": "5"})):
            answer = client.post(f"/track/{no}/{step}", data={**data, "csrf_token": csrf[client]})
            assert answer.status_code == 302, (step, answer.status_code)
    assert world.case(no).status == "submitted"
    # the confirmation page and its picture no longer show the dead code
    assert filer.get("/filed").headers["Location"] == "/track"
    assert filer.get("/filed/receipt.png").headers["Location"] == "/track"
    # the new code opens the case again, in the same browser
    assert other.post("/track", data={"tracking_no": no, "code": code,
                                      "csrf_token": page_csrf(other, "/track")}).status_code == 303
    assert other.get(f"/track/{no}").status_code == 200


def test_a_browser_keeps_the_cases_whose_code_it_proved(world, clock):
    """Another case's new code does not shut a browser out of the cases it still holds the code of; a cookie of the
    earlier shape (tracking numbers only) asks for the code again."""
    clock.set(2026, 11, 23, 10)
    first, second = world.file(phone=PHONE), world.file(phone="13900139000")
    client = world.app.test_client()
    for filed in (first, second):
        assert client.post("/track", data={"tracking_no": filed["tracking_no"], "code": filed["query_code"],
                                           "csrf_token": page_csrf(client, "/track")}).status_code == 303
    assert world.client.post(RECOVER, json={"tracking_no": first["tracking_no"], "phone": PHONE}).status_code == 202
    assert client.get(f"/track/{first['tracking_no']}").status_code == 302
    assert client.get(f"/track/{second['tracking_no']}").status_code == 200
    with client.session_transaction() as session:
        session["tracked"] = [second["tracking_no"], "junk", 7, [1, 2, 3]]
    assert client.get(f"/track/{second['tracking_no']}").status_code == 302
