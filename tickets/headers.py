"""Security headers on every response (Flask-Talisman), and what browsers and proxies may keep.

- A Content-Security-Policy without inline scripts or styles: scripts come from this site's static files
  only (Flask-Admin's own inline bits carry the per-request nonce, see admin/__init__.py), nothing may frame
  a page (frame-ancestors 'none', and X-Frame-Options DENY for older browsers), forms post only here.
- nosniff, a Referrer-Policy that sends addresses only to this site (console URLs carry searched phone
  numbers; Flask-WTF's CSRF check on https needs the same-origin referrer), HSTS only under https.
- Cache-Control: no-store on every response but static files. Pages and answers carry query codes, phone
  numbers, names, case texts or CSRF tokens; a rule by exception would forget one, so what may be kept
  is the short list below, and everything else is not kept by any browser or proxy.
"""
from __future__ import annotations

from flask import request

from .extensions import talisman

# Flask-Admin's filter menu items carry onclick="return false;" (admin/model/layout.html). That exact,
# harmless handler may run; no other inline code can. (Its javascript:void(0) links: static/console.js.)
FLASK_ADMIN_HANDLER = "'unsafe-hashes' 'sha256-2rvfFrggTCtyF5WOiTri1gDS8Boibj4Njn0e+VCBmDI='"
CSP = {
    "default-src": "'self'",
    "script-src": f"'self' {FLASK_ADMIN_HANDLER}",
    "style-src": "'self'",
    "img-src": "'self' data:",  # Bootstrap draws its select arrows and checkboxes with data: SVGs
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
PERMISSIONS_POLICY = {"camera": "()", "microphone": "()", "geolocation": "()", "payment": "()",
                      "browsing-topics": "()"}
# Endpoints whose answers may be cached: the site's and Flask-Admin's static files (CSS, scripts, fonts).
CACHEABLE_ENDPOINTS = frozenset({"static", "admin.static"})


def init_app(app) -> None:
    https = app.config["SESSION_COOKIE_SECURE"]  # the site is served over https (app.py: PUBLIC_BASE_URL)
    talisman.init_app(
        app,
        force_https=False,  # the reverse proxy's business; http on localhost must keep working
        frame_options="DENY",
        strict_transport_security=https,
        content_security_policy=CSP,
        content_security_policy_nonce_in=["script-src"],
        referrer_policy="same-origin",
        permissions_policy=PERMISSIONS_POLICY,
        # Talisman would make cookies Secure even on http (no sign-in on localhost): keep app.py's flags.
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_http_only=app.config["SESSION_COOKIE_HTTPONLY"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
    )
    app.after_request(no_store)


def no_store(response):
    """Cache-Control: no-store unless the endpoint serves static files or the view decided itself."""
    if request.endpoint not in CACHEABLE_ENDPOINTS and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
