"""create_app(): the settings, the platform pieces (tickets/platform.py), then each room's init_app. The only place
that wires rooms together."""
from __future__ import annotations

import gc

import importlib
import os
import re
import secrets
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext
from werkzeug.serving import make_server

from notify.test_numbers import DEFAULT_TEST_NUMBERS
from tickets import logformat, platform
from tickets.broker import broker
from tickets.cli import explain_database_errors
from tickets.db import db
from tickets.privacy import crypto as privacy_keys

ROOT = Path(__file__).resolve().parent


def flag(raw: str) -> bool:
    """A yes/no setting: true/false, yes/no, on/off or 1/0 (any case); anything else stops start-up."""
    value = str(raw).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0", ""):
        return False
    raise ValueError(f"a yes/no setting must be true or false, not {raw!r}")

# name: (default, type). Environment variables of the same name override; see API.md's table.
SETTINGS = {
    "DATABASE_URL": ("", str),
    # PostgreSQL: seconds a new connection may take before it fails (libpq's connect_timeout, unless DATABASE_URL has
    # its own): a silent database host must fail requests and /readyz's check, not hold them for the TCP timeout
    "DATABASE_CONNECT_TIMEOUT_SECONDS": (5, int),
    "BROKER_URL": ("", str),
    "SECRET_KEY": ("", str),
    # Encryption at rest of citizens' names and numbers (tickets/privacy/crypto.py): `id:base64-key[,id:key…]`, the
    # first writes, the others are read during a rotation; and the blind indexes' HMAC key. Without BROKER_URL and
    # unset: made once into instance/; with BROKER_URL they must be set. Losing them loses the data.
    "PRIVACY_KEYS": ("", str),
    "PRIVACY_INDEX_KEY": ("", str),
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
    "RATELIMIT_INTEGRATION": ("600/minute", str),
    "RATELIMIT_STORAGE_URI": ("memory://", str),
    "SURVEY_OPEN_DAYS": (7, int),  # natural days, as the provincial 好差评 rules have it
    "EVALUATION_EXPORT_IDENTITY": (False, flag),  # the 好差评 export includes the citizen's name and number
    "OFFICE_HOURS": ("09:00-12:00,13:30-17:30", str),  # working hours of working days; see escalation/calendar.py
    "FIRST_CONTACT_HOURS": (8, int),  # 先行联系: working hours a department has to contact the citizen
    "SMS_RATE_PER_SECOND": (10, int),
    "SMS_RATE_REDIS_URL": ("", str),
    "SMS_MAX_ATTEMPTS": (8, int),
    "SMS_CLAIM_LEASE_SECONDS": (60, int),
    "TWILIO_TIMEOUT_SECONDS": (10, float),
    "OFFICE_NAME": ("办不成事反映窗口", str),
    # 附件 (tickets/storage.py): in the database, or on a volume every web process mounts (ATTACHMENT_DIR)
    "ATTACHMENT_STORAGE": ("database", str),
    "ATTACHMENT_DIR": ("", str),
    "REPORT_FONT": ("", str),
    # The monthly 通报 (reports/scores.py): score weights, the cases a unit needs to be ranked, the rates (in %) below
    # which 主要问题 names a unit (an office may set its own in the console).
    "REPORT_SCORE_WEIGHTS": ("on_time_rate=40,satisfaction_rate=40,contact_rate=20", str),
    "REPORT_MIN_CASES": (5, int),
    "REPORT_THRESHOLDS": ("on_time_rate=90,satisfaction_rate=90,contact_rate=90", str),
    # 并单 and 一类事 (tickets/duplicates.py, tickets/clusters.py): a possible duplicate is an open or lately closed case
    # from the same mobile number within DUPLICATE_PHONE_DAYS, or of similar text (similarity, 0 to 1, at least
    # DUPLICATE_TEXT_THRESHOLD) about the same service item at the same window within DUPLICATE_TEXT_DAYS; a closed case
    # counts for DUPLICATE_CLOSED_DAYS after closing. A 一类事 is CLUSTER_MIN_CASES or more cases of one cluster (similar
    # at CLUSTER_TEXT_THRESHOLD) within CLUSTER_DAYS.
    "DUPLICATE_PHONE_DAYS": (30, int),
    "DUPLICATE_TEXT_DAYS": (14, int),
    "DUPLICATE_TEXT_THRESHOLD": (0.2, float),
    "DUPLICATE_CLOSED_DAYS": (14, int),
    "CLUSTER_DAYS": (14, int),
    "CLUSTER_MIN_CASES": (5, int),
    "CLUSTER_TEXT_THRESHOLD": (0.18, float),
    "PROXY_COUNT": (0, int),
    "LOGIN_RATELIMIT": ("5/15 minutes", str),
    "LOGIN_RATELIMIT_CLIENT": ("30/hour", str),
    "SESSION_IDLE_MINUTES": (30, int),
    "SESSION_MAX_HOURS": (12, int),
    # Outbound webhooks (notify/deliveries.py, notify/events.py): each request's connect and read timeouts; attempts
    # before a delivery fails; the backoff (doubled per attempt up to the cap, less up to half of it at random); how
    # long a worker's claim on a delivery holds (at least 3 × the timeout); how long a process keeps the subscriptions
    "WEBHOOK_TIMEOUT_SECONDS": (10.0, float),
    "WEBHOOK_MAX_ATTEMPTS": (12, int),
    "WEBHOOK_BACKOFF_SECONDS": (15.0, float),
    "WEBHOOK_BACKOFF_MAX_SECONDS": (3600.0, float),
    "WEBHOOK_CLAIM_LEASE_SECONDS": (60.0, float),
    "WEBHOOK_CACHE_SECONDS": (5.0, float),
    # The production stack (Procfile, deploy/): process counts, read before any app exists by deploy/gunicorn.conf.py
    # (which listens on HOST:PORT) and by `python worker.py`
    "WEB_WORKERS": (4, int),  # gunicorn worker processes per web host
    "WEB_THREADS": (1, int),  # threads per gunicorn worker; more than 1: the gthread worker (no buffering proxy)
    "WORKER_PROCESSES": (2, int),  # dramatiq worker processes per `python worker.py`
    "WORKER_THREADS": (4, int),  # threads per dramatiq worker process
    # Integration API (tickets/idempotency.py): hours an Idempotency-Key is remembered (then purged by the scheduler)
    "IDEMPOTENCY_KEY_HOURS": (24, int),
    # Retention (tickets/privacy/retention.py): cases are anonymised this many days after they ended (0: never by
    # the scheduler), a batch of RETENTION_BATCH_SIZE per tick; their files are deleted, or kept (`keep`)
    "RETENTION_DAYS": (1095, int),
    "RETENTION_ATTACHMENTS": ("delete", str),
    "RETENTION_BATCH_SIZE": (500, int),
    # Observability (tickets/logs.py, tickets/telemetry.py, tickets/health.py)
    "LOG_FORMAT": ("", str),  # text or json; empty: json with BROKER_URL (production), text without (make run)
    "LOG_LEVEL": ("INFO", str),  # DEBUG, INFO, WARNING or ERROR (SQL is never logged below WARNING)
    "METRICS_ENABLED": (True, flag),  # off: requests are not timed and /metrics is 404
    "METRICS_TOKEN": ("", str),  # Bearer token for /metrics; empty: only requests from this machine, not proxied
    "METRICS_WORKER_ADDRESS": ("", str),  # host:port where a workers-only host serves its metrics; empty: none
    "PROMETHEUS_MULTIPROC_DIR": ("", str),  # per-host directory of every process's metric values (multiprocess mode)
    "READY_TIMEOUT_SECONDS": (2.0, float),  # /readyz: a check that has not answered by then fails as `timeout`
    "READY_CACHE_SECONDS": (2.0, float),  # /readyz: how long a process keeps its last answer
    "READY_OUTBOX_MAX_AGE_SECONDS": (600, int),  # /readyz: oldest due unsent text older than this fails `outbox`
    "READY_OUTBOX_MAX_PENDING": (0, int),  # /readyz: more due unsent texts than this fails `outbox`; 0: no limit
}


# The range of every number among the settings, both ends included. A value outside it, or not a number at all (nan,
# inf), stops start-up with one line naming the setting, from the environment (`from_environment`, which the processes
# that read a setting before any app exists use too) or from create_app's own configuration; README's Configuration
# table gives the same ranges. A setting with more to it (WEBHOOK_CLAIM_LEASE_SECONDS against the timeout) is checked
# further by the room that uses it.
RANGES: dict[str, tuple[float, float, str]] = {  # name: (lowest, highest, unit)
    "DATABASE_CONNECT_TIMEOUT_SECONDS": (2, 300, "seconds"),  # libpq counts less than 2 as 2, and 0 as for ever
    "PORT": (1, 65535, ""),
    "SWEEP_INTERVAL_SECONDS": (1, 3600, "seconds"),
    "ESCALATION_BATCH_SIZE": (1, 100000, "steps"),
    "ESCALATION_CACHE_SECONDS": (0, 3600, "seconds"),
    "SURVEY_OPEN_DAYS": (1, 365, "days"),
    "FIRST_CONTACT_HOURS": (1, 120, "working hours"),  # escalation.policies.MAX_WORKING_HOURS
    "SMS_RATE_PER_SECOND": (0, 10000, "texts"),  # 0: no limit
    "SMS_MAX_ATTEMPTS": (1, 100, "attempts"),
    "SMS_CLAIM_LEASE_SECONDS": (1, 86400, "seconds"),
    "TWILIO_TIMEOUT_SECONDS": (0.1, 300, "seconds"),
    "REPORT_MIN_CASES": (1, 100000, "cases"),
    "DUPLICATE_PHONE_DAYS": (0, 3650, "days"),
    "DUPLICATE_TEXT_DAYS": (0, 3650, "days"),
    "DUPLICATE_TEXT_THRESHOLD": (0, 1, ""),
    "DUPLICATE_CLOSED_DAYS": (0, 3650, "days"),
    "CLUSTER_DAYS": (1, 3650, "days"),
    "CLUSTER_MIN_CASES": (2, 100000, "cases"),
    "CLUSTER_TEXT_THRESHOLD": (0, 1, ""),
    "PROXY_COUNT": (0, 10, "proxies"),
    "SESSION_IDLE_MINUTES": (1, 1440, "minutes"),
    "SESSION_MAX_HOURS": (1, 720, "hours"),
    "WEBHOOK_TIMEOUT_SECONDS": (0.1, 300, "seconds"),
    "WEBHOOK_MAX_ATTEMPTS": (1, 100, "attempts"),
    "WEBHOOK_BACKOFF_SECONDS": (0, 86400, "seconds"),
    "WEBHOOK_BACKOFF_MAX_SECONDS": (0, 604800, "seconds"),
    "WEBHOOK_CLAIM_LEASE_SECONDS": (0.3, 86400, "seconds"),
    "WEBHOOK_CACHE_SECONDS": (0, 3600, "seconds"),
    "WEB_WORKERS": (1, 256, "processes"),
    "WEB_THREADS": (1, 256, "threads"),
    "WORKER_PROCESSES": (1, 256, "processes"),
    "WORKER_THREADS": (1, 256, "threads"),
    "IDEMPOTENCY_KEY_HOURS": (1, 8760, "hours"),
    "RETENTION_DAYS": (0, 36500, "days"),  # 0: never by the scheduler
    "RETENTION_BATCH_SIZE": (1, 100000, "cases"),
    "READY_TIMEOUT_SECONDS": (0, 60, "seconds"),
    "READY_CACHE_SECONDS": (0, 60, "seconds"),
    "READY_OUTBOX_MAX_AGE_SECONDS": (1, 604800, "seconds"),
    "READY_OUTBOX_MAX_PENDING": (0, 10000000, "texts"),  # 0: no limit
}


def range_text(name: str) -> str:
    """A setting's range as README's table and the refusals say it: `1 to 65535`, `0.1 to 300 seconds`."""
    low, high, unit = RANGES[name]
    return f"{low} to {high}" + (f" {unit}" if unit else "")


def check_range(name: str, value) -> None:
    """Refuse a number outside its setting's range (RANGES) in one line naming the setting."""
    if name not in RANGES:
        return
    low, high, _unit = RANGES[name]
    whole = SETTINGS[name][1] is int
    fits = not isinstance(value, bool) and isinstance(value, (int, float)) and low <= value <= high  # never nan
    if not fits or (whole and value != int(value)):
        raise ValueError(f"{name} must be {'a whole number' if whole else 'a number'} from {range_text(name)}, "
                         f"not {value!r}")


# Rate limits (the limits library's notation: `30/minute`, `5 per 15 minutes`, `10/minute;100/hour`): a malformed one
# would be logged and skipped at every request (RATELIMIT_SWALLOW_ERRORS), the limit silently gone, so start-up refuses
# it. name: whether `off` is a value (RATELIMIT_PUBLIC=off lifts the public limits).
RATE_LIMITS = {"RATELIMIT_PUBLIC": True, "RATELIMIT_LOOKUP": False, "RATELIMIT_INTEGRATION": False,
               "LOGIN_RATELIMIT": False, "LOGIN_RATELIMIT_CLIENT": False}


def check_rate_limit(name: str, value) -> None:
    from limits import parse_many

    if RATE_LIMITS[name] and isinstance(value, str) and value.strip().lower() == "off":
        return
    try:
        parse_many(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name}={value!r} is not a rate limit: write it like 30/minute or 5 per 15 minutes"
                         + (", or off" if RATE_LIMITS[name] else "")) from None


def check_settings(config) -> None:
    """Every number within its range, every rate limit readable: else start-up stops, naming the setting."""
    for name in RANGES:
        check_range(name, config[name])
    for name in RATE_LIMITS:
        check_rate_limit(name, config[name])


# Settings where an empty value is a choice (API.md: SMS_QUIET_HOURS empty means no quiet hours), not "unset".
EMPTY_IS_A_VALUE = frozenset({"SMS_QUIET_HOURS", "SMS_TEST_NUMBERS"})
# Base URLs that paths are joined to: kept without surrounding spaces or a trailing slash, however they were written.
BASE_URLS = ("PUBLIC_BASE_URL", "TWILIO_API_BASE")


def from_environment(name: str):
    """A setting's value: the environment's, typed as SETTINGS says, else its default. For create_app, and for what
    reads a setting before any app exists (`python worker.py`)."""
    default, kind = SETTINGS[name]
    raw = os.environ.get(name)
    if raw is None or (raw == "" and name not in EMPTY_IS_A_VALUE):
        return default
    try:
        value = kind(raw)
    except ValueError as error:  # say which setting and what was wrong with it
        raise ValueError(f"{name}={raw!r} in the environment is not a valid {kind.__name__}: {error}") from None
    check_range(name, value)
    return value


# Production (BROKER_URL set: web, workers and scheduler apart, perhaps on several hosts) needs one SECRET_KEY for all:
# a key generated into each host's instance/ would sign sessions, CSRF tokens and filing cookies differently per host.
SECRET_KEY_NEEDED = ("SECRET_KEY is not set: with BROKER_URL (production) every process on every host must share one "
                     "key; set SECRET_KEY to a long random value (python3 -c 'import secrets; print(secrets.token_hex(32))')")


def _load_settings(app: Flask, test_config: dict | None) -> None:
    for name in SETTINGS:
        app.config[name] = from_environment(name)
    if test_config:
        app.config.update(test_config)
    check_settings(app.config)
    for name in BASE_URLS:
        app.config[name] = app.config[name].strip().rstrip("/")
    instance = Path(app.instance_path)
    if not app.config["DATABASE_URL"] or not app.config["SECRET_KEY"]:
        instance.mkdir(parents=True, exist_ok=True)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'banjie.db'}"
    if not app.config["SECRET_KEY"]:
        if app.config["BROKER_URL"]:
            raise ValueError(SECRET_KEY_NEEDED)
        key_file = instance / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        app.config["SECRET_KEY"] = key_file.read_text().strip()
        app.config["SECRET_KEY_FILE"] = str(key_file)  # embedded mode's key, of this host only (`flask prod check`)
    privacy_keys.settle(app.config, instance)  # the encryption keys: given, made into instance/, or a refusal
    url = app.config["DATABASE_URL"]
    # psycopg 3 is the driver we ship; plain postgresql:// would ask SQLAlchemy for psycopg2.
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    # hide_parameters: a database error's text (logged with its traceback) must not carry a citizen's number or name.
    # No `pool_pre_ping` (a ping at every checkout): tickets.db.configure_engine pings a connection that sat unused.
    engine = {"url": url, "hide_parameters": True}
    if url.startswith("postgresql") and "connect_timeout" not in url:  # the URL's own connect_timeout wins
        engine["connect_args"] = {"connect_timeout": app.config["DATABASE_CONNECT_TIMEOUT_SECONDS"]}
    app.config["SQLALCHEMY_ENGINES"] = {"default": engine}
    # production (a broker: processes apart) logs JSON lines, `make run` text
    app.config["LOG_FORMAT"] = logformat.resolved(app.config["LOG_FORMAT"], app.config["BROKER_URL"])
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


# The rooms, in the order they are wired: each `init_app(app)` registers its blueprints, CLI, actors,
# reactions to workflow events and scheduled jobs. tickets first (the others react to its workflow), the
# console last (it shows every room).
ROOMS = ("tickets", "escalation", "notify", "reports", "demo", "admin")


def create_app(test_config: dict | None = None) -> Flask:
    """Settings, then the platform pieces every room uses, then each room."""
    app = Flask(__name__, instance_path=str(ROOT / "instance"), template_folder="templates", static_folder="static")
    _load_settings(app, test_config)
    platform.init_app(app)
    for name in ROOMS:
        importlib.import_module(name).init_app(app)
    app.cli.add_command(serve)
    explain_database_errors(app)  # after every room's commands: each says a database away in one line
    if not app.testing:
        # What the app built at start lives as long as the process: out of the collector's sight, a full
        # collection no longer walks it (a 110 ms pause in one request of a hundred; `make bench-offices`).
        gc.freeze()
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
        worker = dramatiq.Worker(broker(app), worker_threads=2)
        worker.start()
        _thread, stop_scheduler = start_thread(app)
    host, port = app.config["HOST"], app.config["PORT"]
    try:
        # app.run() refuses to start inside a `flask` command, so serve with Werkzeug directly; the socket is
        # bound before the banner says where to go, so whoever reads the address finds it answering.
        try:
            server = make_server(host, port, app, threaded=True)
        except OSError as error:
            raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        click.echo(banner(app))
        server.serve_forever()  # Werkzeug's: Ctrl-C ends it quietly and closes the socket
    finally:
        if stop_scheduler is not None:
            stop_scheduler.set()
        if worker is not None:
            worker.stop(timeout=int(job_stop_seconds(app.config) * 1000))


def job_stop_seconds(config) -> float:
    """How long a stopped worker (`flask serve`'s in-process one, a `python worker.py` process) waits for the jobs
    under way: long enough for a text or a webhook call already sent to get its answer (so it is not sent twice),
    never Dramatiq's ten minutes. A job still running then ends with the process; what it had not finished waits in
    the outbox for the next worker."""
    return max(config["TWILIO_TIMEOUT_SECONDS"], 2 * config["WEBHOOK_TIMEOUT_SECONDS"]) + 5
