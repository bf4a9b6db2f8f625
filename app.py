"""create_app(): configuration, database, broker, blueprints and console. The only place that wires rooms together."""
from __future__ import annotations

import logging
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask, current_app, has_request_context, request, session
from flask.cli import with_appcontext
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import run_simple

from escalation.ladder import ladder_from_config
from escalation.policies import DeadlinePolicy
from escalation.store import SettingsCache
from notify.test_numbers import DEFAULT_TEST_NUMBERS
from tickets import clock, headers, logins
from tickets.broker import bind_actors, init_broker
from tickets.db import configure_engine, db
from tickets.extensions import babel, csrf, limiter, limiter_health, login_manager

ROOT = Path(__file__).resolve().parent
LANGUAGES = ("zh_CN", "en")

# name: (default, type). Environment variables of the same name override; see API.md's table.
SETTINGS = {
    "DATABASE_URL": ("", str),
    "BROKER_URL": ("", str),
    "SECRET_KEY": ("", str),
    "PUBLIC_BASE_URL": ("http://127.0.0.1:5000", str),
    "SMS_BACKEND": ("outbox", str),
    "TWILIO_ACCOUNT_SID": ("", str),
    "TWILIO_AUTH_TOKEN": ("", str),
    "TWILIO_FROM_NUMBER": ("", str),
    "TWILIO_MESSAGING_SERVICE_SID": ("", str),
    "TWILIO_API_BASE": ("https://api.twilio.com", str),
    "TIMEZONE": ("Asia/Shanghai", str),
    "HOST": ("127.0.0.1", str),
    "PORT": (5000, int),
    "SMS_QUIET_HOURS": ("21:00-08:00", str),
    "SMS_TEST_NUMBERS": (DEFAULT_TEST_NUMBERS, str),  # never texted; see notify/test_numbers.py
    "SWEEP_INTERVAL_SECONDS": (30, int),
    "ESCALATION_BATCH_SIZE": (200, int),
    "ESCALATION_CACHE_SECONDS": (60, int),
    "ESCALATION_LADDER": ("", str),  # JSON; see escalation/ladder.py
    "RATELIMIT_PUBLIC": ("30/minute", str),
    "RATELIMIT_LOOKUP": ("120/minute", str),
    "RATELIMIT_STORAGE_URI": ("memory://", str),
    "SURVEY_OPEN_DAYS": (3, int),
    "SMS_RATE_PER_SECOND": (10, int),
    "SMS_RATE_REDIS_URL": ("", str),
    "SMS_MAX_ATTEMPTS": (8, int),
    "SMS_CLAIM_LEASE_SECONDS": (60, int),
    "TWILIO_TIMEOUT_SECONDS": (10, float),
    "OFFICE_NAME": ("办不成事反映窗口", str),
    "REPORT_FONT": ("", str),
    "PROXY_COUNT": (0, int),
    "LOGIN_RATELIMIT": ("5/15 minutes", str),
    "LOGIN_RATELIMIT_CLIENT": ("30/hour", str),
    "SESSION_IDLE_MINUTES": (30, int),
    "SESSION_MAX_HOURS": (12, int),
}


# Settings where an empty value is a choice (API.md: SMS_QUIET_HOURS empty means no quiet hours), not "unset".
EMPTY_IS_A_VALUE = frozenset({"SMS_QUIET_HOURS", "SMS_TEST_NUMBERS"})
# Base URLs that paths are joined to: kept without surrounding spaces or a trailing slash, however they were written.
BASE_URLS = ("PUBLIC_BASE_URL", "TWILIO_API_BASE")


def _load_settings(app: Flask, test_config: dict | None) -> None:
    for name, (default, kind) in SETTINGS.items():
        raw = os.environ.get(name)
        if raw is not None and (raw != "" or name in EMPTY_IS_A_VALUE):
            app.config[name] = kind(raw)
        else:
            app.config[name] = default
    if test_config:
        app.config.update(test_config)
    for name in BASE_URLS:
        app.config[name] = app.config[name].strip().rstrip("/")
    instance = Path(app.instance_path)
    if not app.config["DATABASE_URL"] or not app.config["SECRET_KEY"]:
        instance.mkdir(parents=True, exist_ok=True)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'banjie.db'}"
    if not app.config["SECRET_KEY"]:
        key_file = instance / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        app.config["SECRET_KEY"] = key_file.read_text().strip()
    url = app.config["DATABASE_URL"]
    # psycopg 3 is the driver we ship; plain postgresql:// would ask SQLAlchemy for psycopg2.
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    app.config["SQLALCHEMY_ENGINES"] = {"default": {"url": url, "pool_pre_ping": True}}
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config.setdefault("RATELIMIT_ENABLED", True)  # RATELIMIT_PUBLIC=off lifts the public limits only
    # Redis away must not stop filing or sign-in: count in memory meanwhile (tickets.extensions.LimiterHealth
    # logs it), never fail a request because of the limiter, and give up on a silent Redis within a second.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    if app.config["RATELIMIT_STORAGE_URI"].startswith(("redis", "rediss")):
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 1})
    # X-RateLimit-* on every answer would cost two more round trips to the limiter's storage per request (the
    # count and its expiry, read back after the increment); a 429 carries Retry-After (tickets/http.py).
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config["PUBLIC_BASE_URL"].startswith("https://")
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # tied to the session instead; a long form must not expire
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh_CN")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config["TIMEZONE"])
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ROOT / "translations")


def select_locale() -> str:
    """The language of a response; Chinese first.

    Pages are Chinese unless the visitor chose English with ?lang=en (remembered in the session): a
    browser left on English must not turn a Chinese government site English by itself. The JSON API
    answers in the caller's Accept-Language (zh_CN or en), as API.md says. Outside a request
    (actors, the CLI) it is zh_CN: SMS and reports speak to Chinese readers.
    """
    if not has_request_context():
        return "zh_CN"
    if request.path.startswith(("/api/", "/sms/")):
        return request.accept_languages.best_match(LANGUAGES, default="zh_CN")
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        return chosen
    return session.get("lang") if session.get("lang") in LANGUAGES else "zh_CN"


class RedactQueryCode(logging.Filter):
    """Access logs must not carry the citizen's query code."""

    pattern = re.compile(r"(code=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self.pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        record.msg = self.pattern.sub(r"\1***", str(record.msg))
        return True


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
    if "_user_id" in session and not (request.endpoint or "").endswith("static"):
        current_user._get_current_object()


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(ROOT / "instance"), template_folder="templates", static_folder="static")
    from tickets.http import install_url_converters

    install_url_converters(app)  # before any blueprint adds a route
    _load_settings(app, test_config)
    app.json.ensure_ascii = False  # UTF-8 JSON: Chinese stays readable in answers and logs
    if app.config["PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_COUNT"], x_proto=1, x_host=1)
    logging.getLogger("werkzeug").addFilter(RedactQueryCode())
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

    # Periodic jobs of every room (name -> callable(now)); the scheduler runs them each tick. See escalation/scheduler.py.
    app.extensions.setdefault("banjie.scheduled", {})
    tz = clock.zone_of(app.config)
    settings = SettingsCache(app.config["ESCALATION_CACHE_SECONDS"])
    app.extensions["banjie.escalation_settings"] = settings
    app.extensions["banjie.escalation_ladder"] = ladder_from_config(app.config.get("ESCALATION_LADDER"))
    app.extensions["banjie.deadline_policy"] = DeadlinePolicy(calendar_source=settings.calendar, tz=tz,
                                                              overrides_source=settings.overrides)
    broker = init_broker(app)

    from escalation import cli as escalation_cli, tasks as escalation_tasks
    from escalation.operations import on_event_recorded
    from tickets.signals import event_recorded

    bind_actors(broker, escalation_tasks.ACTORS)
    event_recorded.connect(on_event_recorded)  # weak=True is fine: a module-level function
    escalation_cli.register(app)

    import notify
    from notify.quiet import parse_quiet_hours

    parse_quiet_hours(app.config["SMS_QUIET_HOURS"])  # a malformed setting stops start-up with a clear message
    notify.init_app(app)

    from tickets import api, cli, views
    from tickets.http import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    register_error_handlers(app)
    cli.register(app)

    import demo

    demo.register(app)

    from reports.setup import init_app as init_reports

    init_reports(app)

    from admin import init_admin

    init_admin(app)

    app.add_template_filter(clock.local_text, "localtime")
    app.add_template_filter(clock.iso_text, "isotime")
    from tickets.models import is_bad_rating

    app.add_template_test(is_bad_rating, "bad_rating")  # {% if score is bad_rating %}: a 差评
    from tickets.phones import national

    app.add_template_filter(lambda number: national(number) if number else "", "phone")
    from tickets.phones import mask

    app.add_template_filter(lambda number: mask(number) if number else "", "mask_phone")

    @app.context_processor
    def _globals():
        from flask_babel import get_locale
        locale = str(get_locale())
        chinese = locale.startswith("zh")
        # html_lang: the BCP 47 tag every page's <html lang> states (public pages, console, sign-in, errors).
        # sentence_gap: what goes between two sentences a template puts side by side (none in Chinese).
        return {"office_name": app.config["OFFICE_NAME"], "current_locale": locale,
                "html_lang": "zh-CN" if chinese else "en", "sentence_gap": "" if chinese else " "}

    app.cli.add_command(serve)
    return app


def banner(app) -> str:
    """What `flask serve` (so `make run`) prints first: where the site and the console are, and the demo's logins."""
    from demo.logins import login_lines

    host, port = app.config["HOST"], app.config["PORT"]
    everywhere = host in ("", "0.0.0.0", "::")
    shown = "127.0.0.1" if everywhere else f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    sms = app.config["SMS_BACKEND"]
    lines = [
        f"Banjie on {host or '0.0.0.0'}:{port}" + (" (every interface)" if everywhere else ""),
        f"  public site  {base}/",
        f"  console      {base}/admin/",
        f"  staff API    {base}/api/v1/",
        f"  SMS          {sms}" + (": recorded in the console's SMS log, never sent" if sms == "outbox" else "")
        + (f"; test numbers {app.config['SMS_TEST_NUMBERS']}… are never texted" if app.config["SMS_TEST_NUMBERS"] else ""),
    ]
    return "\n".join(lines + login_lines(db.session))


@click.command("serve")
@with_appcontext
def serve():
    """Serve Banjie on HOST:PORT. Without BROKER_URL (embedded mode) the Dramatiq worker and the scheduler run in this process."""
    import dramatiq
    from flask import current_app

    from escalation.scheduler import start_thread

    app = current_app._get_current_object()
    worker = stop_scheduler = None
    if not app.config["BROKER_URL"]:
        worker = dramatiq.Worker(app.extensions["banjie.broker"], worker_threads=2)
        worker.start()
        _thread, stop_scheduler = start_thread(app)
    host, port = app.config["HOST"], app.config["PORT"]
    click.echo(banner(app))
    try:
        # app.run() refuses to start inside a `flask` command, so serve with Werkzeug directly.
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if stop_scheduler is not None:
            stop_scheduler.set()
        if worker is not None:
            worker.stop()
