"""Monthly reports are drafts until the office publishes them: the API, the CLI and the console of publishing, 下步工作
and the office's thresholds of 主要问题; who may do it; who is texted, and when.

Every test runs on SQLite and PostgreSQL (the `database_url` fixture behind `world`), but the property test (SQLite).
Texts a test compares with a page or a PDF are read from the app's catalogue (`zh`), so they hold before and after
the new messages are translated.
"""
from __future__ import annotations

import io
import json
import re

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from reports import metrics, operations
from reports.display import month_label
from reports.models import Report
from reports.scores import SCORED_RATES
from reports.tasks import generate_monthly_report
from tests.helpers import examples, page_csrf
from tests.report_month import MONTH, small_month
from tests.sms_support import messages
from tickets.db import db
from tickets.models import Office, User

URL = f"/api/v1/reports/monthly/{MONTH}"
PUBLISH = f"{URL}/publish"
NEXT_STEPS = f"{URL}/next-steps"
THRESHOLDS = "/api/v1/reports/thresholds"
STEPS_TEXT = "加强超期案件督办，每周通报一次办理进度。"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PHONES = {"leader": "+8613900000101", "leader_c1": "+8613900000102", "leader_c2": "+8613900000103",
          "leader_t11": "+8613900000104", "supervisor": "+8613900000105", "supervisor_c1": "+8613900000106"}


def zh(app, msgid: str, **values) -> str:
    """What the Chinese pages and PDFs say for `msgid` with the catalogue as it is compiled now (a `month` value is
    written as the pages write it: 2026年11月)."""
    with app.test_request_context(), force_locale("zh_CN"):
        if "month" in values:
            values["month"] = month_label(values["month"])
        return gettext(msgid, **values)


def page_one(pdf: bytes) -> str:
    return "".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())


def pdf_text(pdf: bytes) -> str:
    return "".join("".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)


def put(world, who, path, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return world.client.put(path, headers=world.headers(who), **kwargs)


def give_phones(world, users) -> None:
    with world.app.app_context():
        for who in users:
            db.session.get(User, world.users[who]).phone = PHONES[who]
        db.session.commit()


def report_texts(app) -> list[str]:
    return [m.phone for m in messages(app, template="report_ready")]


def kept(app, office_id=None) -> Report | None:
    with app.app_context():
        return operations.find(db.session, MONTH, office_id)


@pytest.fixture
def november(world, clock):
    small_month(world, clock)
    give_phones(world, ["leader", "supervisor"])
    return world


# --- the API ------------------------------------------------------------------------------------------------

def test_publish_freezes_the_report_and_a_second_publish_is_409(november):
    world = november
    draft = world.get("office", URL)
    assert draft.status_code == 200
    body = draft.get_json()
    assert (body["status"], body["published_at"], body["next_steps"], body["kept"]) == ("draft", None, None, True)
    # the figures' new parts went through JSON
    assert {"scoring", "comparison", "department_boards", "office_boards", "problems", "typical_cases",
            "next_steps"} <= set(body)
    assert body["scoring"]["thresholds"] and isinstance(body["problems"], list)
    generated = body["generated_at"]

    response = world.post("office", PUBLISH)
    assert response.status_code == 200, response.get_json()
    published = response.get_json()
    assert published["month"] == MONTH and published["office_code"] == "root"
    assert published["status"] == "published" and published["published_at"] and published["texted"] == 1
    assert published["generated_at"] == generated  # the draft as the office saw it

    again = world.post("office", PUBLISH)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    assert world.post("admin", PUBLISH, json={"next_steps": STEPS_TEXT}).status_code == 409
    assert put(world, "office", NEXT_STEPS, {"next_steps": STEPS_TEXT}).status_code == 409
    # reading it never regenerates it: the published report stands, figures and all
    for who in ("office", "admin", "leader"):
        body = world.get(who, URL).get_json()
        assert (body["status"], body["generated_at"], body["kept"]) == ("published", generated, True)
        assert body["published_at"] == published["published_at"] and body["next_steps"] is None
    assert report_texts(world.app) == [PHONES["leader"]]  # texted once, and only the leader


def test_next_steps_are_checked_then_printed_and_the_draft_mark_goes_at_publishing(november):
    world = november
    draft_mark = zh(world.app, "Draft")
    if draft_mark != "Draft":  # translated: the mark is 草稿
        assert draft_mark == "草稿"
    too_long = "办" * (operations.NEXT_STEPS_MAX + 1)
    for path, send in ((NEXT_STEPS, put), (PUBLISH, lambda w, who, p, b: w.post(who, p, json=b))):
        for bad in ({"next_steps": too_long}, {"next_steps": 5}, {"next_steps": ["x"]}, {"next_steps": "a\x00b"}):
            response = send(world, "office", path, bad)
            assert response.status_code == 422, (path, bad)
            error = response.get_json()["error"]
            assert error["code"] == "validation_error" and set(error["fields"]) == {"next_steps"}
    for bad in ([STEPS_TEXT], "text", 3, None):  # JSON, but not an object
        response = world.client.post(PUBLISH, data=json.dumps(bad), content_type="application/json",
                                     headers=world.headers("office"))
        assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_error", bad
    assert world.client.post(PUBLISH, data="{nope", content_type="application/json",
                             headers=world.headers("office")).status_code == 400
    assert world.client.post(PUBLISH, data="x", content_type="text/plain",
                             headers=world.headers("office")).status_code == 415
    assert put(world, "office", NEXT_STEPS, {}).status_code == 422  # what to write is required
    assert put(world, "office", NEXT_STEPS).status_code == 422
    for month, status in (("2026-13", 422), ("november", 422), ("2026-12", 404)):
        assert world.post("office", f"/api/v1/reports/monthly/{month}/publish").status_code == status, month
        assert put(world, "office", f"/api/v1/reports/monthly/{month}/next-steps",
                   {"next_steps": STEPS_TEXT}).status_code == status, month
    assert kept(world.app) is None  # nothing was generated or saved

    saved = put(world, "office", NEXT_STEPS, {"next_steps": f"  {STEPS_TEXT}\n"})
    assert saved.status_code == 200 and saved.get_json()["next_steps"] == STEPS_TEXT
    assert saved.get_json()["status"] == "draft"
    draft_pdf = world.get("office", URL + ".pdf").data
    assert draft_mark in page_one(draft_pdf) and STEPS_TEXT in pdf_text(draft_pdf)
    assert world.get("office", URL).get_json()["next_steps"] == STEPS_TEXT

    published = world.post("office", PUBLISH).get_json()  # no body: the draft's next steps stand
    assert published["status"] == "published" and published["next_steps"] == STEPS_TEXT
    body = world.get("leader", URL).get_json()
    assert body["status"] == "published" and body["next_steps"] == STEPS_TEXT
    pdf = world.get("leader", URL + ".pdf").data
    assert draft_mark not in page_one(pdf) and STEPS_TEXT in pdf_text(pdf)
    assert world.console("leader").get(f"/admin/reports/{MONTH}.pdf").data == pdf


def test_publish_with_next_steps_in_the_body_generates_the_month_first(november):
    world = november
    assert kept(world.app) is None
    response = world.post("admin", PUBLISH, json={"next_steps": STEPS_TEXT})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["next_steps"] == STEPS_TEXT
    report = kept(world.app)
    assert report.status == "published" and report.figures["next_steps"] == STEPS_TEXT
    assert STEPS_TEXT in pdf_text(world.get("office", URL + ".pdf").data)


def test_who_may_publish(network, clock):
    world = network.world
    clock.set(2026, 12, 3, 10)
    for who in ("leader", "supervisor", "leader_c1", "supervisor_c1", "dept_a", "dept_c1"):
        for response in (world.post(who, PUBLISH), put(world, who, NEXT_STEPS, {"next_steps": STEPS_TEXT}),
                         put(world, who, THRESHOLDS, {"on_time_rate": 50})):
            assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden", who
    for who, office in (("office_c1", "root"), ("office_c1", "c2"), ("office_t11", "c1"), ("office", "nowhere")):
        for response in (world.post(who, f"{PUBLISH}?office={office}"),
                         put(world, who, f"{NEXT_STEPS}?office={office}", {"next_steps": STEPS_TEXT}),
                         put(world, who, f"{THRESHOLDS}?office={office}", {"on_time_rate": 50})):
            assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found", (who, office)
    assert world.post(None, PUBLISH).status_code == 401
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 0
        assert set(db.session.scalars(sa.select(Office.report_thresholds))) == {None}
    # a county's office keeps its own subtree's reports, an admin any office's
    assert world.post("office_c1", f"{PUBLISH}?office=t11").status_code == 200
    assert world.post("admin", f"{PUBLISH}?office=c2").status_code == 200


def test_a_console_session_must_send_the_csrf_token_to_the_api(november):
    world = november
    client = world.console("office")
    assert client.post(PUBLISH).status_code == 400  # signed in by cookie, no token: refused
    assert client.put(NEXT_STEPS, json={"next_steps": STEPS_TEXT}).status_code == 400
    assert kept(world.app) is None
    token = page_csrf(client, "/admin/reports/")
    assert client.post(PUBLISH, headers={"X-CSRFToken": token}).status_code == 200


# --- who is texted, and when ----------------------------------------------------------------------------------

def test_leaders_are_texted_only_at_publishing_and_only_the_offices_own(network, clock):
    world = network.world
    give_phones(world, list(PHONES))
    clock.set(2026, 12, 3, 10)
    with world.app.app_context():  # the scheduler's actor on the 1st, and a county's draft made automatically
        generate_monthly_report(MONTH)
        operations.get_or_generate(db.session, metrics.Month.parse(MONTH), network.offices["c1"],
                                   trigger=operations.AUTO)
        db.session.commit()
    assert kept(world.app).trigger == "auto" and kept(world.app).status == "draft"
    assert kept(world.app, network.offices["c1"]).status == "draft"
    assert world.get("office", URL).get_json()["kept"] is True  # readings and regenerations text nobody either
    office = world.console("office")
    office.post("/admin/reports/generate", data={"month": MONTH, "csrf_token": page_csrf(office, "/admin/reports/")})
    assert report_texts(world.app) == []

    response = world.post("office_c1", PUBLISH)  # the county's own report (the default: the caller's office)
    assert response.status_code == 200 and response.get_json()["office_code"] == "c1"
    assert response.get_json()["texted"] == 1
    assert report_texts(world.app) == [PHONES["leader_c1"]]
    assert [m.audience for m in messages(world.app, template="report_ready")] == ["leader"]

    result = world.app.test_cli_runner().invoke(args=["report", "publish", MONTH])  # the city's
    assert result.exit_code == 0, result.output
    assert "1 leader(s) texted" in result.output
    assert report_texts(world.app) == [PHONES["leader_c1"], PHONES["leader"]]
    assert world.post("office_t11", PUBLISH).get_json()["texted"] == 1
    assert report_texts(world.app)[-1] == PHONES["leader_t11"]


# --- the CLI ----------------------------------------------------------------------------------------------------

def test_cli_publishes_once_and_a_published_month_is_not_generated_again(november, tmp_path):
    world = november
    runner = world.app.test_cli_runner()
    out = tmp_path / "report.pdf"
    assert runner.invoke(args=["report", "monthly", MONTH, "-o", str(out)]).exit_code == 0
    result = runner.invoke(args=["report", "publish", MONTH, "--next-steps", STEPS_TEXT])
    assert result.exit_code == 0, result.output
    assert f"published the report of {MONTH} for root" in result.output and "1 leader(s) texted" in result.output
    report = kept(world.app)
    assert report.status == "published" and report.next_steps == STEPS_TEXT and report.published_by is None

    for args in (["report", "publish", MONTH], ["report", "monthly", MONTH, "-o", str(out)]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
        assert "Error:" in result.output and "Traceback" not in result.output
    assert kept(world.app).generated_at == report.generated_at  # frozen
    for args, code in ((["report", "publish", "2026-13"], 2), (["report", "publish", MONTH, "--office", "nowhere"], 2),
                       (["report", "publish", "2026-10", "--next-steps", "x" * (operations.NEXT_STEPS_MAX + 1)], 1)):
        result = runner.invoke(args=args)
        assert result.exit_code == code and "Traceback" not in result.output, (args, result.output)
    assert report_texts(world.app) == [PHONES["leader"]]


# --- thresholds ----------------------------------------------------------------------------------------------------

def stored_thresholds(app, code: str = "root"):
    with app.app_context():
        return db.session.execute(sa.select(Office.report_thresholds, Office.report_thresholds.is_(None))
                                  .where(Office.code == code)).one()


def test_thresholds_api_sets_and_resets_the_offices_own(november):
    world = november
    response = put(world, "office", THRESHOLDS, {"on_time_rate": 95, "satisfaction_rate": 80.5, "contact_rate": 0})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"office_code": "root", "default": False,
                                   "thresholds": {"on_time_rate": 95, "satisfaction_rate": 80.5, "contact_rate": 0}}
    assert stored_thresholds(world.app)[0] == {"on_time_rate": 0.95, "satisfaction_rate": 0.805, "contact_rate": 0.0}
    # the reports made from now on judge by them
    assert world.get("office", URL).get_json()["scoring"]["thresholds"] == \
        {"on_time_rate": 0.95, "satisfaction_rate": 0.805, "contact_rate": 0.0}
    for bad, field in (({"speed": 90}, "speed"), ({"on_time_rate": 101}, "on_time_rate"),
                       ({"on_time_rate": -1}, "on_time_rate"), ({"on_time_rate": "90"}, "on_time_rate"),
                       ({"on_time_rate": True}, "on_time_rate"), ({"on_time_rate": None}, "on_time_rate")):
        response = put(world, "office", THRESHOLDS, bad)
        assert response.status_code == 422, bad
        assert response.get_json()["error"]["code"] == "validation_error"
        assert set(response.get_json()["error"]["fields"]) == {field}, bad
    for bad in ([], "x", None):
        response = world.client.put(THRESHOLDS, data=json.dumps(bad), content_type="application/json",
                                    headers=world.headers("office"))
        assert response.status_code == 422, bad
    assert put(world, "office", THRESHOLDS).status_code == 422  # no body: not a reset
    assert stored_thresholds(world.app)[0]["on_time_rate"] == 0.95  # nothing changed by the refused ones

    reset = put(world, "admin", THRESHOLDS, {})
    assert reset.status_code == 200
    assert reset.get_json() == {"office_code": "root", "default": True,
                                "thresholds": {"on_time_rate": 90, "satisfaction_rate": 90, "contact_rate": 90}}
    assert stored_thresholds(world.app) == (None, True)  # SQL NULL, as an office that never set any


def test_a_county_sets_its_own_and_its_townships_thresholds(network, clock):
    world = network.world
    assert put(world, "office_c1", f"{THRESHOLDS}?office=t11", {"good_rate": 60}).status_code == 200
    assert put(world, "office_c1", THRESHOLDS, {"closure_rate": 70}).get_json()["office_code"] == "c1"
    assert stored_thresholds(world.app, "t11")[0] == {"good_rate": 0.6}
    assert stored_thresholds(world.app, "c1")[0] == {"closure_rate": 0.7}
    assert stored_thresholds(world.app, "root")[0] is None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=3), max_leaves=8)
VALUES = st.one_of(st.integers(-10, 200), st.floats(allow_nan=False), st.booleans(), st.none(), st.text(max_size=5),
                   JSON)
BODIES = st.one_of(JSON, st.dictionaries(st.sampled_from(SCORED_RATES), VALUES, max_size=4),
                   st.dictionaries(st.sampled_from(SCORED_RATES) | st.text(max_size=12), VALUES, max_size=3))


@SQLITE_ONLY
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_any_thresholds_body_is_200_or_422(world, body):
    raw = json.dumps(body)
    response = world.client.put(THRESHOLDS, data=raw, content_type="application/json", headers=world.headers("office"))
    assert response.status_code in (200, 422), (raw, response.get_data(as_text=True))
    answer = response.get_json()
    if response.status_code == 422:
        assert answer["error"]["code"] == "validation_error"
    else:
        assert isinstance(body, dict) and set(answer["thresholds"]) <= set(SCORED_RATES)
        assert all(0 <= value <= 100 for value in answer["thresholds"].values())
        if body:
            assert answer["default"] is False and set(answer["thresholds"]) == set(body)
    own, is_null = stored_thresholds(world.app)
    assert is_null or (own and all(0 <= value <= 1 for value in own.values()))


# --- the console ----------------------------------------------------------------------------------------------------

def test_console_writes_next_steps_and_publishes_a_draft(november):
    world = november
    client = world.console("office")
    token = page_csrf(client, "/admin/reports/")
    client.post("/admin/reports/generate", data={"month": MONTH, "csrf_token": token})
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert "<th>状态</th>" in page and 'data-status="draft"' in page
    assert zh(world.app, "Draft") in page and 'class="d-inline publish-report"' in page
    confirm = zh(world.app, "Once published, the figures are frozen and the leaders are texted. Publish?")
    assert f'data-confirm="{confirm}"' in page and 'name="next_steps"' in page

    response = client.post("/admin/reports/next-steps", data={"month": MONTH, "office": "root", "csrf_token": token,
                                                              "next_steps": STEPS_TEXT})
    assert response.status_code == 302
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert zh(world.app, "The next steps for %(month)s are saved.", month=MONTH) in page
    assert f">{STEPS_TEXT}</textarea>" in page and kept(world.app).next_steps == STEPS_TEXT
    for bad in ("办" * (operations.NEXT_STEPS_MAX + 1), "一、压缩时限\x01二、"):  # refused: back as typed, nothing saved
        refused = client.post("/admin/reports/next-steps", data={"month": MONTH, "csrf_token": token, "next_steps": bad})
        assert refused.status_code == 422 and kept(world.app).next_steps == STEPS_TEXT
        page = refused.get_data(as_text=True)
        assert "alert-danger" in page and f'aria-invalid="true">{bad}</textarea>' in page
        assert re.search(r"<details open>\s*<summary>", page)

    response = client.post("/admin/reports/publish", data={"month": MONTH, "office": "root", "csrf_token": token})
    assert response.status_code == 302
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert zh(world.app, "The report for %(month)s is published; %(n)d leader(s) texted.",
              month=MONTH, n=1) in page
    report = kept(world.app)
    assert report.status == "published" and report.published_by == world.users["office"]
    assert 'data-status="published"' in page and 'publish-report' not in page and 'name="next_steps"' not in page
    assert report_texts(world.app) == [PHONES["leader"]]

    # 立即生成 on a published month: the 409's message, no new figures
    response = client.post("/admin/reports/generate", data={"month": MONTH, "csrf_token": token})
    assert response.status_code == 302
    page = client.get("/admin/reports/").get_data(as_text=True)
    frozen = zh(world.app, "The report for %(month)s was published: its figures are frozen.",
                month=MONTH)
    assert frozen in page and "alert-danger" in page
    assert kept(world.app).generated_at == report.generated_at
    again = client.post("/admin/reports/publish", data={"month": MONTH, "csrf_token": token})
    assert again.status_code == 302
    assert zh(world.app, "The report for %(month)s is already published.", month=MONTH) in \
        client.get("/admin/reports/").get_data(as_text=True)
    assert report_texts(world.app) == [PHONES["leader"]]


def test_console_thresholds_form(november):
    world = november
    client = world.console("office")
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert 'id="report-thresholds"' in page and 'id="thresholds-default"' in page
    assert 'name="on_time_rate" id="threshold-on_time_rate" value="90"' in page
    assert 'name="good_rate" id="threshold-good_rate" value=""' in page
    token = page_csrf(client, "/admin/reports/")
    response = client.post("/admin/reports/thresholds", data={"office": "root", "csrf_token": token,
                                                              "on_time_rate": "85", "good_rate": " 60.5 ",
                                                              "satisfaction_rate": ""})
    assert response.status_code == 302
    assert stored_thresholds(world.app)[0] == {"on_time_rate": 0.85, "good_rate": 0.605}
    page = client.get("/admin/reports/").get_data(as_text=True)
    assert 'id="thresholds-own"' in page and 'id="threshold-good_rate" value="60.5"' in page
    assert zh(world.app, "The thresholds of %(office)s are saved.", office="办不成事反映窗口") in page
    for bad in ("abc", "101", "-5", "nan"):
        response = client.post("/admin/reports/thresholds", data={"csrf_token": token, "on_time_rate": bad})
        assert response.status_code == 302, bad
        assert "alert-danger" in client.get("/admin/reports/").get_data(as_text=True), bad
    assert stored_thresholds(world.app)[0] == {"on_time_rate": 0.85, "good_rate": 0.605}
    client.post("/admin/reports/thresholds", data={"csrf_token": token, "reset": "1", "on_time_rate": "10"})
    assert stored_thresholds(world.app) == (None, True)


def test_console_writes_need_the_csrf_token_and_a_keeping_role(november):
    world = november
    forms = {"/admin/reports/next-steps": {"month": MONTH, "next_steps": STEPS_TEXT},
             "/admin/reports/publish": {"month": MONTH}, "/admin/reports/thresholds": {"on_time_rate": "50"}}
    assert world.get("office", URL).get_json()["status"] == "draft"  # kept: the list has its row and forms
    office = world.console("office")
    assert 'class="d-inline publish-report"' in office.get("/admin/reports/").get_data(as_text=True)
    for path, data in forms.items():
        assert office.post(path, data=data).status_code == 400, path  # no CSRF token
        assert office.post(path, data={**data, "csrf_token": "forged"}).status_code == 400, path
    for who in ("leader", "supervisor"):
        client = world.console(who)
        page = client.get("/admin/reports/").get_data(as_text=True)
        assert "<th>状态</th>" in page
        assert "publish-report" not in page and 'id="report-thresholds"' not in page and 'name="next_steps"' not in page
        token = page_csrf(client, "/admin/")
        for path, data in forms.items():
            assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, (who, path)
    dept = world.console("dept_a")
    token = page_csrf(dept, "/admin/")
    for path, data in forms.items():
        assert dept.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    report = kept(world.app)
    assert (report.status, report.next_steps) == ("draft", None) and stored_thresholds(world.app) == (None, True)
    assert report_texts(world.app) == []


def test_console_writes_stay_within_the_callers_subtree(network, clock):
    world = network.world
    clock.set(2026, 12, 3, 10)
    client = world.console("office_c1")
    token = page_csrf(client, "/admin/reports/")
    for office in ("root", "c2", "nowhere"):
        for path, data in (("/admin/reports/publish", {"month": MONTH}),
                           ("/admin/reports/next-steps", {"month": MONTH, "next_steps": STEPS_TEXT}),
                           ("/admin/reports/thresholds", {"on_time_rate": "50"})):
            response = client.post(path, data={**data, "office": office, "csrf_token": token})
            assert response.status_code == 404, (office, path)
    response = client.post("/admin/reports/publish", data={"month": MONTH, "office": "t11", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("office=t11")
    assert kept(world.app, network.offices["t11"]).status == "published"
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 1
