"""Security headers on every kind of response, what may be cached, and no readable secret in the cookie."""
from __future__ import annotations

import base64
import json
import re
import zlib

from tests.helpers import file_by_form

NO_INLINE = re.compile(r"'unsafe-inline'|'unsafe-eval'")


def cookie_payload(client) -> str:
    """What anyone holding the session cookie can read: its first part, base64 (zlib-compressed after a dot)."""
    value = client.get_cookie("session").value
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def filed_case(world):
    response = file_by_form(world.client)
    assert response.status_code == 303
    readable = cookie_payload(world.client)
    page = world.client.get("/filed").get_data(as_text=True)
    no = re.search(r'id="tracking-no">([^<]+)<', page).group(1)
    code = re.search(r'id="query-code">([^<]+)<', page).group(1)
    return no, code, readable


def test_the_query_code_is_not_readable_in_the_cookie(world):
    no, code, readable = filed_case(world)
    assert no in readable and "filed" in json.loads(readable)  # the receipt did travel in the cookie…
    assert code not in readable and code.lower() not in readable  # …with its code sealed


def test_a_receipt_sealed_for_another_case_or_tampered_shows_nothing(world):
    no, _code, _readable = filed_case(world)
    other, _, _ = filed_case(world)
    file_by_form(world.client)
    with world.client.session_transaction() as session:
        sealed = session["filed"]["code"]
        session["filed"] = {"tracking_no": no, "code": sealed}  # another case's sealed code
    assert world.client.get("/filed").status_code == 302
    for forged in ({"tracking_no": no, "code": "ABCD2345"}, {"tracking_no": no}, "junk", {"code": None}):
        with world.client.session_transaction() as session:
            session["filed"] = forged
        assert world.client.get("/filed").status_code == 302, forged


def test_security_headers_on_every_kind_of_response(world):
    office = world.console("office")
    no = world.file()["tracking_no"]
    for client, path in ((world.client, "/"), (world.client, "/track"), (world.client, "/api/v1/problem-types"),
                         (world.client, "/no-such-page"), (world.client, "/static/banjie.css"),
                         (office, "/admin/"), (office, f"/admin/case/{no}"), (office, "/admin/cases/"),
                         (world.client, "/api/v1/staff/tickets"), (world.client, "/admin/login")):
        with client.get(path) as response:  # static files are streamed: close them
            headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "base-uri 'none'" in csp, path
        assert not NO_INLINE.search(csp), path
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'self'" in csp, path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        assert "Strict-Transport-Security" not in headers, path  # http: HSTS would be ignored, and wrong
    login = world.app.test_client().post("/admin/login", data={})
    assert "Content-Security-Policy" in login.headers


def test_hsts_and_secure_cookies_only_under_https(make_app):
    app = make_app(PUBLIC_BASE_URL="https://banjie.example.gov.cn")
    client = app.test_client()
    response = client.get("/", base_url="https://banjie.example.gov.cn")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    plain = make_app()  # http on localhost: sign-in must keep working, so no Secure flag
    cookie = plain.test_client().get("/").headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Base URLs are written any way: the settings keep them without spaces or a trailing slash.
    spelled = make_app(PUBLIC_BASE_URL=" https://banjie.example.gov.cn/ ", TWILIO_API_BASE="http://127.0.0.1:8089//")
    assert (spelled.config["PUBLIC_BASE_URL"], spelled.config["TWILIO_API_BASE"]) == (
        "https://banjie.example.gov.cn", "http://127.0.0.1:8089")
    assert spelled.config["SESSION_COOKIE_SECURE"]


def test_nothing_personal_is_kept_by_browsers_or_proxies(world):
    """no-store on pages and answers with query codes, phone numbers or personal data; static files may be cached."""
    no, code, _ = filed_case(world)  # the filed page itself is checked below through a second filing
    file_by_form(world.client)
    office = world.console("office")
    token = {"Authorization": f"Bearer {world.tokens['office']}"}
    filed_page = world.client.get("/filed")
    assert filed_page.status_code == 200
    kinds = {
        "confirmation with the query code": filed_page,
        "public case page": world.client.get(f"/track/{no}"),
        "lookup form": world.client.get("/track"),
        "filing API answer with the query code": world.client.post(
            "/api/v1/tickets", json={"name": "张三", "phone": "13800138000", "problem_type": "other",
                                     "description": "营业执照变更办了一个月还没结果。"}),
        "public lookup API": world.client.get(f"/api/v1/tickets/{no}", query_string={"code": code}),
        "staff API list": world.client.get("/api/v1/staff/tickets", headers=token),
        "staff API case with the whole phone number": world.client.get(f"/api/v1/staff/tickets/{no}", headers=token),
        "console case page": office.get(f"/admin/case/{no}"),
        "console list": office.get("/admin/cases/"),
        "CSV export": office.get("/admin/cases/export/csv/", query_string={"phones": "full"}),
        "sign-in page with its CSRF token": world.app.test_client().get("/admin/login"),
        "error page": world.client.get("/no-such-page"),
    }
    for kind, response in kinds.items():
        assert response.status_code in (200, 201, 404), (kind, response.status_code)
        assert response.headers.get("Cache-Control") == "no-store", kind
    for path in ("/static/banjie.css", "/static/console.js", "/admin/static/vendor/jquery.min.js"):
        with world.client.get(path) as response:
            assert response.status_code == 200, path
            assert "no-store" not in response.headers.get("Cache-Control", ""), path
