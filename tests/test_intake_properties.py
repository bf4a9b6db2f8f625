"""Property-based checks of intake: whatever arrives, the answer is a contract status and nothing is lost or altered."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import examples, page_csrf
from tickets.intake import INTAKE_FIELDS

FIXTURE_SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=80))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
# Text people actually send: CJK (with Extension B and compatibility ideographs), emoji, markup, punctuation.
human_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF),
        st.characters(min_codepoint=0xF900, max_codepoint=0xFAFF),
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
        st.sampled_from(list("<>&\"' /\\abcXYZ0123456789，。！？\n")),
    ),
    min_size=1,
)
mobiles = st.builds(
    lambda prefix, rest, style: style(prefix + rest),
    st.sampled_from(["138", "139", "150", "158", "186", "199", "177"]),
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.sampled_from([
        lambda n: n, lambda n: f"+86 {n}", lambda n: f"{n[:3]} {n[3:7]} {n[7:]}", lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
        lambda n: f"0086{n}", lambda n: f"86{n}", lambda n: n.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    ]),
)

CONTRACT_ERRORS = {400, 413, 415, 422}


def assert_error_shape(response):
    body = response.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]


@FIXTURE_SETTINGS
@given(body=st.dictionaries(st.sampled_from(INTAKE_FIELDS + ("extra",)), json_values, max_size=7))
def test_any_json_object_gets_a_contract_answer(world, body):
    response = world.client.post("/api/v1/tickets", json=body)
    assert response.status_code in CONTRACT_ERRORS | {201}, response.data
    if response.status_code != 201:
        assert_error_shape(response)


@FIXTURE_SETTINGS
@given(body=json_values)
def test_any_json_document_gets_a_contract_answer(world, body):
    response = world.client.post("/api/v1/tickets", json=body)
    assert response.status_code in CONTRACT_ERRORS | {201}
    if response.status_code != 201:
        assert_error_shape(response)


@FIXTURE_SETTINGS
@given(raw=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=latin-1"]))
def test_any_bytes_get_a_contract_answer(world, raw, content_type):
    response = world.client.post("/api/v1/tickets", data=raw, content_type=content_type)
    assert response.status_code in CONTRACT_ERRORS | {201}
    if response.status_code != 201:
        assert_error_shape(response)


@FIXTURE_SETTINGS
@given(name=human_text.filter(lambda s: s.strip() and "\n" not in s.strip() and len(s.strip()) <= 50),
       description=human_text.filter(lambda s: 5 <= len(s.strip()) <= 2000),
       phone=mobiles)
def test_valid_filings_are_kept_exactly_as_written(world, name, description, phone):
    response = world.client.post("/api/v1/tickets", json={"name": name, "phone": phone, "problem_type": "other",
                                                          "description": description})
    if response.status_code == 422:
        # only a number phonenumbers does not know as a mobile may fail; never the text
        assert set(response.get_json()["error"]["fields"]) == {"phone"}, response.get_json()
        return
    assert response.status_code == 201, response.get_json()
    detail = world.ticket("office", response.get_json()["tracking_no"])
    assert detail["citizen_name"] == name.strip()
    assert detail["description"] == description.strip()
    digits = re.sub(r"\D", "", phone.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    assert detail["phone"] == "+86" + digits[-11:]


@FIXTURE_SETTINGS
@given(form=st.dictionaries(st.sampled_from(INTAKE_FIELDS), st.text(max_size=120), max_size=6))
def test_any_form_gets_a_page_not_a_crash(world, form):
    token = page_csrf(world.client)
    response = world.client.post("/", data={**form, "privacy": "y", "csrf_token": token})
    page = response.get_data(as_text=True)
    if any("\x00" in value for value in form.values()):  # no browser sends a NUL: refused before the view
        assert response.status_code == 400 and "表单中含有不允许的字符" in page
        return
    assert response.status_code in (303, 422), response.status_code
    if response.status_code == 422:
        assert "请修改下面标出的内容" in page
        # what was typed comes back in the form, escaped, so nothing is lost
        for name in ("name", "service_item"):
            value = form.get(name, "")
            if value.strip() and all(ch.isprintable() for ch in value) and '"' not in value and "&" not in value \
                    and "<" not in value and ">" not in value and "'" not in value:
                assert value in page
