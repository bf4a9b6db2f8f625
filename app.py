"""create_app(): configuration, database, broker, blueprints and console. The only place that wires rooms together."""
from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import Flask, has_request_context, request, session
from flask.cli import with_appcontext
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import run_simple

from escalation.calendar import from_chinese_calendar
from escalation.policies import DeadlinePolicy
from tickets.broker import init_broker
from tickets.db import configure_engine, db
from tickets.extensions import babel, csrf, limiter, login_manager
from tickets.models import User

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
    "SWEEP_INTERVAL_SECONDS": (30, int),
    "RATELIMIT_PUBLIC": ("30/minute", str),
    "RATELIMIT_LOOKUP": ("120/minute", str),
    "RATELIMIT_STORAGE_URI": ("memory://", str),
    "SURVEY_OPEN_DAYS": (3, int),
    "OFFICE_NAME": ("办不成事反映窗口", str),
    "REPORT_FONT": ("", str),
    "PROXY_COUNT": (0, int),
    "LOGIN_RATELIMIT": ("5/15 minutes", str),
    "LOGIN_RATELIMIT_CLIENT": ("30/hour", str),
}


def _load_settings(app: Flask, test_config: dict | None) -> None:
    for name, (default, kind) in SETTINGS.items():
        raw = os.environ.get(name)
        app.config[name] = kind(raw) if raw not in (None, "") else default
    if test_config:
        app.config.update(test_config)
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
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
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
    """The signed-in user for a session; a deactivated account is signed out at its next request."""
    if not (user_id.isascii() and user_id.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(ROOT / "instance"), template_folder="templates", static_folder="static")
    _load_settings(app, test_config)
    app.json.ensure_ascii = False  # UTF-8 JSON: Chinese stays readable in answers and logs
    if app.config["PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_COUNT"], x_proto=1, x_host=1)
    logging.getLogger("werkzeug").addFilter(RedactQueryCode())

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
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None  # the sign-in page says enough
    login_manager.user_loader(_load_user)

    tz = ZoneInfo(app.config["TIMEZONE"])
    calendar = from_chinese_calendar()
    app.extensions["banjie.deadline_policy"] = DeadlinePolicy(calendar_source=lambda: calendar, tz=tz)
    init_broker(app)

    from tickets import api, cli, views
    from tickets.http import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    register_error_handlers(app)
    cli.register(app)

    from reports.setup import init_app as init_reports

    init_reports(app)

    from admin import init_admin

    init_admin(app)

    from tickets.presenters import iso_text, local_text

    app.add_template_filter(local_text, "localtime")
    app.add_template_filter(iso_text, "isotime")
    from tickets.phones import national

    app.add_template_filter(lambda number: national(number) if number else "", "phone")

    @app.context_processor
    def _globals():
        from flask_babel import get_locale
        return {"office_name": app.config["OFFICE_NAME"], "current_locale": str(get_locale())}

    app.cli.add_command(serve)
    return app


@click.command("serve")
@with_appcontext
def serve():
    """Serve Banjie on HOST:PORT. Without BROKER_URL (embedded mode) the Dramatiq worker runs in this process."""
    import dramatiq
    from flask import current_app

    app = current_app._get_current_object()
    worker = None
    if not app.config["BROKER_URL"]:
        worker = dramatiq.Worker(app.extensions["banjie.broker"], worker_threads=2)
        worker.start()
    host, port = app.config["HOST"], app.config["PORT"]
    click.echo(f"Banjie: public site http://{host}:{port}/  staff API http://{host}:{port}/api/v1/")
    try:
        # app.run() refuses to start inside a `flask` command, so serve with Werkzeug directly.
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if worker is not None:
            worker.stop()
