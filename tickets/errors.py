"""Errors of the contract: each carries its HTTP status, a stable machine code and a translated message."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

# How long a client told 503 (the database or the volume of files away) waits before it tries again (Retry-After)
RETRY_AFTER_SECONDS = 30


class BanjieError(Exception):
    status = 400
    code = "bad_request"
    default_message = _l("The request could not be understood.")

    def __init__(self, message=None, fields: dict | None = None):
        super().__init__(str(message or self.default_message))
        self.message = message or self.default_message
        self.fields = fields or {}
        self.extra: dict = {}  # more members of the error object, beside code, message and fields
        self.headers: dict = {}  # headers of the answer (Retry-After)


class BadRequest(BanjieError):
    pass


class Unauthorized(BanjieError):
    status, code = 401, "unauthorized"
    default_message = _l("Please sign in or give a valid API token.")


class Forbidden(BanjieError):
    status, code = 403, "forbidden"
    default_message = _l("Your role is not allowed to do this.")


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    default_message = _l("This API token is not allowed to do this.")


class NotFound(BanjieError):
    status, code = 404, "not_found"
    default_message = _l("Not found.")


class InvalidTransition(BanjieError):
    status, code = 409, "invalid_transition"
    default_message = _l("This action is not allowed in the ticket's current state.")


class Conflict(BanjieError):
    status, code = 409, "conflict"
    default_message = _l("Someone else changed this ticket first. Reload it and try again.")


class DuplicateExternalRef(BanjieError):
    """The sending system filed this case number before: the answer names the case it became (`tracking_no`)."""
    status, code = 409, "duplicate_external_ref"
    default_message = _l("This system already filed a case with this number.")

    def __init__(self, tracking_no: str, message=None):
        super().__init__(message or _l("This system already filed a case with this number: %(no)s.", no=tracking_no),
                         fields={"external_ref": _l("Already filed as case %(no)s.", no=tracking_no)})
        self.extra = {"tracking_no": tracking_no}


class IdempotencyConflict(BanjieError):
    status, code = 409, "idempotency_conflict"
    default_message = _l("This Idempotency-Key was already used for another request. Use a new key for a new request.")


class InvalidIdempotencyKey(BanjieError):
    status, code = 400, "invalid_idempotency_key"
    default_message = _l("The Idempotency-Key header must be 1 to 255 printable ASCII characters.")


class ValidationFailed(BanjieError):
    status, code = 422, "validation_error"
    default_message = _l("Some fields are not valid.")


class StorageUnavailable(BanjieError):
    """The volume of ATTACHMENT_DIR cannot be written or read (unmounted, full, failing): like the database away, 503
    with Retry-After, and nothing of the request kept (tickets/storage.py)."""

    status, code = 503, "service_unavailable"
    default_message = _l("The file store cannot be reached just now. Please try again in a minute.")

    def __init__(self, message=None):
        super().__init__(message)
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
