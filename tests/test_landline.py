"""Landlines and phone-only citizens (issue 15, item 4): a fixed line (area code and number) is accepted wherever a
citizen gives a number, stored as E.164 and shown masked with its area code; no text is ever written to it; the
office takes the survey's answer on the phone (`record_rating`), which counts and reopens like any other rating."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.models import SmsMessage
from tests.helpers import csrf_of, examples, file_by_form, page_csrf
from tickets import phones
from tickets.db import db
from tickets.models import Deadline, Survey, Ticket

LANDLINE, LANDLINE_E164 = "010-6512 3456", "+861065123456"
EN = {"Accept-Language": "en"}

# --- the parser: every spelling of a valid number accepted, anything else refused, never an exception -------------

# Area codes (without the trunk 0) and their subscriber numbers' length; a subscriber number starts with 2-8.
AREAS = (("10", 8), ("20", 8), ("21", 8), ("22", 8), ("23", 8), ("24", 8), ("25", 8), ("27", 8), ("28", 8),
         ("29", 8), ("311", 8), ("371", 8), ("431", 8), ("451", 8), ("471", 7), ("512", 8), ("531", 8), ("551", 8),
         ("571", 8), ("574", 8), ("591", 8), ("731", 8), ("755", 8), ("757", 8), ("769", 8), ("851", 8), ("871", 8),
         ("898", 8))
FULL_WIDTH = str.maketrans("0123456789+()", "０１２３４５６７８９＋（）")
LANDLINE_SPELLINGS = (
    lambda a, n: f"0{a}-{n}",
    lambda a, n: f"(0{a}){n[:4]} {n[4:]}",
    lambda a, n: f"(0{a}) {n}",
    lambda a, n: f"0{a} {n[:4]} {n[4:]}",
    lambda a, n: f"0{a}{n}",
    lambda a, n: f"0{a}.{n[:4]}.{n[4:]}",
    lambda a, n: f"+86 {a} {n[:4]} {n[4:]}",
    lambda a, n: f"+86-{a}-{n}",
    lambda a, n: f"+86{a}{n}",
    lambda a, n: f"0086 {a} {n}",
    lambda a, n: f"86 {a} {n}",
    lambda a, n: f"  0{a}-{n} ",
    lambda a, n: f"0{a}-{n}".translate(FULL_WIDTH),
    lambda a, n: f"+86 ({a}) {n}".translate(FULL_WIDTH),
)
MOBILE_SPELLINGS = (
    lambda n: n, lambda n: f"+86 {n}", lambda n: f"{n[:3]} {n[3:7]} {n[7:]}", lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"0086{n}", lambda n: f"86{n}", lambda n: f"+86-{n[:3]}-{n[3:7]}-{n[7:]}", lambda n: n.translate(FULL_WIDTH),
)


@st.composite
def landlines(draw):
    area, length = draw(st.sampled_from(AREAS))
    first = draw(st.sampled_from("2345678"))
    # numbers beginning 80 are not assigned to fixed lines (Beijing's and Shanghai's 80xxxxxx: phonenumbers' metadata)
    second = draw(st.sampled_from("123456789" if first == "8" else "0123456789"))
    subscriber = first + second + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    return draw(st.sampled_from(LANDLINE_SPELLINGS))(area, subscriber), area, subscriber


mobiles = st.tuples(st.sampled_from(["138", "139", "150", "158", "186", "199", "177", "170"]),
                    st.text("0123456789", min_size=8, max_size=8), st.sampled_from(MOBILE_SPELLINGS))
PURE = settings(max_examples=examples(300), deadline=None)


@PURE
@given(landlines())
def test_every_spelling_of_a_landline_is_accepted_stored_as_e164_and_never_texted(case):
    raw, area, subscriber = case
    e164 = f"+86{area}{subscriber}"
    assert phones.normalise_phone(raw) == e164, raw
    assert phones.normalise_mobile(raw) is None  # staff and the code recovery, who are texted, need a mobile
    assert not phones.is_mobile(e164) and phones.phone_type(e164) == "landline"
    assert phones.national(e164) == f"0{area}-{subscriber}"
    assert phones.mask(e164) == f"0{area}****{subscriber[-4:]}"  # the area code kept, the middle hidden
    assert phones.normalise_phone(phones.national(e164)) == e164  # what the console shows reads back the same


@PURE
@given(mobiles)
def test_every_spelling_of_a_mobile_is_accepted_and_is_a_mobile(case):
    prefix, rest, spell = case
    e164 = f"+86{prefix}{rest}"
    assert phones.normalise_phone(spell(prefix + rest)) == phones.normalise_mobile(spell(prefix + rest)) == e164
    assert phones.is_mobile(e164) and phones.phone_type(e164) == "mobile"
    assert phones.national(e164) == prefix + rest and phones.mask(e164) == f"{prefix}****{rest[-4:]}"


phone_like = st.text(alphabet="0123456789０１２３４５６７８９+＋-–.()（） 转extEXT#*,", max_size=45)
anything = st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.binary(max_size=30),
                     st.text(max_size=60), phone_like, st.lists(st.text(max_size=5), max_size=2))


@settings(max_examples=examples(500), deadline=None)
@given(anything)
def test_garbage_is_refused_and_nothing_raises(raw):
    result = phones.normalise_phone(raw)
    mobile = phones.normalise_mobile(raw)
    assert result is None or (isinstance(result, str) and result.startswith("+86")
                              and phones.normalise_phone(result) == result)
    assert mobile is None or mobile == result  # a mobile is a phone number
    for value in (raw, result):
        assert isinstance(phones.is_mobile(value), bool)
        if isinstance(value, str) or value is None:
            phones.mask(value)
    if result is not None:
        assert phones.is_mobile(result) == (mobile is not None)
        assert isinstance(phones.national(result), str) and "****" in phones.mask(result)


# Any digits after +86, of any length, and the national spellings phonenumbers reads for CN.
plus86_digits = st.text("0123456789", min_size=1, max_size=14).flatmap(
    lambda digits: st.sampled_from([f"+86{digits}", f"0{digits}", digits, f"86{digits}"]))


@settings(max_examples=examples(1500), deadline=None)
@given(st.one_of(plus86_digits, phone_like, landlines().map(lambda case: case[0]),
                 mobiles.map(lambda case: case[2](case[0] + case[1]))))
def test_one_metadata_match_decides_as_the_library_does(raw):
    """The parser matches a number against the metadata once (`number_type`) and takes a known type for valid:
    what `phonenumbers.is_valid_number` and `number_type` decide together, for every input."""
    import phonenumbers

    number, kind = phones._parse(raw)
    try:
        text = raw.strip()
        digits = "".join(ch for ch in text if ch.isdigit())
        if not text.startswith(("+", "＋")) and len(digits) == 13 and digits.startswith("86"):
            text = "+" + digits
        theirs = phonenumbers.parse(text, "CN") if len(raw) <= 40 else None
    except phonenumbers.NumberParseException:
        theirs = None
    valid = (theirs is not None and theirs.country_code == 86 and not theirs.extension
             and phonenumbers.is_valid_number(theirs))
    assert (number is not None) == valid, raw
    if valid:
        assert number == theirs and kind == phonenumbers.number_type(theirs)


@pytest.mark.parametrize("raw", [
    "12345678",            # no area code
    "010-1234567",         # a digit short
    "0755-8888888",        # Shenzhen's numbers have eight digits
    "010-12345678-801",    # an extension: E.164 cannot keep it
    "010-12345678 ext. 801",
    "4008001234",          # a company's 400 number is no citizen's
    "95588", "110", "+852 2123 4567", "+1 415 555 0100", "abc", "", "0" * 12, "1" * 100, None, 1065123456,
])
def test_not_a_citizens_number(raw):
    assert phones.normalise_phone(raw) is None and not phones.is_mobile(raw)


def test_masking_and_national_forms():
    assert phones.mask("+861065123456") == "010****3456" and phones.national("+861065123456") == "010-65123456"
    assert phones.mask("+8675588889999") == "0755****9999" and phones.national("+8675588889999") == "0755-88889999"
    assert phones.mask("+864711234567") == "0471****4567"
    assert phones.mask("+8613800138000") == "138****8000" and phones.national("+8613800138000") == "13800138000"
    assert phones.mask(None) == "" and phones.mask("+86123") == "***" and phones.phone_type(None) is None
    assert phones.mask("138****8000") == "138****8000"  # a masked number stays masked


# --- filing with a landline: the API, the public form, the console ---------------------------------------------

def sms_rows(world, **where) -> list[SmsMessage]:
    with world.app.app_context():
        query = sa.select(SmsMessage).order_by(SmsMessage.id)
        for name, value in where.items():
            query = query.where(getattr(SmsMessage, name) == value)
        return list(db.session.scalars(query))


def survey_of(world, tracking_no) -> Survey:
    with world.app.app_context():
        return db.session.scalar(sa.select(Survey).join(Ticket, Ticket.id == Survey.ticket_id)
                                 .where(Ticket.tracking_no == tracking_no).order_by(Survey.round.desc()))


def closed_case(world, **filing) -> str:
    return closed_with_code(world, **filing)[0]


def closed_with_code(world, **filing) -> tuple[str, str]:
    """A case filed, transferred to A, answered and approved: closed, its survey open. (tracking number, query code)"""
    filed = world.file(**filing)
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已为您办理完毕。")
    world.act("office", no, "approve")
    return no, filed["query_code"]


@pytest.mark.parametrize("spelling", ["010-6512 3456", "(010)65123456", "+86 10 6512 3456", "0086-10-65123456"])
def test_the_api_files_with_a_landline_and_texts_nobody(world, spelling):
    filed = world.file(phone=spelling)
    no = filed["tracking_no"]
    staff = world.ticket("office", no)
    assert staff["phone"] == LANDLINE_E164 and staff["phone_type"] == "landline"
    listed = world.get("office", "/api/v1/staff/tickets").get_json()["items"]
    assert [(i["phone"], i["phone_type"]) for i in listed] == [("010****3456", "landline")]
    assert sms_rows(world) == []  # no receipt: not queued, not sent, not failed
    assert world.file()["tracking_no"] and [m.template for m in sms_rows(world)] == ["receipt"]  # a mobile still is


def test_a_bad_number_is_a_field_error_naming_both_kinds(world):
    response = world.client.post("/api/v1/tickets", headers=EN, json={
        "name": "张三", "phone": "6512 3456", "problem_type": "other", "description": "没有区号的座机号码。"})
    assert response.status_code == 422
    message = response.get_json()["error"]["fields"]["phone"]
    assert "landline" in message and "area code" in message


def test_the_public_form_says_a_landline_gets_no_sms_and_shows_the_codes(world):
    form = world.client.get("/?lang=en").get_data(as_text=True)
    hint = re.search(r'id="phone-hint">(.*?)</p>', form, re.S).group(1)
    assert "landline" in hint and "no SMS" in hint and "call you" in hint and "rating" in hint
    response = file_by_form(world.client, phone="(010)6512 3456")
    assert response.status_code == 303
    page = world.client.get("/filed").get_data(as_text=True)
    code = re.search(r'id="query-code">([^<]+)<', page).group(1)
    assert 'id="receipt-landline"' in page and 'id="receipt-sent"' not in page and 'id="receipt-held"' not in page
    no = re.search(r'id="tracking-no">([^<]+)<', page).group(1)
    assert world.client.get(f"/api/v1/tickets/{no}?code={code}").status_code == 200  # the code is the citizen's way
    assert sms_rows(world) == []
    # a mobile's confirmation still promises the text
    file_by_form(world.client)
    assert 'id="receipt-sent"' in world.client.get("/filed").get_data(as_text=True)


def test_the_console_files_for_a_caller_with_a_landline(world):
    client = world.console("office")
    page = client.get("/admin/intake/?lang=en").get_data(as_text=True)
    assert "landline" in re.search(r'id="phone-hint">(.*?)</small>', page, re.S).group(1)
    response = client.post("/admin/intake/", data={
        "name": "钱大爷", "phone": "0755 8888 9999", "problem_type": "too_hard", "channel": "phone",
        "description": "老人不会用手机，打电话到窗口反映。", "csrf_token": csrf_of(page)})
    assert response.status_code == 303, response.get_data(as_text=True)
    receipt = client.get("/admin/intake/filed").get_data(as_text=True)
    assert 'id="landline-note"' in receipt and "no SMS reaches their landline" in receipt
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket))
        assert (ticket.phone, ticket.channel) == ("+8675588889999", "phone")
        no = ticket.tracking_no
    assert sms_rows(world) == []
    case = client.get(f"/admin/case/{no}").get_data(as_text=True)
    assert 'id="case-phone">0755****9999<' in case and 'id="landline-badge"' in case
    shown = client.post(f"/admin/case/{no}/whole-number", data={"csrf_token": csrf_of(case), "reason": "回电"})
    assert 'id="case-phone">0755-88889999<' in shown.get_data(as_text=True)  # 查看完整号码: as people write it


def test_lists_search_and_exports_show_landlines_masked_with_their_area_code(world):
    no = world.file(phone=LANDLINE)["tracking_no"]
    world.file()  # a mobile, for contrast
    client = world.console("office")
    listing = client.get("/admin/cases/").get_data(as_text=True)
    assert "010****3456" in listing and "65123456" not in listing and "138****8000" in listing
    found = client.get("/admin/cases/", query_string={"search": "(010) 6512-3456"}).get_data(as_text=True)
    assert no in found and "138****8000" not in found
    masked = client.get("/admin/cases/export/csv/").get_data().decode("utf-8-sig")
    assert "010****3456" in masked and "65123456" not in masked
    full = client.post("/admin/cases/export/csv/full", data={"csrf_token": page_csrf(client, "/admin/cases/"),
                                                             "full_phones": "y", "reason": "核对"})
    full = full.get_data().decode("utf-8-sig")
    assert "010-65123456" in full and "13800138000" in full


# --- no text to a landline, ever; the rating taken by phone ------------------------------------------------------

def test_closing_a_landline_case_texts_nobody_and_the_office_records_the_rating(world):
    no, code = closed_with_code(world, phone=LANDLINE)
    assert sms_rows(world) == []  # no receipt, transfer notice, answer or survey text to a landline
    survey = survey_of(world, no)
    assert survey.phone == LANDLINE_E164 and survey.rated_at is None  # the round is open all the same
    staff = world.ticket("office", no)
    assert "record_rating" in staff["allowed_actions"]
    assert "record_rating" not in world.ticket("dept_a", no)["allowed_actions"]
    world.act("dept_a", no, "record_rating", expect=403, score=2)
    world.act("supervisor", no, "record_rating", expect=403, score=2)

    body = world.act("office", no, "record_rating", score=2, comment="电话回访：比较满意。",
                     version=staff["version"])
    event = body["events"][-1]
    assert (event["action"], event["actor_role"], event["public"]) == ("record_rating", "office", True)
    assert event["data"]["score"] == 2 and event["data"]["channel"] == "phone" and event["data"]["round"] == 1
    assert body["status"] == "closed" and body["version"] == staff["version"] + 1
    survey = survey_of(world, no)
    assert (survey.score, survey.channel, survey.comment, survey.defaulted) == (2, "phone", "电话回访：比较满意。", False)
    assert sms_rows(world) == []
    # one rating per round, whoever gives it
    assert world.act("office", no, "record_rating", expect=409, score=1)["error"]["code"] == "invalid_transition"
    # the citizen's own view shows the rating, and the survey as answered
    view = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert view["rating"]["score"] == 2 and not view["survey_open"]
    last = view["timeline"][-1]
    assert last["note"] == "评价结果：满意。" and "电话回访" not in str(view["timeline"])  # what they said stays inside


def test_a_bad_rating_by_phone_reopens_the_case_as_any_bad_rating_does(world):
    no = closed_case(world, phone=LANDLINE)
    body = world.act("office", no, "record_rating", score=5, comment="问题没有解决。")
    assert body["status"] == "rectifying" and body["events"][-1]["to_status"] == "rectifying"
    with world.app.app_context():
        rectify = db.session.scalar(sa.select(Deadline).join(Ticket, Ticket.id == Deadline.ticket_id).where(
            Ticket.tracking_no == no, Deadline.kind == "rectify"))
        assert rectify is not None and rectify.ended_at is None and rectify.department_id == world.departments["A"]
    # the department's supervisor is told, the citizen (a landline) is not
    texts = sms_rows(world)
    assert [(m.template, m.phone) for m in texts] == [("bad_rating_supervisor", "+8613900000001")]
    assert body["events"][-1]["data"]["notified"] == {"supervisor": 1}
    # and the 差评's return visit is due, as after any 差评
    assert "record_visit" in world.ticket("office", no)["allowed_actions"]


def test_a_mobile_citizen_may_rate_by_phone_too(world):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "resolve", content="已电话告知办理材料。")
    assert [m.template for m in sms_rows(world)] == ["receipt", "closed", "survey"]
    world.act("office", no, "record_rating", score="1")  # a console form posts text
    assert (survey_of(world, no).score, survey_of(world, no).channel) == (1, "phone")
    view = world.client.get(f"/api/v1/tickets/{no}?code={filed['query_code']}").get_json()
    assert view["rating"]["score"] == 1 and not view["survey_open"]
    timeline = [entry["label"] for entry in view["timeline"]]
    assert len(timeline) == 4  # filed, accepted, resolved, the rating (no staff name anywhere)
    again = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 5})
    assert again.status_code == 409  # the round was rated


@pytest.mark.parametrize("body, field", [
    ({}, "score"), ({"score": 0}, "score"), ({"score": 6}, "score"), ({"score": "很好"}, "score"),
    ({"score": True}, "score"), ({"score": 3, "comment": "长" * 1001}, "comment"), ({"score": [3]}, "score"),
])
def test_bad_input_is_a_field_error_and_changes_nothing(world, body, field):
    no = closed_case(world, phone=LANDLINE)
    before = world.ticket("office", no)
    response = world.post("office", f"/api/v1/staff/tickets/{no}/record_rating", json=body)
    assert response.status_code == 422 and field in response.get_json()["error"]["fields"], response.get_json()
    assert world.ticket("office", no)["version"] == before["version"] and survey_of(world, no).rated_at is None


def test_no_rating_by_phone_once_the_survey_has_closed(world, clock):
    no = closed_case(world, phone=LANDLINE)
    clock.advance(days=8)
    response = world.post("office", f"/api/v1/staff/tickets/{no}/record_rating", json={"score": 2})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_transition"
    assert "record_rating" not in world.ticket("office", no)["allowed_actions"]


def test_the_console_offers_the_phone_rating_form(world):
    no = closed_case(world, phone=LANDLINE)
    client = world.console("office")
    page = client.get(f"/admin/case/{no}").get_data(as_text=True)
    form = page.split('id="action-record_rating"')[1].split("</form>")[0]
    assert [v for v in re.findall(r'name="score"\s+value="(\d)"', form)] == ["1", "2", "3", "4", "5"]
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    response = client.post(f"/admin/case/{no}/record_rating", data={
        "score": "3", "comment": "电话回访：基本满意。", "version": version, "csrf_token": csrf_of(page)})
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    assert survey_of(world, no).score == 3
    page = client.get(f"/admin/case/{no}?lang=en").get_data(as_text=True)
    assert "By phone (recorded by the office)" in page.split('id="surveys"')[1]
    assert 'id="action-record_rating"' not in page


# --- 找回查询码 stays with mobile numbers ---------------------------------------------------------------------------

def test_the_code_recovery_is_for_mobile_numbers_and_says_so(world):
    no = world.file(phone=LANDLINE)["tracking_no"]
    response = world.client.post("/api/v1/tickets/recover-code", headers=EN,
                                 json={"tracking_no": no, "phone": LANDLINE})
    assert response.status_code == 422
    message = response.get_json()["error"]["fields"]["phone"]
    assert "SMS" in message and "mobile" in message and "landline" in message
    garbage = world.client.post("/api/v1/tickets/recover-code", headers=EN, json={"tracking_no": no, "phone": "12"})
    assert garbage.get_json()["error"]["fields"]["phone"] == "Enter the mainland mobile number the case was filed with."
    assert sms_rows(world) == []
    page = world.client.get("/track/recover?lang=en").get_data(as_text=True)
    assert "landline" in re.search(r'id="phone-hint">(.*?)</p>', page, re.S).group(1)
    response = world.client.post("/track/recover", data={"tracking_no": no, "phone": LANDLINE,
                                                         "csrf_token": page_csrf(world.client, "/track/recover")})
    assert response.status_code == 422 and "contact the window with the tracking number" in response.get_data(
        as_text=True)


# --- the survey's closing sweep treats a landline's round like any other ---------------------------------------------

def test_an_unanswered_landline_round_is_defaulted_like_any_other(world, clock):
    from notify.closing import close_surveys

    no = closed_case(world, phone=LANDLINE)
    clock.advance(days=8)
    with world.app.app_context():
        result = close_surveys(db.session, clock())
        db.session.commit()
    assert result.defaulted == 1
    survey = survey_of(world, no)
    assert (survey.score, survey.channel, survey.defaulted) == (3, "default", True)
    assert sms_rows(world) == []



def test_a_rating_by_phone_is_a_line_of_the_evaluation_export(world, clock):
    from reports.evaluation import export_rows
    from reports.metrics import Month
    from tests.helpers import TZ

    no = closed_case(world, phone=LANDLINE)
    world.act("office", no, "record_rating", score=4, comment="电话里说还没办好。")
    with world.app.app_context():
        rows = list(export_rows(db.session, Month.parse("2026-11"), TZ, identity=True, now=clock()))
    assert [(r["case_no"], r["channel"], r["rating"], r["phone"], r["rectification_status"]) for r in rows] == [
        (no, "phone", 4, LANDLINE_E164, "rectifying")]  # the schema takes both the channel and the landline


@PURE
@given(st.one_of(landlines().map(lambda case: case[0]), mobiles.map(lambda case: case[2](case[0] + case[1])),
                 phone_like))
def test_whether_a_number_can_be_texted_is_the_same_remembered_or_parsed(raw):
    """Filing parses the citizen's number, then asks of the stored one whether a text can reach it; the second answer
    comes from what the first parse remembered (`phones._KNOWN_KINDS`) and must be what a parse of it says."""
    e164 = phones.normalise_phone(raw)
    remembered = phones.is_mobile(e164)
    phones._KNOWN_KINDS.clear()
    assert phones.is_mobile(e164) == remembered == (e164 is not None and phones.normalise_mobile(e164) == e164)
