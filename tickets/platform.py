"""The platform pieces every room uses, wired once by create_app before the rooms: URL converters, security
headers, the database, translations (select_locale), CSRF, rate limits, sign-in (the session's user), the
broker, log lines (format, request id, redaction: `logs.py`), the probes and metrics (`health.py`, `telemetry.py`), and
what every template may use (filters and globals).
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, has_request_context, request, session
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from . import clock, headers, health, logins, logs, phones, telemetry
from .broker import init_broker
from .db import configure_engine, db
from .extensions import babel, csrf, limiter, limiter_health, login_manager
from .http import install_url_converters

LANGUAGES = ("zh_CN", "en")


def select_locale() -> str:
    """The language of a response; Chinese first.

    Pages are Chinese unless the visitor chose English with ?lang=en (remembered in the session): a
    browser left on English must not turn a Chinese government site English by itself. The JSON API
    (and Open311's) answers in the caller's Accept-Language (zh_CN or en), as API.md says. Outside a request
    (actors, the CLI) it is zh_CN: SMS and reports speak to Chinese readers.
    """
    if not has_request_context():
        return "zh_CN"
    if request.path.startswith(("/api/", "/sms/", "/open311/")):
        return request.accept_languages.best_match(LANGUAGES, default="zh_CN")
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        return chosen
    return session.get("lang") if session.get("lang") in LANGUAGES else "zh_CN"


def _load_user(user_id: str):
    """The signed-in user, if the session's row is still live (tickets/logins.py); else the visitor is anonymous.

    A session that was signed out, revoked by a password, role or department change or a deactivation, or
    left idle too long, loses its cookie's sign-in here, at its next request.
    """
    config = current_app.config
    user = logins.live_user(db.session, user_id, session.get(logins.SESSION_KEY), clock.now(),
                            idle=timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
                            lifetime=timedelta(hours=config["SESSION_MAX_HOURS"]))
    if db.session.dirty:
        db.session.commit()  # last_seen_at or an expiry; nothing else has been written yet (see _resolve_sign_in)
    if user is None:
        for key in ("_user_id", "_fresh", "_id", logins.SESSION_KEY):
            session.pop(key, None)
    return user


def _resolve_sign_in() -> None:
    """Load the signed-in user before the view runs, so that the loader's commit never carries a view's writes."""
    endpoint = request.endpoint or ""
    if "_user_id" in session and not endpoint.endswith("static") and endpoint not in health.SESSIONLESS:
        current_user._get_current_object()


def init_app(app) -> None:
    install_url_converters(app)  # before any blueprint adds a route
    app.json.ensure_ascii = False  # UTF-8 JSON: Chinese stays readable in answers and logs
    if app.config["PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_COUNT"], x_proto=1, x_host=1)
    logs.init_app(app)  # first: every later hook's log lines carry the request id; the process's log format
    headers.init_app(app)  # first, so that the nonce exists before anything renders

    db.init_app(app)
    # Banjie configures no async engines; the extension's async teardown would still cost a thread hop per request.
    app.teardown_appcontext_funcs[:] = [f for f in app.teardown_appcontext_funcs
                                        if getattr(f, "__name__", "") != "_close_async_sessions"]
    with app.app_context():
        for engine in db.engines.values():
            configure_engine(engine)
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    limiter.init_app(app)
    limiter_health.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None  # the sign-in page says enough
    login_manager.user_loader(_load_user)
    app.before_request(_resolve_sign_in)
    init_broker(app)
    telemetry.init_app(app)  # request metrics and /metrics; rooms add their scrape-time readings
    health.init_app(app)  # /healthz and /readyz; rooms add their readiness checks
    _template_helpers(app)


def human_size(size: int) -> str:
    """A file's size as people read it: 820 KB, 3.4 MB."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _template_helpers(app) -> None:
    from .models import is_bad_rating

    app.add_template_filter(clock.local_text, "localtime")
    app.add_template_filter(clock.iso_text, "isotime")
    app.add_template_test(is_bad_rating, "bad_rating")  # {% if score is bad_rating %}: a 差评
    app.add_template_filter(lambda number: phones.national(number) if number else "", "phone")
    app.add_template_filter(lambda number: phones.mask(number) if number else "", "mask_phone")
    app.add_template_filter(human_size, "filesize")

    @app.context_processor
    def _globals():
        from flask_babel import get_locale
        locale = str(get_locale())
        chinese = locale.startswith("zh")
        # html_lang: the BCP 47 tag every page's <html lang> states (public pages, console, sign-in, errors).
        # sentence_gap: what goes between two sentences a template puts side by side (none in Chinese).
        return {"office_name": app.config["OFFICE_NAME"], "current_locale": locale,
                "html_lang": "zh-CN" if chinese else "en", "sentence_gap": "" if chinese else " "}
