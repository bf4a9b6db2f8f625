"""The database down (stopped, restarting, unreachable): every page and answer says so with 503 and Retry-After, in
its own shape (the API's error JSON, Open311's error list, a Chinese page), never 500, the "bug" answer, and never
with a claim about what was kept. A request that finds the database gone did nothing wrong and may try again."""
from __future__ import annotations

import logging
import re

import pytest

from tests.helpers import page_csrf
from tickets.http import RETRY_AFTER_SECONDS

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1: every connection is refused at once
FILING = {"name": "张三", "phone": "13800138000", "problem_type": "too_slow",
          "description": "营业执照变更办了一个月还没有结果。"}
# Answers that do not read the database, or are their own contract while it is down
OWN_ANSWERS = {"/healthz": 200, "/readyz": 503}


@pytest.fixture
def down(make_app):
    return make_app(DATABASE_URL=UNREACHABLE, READY_CACHE_SECONDS=0)


def unavailable(response) -> bool:
    return response.status_code == 503 and response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_filing_and_reading_answer_503_in_each_contracts_shape(down, caplog):
    client = down.test_client()
    with caplog.at_level(logging.ERROR, logger="banjie.http"):
        filed = client.post("/api/v1/tickets", json=FILING)
    assert unavailable(filed) and filed.get_json() == {"error": {
        "code": "service_unavailable", "message": "系统暂时无法连接数据库，请稍后再试。"}}
    said = [record.getMessage() for record in caplog.records if record.name == "banjie.http"]
    assert said == ["database unavailable on POST /api/v1/tickets: OperationalError: " + said[0].split(": ", 2)[2]]
    assert "13800138000" not in caplog.text and "张三" not in caplog.text  # the line says what failed, not what was sent
    english = client.get("/api/v1/offices", headers={"Accept-Language": "en"})
    assert unavailable(english) and "cannot reach its database" in english.get_json()["error"]["message"]
    for path, kind in (("/open311/v2/services.json", "application/json"), ("/open311/v2/services.xml", "text/xml")):
        answer = client.get(path)
        assert unavailable(answer) and answer.mimetype == kind and "503" in answer.get_data(as_text=True)
    page = client.get("/")
    assert unavailable(page) and "系统暂时无法连接数据库" in page.get_data(as_text=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_citizen_who_opened_the_form_before_the_outage_is_told_on_sending_it(world, down):
    """The form was loaded while the database answered; it went away before the citizen pressed 提交."""
    token = page_csrf(world.client, "/")
    client = down.test_client()
    client.set_cookie("session", world.client.get_cookie("session").value)
    for path, form in (("/", {**FILING, "privacy": "y"}), ("/track", {"tracking_no": "BJ20261101-0001", "code": "123456"})):
        page = client.post(path, data={**form, "csrf_token": token})
        assert unavailable(page) and "系统暂时无法连接数据库" in page.get_data(as_text=True), path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_signed_in_console_user_gets_the_plain_503_page(world, down):
    """The console's own error page would look the user up in the database that just failed: the public one instead."""
    signed_in = world.console("office")
    client = down.test_client()
    client.set_cookie("session", signed_in.get_cookie("session").value)  # the same SECRET_KEY reads the same session
    for path in ("/admin/", "/admin/cases/", "/admin/case/BJ20261101-0001"):
        page = client.get(path)
        assert unavailable(page) and "系统暂时无法连接数据库" in page.get_data(as_text=True), path


def _walk_value(argument: str) -> str:
    return "2026-11" if "month" in argument else "BJ20261101-0001" if "tracking" in argument else "1"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_route_answers_500_while_the_database_is_down(world, down):
    """The kind, not the instance: every route of the app, each method it allows, anonymously and signed in."""
    signed_in = world.console("admin")
    anonymous, console = down.test_client(), down.test_client()
    console.set_cookie("session", signed_in.get_cookie("session").value)
    seen = []
    for rule in down.url_map.iter_rules():
        if rule.endpoint.endswith("static"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: _walk_value(m.group(1)), rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for client in (anonymous, console):
                response = client.open(path, method=method, json={} if path.startswith("/api/") else None)
                seen.append((method, rule.rule, response.status_code))
                expected = OWN_ANSWERS.get(rule.rule)
                assert response.status_code != 500 and (expected is None or response.status_code == expected), (
                    method, path, response.status_code, response.get_data(as_text=True)[:300])
                if response.status_code == 503 and rule.rule not in OWN_ANSWERS:
                    assert response.headers.get("Retry-After") == str(RETRY_AFTER_SECONDS), (method, path)
    assert len(seen) > 200 and sum(status == 503 for *_, status in seen) > 100  # most routes read the database
