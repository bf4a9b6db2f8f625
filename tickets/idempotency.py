"""`Idempotency-Key` on staff requests: a repeat of a request gets the first one's answer, and nothing is done twice.

An integration (a 12345 hotline platform) that cannot tell whether its filing arrived sends it again with the same
`Idempotency-Key` header. The first request with a key inserts the key's row (`IdempotencyKey`, unique per user and
key) in its own transaction, does its work and keeps its answer in that row before it commits. A repeat inserts the
same row: on PostgreSQL the unique index makes it wait until the first transaction ends, then it reads the row and
answers the kept status and body with `Idempotent-Replayed: true`, or 409 `idempotency_conflict` when its method,
path or body differ from the first's (`fingerprint`). SQLite has one writer at a time and serialises them the same
way. A first request that failed (a 4xx, a crash) rolled its row back with the rest: the key is free again.

The kept answer is sealed with SECRET_KEY (`tickets.secrets.seal`, bound to the user and the key): a filing's answer
holds the query code, stored nowhere else but as a hash. After SECRET_KEY changes a kept answer cannot be opened;
a repeat is then answered from the case as it is now (`rebuild`), without the query code; so it is after the case
was anonymised (tickets/privacy/retention.py drops its kept answers). A row is purged
IDEMPOTENCY_KEY_HOURS after it was written (the scheduler's job, `purge`); an older key counts as new.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from flask import current_app, jsonify, request

from . import clock, secrets
from .db import upsert
from .errors import BadRequest, IdempotencyConflict, InvalidIdempotencyKey
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_MAX = 255
_KEY = re.compile(r"[\x20-\x7e]{1,%d}" % KEY_MAX)  # printable ASCII, as an HTTP header carries it unchanged


@dataclass(frozen=True)
class Answer:
    """What a request answers: status, JSON body, the ticket it made or acted on, headers to send with it. A kept
    answer that cannot be opened (SECRET_KEY changed) has no body."""

    status: int
    body: dict | None
    ticket_id: int | None = None
    headers: dict = field(default_factory=dict)


def requested_key(headers=None) -> str | None:
    """The request's Idempotency-Key; None without one; 400 `invalid_idempotency_key` for an empty or longer key, or
    one with other characters than printable ASCII."""
    raw = (request.headers if headers is None else headers).get(HEADER)
    if raw is None:
        return None
    if not _KEY.fullmatch(raw) or not raw.strip():
        raise InvalidIdempotencyKey()
    return raw


def fingerprint(method: str, path: str, data: dict, files=()) -> str:
    """What a request asks, as a SHA-256: method, path, the body's fields (JSON canonicalised: keys sorted, no spaces;
    the same object however it was written) and each file's name, declared type and the SHA-256 of its bytes."""
    try:
        digests = [[f.name, f.declared_type, hashlib.sha256(f.data).hexdigest()] for f in files]
        canonical = json.dumps({"method": method, "path": path, "body": data, "files": digests},
                               sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (RecursionError, ValueError):  # nested deeper than the encoder goes, or a circular structure
        raise BadRequest() from None
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Claim:
    """This request holds the key (its row, not yet committed): do the work, then `keep` the answer."""

    row_id: int
    user_id: int
    key: str


def _context(user_id: int, key: str) -> str:
    return f"idempotency:{user_id}:{key}"


def _expired_before(now: datetime) -> datetime:
    return now - timedelta(hours=current_app.config["IDEMPOTENCY_KEY_HOURS"])


def claim(session, user_id: int, key: str, request_hash: str, now: datetime) -> Claim | Answer:
    """Take the key for this request, or the answer a first request with it kept (`Answer`), or 409
    `idempotency_conflict` when that one asked something else. Waits while another transaction holds the key."""
    values = {"user_id": user_id, "key": key, "request_hash": request_hash, "created_at": now}
    insert = upsert(session.get_bind().dialect.name, IdempotencyKey, values, ["user_id", "key"]) \
        .returning(IdempotencyKey.id)
    table = IdempotencyKey.__table__
    kept_row = sa.select(table).where(table.c.user_id == user_id, table.c.key == key)
    for _ in range(3):  # a kept row may expire or be purged between the insert and the read: insert again
        row_id = session.execute(insert).scalar()
        if row_id is not None:
            return Claim(row_id, user_id, key)
        kept = session.execute(kept_row).one_or_none()
        if kept is None:
            continue
        if kept.created_at < _expired_before(now):  # older than the setting: the key is new again
            session.execute(sa.delete(table).where(table.c.id == kept.id))
            continue
        if kept.request_hash != request_hash or kept.status_code is None:
            raise IdempotencyConflict()
        return _kept_answer(kept)
    raise IdempotencyConflict()


def _kept_answer(kept) -> Answer:
    opened = secrets.unseal(current_app.config["SECRET_KEY"], kept.response or "", _context(kept.user_id, kept.key),
                            purpose="stored")
    if opened is None:
        return Answer(kept.status_code, None, kept.ticket_id)
    stored = json.loads(opened)
    return Answer(kept.status_code, stored["body"], kept.ticket_id, stored.get("headers", {}))


def keep(session, held: Claim, answer: Answer) -> None:
    """Keep the answer in the key's row, sealed, in the request's transaction (no commit)."""
    kept = json.dumps({"body": answer.body, "headers": answer.headers}, ensure_ascii=False, default=str)
    sealed = secrets.seal(current_app.config["SECRET_KEY"], kept, _context(held.user_id, held.key), purpose="stored")
    session.execute(sa.update(IdempotencyKey).where(IdempotencyKey.id == held.row_id)
                    .values(status_code=answer.status, response=sealed, ticket_id=answer.ticket_id))


def respond(answer: Answer, *, replayed: bool = False):
    response = jsonify(answer.body)
    response.status_code = answer.status
    for name, value in answer.headers.items():
        response.headers[name] = value
    if replayed:
        response.headers[REPLAYED] = "true"
    return response


def run(session, user_id: int, data: dict, files, perform: Callable[[], Answer],
        rebuild: Callable[[int | None], dict], replayed: Callable[[Answer], Answer] | None = None):
    """Answer a staff request: `perform()` does its work (no commit) and says what to answer; committed here. With
    an Idempotency-Key the first request with the key does it and keeps the answer, a repeat gets that answer again
    (`rebuild(ticket_id)` makes it from the case when the kept one cannot be opened: after SECRET_KEY changed, or the
    case was anonymised). `replayed(answer)` gives a repeat's answer what only the caller's rights now decide (the
    whole number or its mask, the showing logged: committed here)."""
    key = requested_key()
    if key is None:
        answer = perform()
        session.commit()
        return respond(answer)
    outcome = claim(session, user_id, key, fingerprint(request.method, request.path, data, files), clock.now())
    if isinstance(outcome, Answer):
        session.rollback()  # nothing was written: end the transaction the claim began
        if outcome.body is None:
            outcome = Answer(outcome.status, rebuild(outcome.ticket_id), outcome.ticket_id)
        if replayed is not None:
            outcome = replayed(outcome)
            session.commit()
        return respond(outcome, replayed=True)
    answer = perform()
    keep(session, outcome, answer)
    session.commit()
    return respond(answer)


def purge(session, now: datetime) -> int:
    """Forget the keys older than IDEMPOTENCY_KEY_HOURS (no commit); how many."""
    return session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < _expired_before(now))).rowcount
