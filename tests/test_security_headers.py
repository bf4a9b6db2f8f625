"""The security headers on every kind of answer (pages, console, API JSON, Open311 XML, PDFs, CSV, the error pages,
static files, the probes and metrics), HSTS only under https, and no inline script, style or handler in any
template (the CSP allows none)."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from tests.helpers import page_csrf, seed_world

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_ATTRIBUTE = re.compile(r"""\s(?:style|on[a-z]+)\s*=\s*["'{]""", re.I)
UNSAFE = re.compile(r"'unsafe-inline'|'unsafe-eval'")
HTTPS = "https://banjie.example.gov.cn"


def check(kind: str, response, *, https: bool) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp, kind
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "base-uri 'none'" in csp, kind
    assert not UNSAFE.search(csp), kind
    assert headers.get("X-Frame-Options") == "DENY", kind
    assert headers.get("X-Content-Type-Options") == "nosniff", kind
    assert headers.get("Referrer-Policy") == "same-origin", kind
    if https:
        assert headers.get("Strict-Transport-Security", "").startswith("max-age="), kind
    else:
        assert "Strict-Transport-Security" not in headers, kind


def answers(app, world, base: str) -> dict:
    """One answer of every kind the app gives, from `base` (http or https)."""
    def client():
        return app.test_client()

    anonymous = client()
    office = client()
    office.post("/admin/login", base_url=base, headers={"Referer": f"{base}/admin/login"}, data={
        "username": "office", "password": "test-password-1",
        "csrf_token": page_csrf_at(office, "/admin/login", base)})
    no = world.file()["tracking_no"]
    token = {"Authorization": f"Bearer {world.tokens['office']}"}
    big = "x" * (80 * 1024)
    got = {
        "public page": anonymous.get("/", base_url=base),
        "look-up page": anonymous.get("/track", base_url=base),
        "console page": office.get("/admin/", base_url=base),
        "console case page": office.get(f"/admin/case/{no}", base_url=base),
        "console list": office.get("/admin/cases/", base_url=base),
        "CSV": office.get("/admin/cases/export/csv/", base_url=base),
        "PDF (交办单)": office.get(f"/admin/case/{no}/slip.pdf", base_url=base),
        "API JSON": anonymous.get("/api/v1/problem-types", base_url=base),
        "staff API JSON": anonymous.get(f"/api/v1/staff/tickets/{no}", headers=token, base_url=base),
        "Open311 XML": anonymous.get("/open311/v2/services.xml", base_url=base),
        "Open311 JSON": anonymous.get("/open311/v2/services.json", base_url=base),
        "404 page": anonymous.get("/no-such-page", base_url=base),
        "404 JSON": anonymous.get("/api/v1/no-such-thing", base_url=base),
        "405": anonymous.delete("/track", base_url=base),
        "413": anonymous.post("/api/v1/tickets", data=big, content_type="application/json", base_url=base),
        "500": anonymous.get("/boom", base_url=base),
        "static file": anonymous.get("/static/banjie.css", base_url=base),
        "Flask-Admin static file": anonymous.get("/admin/static/vendor/jquery.min.js", base_url=base),
        "healthz": anonymous.get("/healthz", base_url=base),
        "metrics": anonymous.get("/metrics", base_url=base),
    }
    limited = client()
    for _ in range(3):
        got["429"] = limited.get("/api/v1/offices", base_url=base)
    return got


def page_csrf_at(client, path: str, base: str) -> str:
    page = client.get(path, base_url=base).get_data(as_text=True)
    return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page).group(1)


def walk(make_app, world=None, **config):
    """Every kind of answer of an app built with `config` (the office seeded once, by the first walk)."""
    app = make_app(RATELIMIT_PUBLIC="100/minute", RATELIMIT_LOOKUP="2/minute", **config)

    def boom():
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", "boom", boom)
    world = seed_world(app, app.test_client()) if world is None else replace(world, app=app, client=app.test_client())
    world.console("office")  # its test password
    return world, answers(app, world, config.get("PUBLIC_BASE_URL", "http://localhost"))


EXPECTED = {"CSV": 200, "PDF (交办单)": 200, "Open311 XML": 200, "404 page": 404, "405": 405, "413": 413, "500": 500,
            "429": 429, "healthz": 200, "metrics": 200, "console case page": 200}


def test_every_kind_of_answer_carries_the_headers_and_hsts_only_under_https(make_app):
    world = None
    for https in (False, True):
        config = {"PUBLIC_BASE_URL": HTTPS} if https else {}
        world, got = walk(make_app, world, **config)
        for kind, response in got.items():
            with response:
                if kind in EXPECTED:
                    assert response.status_code == EXPECTED[kind], (kind, response.status_code)
                assert response.status_code < 500 or kind == "500", (kind, response.status_code)
                check(f"{kind} ({'https' if https else 'http'})", response, https=https)
        assert got["CSV"].mimetype == "text/csv" and got["PDF (交办单)"].mimetype == "application/pdf"
        assert "xml" in got["Open311 XML"].mimetype


def test_the_citizens_pdf_carries_the_headers(world):
    filed = world.file()
    response = world.client.post("/track/my-data", data={"tracking_no": filed["tracking_no"],
                                                          "code": filed["query_code"],
                                                          "csrf_token": page_csrf(world.client, "/track")})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    check("citizen's PDF", response, https=False)


def test_no_template_has_an_inline_script_style_or_handler():
    offenders = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for pattern in (INLINE_SCRIPT, INLINE_ATTRIBUTE):
            offenders += [f"{path.relative_to(TEMPLATES)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    assert offenders == []
    # the scan finds what it looks for
    assert INLINE_SCRIPT.search("<script>alert(1)</script>") and not INLINE_SCRIPT.search('<script src="/a.js">')
    assert INLINE_ATTRIBUTE.search('<p style="color:red">') and INLINE_ATTRIBUTE.search("<a onclick='x()'>")
