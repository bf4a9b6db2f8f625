"""登记来访/来电: office staff file for walk-ins and callers from the console; the public form's window choice."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from notify.models import SmsMessage
from tests.helpers import csrf_of, page_csrf
from tests.network import OFFICES
from tickets import intake
from tickets.db import db
from tickets.models import STAFF_CHANNELS, Event, Ticket

CASE = {"name": "王五", "phone": "139 1234 5678", "problem_type": "cannot_handle", "service_item": "社保卡补办",
        "description": "来窗口反映社保卡补办跑了三趟还没办成。"}
# Which windows each office user may file at (their own and those below it).
SUBTREES = {
    "office": {"root", "c1", "t11", "t12", "c2", "t21"},
    "office_c1": {"c1", "t11", "t12"},
    "office_t11": {"t11"},
    "office_t12": {"t12"},
    "office_c2": {"c2", "t21"},
    "office_t21": {"t21"},
}
ALL_OFFICES = ("root", "c1", "t11", "t12", "c2", "t21")


def tickets(world) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))


def post_intake(client, **fields):
    page = client.get("/admin/intake/")
    assert page.status_code == 200
    return client.post("/admin/intake/", data={**fields, "csrf_token": csrf_of(page.get_data(as_text=True))})


def receipt(client) -> tuple[str, str]:
    page = client.get("/admin/intake/filed").get_data(as_text=True)
    no = re.search(r'id="tracking-no">([^<]+)<', page).group(1)
    code = re.search(r'id="query-code">([^<]+)<', page).group(1)
    return no, code


ROLE_CASES = (("admin", True), ("office", True), ("office_c1", True), ("office_t11", True), ("dept_a", False),
              ("dept_c1", False), ("supervisor", False), ("leader", False), ("supervisor_c1", False),
              ("leader_t11", False))


def test_only_office_staff_and_admins_open_the_intake_page(world, network):
    """Every role (a loop over one network, not a network per user)."""
    for who, allowed in ROLE_CASES:
        client = world.console(who)
        page = client.get("/admin/intake/")
        assert page.status_code == (200 if allowed else 403), who
        posted = client.post("/admin/intake/", data={**CASE, "channel": "window"}).status_code
        assert posted in ((400,) if allowed else (400, 403)), who
        menu = client.get("/admin/").get_data(as_text=True)
        assert ('href="/admin/intake/"' in menu) is allowed, who
        assert tickets(world) == 0


def test_the_page_defaults_to_the_users_own_window_and_lists_only_its_subtree(world, network):
    page = world.console("office_c1").get("/admin/intake/").get_data(as_text=True)
    offered = re.findall(r'<option value="([^"]*)" ?(selected)?>', page.split('id="office_code"')[1].split("</select>")[0])
    assert {code for code, _ in offered} == {"c1", "t11", "t12"}
    assert [code for code, chosen in offered if chosen] == ["c1"]
    assert "<h1" in page and "登记来访/来电</h1>" in page


def test_a_window_outside_the_users_subtree_is_a_field_error(world, network):
    """Every office user × every window: filed there, or a field error and nothing filed."""
    filed = 0
    for who in sorted(SUBTREES):
        client = world.console(who)
        for window in ALL_OFFICES:
            response = post_intake(client, **CASE, channel="phone", office_code=window)
            if window in SUBTREES[who]:
                assert response.status_code == 303, (who, window, response.get_data(as_text=True))
                no, _code = receipt(client)
                assert network.office_of(no) == window
                filed += 1
            else:
                assert response.status_code == 422, (who, window)
                assert "只能在本窗口或下级窗口登记" in response.get_data(as_text=True)
            assert tickets(world) == filed, (who, window)


@pytest.mark.parametrize("channel", [c.value for c in STAFF_CHANNELS])
def test_a_county_user_files_at_a_township_below_with_the_channel_and_themselves_recorded(world, network, channel):
    client = world.console("office_c1")
    response = post_intake(client, **CASE, channel=channel, office_code="t11")
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/intake/filed")
    no, code = receipt(client)
    assert client.get("/admin/intake/filed").status_code == 302  # the query code is shown once
    assert network.office_of(no) == "t11"
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        assert ticket.channel == channel and ticket.phone == "+8613912345678"
        event = db.session.scalar(sa.select(Event).where(Event.ticket_id == ticket.id, Event.action == "file"))
        assert (event.actor_id, event.actor_role) == (world.users["office_c1"], "office")
        assert event.data["channel"] == channel
        assert intake.find_for_citizen(db.session, no, code) is not None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                                 .where(SmsMessage.ticket_id == ticket.id)) >= 1  # the receipt SMS, as usual
    assert world.ticket("office_c1", no)["channel"] == channel
    words = {"window": "窗口来访", "phone": "电话来电", "hotline": "12345热线", "web": "网上"}[channel]
    case_page = client.get(f"/admin/case/{no}").get_data(as_text=True)
    assert re.search(r'class="col-sm-9 case-channel">' + words + "<", case_page)
    # the township's own staff see the case; the sibling county's do not
    assert world.get("office_t11", f"/api/v1/staff/tickets/{no}").status_code == 200
    assert world.get("office_c2", f"/api/v1/staff/tickets/{no}").status_code == 404


@pytest.mark.parametrize("field, value, message", [
    ("name", "", "此项为必填项。"),
    ("phone", "12345", "请输入有效的手机号码或带区号的固定电话号码"),
    ("problem_type", "nonsense", None),
    ("description", "短", None),
    ("department_id", "999999", None),
    ("channel", "", "此项为必填项。"),
    ("channel", "api", "请选择列出的来源渠道之一。"),
    ("channel", "fax", "请选择列出的来源渠道之一。"),
    ("office_code", "nowhere", "没有这个窗口。"),
])
def test_bad_fields_get_chinese_messages_and_nothing_is_filed(world, network, field, value, message):
    client = world.console("office")
    response = post_intake(client, **{**CASE, "channel": "window", "office_code": "root", field: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="error-{field}"' in page and "王五" in page or field == "name"
    if message:
        assert message in page
    assert tickets(world) == 0


def test_an_empty_form_names_every_required_field(world):
    response = post_intake(world.console("office"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for field in ("name", "phone", "problem_type", "description"):
        assert f'id="error-{field}"' in page
    assert tickets(world) == 0


def test_the_form_needs_its_csrf_token(world):
    client = world.console("office")
    response = client.post("/admin/intake/", data={**CASE, "channel": "window"})
    assert response.status_code == 400
    assert tickets(world) == 0


def test_an_administrator_files_anywhere_and_defaults_to_the_root(world, network):
    client = world.console("admin")
    assert post_intake(client, **CASE, channel="hotline", office_code="t21").status_code == 303
    assert network.office_of(receipt(client)[0]) == "t21"
    assert post_intake(client, **CASE, channel="hotline").status_code == 303
    assert network.office_of(receipt(client)[0]) == "root"


# --- the public form: the window by area ---------------------------------------------------------------------

def test_the_public_form_carries_the_windows_for_the_area_picker(world, network):
    page = world.client.get("/").get_data(as_text=True)
    assert 'class="area-picker"' in page and "area-picker.js" in page
    assert "青石镇便民服务中心" in page and '"parent_code": "c1"' in page.replace("\\u0022", '"')


def test_one_window_shows_no_picker(world):
    page = world.client.get("/").get_data(as_text=True)
    assert "area-picker" not in page.split("<form")[1].split("</form>")[0]


@pytest.mark.parametrize("code", ["root", "c1", "t11", "t21"])
def test_the_public_form_files_at_the_chosen_window_and_the_receipt_names_it(world, network, code):
    client = world.client
    data = {**CASE, "office_code": code, "privacy": "y", "csrf_token": page_csrf(client)}
    response = client.post("/", data=data)
    assert response.status_code == 303
    filed = client.get("/filed").get_data(as_text=True)
    no = re.search(r'id="tracking-no">([^<]+)<', filed).group(1)
    assert network.office_of(no) == code
    expected = {c: name for c, name, _level, _parent in OFFICES}.get(code)
    if expected:  # the root is named after OFFICE_NAME
        assert f'id="window">{expected}<' in filed
    else:
        assert 'id="window">' in filed


@pytest.mark.parametrize("code", ["nowhere", "C1", "../c1", "x" * 40])
def test_an_unknown_window_is_a_chinese_field_error_and_nothing_is_filed(world, network, code):
    client = world.client
    response = client.post("/", data={**CASE, "office_code": code, "csrf_token": page_csrf(client)})
    assert response.status_code == 422
    assert "没有这个窗口。" in response.get_data(as_text=True)
    assert tickets(world) == 0


def test_staff_file_on_behalf_through_the_api_with_a_channel_and_files(world):
    """帮办代办 through the API: an office token files for a caller (`channel`), with the caller's papers; other roles
    may not; without a token the channel is the API's, whatever the body says."""
    import io

    from tests.test_attachments import jpeg

    body = {"name": "孙大妈", "phone": "0571-8765 4321", "problem_type": "too_hard", "channel": "phone",
            "description": "打电话到窗口反映，老人不会用手机上传材料。"}
    response = world.client.post("/api/v1/tickets", headers=world.headers("office"), content_type="multipart/form-data",
                                 data={**body, "files[]": [(io.BytesIO(jpeg()), "病历.jpg", "image/jpeg")]})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["channel"] == "phone"
    no = response.get_json()["tracking_no"]
    view = world.ticket("office", no)
    assert (view["channel"], [f["name"] for f in view["attachments"]]) == ("phone", ["病历.jpg"])
    assert view["events"][0]["actor_role"] == "office"
    missing = world.client.post("/api/v1/tickets", headers=world.headers("office"), json={**body, "channel": ""})
    assert missing.status_code == 422 and "channel" in missing.get_json()["error"]["fields"]
    for who in ("supervisor", "leader", "dept_a"):
        assert world.client.post("/api/v1/tickets", headers=world.headers(who), json=body).status_code == 403
    assert world.client.post("/api/v1/tickets", headers={"Authorization": "Bearer nonsense"}, json=body).status_code == 401
    public = world.client.post("/api/v1/tickets", json={**body, "phone": "13800138000"})
    assert public.status_code == 201 and "channel" not in public.get_json()  # API.md's answer, exactly
    assert world.ticket("office", public.get_json()["tracking_no"])["channel"] == "api"
