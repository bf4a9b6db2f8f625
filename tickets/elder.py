"""长辈模式 (elder mode) of the public pages: larger text and targets, high contrast, plainer wording.

Where the choice lives: a cookie, `banjie_elder` ("1" on, "0" off), read by the server, so every page is rendered in
the chosen mode from its first byte (no flash of the other mode, and it works without JavaScript: the switch is a
plain GET form to `/elder`). static/banjie.js flips the mode in place without a reload, writes the same cookie, and
keeps a copy in localStorage, which restores the cookie when the browser dropped it (Safari keeps cookies set by a
script for 7 days only; "clear cookies on exit" settings); an explicit "0" is kept too, so turning it off sticks.
The cookie says nothing about the person and is not HttpOnly (the script writes it); pages are `no-store`
(tickets/headers.py), so no cache ever serves one mode's page to the other.

Plainer wording: `wording(full, plain)` in a template renders both texts, each in a span that banjie.css shows in
one mode only, so the switch changes them in place and a screen reader reads only the one shown.
"""
from __future__ import annotations

from flask import Blueprint, current_app, has_request_context, redirect, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from .http import local_path

COOKIE = "banjie_elder"
COOKIE_DAYS = 365
bp = Blueprint("elder", __name__)

def elder_mode() -> bool:
    return request.cookies.get(COOKIE) == "1"


def here() -> str:
    """This page's address, for the switch's `next`. A page answered to a POST comes back as its GET; a step that has
    no page of its own (补充材料, 撤回, the rating, 下载我的信息: POST only) as the page it belongs to, the nearest address
    above it that answers a GET (/track/<no>/supplement: the case page, /track/my-data: the look-up)."""
    query = request.query_string.decode("utf-8", "replace")
    if request.method in ("GET", "HEAD"):
        return request.path + ("?" + query if query else "")
    adapter = current_app.url_map.bind("localhost")
    path = request.path
    while path not in ("", "/"):
        try:
            endpoint, _ = adapter.match(path, method="GET")
        except RequestRedirect:  # the same page with or without its trailing slash
            return path
        except HTTPException:  # no page here (405: POST only; 404)
            endpoint = None
        if path != request.path:
            if endpoint is not None:
                return path
        elif request.url_rule is not None and endpoint == request.url_rule.endpoint:
            return path + ("?" + query if query else "")
        # Not this step's page (/track/my-data reads as a case page for a tracking number "my-data"): the one above.
        path = path.rsplit("/", 1)[0]
    return "/"


def wording(full, plain) -> Markup:
    """Both wordings of an explanation; the mode shows one (banjie.css: .wording-full, .wording-plain)."""
    return Markup('<span class="wording-full">{}</span><span class="wording-plain">{}</span>').format(full, plain)


@bp.get("/elder")
def switch():
    """The switch without JavaScript: `?on=1` or `?on=0`, then back to `next` when it is a page of this site."""
    on = request.args.get("on") == "1"
    response = redirect(local_path(request.args.get("next")) or "/", code=303)
    response.set_cookie(COOKIE, "1" if on else "0", max_age=COOKIE_DAYS * 24 * 3600, path="/", samesite="Lax",
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=False)
    return response


def init_app(app) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _elder():
        if not has_request_context():
            return {"elder_mode": False, "wording": wording, "elder_next": "/"}
        return {"elder_mode": elder_mode(), "wording": wording, "elder_next": here()}
