"""HTTP plumbing shared by the API and the pages: reading JSON bodies and answering every error in the contract's shape."""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, g, jsonify, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from .db import db
from .errors import RETRY_AFTER_SECONDS, BadRequest, BanjieError, ValidationFailed
from .extensions import limiter
from .slots import AppSlot
from .validation import ID_MAX

log = logging.getLogger("banjie.http")


class UnsupportedMediaType(BanjieError):
    status, code = 415, "unsupported_media_type"
    default_message = _l("Send the body as application/json.")


# What a browser may read as another host or strip silently (a tab or line break in "/\t/evil.example" is dropped,
# leaving "//evil.example"), besides the obvious "//" and backslashes.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def local_path(target: str | None) -> str | None:
    """`target` when it is a path on this site (with its query), else None: no scheme, no host, no `//`, no
    backslash, no control character. Every redirect to an address a request names goes through it (the 长辈模式
    switch's `next`, the console sign-in's)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if _CONTROL.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


HTTP_ERRORS = {
    400: ("bad_request", _l("The request could not be understood.")),
    401: ("unauthorized", _l("Please sign in or give a valid API token.")),
    403: ("forbidden", _l("Your role is not allowed to do this.")),
    404: ("not_found", _l("Not found.")),
    405: ("method_not_allowed", _l("This method is not allowed here.")),
    413: ("payload_too_large", _l("The request is too large (64 KB at most).")),
    415: ("unsupported_media_type", _l("Send the body as application/json.")),
    429: ("rate_limited", _l("Too many requests. Please wait a moment and try again.")),
    500: ("internal_error", _l("Something went wrong on our side. Please try again; if it happens again, tell the "
                               "office.")),
    503: ("service_unavailable", _l("The service cannot reach its database just now. Please try again in a minute.")),
}

# What the database (or the way to it) failing says, as opposed to a bug or bad input: the server is down or restarting,
# the connection broke, a lock or statement timed out, the pool has no connection free. Every page and answer turns
# it into 503 with Retry-After (`database_unavailable`), never 500: the client did nothing wrong and may try again.
DATABASE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def database_reason(error: Exception) -> str:
    """A database error as an operator reads it: the driver's error class and the first line of its message (no
    statement, no parameters), e.g. "OperationalError: connection failed: … Connection refused"."""
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:200]}"


def database_unavailable(error: Exception) -> tuple[int, str, object, dict]:
    """(status, code, message, headers) of the answer to one of DATABASE_ERRORS, logged as one line."""
    log.error("database unavailable on %s %s: %s", request.method, request.path, database_reason(error))
    code, message = HTTP_ERRORS[503]
    return 503, code, message, {"Retry-After": str(RETRY_AFTER_SECONDS)}


# Views that take files (multipart/form-data with `files[]` parts): their requests may be as large as
# `attachments.REQUEST_MAX`; every other request stays within MAX_CONTENT_LENGTH (64 KB).
UPLOAD_ENDPOINTS: AppSlot[set[str]] = AppSlot("banjie.upload_endpoints", "endpoints that take files",
                                              default=lambda app: set())
UPLOAD_TOO_LARGE = _l("The files are too large together: at most 5 files of 10 MB each.")


def accept_uploads(app, *endpoints: str) -> None:
    """Let these endpoints take files (each room names its own)."""
    UPLOAD_ENDPOINTS.get(app).update(endpoints)


def takes_uploads() -> bool:
    return request.endpoint in UPLOAD_ENDPOINTS.get(current_app)


def _upload_limit() -> None:
    if request.mimetype == "multipart/form-data" and takes_uploads():
        from .attachments import REQUEST_MAX

        request.max_content_length = REQUEST_MAX


def body_and_files() -> tuple[dict, list]:
    """A view that takes files: the fields and the `files[]` files of a multipart/form-data request, or the JSON
    body and no files (see `json_body`)."""
    from .attachments import FIELD, PART, from_request

    if request.mimetype == "multipart/form-data":
        if any(name != PART for name in request.files):  # a file under another name would be lost without a word
            raise ValidationFailed(fields={FIELD: _l("Send files as multipart/form-data parts named “files[]”.")})
        if PART in request.form:  # a `files[]` part without a filename is read as text: the file would be lost too
            raise ValidationFailed(fields={FIELD: _l("Give each “files[]” part a filename.")})
        return request.form.to_dict(), from_request(request.files.getlist(PART))
    return json_body(), []


def json_body() -> dict:
    """The request's JSON object; 415 for another content type, 400 for malformed JSON or a non-object."""
    if not request.content_length and not request.data:
        return {}
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        data = request.get_json(silent=True, cache=True)
    except RecursionError:  # nested deeper than the parser's stack: `silent` only covers ValueError
        data = None
    if data is None:
        raise BadRequest(_l("The body is not valid JSON."))
    if not isinstance(data, dict):
        raise BadRequest(_l("The body must be a JSON object."))
    return data


# Paths outside /api/ and /sms/ that answer in JSON: the probes and the metrics (tickets/health.py, tickets/telemetry.py)
JSON_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/sms/") or request.path in JSON_PATHS


def database_error_answer(error: Exception):
    """The answer to one of DATABASE_ERRORS: 503 with Retry-After, the public error page (or JSON). The console's page,
    and Flask-Login's `current_user` in every template, would look the signed-in user up in the database that just
    failed, so the request is taken as anonymous from here on (Flask-Login keeps the request's user in `g`)."""
    status, code, message, headers = database_unavailable(error)
    g._login_user = current_app.login_manager.anonymous_user()
    return _error_response(status, code, message, headers=headers, plain=True)


def rollback_after_error() -> None:
    """Before an error's answer: what the request wrote is not kept (a connection that is gone has nothing to roll
    back, and must not turn the answer into another error)."""
    try:
        db.session.rollback()
    except DATABASE_ERRORS:
        pass


def _error_response(status: int, code: str, message, fields=None, headers=None, extra=None, *, plain: bool = False):
    """An error in the contract's shape: JSON for the API (and the probes), else a page, the console's look under
    /admin (`plain`: the public page's everywhere, which reads nothing from the database)."""
    rollback_after_error()
    if wants_json():
        body = {"code": code, "message": str(message)}
        if fields:
            body["fields"] = {k: str(v) for k, v in fields.items()}
        body.update(extra or {})
        response = jsonify({"error": body})
    else:
        # The console has its own look; the template lives with the admin room but needs no admin view.
        template = "admin/error.html" if request.path.startswith("/admin") and not plain else "error.html"
        try:
            response = make_response(render_template(template, status=status, message=str(message)))
        except DATABASE_ERRORS as error:  # the page looked up the signed-in user in a database that is gone
            if plain:
                raise  # the plain page reads nothing from the database: this is a bug, not an outage
            return database_error_answer(error)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: ids (and years) are 32-bit in the database, so a larger number names
    nothing. It is a 404 here, before a view hands the database a number it cannot compare (PostgreSQL's
    "integer out of range", SQLite's OverflowError)."""

    def __init__(self, map, fixed_digits=0, min=None, max=ID_MAX, signed=False):
        super().__init__(map, fixed_digits, min, ID_MAX if max is None else max, signed)


def install_url_converters(app) -> None:
    """Call before any route is added: a rule binds its converter class when it is added to the map."""
    app.url_map.converters["int"] = RowIdConverter


def _has_nul(pairs) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in pairs)


# The console's return address (Flask-Admin's `url`) ends up in a Location header, where a line break is refused by
# Werkzeug (a 500) and any control character means nothing. (The sign-in's `next` is checked by the sign-in, which
# goes to the home page instead of a bad one: admin/auth.py.)
RETURN_ADDRESS_PARAMETERS = ("url",)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def reject_nul() -> None:
    """A NUL character is never meaningful in an address or a form, and PostgreSQL refuses it in text:
    400 before routing reaches any query (path, query string, and the fields of a posted form). So is a control
    character in a return address."""
    if "\x00" in request.path or "\x00" in request.query_string.decode("utf-8", "replace") \
            or _has_nul(request.args.items(multi=True)):
        raise BadRequest(_l("The address contains a character that is not allowed."))
    values = request.values if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") \
        else request.args
    if any(_CONTROL.search(value) for name in RETURN_ADDRESS_PARAMETERS for value in values.getlist(name)):
        raise BadRequest(_l("The address contains a character that is not allowed."))
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") \
            and _has_nul(request.form.items(multi=True)):
        raise BadRequest(_l("The form contains a character that is not allowed."))


def _seconds_until_reset() -> int | None:
    """When the limit this request broke lets the client in again (read from the limiter's storage only on a 429)."""
    try:
        limit = limiter.current_limit
        return max(1, limit.reset_at - int(time.time())) if limit is not None else None
    except Exception:  # the storage went away: answer the 429 without the hint rather than fail
        log.warning("could not read the rate limit's reset time", exc_info=True)
        return None


def register_error_handlers(app) -> None:
    app.before_request(_upload_limit)  # before anything reads the form
    app.before_request(reject_nul)
    @app.errorhandler(BanjieError)
    def _banjie_error(error: BanjieError):
        return _error_response(error.status, error.code, error.message, error.fields,
                               headers=getattr(error, "headers", None), extra=getattr(error, "extra", None))

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError):
        return _error_response(400, "csrf_failed", _l("The form expired or was sent from elsewhere. Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code, message = HTTP_ERRORS.get(error.code, ("http_error", error.description))
        if error.code == 413 and request.mimetype == "multipart/form-data" and takes_uploads():
            message = UPLOAD_TOO_LARGE
        headers = {}
        if error.code == 429:
            retry_after = getattr(error, "retry_after", None) or _seconds_until_reset()
            response = error.get_response()
            if response is not None and response.headers.get("Retry-After"):
                headers["Retry-After"] = response.headers["Retry-After"]
            elif retry_after:
                headers["Retry-After"] = str(retry_after)
        if error.code == 405 and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return _error_response(error.code or 500, code, message, headers=headers)

    for kind in DATABASE_ERRORS:
        app.register_error_handler(kind, database_error_answer)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        code, message = HTTP_ERRORS[500]
        return _error_response(500, code, message)
