"""Log lines: their format (LOG_FORMAT `text` or `json`), the request id every line carries, and the redaction that
keeps phone numbers, query codes and tokens out of every line.

- **One configuration per process**, applied by `create_app` (so by gunicorn's workers, `worker.py` under
  `dramatiq worker` and `scheduler.py`): the root logger gets one handler writing to stderr, and gunicorn's own
  handlers (its error log and its access log) get the same format and filters. Tests build apps without touching the
  process's logging; they call `configure` themselves.
- **The request id** (`X-Request-ID`): taken from the request when it is sane (1 to 128 letters, digits and
  `._:-`, and nothing that looks like a phone number), else made up (base 32, which no redaction can touch); returned in the answer's header, on every log line of the request (`request_id`), and
  carried into the Dramatiq messages the request causes (`RequestIdMiddleware`: the message's `request_id` option,
  set again around the actor's work). The scheduler's tick takes an id of its own (`tick-...`).
- **Redaction** (`Redact`, a logging Filter on every handler): mainland mobile numbers in any spelling, other
  E.164 numbers, landlines written with an area code, ID card numbers (the patterns of `tickets.personal`), `code=`/`query_code` values, search terms (`search=`, `q=`), `Bearer` credentials and
  `bj_` API tokens are masked in the message, its arguments, the traceback and any extra field. Names cannot be
  recognised by a pattern: no log call may be handed one (the logging test greps a whole run for them).
"""
from __future__ import annotations

import base64
import contextvars
import json
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from contextlib import contextmanager

from dramatiq.middleware import Middleware
from flask import request

from .logformat import LOG_FORMATS, NO_REQUEST, json_formatter, outside_requests, utc_time
from .personal import MASK, NUMBERS
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# --- redaction ----------------------------------------------------------------------------------------------------

# One pattern, one pass over the text; the named groups are kept. The lookahead lets the scan skip, cheaply, every
# position at which none of the alternatives can start (a third of the time on an access log's line); a search term
# (`search=`) is looked for only where the word itself begins, not at every "s".
_SECRETS = re.compile("(?=[\\d+＋(（%\"bBqcC０-９]|search=)(?:" + "|".join((
    # ID card numbers, mainland mobile numbers however written, any other E.164 number, fixed lines with their area
    # code: the patterns `tickets.personal` writes once for the logs and the anonymisation of free text alike
    *NUMBERS,
    # a query code in an address or a form (code=, query_code=) and in JSON text
    r"(?<![A-Za-z0-9_])(?P<code>(?:query_)?code=)[^&\s\"';,]+",
    r"(?P<json_code>\"query_code\"\s*:\s*\")[^\"]*",
    # what a member of staff searched for (the console's lists: search=, the staff API's q=): a name, or a number
    # written in any of the ways the search understands, which the patterns above cannot all know
    r"(?<![A-Za-z0-9_])(?P<search>(?:search|q)=)[^&\s\"';,]+",
    # credentials: Bearer tokens (API tokens, METRICS_TOKEN) and Banjie's API tokens wherever they appear
    r"(?P<bearer>(?i:bearer)\s+)[^\s,;\"']+",
    r"(?<![A-Za-z0-9])(?P<token>bj_)[A-Za-z0-9_\-]+",
)) + ")")


def _mask(match: re.Match) -> str:
    kept = (match.group("code") or match.group("json_code") or match.group("search") or match.group("bearer")
            or match.group("token") or "")
    return kept + MASK


def redact(text: str) -> str:
    """`text` with phone numbers, query codes and tokens masked."""
    return _SECRETS.sub(_mask, text)


class RedactedAtoms(dict):
    """Gunicorn's access-log atoms (a mapping of request facts), each redacted when the log line reads it. Empty
    itself (no copy of gunicorn's fifty-odd atoms per request): it only answers lookups."""

    def __init__(self, atoms: Mapping):
        super().__init__()
        self.atoms = atoms

    def __getitem__(self, key):
        value = self.atoms[key]  # gunicorn's SafeAtoms: any case of {header}i, '-' when missing
        return redact(value) if isinstance(value, str) else value

    def __contains__(self, key) -> bool:
        return key in self.atoms

    def __len__(self) -> int:  # a record formats its message only with non-empty arguments
        return len(self.atoms)

    def get(self, key, default=None):
        return self[key] if key in self.atoms else default


_PLAIN = (int, float, bool, type(None))  # extra fields kept as they are; any other is redacted as text


class Redact(logging.Filter):
    """Masks personal data and secrets in a record before any handler writes it (see `redact`).

    The message is formatted with its arguments and redacted as a whole (a number split between the text and an
    argument is still caught); a traceback is formatted and redacted once, for every handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_banjie_redacted", False):
            return True
        if isinstance(record.args, Mapping) and not isinstance(record.args, RedactedAtoms):
            record.msg, record.args = redact(str(record.msg)), RedactedAtoms(record.args)
        elif not isinstance(record.args, RedactedAtoms):
            try:
                message = record.getMessage()
            except Exception:  # bad arguments for the format: keep both, masked, rather than lose the line
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text, record.exc_info = redact(record.exc_text), None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        extras = [(key, value) for key, value in vars(record).items()
                  if key not in _STANDARD and not isinstance(value, _PLAIN)]
        for key, value in extras:
            setattr(record, key, redact(value if isinstance(value, str) else str(value)))
        record._banjie_redacted = True
        return True


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id",
                                                                              "_banjie_redacted"}

# --- the request id -----------------------------------------------------------------------------------------------

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("banjie_request_id", default=None)
HEADER = "X-Request-ID"
OPTION = "request_id"  # the Dramatiq message option that carries it
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")


def new_request_id(prefix: str = "") -> str:
    """120 random bits in base 32 (a-z, 2-7): no 0, 1 or +, so that no id can look like a phone number to `redact`."""
    return prefix + base64.b32encode(secrets.token_bytes(15)).decode().lower()


def sane_request_id(value) -> str | None:
    """`value` when it can be a request id: 1 to 128 letters, digits and `._:-`, a letter or digit first, and nothing
    `redact` would mask (an id that holds a phone number is not kept: it would be on every line of the request)."""
    if isinstance(value, str) and _SANE.fullmatch(value) and redact(value) == value:
        return value
    return None


def current_request_id() -> str | None:
    return REQUEST_ID.get()


@contextmanager
def request_id(value: str):
    """Log lines (and messages enqueued) within carry this id: the scheduler's tick, a CLI command."""
    token = REQUEST_ID.set(value)
    try:
        yield value
    finally:
        REQUEST_ID.reset(token)


class RequestId(logging.Filter):
    """Adds `request_id` to every record: the request's, the message's or the tick's, else '-'."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or NO_REQUEST
        return True


def _start_request() -> None:
    REQUEST_ID.set(sane_request_id(request.headers.get(HEADER)) or new_request_id())


def _answer_with_id(response):
    value = REQUEST_ID.get()
    if value:
        response.headers[HEADER] = value
    return response


def _end_request(_error=None) -> None:
    REQUEST_ID.set(None)


def init_app(app) -> None:
    """The request id on every request (first of the hooks, so every other hook's lines carry it), and the process's
    log configuration outside tests."""
    if app.config["LOG_FORMAT"] not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be text or json, not {app.config['LOG_FORMAT']!r}")
    level = logging.getLevelName(str(app.config["LOG_LEVEL"]).upper())
    if not isinstance(level, int):
        raise ValueError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {app.config['LOG_LEVEL']!r}")
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_answer_with_id)
    app.teardown_request(_end_request)
    werkzeug = logging.getLogger("werkzeug")  # the development server's access log, however it is handled
    if REDACT not in werkzeug.filters:
        werkzeug.addFilter(REDACT)
    if not app.testing:
        configure(app.config["LOG_FORMAT"], level)


class RequestIdMiddleware(Middleware):
    """Carries the request id into the messages a request (or a tick, or an actor) enqueues, and sets it around the
    actor's work, so the worker's lines about a filing carry the filing's id."""

    def before_enqueue(self, broker, message, delay):
        value = REQUEST_ID.get()
        if value and OPTION not in message.options:
            message.options[OPTION] = value

    def before_process_message(self, broker, message):
        REQUEST_ID.set(sane_request_id(message.options.get(OPTION)) or new_request_id("msg-"))

    def after_process_message(self, broker, message, *, result=None, exception=None):
        REQUEST_ID.set(None)

    after_skip_message = after_process_message


# --- formats ------------------------------------------------------------------------------------------------------

class AccessJson(logging.Formatter):
    """Gunicorn's access log as JSON: the request's facts as fields, the free text among them redacted, and its id."""

    FREE_TEXT = {"path": "U", "query": "q", "referrer": "f", "user_agent": "a"}  # what a client writes
    FACTS = {"remote": "h", "method": "m", "status": "s", "bytes": "B", "duration_ms": "M"}

    def __init__(self):
        super().__init__()
        self.json = json_formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not isinstance(record.args, RedactedAtoms):
            return self.json.format(record)
        atoms = record.args.atoms
        line = {"time": utc_time(record), "level": record.levelname, "logger": record.name, "pid": record.process}
        for field, atom in self.FACTS.items():
            value = atoms.get(atom)
            line[field] = None if value in ("-", "", None) else value
        for field, atom in self.FREE_TEXT.items():
            value = atoms.get(atom)
            line[field] = None if value in ("-", "", None) else redact(str(value))
        # the app's answer carries the id (`sane_request_id` or made up: nothing to redact); an answer gunicorn made
        # itself has none
        line["request_id"] = sane_request_id(atoms.get("{x-request-id}o"))
        return json.dumps(line, ensure_ascii=False, default=str)


# What a reader of a text log (or `str.splitlines`) takes for the end of a line: inside a message (a percent-decoded
# request path, an answer another system wrote) it is written out (\n, \u2028), so one record stays one line and
# no one can write a line of their choosing into the log. A traceback still follows on lines of its own.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, one line per record: line breaks in the message written out (the JSON format escapes them itself)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _LINE_BREAKS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                                super().formatMessage(record))


def _text_formatter() -> logging.Formatter:
    return TextFormatter(TEXT_FORMAT)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is written (under `dramatiq worker`, the pipe to the parent)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


REDACT, _REQUEST_ID = Redact(), RequestId()
# Loggers that would otherwise print personal data at DEBUG (SQL parameters, request bodies): never below WARNING.
QUIET = {"sqlalchemy": logging.WARNING, "twilio": logging.WARNING,
         # and one that says nothing an operator needs: Alembic's plugin set-up, seven INFO lines at every migration
         "alembic.runtime.plugins": logging.WARNING}


def guard(handler: logging.Handler) -> logging.Handler:
    """Give a handler the request id and the redaction (once), in place of the master's id for lines of no request
    (gunicorn's handlers, which each worker inherits from it)."""
    handler.removeFilter(outside_requests)
    for each in (_REQUEST_ID, REDACT):
        if each not in handler.filters:
            handler.addFilter(each)
    return handler


def configure(log_format: str = "text", level: int = logging.INFO, *, handler: logging.Handler | None = None) -> None:
    """This process's logging: one root handler (stderr, or `handler`) in `log_format`, gunicorn's handlers in the
    same format, every handler guarded. Idempotent; replaces handlers that an earlier basicConfig installed (the
    `dramatiq worker` process's own, which writes to the same pipe)."""
    formatter = json_formatter() if log_format == "json" else _text_formatter()
    root = logging.getLogger()
    ours = handler or next((h for h in root.handlers if isinstance(h, StderrHandler)), None) or StderrHandler()
    ours.setFormatter(formatter)
    root.handlers[:] = [h for h in root.handlers if h is ours or _foreign(h)] + ([] if ours in root.handlers else [ours])
    root.setLevel(level)
    for name, floor in QUIET.items():
        logging.getLogger(name).setLevel(max(floor, level))
    for name in ("gunicorn.error", "gunicorn.access"):
        for each in logging.getLogger(name).handlers:
            if log_format == "json":
                each.setFormatter(AccessJson() if name == "gunicorn.access" else json_formatter())
            guard(each)
    for each in root.handlers:
        guard(each)


def _foreign(handler: logging.Handler) -> bool:
    """A root handler that is not a plain stream to stderr/stdout (pytest's capture, a file an operator set up)."""
    if type(handler) is logging.StreamHandler:
        return False
    return not isinstance(handler, StderrHandler)
