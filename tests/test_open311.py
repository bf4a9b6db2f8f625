"""Open311 GeoReport v2 (/open311/v2/): a GeoReport client from PyPI (`georeport`) reads services and requests from the
app served over real HTTP; requests are posted as the spec's example posts one; whatever the parameters, the answer is
a 2xx or a 4xx in the spec's error shape; and nothing a citizen wrote is shown without an API key of scope `read`."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
import sqlalchemy as sa
from georeport import GeoReport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify.models import SmsMessage
from tests.helpers import examples
from tests.sms_support import served
from tickets.accounts import issue_token
from tickets.db import db
from tickets.models import Event, ServiceItem, Ticket, User

PHONE = "13800138000"  # every citizen's number here: none of it may leak
NAME = "张三"
DESCRIPTION = "营业执照变更办了一个月还没结果。"
PROBLEM_TYPES = {"cannot_handle", "too_slow", "too_hard", "other"}
PERSONAL = ("description", "address", "address_id", "lat", "long", "media_url", "first_name", "last_name", "phone",
            "email", "name")

# The spec's example of POST Service Request (wiki.open311.org/GeoReport_v2), its values as given; Banjie needs a
# mainland mobile number and knows neither its service code 001 nor its attributes.
SPEC_EXAMPLE = {
    "api_key": "xyz", "service_code": "001", "lat": "37.76524078", "long": "-122.4212043",
    "address_string": "1234 5th street", "email": "smit222@sfgov.edu", "device_id": "tt222111", "account_id": "123456",
    "first_name": "john", "last_name": "smith", "phone": "111111111",
    "description": "A large sinkhole is destroying the street",
    "media_url": "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg",
    "attribute[WHISPAWN]": "123456", "attribute[WHISDORN]": "COTRUR",
}


def scoped_key(world, who: str, scope: str | None) -> str:
    with world.app.app_context():
        key = issue_token(db.session, db.session.get(User, world.users[who]), scope=scope)
        db.session.commit()
    return key


def service_item(world, name="营业执照变更", code="11330100MB0000000X4000110001", department="A") -> str:
    with world.app.app_context():
        item = ServiceItem(name=name, code=code, department_id=world.departments[department])
        db.session.add(item)
        db.session.commit()
        return f"item-{item.id}"


def post(world, fmt="json", headers=None, **form):
    return world.client.post(f"/open311/v2/requests.{fmt}", data=form, headers=headers or {})


def filing(world, key, **overrides) -> dict:
    """The spec's example as a Banjie integration sends it: a mainland mobile, a known service and attribute."""
    form = {**SPEC_EXAMPLE, "api_key": key, "service_code": "too_slow", "phone": PHONE,
            "first_name": "三", "last_name": "张", "description": DESCRIPTION}
    for name in [k for k in form if k.startswith("attribute[")]:
        del form[name]
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def assert_spec_errors(response, status: int) -> list[str]:
    """The spec's error list, in JSON or (for an address ending .xml) in XML; its descriptions."""
    assert response.status_code == status, response.data
    if response.mimetype == "text/xml":
        root = ET.fromstring(response.data)
        assert root.tag == "errors"
        body = [{child.tag: int(child.text) if child.tag == "code" else child.text for child in error}
                for error in root]
    else:
        body = response.get_json()
    assert isinstance(body, list) and body
    assert all(set(error) == {"code", "description"} and error["code"] == status and error["description"]
               for error in body), body
    return [error["description"] for error in body]


def ticket_row(world, tracking_no):
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
        db.session.expunge(ticket)
        return ticket


# --- the GeoReport client over HTTP ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_georeport_client_reads_services_and_requests_over_http(world, fmt):
    item_code = service_item(world)
    office_key = scoped_key(world, "office", "file")
    posted = post(world, **filing(world, office_key, service_code=item_code, **{"attribute[problem_type]": "too_hard"}))
    assert posted.status_code == 201, posted.data
    open311_no = posted.get_json()[0]["service_request_id"]
    public_no = world.file()["tracking_no"]
    closed_no = world.file(description="社保转移材料被退回三次。")["tracking_no"]
    world.act("office", closed_no, "accept")
    world.act("office", closed_no, "resolve", content="已当场办结。")

    with served(world.app) as base:
        client = GeoReport(f"{base}/open311/v2", output_format=fmt)
        services = client.get_service_list()
        codes = {s["service_code"] for s in services}
        assert PROBLEM_TYPES | {item_code} <= codes
        item = next(s for s in services if s["service_code"] == item_code)
        assert item["service_name"] == "营业执照变更" and item["keywords"] == "11330100MB0000000X4000110001"
        assert str(item["metadata"]).lower() == "true"
        definition = client.get_service_definition(item_code)
        attributes = definition["attributes"] if fmt == "json" else [definition["attributes"]["attribute"]]
        assert [a["code"] for a in attributes] == ["problem_type"]
        values = attributes[0]["values"] if fmt == "json" else attributes[0]["values"]["value"]
        assert {v["key"] for v in values} == PROBLEM_TYPES

        listed = client.get_service_requests()
        by_number = {r["service_request_id"]: r for r in listed}
        assert set(by_number) == {open311_no, public_no, closed_no}
        assert by_number[open311_no]["service_code"] == item_code
        assert by_number[open311_no]["service_name"] == "营业执照变更"
        assert by_number[public_no]["service_code"] == "too_slow"
        assert by_number[closed_no]["status"] == "closed" and by_number[public_no]["status"] == "open"
        for row in listed:
            assert not set(row) & set(PERSONAL)
            assert row["requested_datetime"].endswith("+08:00")

        closed = client.get_service_requests(status="closed")
        if isinstance(closed, dict):  # xmltodict gives one element as itself
            closed = [closed]
        assert [r["service_request_id"] for r in closed] == [closed_no]
        only = client.get_service_requests(service_request_id=f"{public_no},{closed_no}")
        assert {r["service_request_id"] for r in only} == {public_no, closed_no}

        one = client.get_service_request(open311_no)
        assert one["status"] == "open" and one["agency_responsible"] == "办不成事反映窗口"
        assert one["expected_datetime"] and one["status_notes"] == "待受理"


# --- POST requests, from the spec's example -------------------------------------------------------------------

def test_the_specs_example_post_is_refused_naming_each_parameter_banjie_cannot_take(world):
    example = {**SPEC_EXAMPLE, "api_key": scoped_key(world, "office", "file")}
    descriptions = assert_spec_errors(post(world, headers={"Accept-Language": "en"}, **example), 400)
    fields = {text.split(":")[0] for text in descriptions}
    assert fields == {"service_code", "phone", "attribute[WHISPAWN]", "attribute[WHISDORN]"}
    assert any("mainland mobile" in text for text in descriptions)
    chinese = assert_spec_errors(post(world, **example), 400)
    assert any(text.startswith("phone：") and "手机" in text for text in chinese)
    assert ticket_count(world) == 0


def ticket_count(world) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_specs_example_adapted_files_a_case_on_behalf_of_the_citizen(world, fmt):
    key = scoped_key(world, "office", "file")
    form = {**SPEC_EXAMPLE, "api_key": key, "service_code": "too_slow", "phone": "138 0013 8000"}
    del form["attribute[WHISPAWN]"], form["attribute[WHISDORN]"]
    response = post(world, fmt, **form)
    assert response.status_code == 201, response.data
    if fmt == "json":
        [answer] = response.get_json()
        assert response.mimetype == "application/json"
    else:
        assert response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        request = ET.fromstring(response.data).find("request")
        answer = {child.tag: child.text for child in request}
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert answer["account_id"] == "123456" and answer["service_request_id"].startswith("BJ")
    assert "查询码" in answer["service_notice"]  # the code goes to the citizen by SMS, never to the integration
    assert response.headers["Location"].endswith(f"/open311/v2/requests/{answer['service_request_id']}.{fmt}")

    ticket = ticket_row(world, answer["service_request_id"])
    assert ticket.citizen_name == "john smith" and ticket.phone == "+8613800138000"
    assert ticket.problem_type == "too_slow" and ticket.channel == "hotline" and ticket.service_item is None
    assert ticket.description.splitlines() == [
        "A large sinkhole is destroying the street", "地点：1234 5th street", "坐标：37.76524078, -122.4212043",
        "图片或其他附件：http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg"]
    assert ticket.source == "open311" and ticket.external_ref is None
    with world.app.app_context():
        event = db.session.scalar(sa.select(Event).where(Event.ticket_id == ticket.id, Event.action == "file"))
        assert event.actor_id == world.users["office"]
        assert event.data["open311"] == {"address_string": "1234 5th street", "lat": 37.76524078,
                                         "long": -122.4212043, "media_url": SPEC_EXAMPLE["media_url"]}
        assert "smit222" not in json.dumps(event.data) and "tt222111" not in json.dumps(event.data)
        receipt = db.session.scalar(sa.select(SmsMessage).where(SmsMessage.ticket_id == ticket.id))
        assert receipt.template == "receipt" and receipt.phone == "+8613800138000"


def test_a_chinese_name_is_family_name_first_and_a_service_item_takes_its_problem_type(world, network):
    item_code = service_item(world)
    key = scoped_key(world, "office_c1", "file")
    response = post(world, **filing(world, key, service_code=item_code, first_name="小明", last_name="王",
                                    **{"attribute[problem_type]": "cannot_handle"}))
    ticket = ticket_row(world, response.get_json()[0]["service_request_id"])
    assert ticket.citizen_name == "王小明" and ticket.service_item == "营业执照变更"
    assert ticket.problem_type == "cannot_handle"
    assert network.office_of(ticket.tracking_no) == "c1"  # the key owner's window by default
    at_township = post(world, **filing(world, key, **{"attribute[office_code]": "t11"})).get_json()[0]
    assert network.office_of(at_township["service_request_id"]) == "t11"
    elsewhere = post(world, headers={"Accept-Language": "en"}, **filing(world, key, **{"attribute[office_code]": "c2"}))
    [text] = assert_spec_errors(elsewhere, 400)
    assert text.startswith("attribute[office_code]: ")
    defaulted = post(world, **filing(world, key, service_code=item_code)).get_json()[0]
    assert ticket_row(world, defaulted["service_request_id"]).problem_type == "other"


def test_keys_and_scopes(world):
    form = filing(world, None)
    assert_spec_errors(post(world, **form), 403)  # no key
    assert_spec_errors(post(world, **{**form, "api_key": "bj_not-a-key"}), 403)
    assert_spec_errors(post(world, **{**form, "api_key": scoped_key(world, "office", "read")}), 403)
    [text] = assert_spec_errors(post(world, **{**form, "api_key": scoped_key(world, "dept_a", "file")}), 403)
    assert "窗口" in text
    assert post(world, **{**form, "api_key": scoped_key(world, "office", None)}).status_code == 201  # unscoped
    assert post(world, **{**form, "api_key": scoped_key(world, "admin", "file")}).status_code == 201
    # reading: a key that cannot read is refused, not quietly treated as none
    assert_spec_errors(world.client.get("/open311/v2/requests.json",
                                        query_string={"api_key": scoped_key(world, "office", "file")}), 403)
    assert_spec_errors(world.client.get("/open311/v2/requests.json", query_string={"api_key": "nope"}), 403)
    # JSON is not what the spec posts
    refused = world.client.post("/open311/v2/requests.json", json=form)
    assert_spec_errors(refused, 400)


# --- privacy and visibility ----------------------------------------------------------------------------------

def test_without_a_read_key_nothing_a_citizen_wrote_is_shown(world):
    key = scoped_key(world, "office", "file")
    posted = post(world, **filing(world, key, first_name="三", last_name="张", address_string="人民路1号"))
    number = posted.get_json()[0]["service_request_id"]
    rejected = world.file(name="李四", description="对窗口人员态度不满，要求处理。")["tracking_no"]
    world.act("office", rejected, "reject", reason="属于信访事项，请到信访部门反映。")
    for path in ("/open311/v2/requests.json", "/open311/v2/requests.xml", f"/open311/v2/requests/{number}.json",
                 f"/open311/v2/requests/{rejected}.xml"):
        response = world.client.get(path)
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        for secret in (PHONE, "8000", NAME, "李四", DESCRIPTION, "人民路", "态度", "信访", "john", "37.76"):
            assert secret not in text, (path, secret)
    listed = world.client.get("/open311/v2/requests.json").get_json()
    assert {r["service_request_id"] for r in listed} == {number, rejected}
    assert all(not set(r) & set(PERSONAL) for r in listed)

    reader = scoped_key(world, "office", "read")
    full = {r["service_request_id"]: r for r in world.client.get(
        "/open311/v2/requests.json", headers={"Authorization": f"Bearer {reader}"}).get_json()}
    assert full[number]["description"].startswith(DESCRIPTION) and full[number]["address"] == "人民路1号"
    assert full[number]["lat"] == 37.76524078
    assert full[rejected]["status"] == "closed"
    assert full[rejected]["status_notes"] == "不予受理：属于信访事项，请到信访部门反映。"
    for row in full.values():  # name and number are never in an Open311 answer, whoever asks
        assert PHONE not in json.dumps(row, ensure_ascii=False) and NAME not in json.dumps(row, ensure_ascii=False)


def test_a_read_key_sees_what_its_owner_may_see(world, network):
    at_c1, at_t11, at_c2 = network.file("c1"), network.file("t11"), network.file("c2")
    county = scoped_key(world, "office_c1", "read")
    seen = {r["service_request_id"] for r in world.client.get(
        "/open311/v2/requests.json", query_string={"api_key": county}).get_json()}
    assert seen == {at_c1, at_t11}
    assert world.client.get(f"/open311/v2/requests/{at_t11}.json", query_string={"api_key": county}).get_json()[0][
        "description"] == DESCRIPTION
    assert_spec_errors(world.client.get(f"/open311/v2/requests/{at_c2}.json", query_string={"api_key": county}), 404)
    assert "description" not in world.client.get(f"/open311/v2/requests/{at_c2}.json").get_json()[0]

    world.act("office_c1", at_c1, "accept_and_transfer", department_id=network.departments["C1"])
    department = scoped_key(world, "dept_c1", "read")
    mine = world.client.get("/open311/v2/requests.json", query_string={"api_key": department}).get_json()
    assert [(r["service_request_id"], r["agency_responsible"]) for r in mine] == [(at_c1, "东湖县人社局")]


# --- filters, services and errors ----------------------------------------------------------------------------

def test_filters_and_the_default_ninety_days(world, clock):
    old = world.file()["tracking_no"]
    clock.advance(days=100)
    item_code = service_item(world)
    recent = world.file(service_item="营业执照变更", problem_type="other")["tracking_no"]
    typed = world.file(problem_type="too_hard")["tracking_no"]

    def numbers(**query):
        response = world.client.get("/open311/v2/requests.json", query_string=query)
        assert response.status_code == 200, response.data
        return [r["service_request_id"] for r in response.get_json()]

    assert numbers() == [typed, recent]  # the newest first, the last 90 days
    assert numbers(service_code=item_code) == [recent]
    assert numbers(service_code="too_hard,other") == [typed]  # a catalogued item's case is that item's
    assert numbers(service_request_id=f"{old.lower()}, {typed}") == [typed, old]  # overrides the default range
    start = (clock.now - timedelta(days=101)).isoformat()
    assert numbers(start_date=start) == [old]
    assert numbers(start_date=start, end_date=(clock.now - timedelta(days=20)).isoformat()) == [old]
    assert numbers(end_date=(clock.now - timedelta(days=50)).isoformat()) == [old]
    assert numbers(status="open,closed") == [typed, recent]
    assert numbers(status="closed") == []

    for query, field in ((dict(start_date=start, end_date=clock.now.isoformat()), "end_date"),
                         (dict(start_date=clock.now.isoformat(), end_date=start), "end_date"),
                         (dict(start_date="yesterday"), "start_date"), (dict(status="pending"), "status"),
                         (dict(service_code="item-999999"), "service_code"),
                         (dict(service_code=",".join(["other"] * 101)), "service_code"),
                         (dict(service_request_id=",".join(["BJ1"] * 1001)), "service_request_id")):
        [text] = assert_spec_errors(world.client.get("/open311/v2/requests.json", query_string=query), 400)
        assert text.startswith(f"{field}："), text


def test_services_of_one_window_take_no_attributes(world):
    assert {s["metadata"] for s in world.client.get("/open311/v2/services.json").get_json()} == {False}
    [text] = assert_spec_errors(world.client.get("/open311/v2/services/too_slow.json"), 404)
    assert "metadata" in text
    assert_spec_errors(world.client.get("/open311/v2/services/item-12.json"), 404)
    english = world.client.get("/open311/v2/services.json", headers={"Accept-Language": "en"}).get_json()
    assert english[1] == {"service_code": "too_slow", "service_name": "Too slow", "metadata": False,
                          "description": english[1]["description"], "type": "realtime", "keywords": "",
                          "group": "Problem types"}
    assert world.client.get("/open311/v2/services.json").get_json()[1]["service_name"] == "办得慢"


def test_with_several_windows_the_window_is_an_attribute(network):
    world = network.world
    definition = world.client.get("/open311/v2/services/too_slow.json").get_json()
    [window] = definition["attributes"]
    assert window["code"] == "office_code" and window["datatype"] == "singlevaluelist" and not window["required"]
    assert [v["key"] for v in window["values"]][:2] == ["root", "c1"]
    xml = ET.fromstring(world.client.get("/open311/v2/services/too_slow.xml").data)
    assert xml.tag == "service_definition" and xml.find("attributes/attribute/values/value/key").text == "root"


def test_errors_answer_in_the_spec_shape_in_both_formats(world):
    assert_spec_errors(world.client.get("/open311/v2/nothing.json"), 404)
    assert_spec_errors(world.client.get("/open311/v2/services.yaml"), 404)
    assert_spec_errors(world.client.get("/open311/v2/requests/BJ20991231-9999.json"), 404)
    wrong_method = world.client.delete("/open311/v2/services.json")
    assert_spec_errors(wrong_method, 405)
    assert "GET" in wrong_method.headers["Allow"]
    xml = world.client.get("/open311/v2/requests.xml", query_string={"status": "x"})
    assert xml.status_code == 400 and xml.mimetype == "text/xml"
    error = ET.fromstring(xml.data).find("error")
    assert error.find("code").text == "400" and error.find("description").text.startswith("status：")
    english = world.client.get("/open311/v2/requests.json", query_string={"status": "x"},
                               headers={"Accept-Language": "en"})
    assert assert_spec_errors(english, 400) == ["status: Must be open or closed (or both, separated by a comma)."]
    discovery = world.client.get("/open311/discovery.json").get_json()
    assert discovery["endpoints"][0]["url"] == "http://localhost/open311/v2"


def test_rate_limited_like_the_public_api(make_app):
    app = make_app(RATELIMIT_PUBLIC="30/minute", RATELIMIT_LOOKUP="2/minute")
    client = app.test_client()
    assert [client.get("/open311/v2/services.json").status_code for _ in range(2)] == [200, 200]
    limited = client.get("/open311/v2/requests.json")
    assert_spec_errors(limited, 429)
    assert int(limited.headers["Retry-After"]) > 0


# --- hostile parameters: never a 500 ------------------------------------------------------------------------

HOSTILE = st.one_of(st.text(max_size=40), st.sampled_from(
    ["", ",", "open,", "too_slow,item-0", "item-99999999999", "2026-11-16T09:00:00Z", "2026-02-30T00:00:00+08:00",
     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "-91", "90.0000000000000001", "1e5", "NaN", "http://",
     "javascript:alert(1)", "13800138000", "<x>&amp;", "\U0001F600" * 3, "attribute[", "a" * 3000]))
GET_PARAMETERS = ("service_request_id", "service_code", "status", "start_date", "end_date", "api_key",
                  "jurisdiction_id", "extra")
POST_PARAMETERS = ("service_code", "phone", "first_name", "last_name", "description", "lat", "long", "address_string",
                   "address_id", "media_url", "account_id", "email", "device_id", "attribute[office_code]",
                   "attribute[problem_type]", "attribute[x]", "attribute[]")
FIXTURE_SETTINGS = settings(max_examples=examples(60), deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_answer_or_spec_error(response) -> None:
    assert response.status_code < 500, response.data
    if response.status_code >= 400:
        assert_spec_errors(response, response.status_code)


@FIXTURE_SETTINGS
@given(query=st.dictionaries(st.sampled_from(GET_PARAMETERS), HOSTILE, max_size=5),
       path=st.sampled_from(["/open311/v2/requests.json", "/open311/v2/requests.xml"]))
def test_any_query_gets_requests_or_a_spec_error(world, query, path):
    assert_answer_or_spec_error(world.client.get(path, query_string=query))


@FIXTURE_SETTINGS
@given(code=HOSTILE.filter(lambda s: "/" not in s and s.strip() not in ("", ".")), fmt=st.sampled_from(["json", "xml"]))
def test_any_address_gets_an_answer_or_a_spec_error(world, code, fmt):
    for path in (f"/open311/v2/services/{code}.{fmt}", f"/open311/v2/requests/{code}.{fmt}"):
        assert_answer_or_spec_error(world.client.get(path))


@FIXTURE_SETTINGS
@given(form=st.dictionaries(st.sampled_from(POST_PARAMETERS), HOSTILE, max_size=9))
def test_any_posted_form_files_or_gets_a_spec_error(world, form):
    key = world.tokens["office"]
    response = world.client.post("/open311/v2/requests.json", data={**form, "api_key": key})
    assert_answer_or_spec_error(response)
    if response.status_code != 201:
        assert response.status_code in (400, 413)


VALID_FILING = {"service_code": "other", "description": "窗口不给办营业执照变更。", "phone": "13800138000",
                "first_name": "三", "last_name": "张", "lat": "31.2304", "long": "121.4737", "address_string": "人民大道200号",
                "media_url": "https://example.org/photo.jpg"}
COORDINATES = st.sampled_from(["31.2", "-33.9", "0", "90", "-180", "121.4737", "１２１", "200", "abc", ""])


@FIXTURE_SETTINGS
@given(broken=st.dictionaries(st.sampled_from(POST_PARAMETERS), HOSTILE | COORDINATES, max_size=3),
       dropped=st.sets(st.sampled_from(sorted(VALID_FILING)), max_size=2))
def test_a_valid_filing_with_any_parameter_broken_or_missing_files_or_gets_a_spec_error(world, broken, dropped):
    """From a filing that files, a few parameters changed to anything (a coordinate among them, valid or not) or left
    out: filed, or refused in the spec's shape; never a 500 (a valid lat beside a bad or missing long was one)."""
    form = {key: value for key, value in {**VALID_FILING, **broken}.items() if key not in dropped}
    response = world.client.post("/open311/v2/requests.json", data={**form, "api_key": world.tokens["office"]})
    assert_answer_or_spec_error(response)
    assert response.status_code in (201, 400, 413), response.data


@pytest.mark.parametrize("lat,long", [("31.2", "abc"), ("31.2", "200"), ("31.2", "１２１"), ("31.2", None),
                                      (None, "121.5"), ("abc", "121.5")])
def test_a_coordinate_without_a_valid_partner_is_a_400_naming_it(world, lat, long):
    form = {key: value for key, value in {**VALID_FILING, "lat": lat, "long": long}.items() if value is not None}
    response = world.client.post("/open311/v2/requests.json", data={**form, "api_key": world.tokens["office"]})
    assert response.status_code == 400, response.data
    assert_spec_errors(response, 400)
    assert {"lat", "long"} & {re.split("[:：]", error["description"])[0] for error in response.get_json()}, response.get_json()
