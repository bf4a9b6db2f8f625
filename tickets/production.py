"""What a production deployment needs before it starts: `flask prod check`, which `make prod` runs before anything
starts and deploy/banjie-migrate.service before each release's migrations.

Production is the web (gunicorn), Dramatiq workers and one scheduler, perhaps on several hosts, sharing PostgreSQL and
Redis (or RabbitMQ) and nothing else. Each finding is one line. A refusal means the stack must not start: no
PostgreSQL, no broker, either of them unreachable, no shared SECRET_KEY (the settings of create_app refuse that one
too, whatever starts it). A warning means it would run, but not as several processes or hosts expect (rate limits
counted per process, a font found differently on each host, ...); `--strict` refuses on warnings too.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from urllib.parse import quote_plus

import click
import sqlalchemy as sa

# A probe gives up after this many seconds: an unreachable host must cost a refusal, not the system's TCP timeout.
PROBE_SECONDS = 5
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Text for the terminal as one line: settings and errors are printed, whatever they hold."""
    return _CONTROL.sub("?", text)


@dataclass(frozen=True)
class Finding:
    refuse: bool  # True: the stack must not start; False: a warning
    text: str     # one line, naming the setting and what to do

    def line(self) -> str:
        return f"{'refused' if self.refuse else 'warning'}: {one_line(self.text)}"


# Query parameters that may carry a secret (libpq's password and sslpassword, Redis's password, a webhook's token...).
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential", re.I)
HIDDEN = "***"


def masked(url: str) -> str:
    """A URL as it may be printed or logged (a database, a broker, a Redis, a webhook): its password, and the value of
    any query parameter whose name says secret (`?password=`, `?token=`...), replaced by ***. Read as SQLAlchemy reads
    a database URL, so a password holding #, / or ? is hidden whole; a text that is no URL one can read says nothing
    of what it holds."""
    from sqlalchemy.engine import make_url

    if not url:
        return url
    try:
        parsed = make_url(url)
        query = {key: (HIDDEN if _SECRET_PARAMETER.search(key) else value) for key, value in parsed.query.items()}
        parsed = parsed.set(query=query)
        if parsed.host and "@" in parsed.host:  # an @ left unescaped in the password: all before the last is secret
            parsed = parsed.set(password=HIDDEN, host=parsed.host.rsplit("@", 1)[1])
        return parsed.render_as_string(hide_password=True).replace(quote_plus(HIDDEN), HIDDEN)
    except Exception:  # noqa: BLE001 (not a URL one can read: any error of the parser)
        return "(unreadable URL)"


def first_line(error: BaseException) -> str:
    """An error in one line: its first, and when a traceback follows (Flask's import errors) the traceback's last."""
    lines = [line.strip() for line in (str(error).strip() or type(error).__name__).splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        return one_line(f"{lines[0].rstrip(':')}: {lines[-1]}")
    return one_line(lines[0])


def setting_findings(config) -> list[Finding]:
    """What the settings alone say, without connecting anywhere."""
    found = []
    database, broker = config["DATABASE_URL"], config["BROKER_URL"]
    if database.startswith("sqlite"):
        found.append(Finding(True, f"DATABASE_URL is a SQLite file ({database}): production runs on PostgreSQL, "
                                   "which every host reaches (DATABASE_URL=postgresql://banjie@db.internal/banjie)"))
    if not broker:
        found.append(Finding(True, "BROKER_URL is not set: production's workers and scheduler take their work from "
                                   "Redis or RabbitMQ (BROKER_URL=redis://redis.internal:6379/0)"))
    if config.get("SECRET_KEY_FILE"):
        found.append(Finding(True, f"SECRET_KEY is not set (this host's key in {config['SECRET_KEY_FILE']} is in "
                                   "use): every host must sign with one key; set SECRET_KEY to a long random value"))
    for name, path in (config.get("PRIVACY_KEY_FILES") or {}).items():
        found.append(Finding(True, f"{name} is not set (this host's key in {path} is in use): every host must "
                                   f"encrypt with one key; set {name} (`flask privacy new-key`) and keep a copy apart "
                                   "from the database's backups"))
    if config["RATELIMIT_STORAGE_URI"].startswith("memory"):
        found.append(Finding(False, "RATELIMIT_STORAGE_URI is memory://: each process counts its own limits (filing, "
                                    "look-ups, console sign-ins), so four web workers on two hosts allow eight times "
                                    "as much; set it to a Redis URL (e.g. redis://redis.internal:6379/1)"))
    sms_rate_shared = config["SMS_RATE_REDIS_URL"] or broker.startswith(("redis://", "rediss://", "unix://"))
    if config["SMS_BACKEND"] == "twilio" and config["SMS_RATE_PER_SECOND"] > 0 and not sms_rate_shared:
        found.append(Finding(False, "SMS_RATE_REDIS_URL is not set and BROKER_URL is not Redis: each worker process "
                                    "keeps the SMS send rate by itself; set SMS_RATE_REDIS_URL to a Redis URL"))
    if config["SMS_BACKEND"] != "twilio":
        found.append(Finding(False, f"SMS_BACKEND is {config['SMS_BACKEND']}: texts are recorded in the console, "
                                    "not sent (SMS_BACKEND=twilio and the TWILIO_ settings to send them)"))
    if not config["PUBLIC_BASE_URL"].startswith("https://"):
        found.append(Finding(False, f"PUBLIC_BASE_URL is {config['PUBLIC_BASE_URL']}: links in texts and Twilio's "
                                    "callbacks need the public https:// address (and Secure cookies follow from it)"))
    if config["ATTACHMENT_STORAGE"] == "directory":
        found.append(Finding(False, f"ATTACHMENT_STORAGE is directory: {config['ATTACHMENT_DIR']} must be one shared "
                                    "volume mounted at that path on every web and worker host, and backed up with "
                                    "the database"))
    if not config["REPORT_FONT"]:
        found.append(Finding(False, "REPORT_FONT is not set: each host that makes reports embeds the CJK font it "
                                    "finds; set it to one font file installed on every worker and web host"))
    return found


def problem(probe) -> str | None:
    """None when `probe()` passes; else why not, in one line."""
    try:
        outcome = probe()
    except Exception as error:  # a driver's or client's error of any kind: it cannot be used now
        return first_line(getattr(error, "orig", None) or error)
    return None if outcome.get("ok") else ", ".join(f"{key} {value}" for key, value in outcome.items() if key != "ok")


def reachability_findings(app) -> list[Finding]:
    """The database and the broker, each asked once by /readyz's own checks (tickets/health.py): on a connection
    that gives up after PROBE_SECONDS, and the broker's client after its own second. A Redis for rate limits or the
    SMS rate that does not answer is a warning: they fall back to each process's memory meanwhile."""
    from sqlmodel import Session

    from . import clock, health

    found = []
    config, now = app.config, clock.now()
    url = config["SQLALCHEMY_ENGINES"]["default"]["url"]
    if not config["DATABASE_URL"].startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"connect_timeout": PROBE_SECONDS}, poolclass=sa.pool.NullPool)
        try:
            with Session(engine) as session:
                why = problem(lambda: health.database(session, now))
                clear = None if why else clear_values(session)
        finally:
            engine.dispose()
        if why:
            found.append(Finding(True, f"DATABASE_URL {masked(url)} does not answer: {why}"))
        if clear:
            found.append(Finding(False, clear))
    if config["BROKER_URL"]:
        why = problem(lambda: health.broker(None, now))
        if why:
            found.append(Finding(True, f"BROKER_URL {masked(config['BROKER_URL'])} does not answer: {why}"))
    for name in ("RATELIMIT_STORAGE_URI", "SMS_RATE_REDIS_URL"):
        value = config[name]
        if value.startswith(("redis://", "rediss://")) and value != config["BROKER_URL"]:
            why = problem(lambda: {"ok": redis_answers(value)})
            if why:
                found.append(Finding(False, f"{name} {masked(value)} does not answer: {why}"))
    return found


def clear_values(session) -> str | None:
    """Citizens' names or numbers from before encryption still in clear (a warning until `flask privacy rotate-key`);
    None when there are none, or the schema is not there yet to tell."""
    from .privacy.rotation import clear_values_finding

    try:
        return clear_values_finding(session)
    except sa.exc.DBAPIError:  # before `flask db upgrade` (the release's migrations run after the check)
        session.rollback()
        return None


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_SECONDS, socket_timeout=PROBE_SECONDS)
    try:
        return bool(client.ping())
    finally:
        client.close()


def check(app) -> list[Finding]:
    """Every finding: the settings', then (unless a setting already refused) the connections'."""
    found = setting_findings(app.config)
    if not any(finding.refuse for finding in found):
        found += reachability_findings(app)
    return found


@click.group("prod", help="The production stack (make prod, deploy/).")
def prod_cli():
    pass


@prod_cli.command("check")
@click.option("--strict", is_flag=True, help="Refuse on warnings too.")
@click.pass_context
def check_command(ctx, strict):
    """Say whether production can start here: refusals and warnings, one line each; exit status 1 on a refusal."""
    from flask.cli import ScriptInfo

    try:
        app = ctx.ensure_object(ScriptInfo).load_app()
    except Exception as error:  # a setting create_app refuses: say it in one line, not a traceback
        click.echo(f"refused: {first_line(error)}", err=True)
        sys.exit(1)
    with app.app_context():
        found = check(app)
    for finding in found:
        click.echo(finding.line(), err=finding.refuse)
    refused = [finding for finding in found if finding.refuse or strict]
    if refused:
        sys.exit(1)
    click.echo(one_line(f"ready: database {masked(app.config['SQLALCHEMY_ENGINES']['default']['url'])}, "
                        f"broker {masked(app.config['BROKER_URL'])}"))
