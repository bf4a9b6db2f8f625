"""The integration API: a system's own case number (`source`, `external_ref`), `Idempotency-Key` on staff filing
and actions (also under concurrent requests to a real server on PostgreSQL), and API token scopes."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app import create_app
from tests.browser import LiveServer
from tests.helpers import (BASE_CONFIG, PG_ADMIN_URL, PG_TEST_DB, examples, free_port, seed_world, service_missing,
                           wait_until)
from tickets import idempotency, secrets
from tickets.access import user_for_api_key
from tickets.accounts import issue_token, revoke_token
from tickets.db import db
from tickets.errors import InsufficientScope
from tickets.models import ApiToken, Event, IdempotencyKey, Ticket, User
from tickets.schedule import scheduled_jobs
from tickets.schema import downgrade_database, upgrade_database

ROOT = Path(__file__).resolve().parent.parent
HOTLINE_CASE = {"name": "李四", "phone": "13800138001", "problem_type": "too_slow",
                "description": "企业开办材料提交后十天没有回音。", "source": "12345", "external_ref": "GD-2026-000123"}


def token(world, who: str, scope: str | None) -> str:
    with world.app.app_context():
        raw = issue_token(db.session, db.session.get(User, world.users[who]), f"{who} {scope}", scope)
        db.session.commit()
    return raw


def bearer(raw: str, **headers) -> dict:
    return {"Authorization": f"Bearer {raw}", **headers}


def file(world, body, key=None, who="office", raw=None):
    headers = bearer(raw or world.tokens[who])
    if key is not None:
        headers["Idempotency-Key"] = key
    return world.client.post("/api/v1/tickets", json=body, headers=headers)


def count(world, model, *where) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


# --- source and external_ref ----------------------------------------------------------------------------------

def test_a_hotline_case_keeps_its_source_and_number_and_is_found_by_them(world):
    response = file(world, HOTLINE_CASE)
    assert response.status_code == 201, response.get_json()
    filed = response.get_json()
    assert filed["source"] == "12345" and filed["external_ref"] == "GD-2026-000123"
    assert filed["channel"] == "hotline"  # handed over by another system: the 12345 hotline's channel by default
    assert filed["query_code"]
    detail = world.ticket("office", filed["tracking_no"])
    assert (detail["source"], detail["external_ref"], detail["channel"]) == ("12345", "GD-2026-000123", "hotline")
    world.file()  # a citizen's own case, without either
    for query in ("external_ref=GD-2026-000123", "source=12345", "source=12345&external_ref=GD-2026-000123",
                  "q=000123"):
        listed = world.get("office", f"/api/v1/staff/tickets?{query}").get_json()
        assert [i["tracking_no"] for i in listed["items"]] == [filed["tracking_no"]], query
        assert listed["items"][0]["external_ref"] == "GD-2026-000123"
    assert world.get("office", "/api/v1/staff/tickets?external_ref=GD-2026-999").get_json()["total"] == 0
    assert world.get("office", "/api/v1/staff/tickets?source=other").get_json()["total"] == 0
    bad = world.get("office", "/api/v1/staff/tickets?source=ABC")
    assert bad.status_code == 422 and "source" in bad.get_json()["error"]["fields"]
    # a channel named by the sender is kept
    other = file(world, {**HOTLINE_CASE, "external_ref": "GD-2", "channel": "phone"}).get_json()
    assert other["channel"] == "phone"


def test_the_console_case_page_says_where_the_case_came_from(world):
    filed = file(world, {**HOTLINE_CASE, "external_ref": "<b>GD-1</b>"}).get_json()
    page = world.console("office").get(f"/admin/case/{filed['tracking_no']}?lang=en")
    text = page.get_data(as_text=True)
    assert "Source system: 12345" in text and "External number: &lt;b&gt;GD-1&lt;/b&gt;" in text
    plain = world.file()
    assert 'id="case-source"' not in world.console("office").get(f"/admin/case/{plain['tracking_no']}").get_data(
        as_text=True)


def test_a_second_filing_of_the_same_number_is_409_naming_the_first_case(world):
    first = file(world, HOTLINE_CASE).get_json()
    again = file(world, {**HOTLINE_CASE, "description": "同一件事，平台又推送了一次。"})
    assert again.status_code == 409
    error = again.get_json()["error"]
    assert error["code"] == "duplicate_external_ref" and error["tracking_no"] == first["tracking_no"]
    assert first["tracking_no"] in error["message"] and "external_ref" in error["fields"]
    # the same number from another system, or another number from this one, is another case
    assert file(world, {**HOTLINE_CASE, "source": "gov-portal"}).status_code == 201
    assert file(world, {**HOTLINE_CASE, "external_ref": "GD-2026-000124"}).status_code == 201
    assert count(world, Ticket) == 3


@pytest.mark.parametrize("fields, bad", [
    ({"source": "ABC"}, "source"),
    ({"source": "a" * 33}, "source"),
    ({"source": "12 345"}, "source"),
    ({"source": 12345}, "source"),
    ({"external_ref": "x" * 65}, "external_ref"),
    ({"external_ref": "GD\n1"}, "external_ref"),
    ({"external_ref": "GD\u20281"}, "external_ref"),
    ({"external_ref": ["GD-1"]}, "external_ref"),
    ({"source": None, "external_ref": "GD-1"}, "source"),  # a number needs the system it belongs to
])
def test_a_bad_source_or_number_is_a_field_error(world, fields, bad):
    response = file(world, {**HOTLINE_CASE, **fields})
    assert response.status_code == 422, response.get_json()
    assert bad in response.get_json()["error"]["fields"]
    assert count(world, Ticket) == 0


def test_a_citizens_own_filing_ignores_source_and_number(world):
    filed = world.client.post("/api/v1/tickets", json=HOTLINE_CASE, headers={"Idempotency-Key": "k"}).get_json()
    detail = world.ticket("office", filed["tracking_no"])
    assert (detail["channel"], detail["source"], detail["external_ref"]) == ("api", None, None)


# --- Idempotency-Key ---------------------------------------------------------------------------------------------

def test_the_same_key_and_body_give_the_same_answer_and_one_case(world):
    first = file(world, HOTLINE_CASE, key="12345:GD-2026-000123")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = file(world, HOTLINE_CASE, key="12345:GD-2026-000123")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert again.headers["Location"] == first.headers["Location"]
    assert count(world, Ticket) == 1
    # the replayed query code is the case's own
    filed = again.get_json()
    assert world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}").status_code == 200
    # the same fields written in another order and spacing are the same body
    reordered = dict(reversed(list(HOTLINE_CASE.items())))
    assert file(world, reordered, key="12345:GD-2026-000123").get_data() == first.get_data()


def test_the_same_key_with_another_body_is_409(world):
    assert file(world, HOTLINE_CASE, key="k-1").status_code == 201
    other = file(world, {**HOTLINE_CASE, "description": "另一件事：不动产登记迟迟不办。"}, key="k-1")
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_conflict"
    # another path with the same key is another request too
    tracking_no = world.get("office", "/api/v1/staff/tickets").get_json()["items"][0]["tracking_no"]
    note = world.client.post(f"/api/v1/staff/tickets/{tracking_no}/note", json={"content": "已联系"},
                             headers=bearer(world.tokens["office"], **{"Idempotency-Key": "k-1"}))
    assert note.status_code == 409 and note.get_json()["error"]["code"] == "idempotency_conflict"
    assert count(world, Ticket) == 1


def test_a_failed_first_attempt_leaves_the_key_free(world):
    bad = file(world, {**HOTLINE_CASE, "phone": "not a number"}, key="retry-me")
    assert bad.status_code == 422
    assert count(world, IdempotencyKey) == 0
    good = file(world, HOTLINE_CASE, key="retry-me")
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers
    assert file(world, HOTLINE_CASE, key="retry-me").headers["Idempotent-Replayed"] == "true"


def test_keys_belong_to_their_user(world):
    admin_case = {**HOTLINE_CASE, "external_ref": "GD-admin"}
    assert file(world, HOTLINE_CASE, key="shared").status_code == 201
    other = file(world, admin_case, key="shared", who="admin")
    assert other.status_code == 201 and "Idempotent-Replayed" not in other.headers
    assert count(world, Ticket) == 2


@pytest.mark.parametrize("key", ["", " ", "k" * 256, "键", "a\tb", "\x7f"])
def test_a_bad_key_is_400(world, key):
    response = file(world, HOTLINE_CASE, key=key)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert count(world, Ticket) == 0


def test_the_longest_key_is_taken(world):
    key = "".join(chr(c) for c in range(0x21, 0x7f)) * 3
    key = key[:255]
    assert file(world, HOTLINE_CASE, key=key).status_code == 201
    assert file(world, HOTLINE_CASE, key=key).headers["Idempotent-Replayed"] == "true"


def test_the_query_code_is_kept_sealed_only(world):
    filed = file(world, HOTLINE_CASE, key="sealed").get_json()
    with world.app.app_context():
        row = db.session.scalar(sa.select(IdempotencyKey))
        stored = " ".join(str(value) for value in db.session.execute(sa.select(IdempotencyKey.__table__)).one())
        assert row.ticket_id is not None and row.status_code == 201
    assert filed["query_code"] not in stored and filed["tracking_no"] not in stored
    assert secrets.unseal("another key", row.response, f"idempotency:{row.user_id}:sealed", purpose="stored") is None


def test_after_the_secret_key_changes_a_repeat_gets_the_case_without_its_code(world, make_app):
    first = file(world, HOTLINE_CASE, key="rotated").get_json()
    rotated = make_app(SECRET_KEY="a new secret").test_client()
    again = rotated.post("/api/v1/tickets", json=HOTLINE_CASE,
                         headers=bearer(world.tokens["office"], **{"Idempotency-Key": "rotated"}))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    body = again.get_json()
    assert "query_code" not in body
    assert body["tracking_no"] == first["tracking_no"] and body["external_ref"] == first["external_ref"]
    assert count(world, Ticket) == 1


def test_keys_expire_and_are_purged(world, clock):
    first = file(world, {**HOTLINE_CASE, "external_ref": None, "source": None, "channel": "phone"}, key="daily")
    clock.advance(hours=23)
    assert file(world, {**HOTLINE_CASE, "external_ref": None, "source": None, "channel": "phone"},
                key="daily").get_data() == first.get_data()
    clock.advance(hours=2)  # past IDEMPOTENCY_KEY_HOURS (24): the key is new again
    later = file(world, {**HOTLINE_CASE, "external_ref": None, "source": None, "channel": "phone"}, key="daily")
    assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
    assert later.get_json()["tracking_no"] != first.get_json()["tracking_no"]
    file(world, {**HOTLINE_CASE, "external_ref": "GD-x"}, key="other")
    assert "idempotency-keys" in scheduled_jobs(world.app)
    clock.advance(hours=25)
    with world.app.app_context():
        assert idempotency.purge(db.session, clock.now) == 2
        db.session.commit()
    assert count(world, IdempotencyKey) == 0


def test_a_staff_action_with_a_key_is_done_once(world):
    filed = world.file()
    path = f"/api/v1/staff/tickets/{filed['tracking_no']}/remind"
    headers = bearer(world.tokens["office"], **{"Idempotency-Key": "remind-1"})
    first = world.client.post(path, json={"note": "请尽快处理"}, headers=headers)
    again = world.client.post(path, json={"note": "请尽快处理"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_data() == first.get_data()
    assert count(world, Event, Event.action == "remind") == 1
    other = world.client.post(path, json={"note": "再次催办"}, headers=headers)
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_conflict"
    # without a key each request is its own
    world.act("office", filed["tracking_no"], "remind", note="再次催办")
    assert count(world, Event, Event.action == "remind") == 2


def test_a_repeat_gets_the_kept_answer_after_the_action_took_the_case_out_of_sight(world):
    """A department's `return` gives the case back to the window; the office sends it to another department. The
    department's integration, retrying the same request with its key, gets the kept answer (not a 404 telling it the
    case never existed), its number masked; a new request on the case is the same 404 as for any case not its own."""
    from tests.helpers import transferred

    no = transferred(world, "A")
    path = f"/api/v1/staff/tickets/{no}/return"
    headers = bearer(world.tokens["dept_a"], **{"Idempotency-Key": "return-1"})
    first = world.client.post(path, json={"reason": "非本部门职责"}, headers=headers)
    assert first.status_code == 200
    world.act("office", no, "transfer", department_id=world.departments["B"])
    again = world.client.post(path, json={"reason": "非本部门职责"}, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert {k: v for k, v in again.get_json().items() if k != "phone"} == {
        k: v for k, v in first.get_json().items() if k != "phone"}
    assert "****" in again.get_json()["phone"]
    assert count(world, Event, Event.action == "return") == 1
    fresh = world.client.post(path, json={"reason": "非本部门职责"},
                              headers=bearer(world.tokens["dept_a"], **{"Idempotency-Key": "return-2"}))
    unknown = world.client.post("/api/v1/staff/tickets/BJ20991231-9999/return", json={"reason": "x"},
                                headers=bearer(world.tokens["dept_a"], **{"Idempotency-Key": "return-3"}))
    assert fresh.status_code == unknown.status_code == 404 and fresh.get_json() == unknown.get_json()


def jpeg(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), colour).save(out, "JPEG")
    return out.getvalue()


def test_a_multipart_filing_with_a_key_hashes_its_files(world):
    def send(photo: bytes):
        data = {**HOTLINE_CASE, "files[]": (io.BytesIO(photo), "photo.jpg", "image/jpeg")}
        return world.client.post("/api/v1/tickets", data=data, content_type="multipart/form-data",
                                 headers=bearer(world.tokens["office"], **{"Idempotency-Key": "with-photo"}))

    photo = jpeg((200, 30, 30))
    first = send(photo)
    assert first.status_code == 201, first.get_json()
    assert send(photo).headers["Idempotent-Replayed"] == "true"
    other = send(jpeg((0, 0, 255)))
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_conflict"


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.one_of(st.text(max_size=300), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
       source=st.one_of(st.none(), st.text(max_size=40), st.integers(), st.lists(st.text(max_size=3), max_size=2)),
       external_ref=st.one_of(st.none(), st.text(max_size=80), st.floats(), st.dictionaries(st.text(max_size=2),
                                                                                            st.text(max_size=2))))
def test_any_key_source_or_number_is_answered_never_with_a_500(world, key, source, external_ref):
    headers = bearer(world.tokens["office"])
    if "\n" not in key and "\r" not in key and "\x00" not in key:
        headers["Idempotency-Key"] = key
    body = {**HOTLINE_CASE, "source": source, "external_ref": external_ref}
    response = world.client.post("/api/v1/tickets", json=body, headers=headers)
    assert response.status_code in (201, 400, 409, 422), response.get_data(as_text=True)
    if response.status_code != 201:
        assert set(response.get_json()["error"]) >= {"code", "message"}
    search = {"source": source if isinstance(source, str) else "",
              "external_ref": external_ref if isinstance(external_ref, str) else ""}
    listed = world.client.get("/api/v1/staff/tickets", query_string=search, headers=bearer(world.tokens["office"]))
    assert listed.status_code in (200, 400, 422), listed.get_data(as_text=True)


# --- API token scopes ---------------------------------------------------------------------------------------------

def scope_matrix(world, tracking_no):
    """(scope needed, method, path, body) of staff endpoints of each kind."""
    return [
        ("file", "post", "/api/v1/tickets", {**HOTLINE_CASE, "source": None, "external_ref": None, "channel": "phone"}),
        ("read", "get", "/api/v1/staff/tickets", None),
        ("read", "get", f"/api/v1/staff/tickets/{tracking_no}", None),
        ("read", "get", f"/api/v1/staff/tickets/{tracking_no}/knowledge", None),
        ("read", "get", "/api/v1/staff/notices", None),
        ("read", "get", "/api/v1/staff/clusters", None),
        ("read", "get", "/api/v1/reports/monthly/2026-10", None),
        ("act", "post", f"/api/v1/staff/tickets/{tracking_no}/note", {"content": "已电话联系群众"}),
        ("act", "post", "/api/v1/staff/tickets/bulk/remind", {"tickets": [tracking_no], "note": "批量催办"}),
        ("act", "post", "/api/v1/staff/notices/read", {"all": True}),
    ]


def test_a_token_outside_its_scope_gets_403_insufficient_scope(world):
    tracking_no = world.file()["tracking_no"]
    tokens = {scope: token(world, "office", scope) for scope in (None, "file", "read", "act")}
    for needed, method, path, body in scope_matrix(world, tracking_no):
        for scope, raw in tokens.items():
            response = getattr(world.client, method)(path, json=body, headers=bearer(raw))
            if scope is None or scope == needed:
                assert response.status_code in (200, 201), (scope, path, response.get_json())
            else:
                assert response.status_code == 403, (scope, path, response.status_code)
                assert response.get_json()["error"]["code"] == "insufficient_scope", (scope, path)
    # a console session has every scope of its user
    console = world.console("office")
    assert console.get("/api/v1/staff/tickets").status_code == 200


def test_a_scope_does_not_widen_a_role(world):
    tracking_no = world.file()["tracking_no"]
    raw = token(world, "dept_a", "file")
    response = file(world, {**HOTLINE_CASE, "external_ref": "GD-9"}, raw=raw)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert world.client.get(f"/api/v1/staff/tickets/{tracking_no}", headers=bearer(raw)).status_code == 403


def test_user_for_api_key(world):
    raw = token(world, "office", "file")
    with world.app.app_context():
        assert user_for_api_key(raw, "file").id == world.users["office"]
        assert user_for_api_key(world.tokens["office"], "read").id == world.users["office"]  # no scope: all
        with pytest.raises(InsufficientScope):
            user_for_api_key(raw, "read")
        assert user_for_api_key("bj_nothing", "file") is None
        assert user_for_api_key("", "file") is None
        assert user_for_api_key("x" * 1000, "file") is None
        row = db.session.scalar(sa.select(ApiToken).where(ApiToken.scope == "file"))
        revoke_token(db.session, row, row.created_at + timedelta(seconds=1))
        db.session.commit()
        assert user_for_api_key(raw, "file") is None


def test_the_cli_issues_a_scoped_token(world):
    runner = world.app.test_cli_runner()
    result = runner.invoke(args=["users", "token", "office", "--scope", "read", "--label", "12345 查询"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip()
    assert world.client.get("/api/v1/staff/tickets", headers=bearer(raw)).status_code == 200
    assert file(world, HOTLINE_CASE, raw=raw).status_code == 403
    refused = runner.invoke(args=["users", "token", "office", "--scope", "write"])
    assert refused.exit_code == 2 and "write" in refused.output
    with world.app.app_context():
        assert db.session.scalar(sa.select(ApiToken.scope).where(ApiToken.label == "12345 查询")) == "read"


def test_the_console_issues_and_lists_scoped_tokens(world):
    from tests.helpers import csrf_of

    console = world.console("admin")
    form = console.get("/admin/api-tokens/issue/?lang=en").get_data(as_text=True)
    assert 'name="scope"' in form and "File cases only" in form
    issued = console.post("/admin/api-tokens/issue/", data={
        "user_id": world.users["office"], "label": "12345热线", "scope": "file", "csrf_token": csrf_of(form)})
    assert issued.status_code == 200, issued.get_data(as_text=True)
    assert "Scope: File cases only" in issued.get_data(as_text=True)
    with world.app.app_context():
        assert db.session.scalar(sa.select(ApiToken.scope).where(ApiToken.label == "12345热线")) == "file"
    listing = console.get("/admin/api-tokens/").get_data(as_text=True)
    assert "File cases only" in listing and "Everything the account may do" in listing
    refused = console.post("/admin/api-tokens/issue/", data={
        "user_id": world.users["office"], "scope": "everything", "csrf_token": csrf_of(form)})
    assert refused.status_code == 400


# --- migration 0019 -------------------------------------------------------------------------------------------------

@pytest.fixture
def empty_url(database_url, tmp_path):
    """An empty database of the test's kind, for the migrations to build."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    name = f"{PG_TEST_DB}_0019"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migration_0019_upgrades_and_downgrades(empty_url):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": empty_url})
    with app.app_context():
        upgrade_database("0018")
        engine = db.engine
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO user_account (username, role, active, created_at) "
                                       "VALUES ('old', 'office', true, CURRENT_TIMESTAMP)"))
        upgrade_database("0019")
        inspector = sa.inspect(engine)
        assert {"source", "external_ref"} <= {c["name"] for c in inspector.get_columns("ticket")}
        assert "scope" in {c["name"] for c in inspector.get_columns("api_token")}
        assert "idempotency_key" in inspector.get_table_names()
        unique = {i["name"]: i for i in inspector.get_indexes("ticket")}["ix_ticket_external_ref_source"]
        assert unique["unique"]
        downgrade_database("0018")
        inspector = sa.inspect(engine)
        assert "external_ref" not in {c["name"] for c in inspector.get_columns("ticket")}
        assert "idempotency_key" not in inspector.get_table_names()
        upgrade_database("0019")
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT username FROM user_account")) == "old"
        engine.dispose()


# --- concurrency against a real server on PostgreSQL --------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app under gunicorn (4 processes of 4 threads: 16 requests at once) on a PostgreSQL database of its own,
    with the small office of `world` in it; each test files its own numbers with its own keys. The server's log is
    gunicorn.log in the fixture's temporary directory."""
    name = f"{PG_TEST_DB}_served"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", str(error).splitlines()[0])
    app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
    with app.app_context():
        upgrade_database()
    world = seed_world(app, app.test_client())
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BASE_CONFIG["SECRET_KEY"], "BROKER_URL": "",
           "RATELIMIT_PUBLIC": "off", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    log = open(tmp_path_factory.mktemp("served") / "gunicorn.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", "4", "-k", "gthread", "--threads",
                               "4", "-b", f"127.0.0.1:{port}", "app:create_app()"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert server.poll() is None, "gunicorn stopped"
        try:
            return requests.get(f"{base}/api/v1/problem-types", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=120)
        yield world, base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        with app.app_context():
            db.engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def at_once(requests_to_send):
    """Send each (url, json, headers) from a thread of its own, all released together; the answers in order."""
    barrier = threading.Barrier(len(requests_to_send))
    answers = [None] * len(requests_to_send)

    def send(n, url, body, headers):
        with requests.Session() as session:
            barrier.wait()
            answers[n] = session.post(url, json=body, headers=headers, timeout=60)

    threads = [threading.Thread(target=send, args=(n, *r)) for n, r in enumerate(requests_to_send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_identical_requests_at_once_on_a_threaded_server(world):
    """The same on SQLite (one writer at a time) and PostgreSQL, eight requests in one process's threads."""
    with LiveServer(world.app) as server:
        headers = bearer(world.tokens["office"], **{"Idempotency-Key": "threaded"})
        answers = at_once([(f"{server.url}/api/v1/tickets", HOTLINE_CASE, headers)] * 8)
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers if a.status_code != 201]
    assert len({a.content for a in answers}) == 1
    assert count(world, Ticket) == 1


def test_sixteen_identical_requests_at_once_make_one_case(served):
    world, base = served
    headers = bearer(world.tokens["office"], **{"Idempotency-Key": "12345-GD-2026-000123"})
    answers = at_once([(f"{base}/api/v1/tickets", HOTLINE_CASE, headers)] * 16)
    assert [a.status_code for a in answers] == [201] * 16, [a.text for a in answers if a.status_code != 201]
    assert len({a.content for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 15
    assert count(world, Ticket, Ticket.external_ref == HOTLINE_CASE["external_ref"]) == 1
    assert count(world, IdempotencyKey, IdempotencyKey.key == "12345-GD-2026-000123") == 1


def test_one_key_with_two_bodies_at_once_makes_one_case_and_409s(served):
    world, base = served
    headers = bearer(world.tokens["office"], **{"Idempotency-Key": "one-key"})
    one = {**HOTLINE_CASE, "external_ref": "GD-2026-000998"}
    other = {**HOTLINE_CASE, "external_ref": "GD-2026-000999", "description": "另一件事：公积金提取被退回三次。"}
    answers = at_once([(f"{base}/api/v1/tickets", one if n % 2 else other, headers) for n in range(16)])
    codes = [a.status_code for a in answers]
    assert sorted(set(codes)) == [201, 409], codes
    winners = {a.content for a in answers if a.status_code == 201}
    assert len(winners) == 1 and codes.count(201) == 8  # every request with the winner's body got its answer
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"idempotency_conflict"}
    assert count(world, Ticket, Ticket.external_ref.in_(["GD-2026-000998", "GD-2026-000999"])) == 1


def test_one_number_filed_at_once_without_keys_makes_one_case(served):
    world, base = served
    case = {**HOTLINE_CASE, "external_ref": "GD-2026-000777"}
    answers = at_once([(f"{base}/api/v1/tickets", case, bearer(world.tokens["office"]))] * 8)
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 7, [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 201)
    assert {a.json()["error"]["tracking_no"] for a in answers if a.status_code == 409} == {winner["tracking_no"]}
    assert count(world, Ticket, Ticket.external_ref == "GD-2026-000777") == 1
