"""Encryption at rest of citizens' names and numbers (and the bytes of files kept in the database), with blind indexes.

A value is stored as self-describing text, `enc:1:<key id>:<base64 of nonce + AES-GCM ciphertext>`, the column's name
as associated data (a value copied into another column does not open); a value without the prefix is read as it is
(clear text written before encryption, until `flask privacy rotate-key` encrypts it). Python code reads and writes
`ticket.phone` as plain text: the column types (`Encrypted`, `EncryptedBytes`) do the work. SQL cannot compare an
encrypted column: a number is looked up by its blind index (`phone_index`, an HMAC of the stored E.164 text under
PRIVACY_INDEX_KEY), a name by `name_index` (an exact full name, spaces ignored); comparing the column itself raises.

Keys (settings, see `settle`): PRIVACY_KEYS, `id:base64-32-bytes[,id:key…]`, the first one writes, the others are read
during a rotation; PRIVACY_INDEX_KEY, the blind indexes' HMAC key. Losing the keys is losing the data.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event
from sqlalchemy.orm import Session, attributes

from ..slots import AppSlot

VERSION = "1"
PREFIX = f"enc:{VERSION}:"
BYTES_PREFIX = PREFIX.encode()
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
INDEX_SHAPE = re.compile(r"[0-9a-f]{64}")
NONCE = 12

# Production (BROKER_URL) must be given its keys: a key made on one host would not open another host's values.
KEYS_NEEDED = ("PRIVACY_KEYS and PRIVACY_INDEX_KEY must both be set with BROKER_URL (production): citizens' names and "
               "numbers are encrypted with them, the same on every host; make each with `flask privacy new-key` "
               "(and keep a copy apart from the database's backups: losing them loses the data)")


class PrivacyKeyError(RuntimeError):
    """A stored value cannot be read: its key is not in PRIVACY_KEYS, or the key is wrong (or the value altered)."""


# --- keys -----------------------------------------------------------------------------------------------------------

def _key_bytes(text: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name}: a key must be 32 bytes in base64 (make one with `flask privacy new-key`)") from None
    if len(raw) != 32:
        raise ValueError(f"{name}: a key must be 32 bytes in base64, not {len(raw)} bytes")
    return raw


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """PRIVACY_KEYS as [(key id, 32 bytes)], the writing key first. A malformed entry is a ValueError that names the
    setting and never shows the key."""
    keys = []
    for n, entry in enumerate(part for part in (text or "").split(",") if part.strip()):
        key_id, sep, key = entry.strip().partition(":")
        if not sep or not KEY_ID.fullmatch(key_id):
            raise ValueError(f"PRIVACY_KEYS entry {n + 1}: write id:base64-key (id of 1 to 16 letters, digits, - or _)")
        if any(key_id == known for known, _ in keys):
            raise ValueError(f"PRIVACY_KEYS: the key id {key_id} is given twice")
        keys.append((key_id, _key_bytes(key, f"PRIVACY_KEYS entry {key_id}")))
    return keys


def new_key_text() -> str:
    """A fresh `id:base64` entry for PRIVACY_KEYS (the id from the date and a random part, unique enough)."""
    from datetime import datetime, timezone

    key_id = datetime.now(timezone.utc).strftime("k%y%m%d") + secrets.token_hex(2)
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def new_index_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _write_once(path: Path, text: str) -> str:
    """`text` written to `path` unless it exists (atomically: of processes starting together, one writes and all read
    its value); the file's value."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    temporary.write_text(text + "\n")
    temporary.chmod(0o600)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()


def settle(config: dict, instance: Path) -> None:
    """The keys' settings checked (create_app's settings step). Embedded mode (no BROKER_URL) without them: keys made
    once into `instance/` (as SECRET_KEY's), so `make run` encrypts too; production without them refuses."""
    missing = [name for name in ("PRIVACY_KEYS", "PRIVACY_INDEX_KEY") if not config.get(name)]
    if missing and config.get("BROKER_URL"):
        raise ValueError(KEYS_NEEDED)
    files = {}
    for name in missing:
        instance.mkdir(parents=True, exist_ok=True)
        path = instance / name.lower()
        config[name] = _write_once(path, new_key_text() if name == "PRIVACY_KEYS" else new_index_key_text())
        files[name] = str(path)
    config["PRIVACY_KEY_FILES"] = files  # this host's own keys (embedded mode), named by `flask prod check`
    if not parse_keys(config["PRIVACY_KEYS"]):
        raise ValueError("PRIVACY_KEYS holds no key")
    _key_bytes(config["PRIVACY_INDEX_KEY"], "PRIVACY_INDEX_KEY")


@dataclass
class KeyRing:
    """The keys of one app: encrypt with the current one, decrypt with any, and the blind indexes' HMAC key."""

    keys: list  # [(id, bytes)], the current first
    index_key: bytes
    _ciphers: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.current = self.keys[0][0]
        self._ciphers = {key_id: AESGCM(raw) for key_id, raw in self.keys}
        self._prefix = f"{PREFIX}{self.current}:"

    @classmethod
    def from_config(cls, config) -> "KeyRing":
        return cls(parse_keys(config["PRIVACY_KEYS"]), _key_bytes(config["PRIVACY_INDEX_KEY"], "PRIVACY_INDEX_KEY"))

    @property
    def current_prefix(self) -> str:
        """What every value under the current key starts with (`enc:1:<id>:`)."""
        return self._prefix

    def _cipher(self, key_id: str, column: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PrivacyKeyError(f"{column}: a value is encrypted under key id {key_id!r}, which PRIVACY_KEYS does "
                                  f"not hold (add that key back, after the current one)")
        return cipher

    def _open(self, key_id: str, blob: bytes, column: str) -> bytes:
        try:
            return self._cipher(key_id, column).decrypt(blob[:NONCE], blob[NONCE:], column.encode())
        except InvalidTag:
            raise PrivacyKeyError(f"{column}: a value under key id {key_id!r} does not open with PRIVACY_KEYS' key of "
                                  f"that id (a wrong key, or the value was altered or moved from another column)"
                                  ) from None

    def encrypt(self, text: str, column: str) -> str:
        nonce = os.urandom(NONCE)
        sealed = self._ciphers[self.current].encrypt(nonce, text.encode(), column.encode())
        return self._prefix + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, column: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # clear text from before encryption
        key_id, _, body = stored[len(PREFIX):].partition(":")
        try:
            blob = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise PrivacyKeyError(f"{column}: a value under key id {key_id!r} is not valid base64") from None
        return self._open(key_id, blob, column).decode()

    def encrypt_bytes(self, data: bytes, column: str) -> bytes:
        nonce = os.urandom(NONCE)
        return (f"{PREFIX}{self.current}:".encode() + nonce
                + self._ciphers[self.current].encrypt(nonce, bytes(data), column.encode()))

    def decrypt_bytes(self, stored: bytes, column: str) -> bytes:
        stored = bytes(stored)
        if not stored.startswith(BYTES_PREFIX):
            return stored
        head, sep, blob = stored[len(BYTES_PREFIX):].partition(b":")
        if not sep or not KEY_ID.fullmatch(head.decode("ascii", "replace")):
            return stored  # not ours: a file that happens to begin so
        return self._open(head.decode(), blob, column)

    @staticmethod
    def key_id_of(stored) -> str | None:
        """The key id a stored value is under, None for clear text."""
        if isinstance(stored, (bytes, memoryview)):
            stored = bytes(stored[:40]).decode("ascii", "replace")
        if not stored or not stored.startswith(PREFIX):
            return None
        return stored[len(PREFIX):].partition(":")[0]

    def _hmac(self, kind: bytes, text: str) -> str:
        return hmac.new(self.index_key, kind + b"\0" + text.encode(), hashlib.sha256).hexdigest()

    def phone_index(self, e164: str | None) -> str | None:
        """The blind index of a stored number: the HMAC of its E.164 text (callers normalise a typed number first,
        `phones.normalise_phone`). None for none."""
        if e164 is None:
            return None
        return self._hmac(b"phone", e164.strip())

    def name_index(self, name: str | None) -> str | None:
        """The blind index of a full name, spaces ignored and case folded (「张 三」 is 「张三」). None for none."""
        if name is None:
            return None
        return self._hmac(b"name", "".join(name.split()).casefold())


KEYS: AppSlot[KeyRing] = AppSlot("banjie_privacy_keys", "The app's encryption keys (tickets/privacy/crypto.py)",
                                 default=lambda app: KeyRing.from_config(app.config))


def ring(app=None) -> KeyRing:
    return KEYS.get(app)


def phone_index(e164: str | None) -> str | None:
    """The current app's blind index of a number (E.164): what `phone_index` columns are compared with."""
    return ring().phone_index(e164)


def name_index(name: str | None) -> str | None:
    return ring().name_index(name)


# --- column types ---------------------------------------------------------------------------------------------------

class _NoComparison(sa.types.TypeDecorator.Comparator):
    """An encrypted column cannot be compared with a value in SQL (each value has its own nonce, so it would match
    nothing): `Ticket.phone == "+86…"`, `.like(…)`, `.in_([…])` raise. Compare its blind index instead. (Comparisons
    with other columns stay: SQLAlchemy makes them itself.)"""

    _ALLOWED = frozenset({"is_", "is_not", "isnot"})

    def _refuse(self, op, other):
        if getattr(op, "__name__", "") not in self._ALLOWED and any(
                not isinstance(o, sa.sql.ClauseElement) for o in other):
            raise TypeError(f"{self.expr} is encrypted: compare its blind index (phone_index, name_index) instead")

    def operate(self, op, *other, **kwargs):
        self._refuse(op, other)
        return super().operate(op, *other, **kwargs)

    def reverse_operate(self, op, other, **kwargs):
        self._refuse(op, (other,))
        return super().reverse_operate(op, other, **kwargs)


class Encrypted(sa.types.TypeDecorator):
    """Text encrypted at rest under the app's current key, `column` ("table.column") as associated data."""

    impl = sa.String(512)
    cache_ok = True
    comparator_factory = _NoComparison

    def __init__(self, column: str, length: int = 512):
        super().__init__(length)
        self.column = column

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return ring().encrypt(value, self.column)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return ring().decrypt(value, self.column)

    def copy(self, **kw):
        return Encrypted(self.column, self.impl.length)


class EncryptedText(Encrypted):
    """`Encrypted` for text of any length: a text message's body, which may carry a query code."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, column: str):
        super().__init__(column, None)

    def copy(self, **kw):
        return EncryptedText(self.column)


class EncryptedBytes(sa.types.TypeDecorator):
    """Bytes encrypted at rest (`enc:1:<key id>:` + nonce + ciphertext), `column` as associated data."""

    impl = sa.LargeBinary
    cache_ok = True
    comparator_factory = _NoComparison

    def __init__(self, column: str):
        super().__init__()
        self.column = column

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return ring().encrypt_bytes(value, self.column)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return ring().decrypt_bytes(value, self.column)

    def copy(self, **kw):
        return EncryptedBytes(self.column)


class PhoneIndexed(sa.types.TypeDecorator):
    """A number kept only as its blind index (the SMS opt-outs' key): a number bound is stored, and looked up, as
    its HMAC (`KeyRing.phone_index`); an index (64 hex digits) is bound as it is."""

    impl = sa.String(64)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or INDEX_SHAPE.fullmatch(value):
            return value
        return ring().phone_index(value)


# --- blind indexes kept in step ---------------------------------------------------------------------------------------

# {model: ((source attribute, index attribute, "phone" or "name"), ...)}: filled by `indexed` (the models declare it).
COMPANIONS: dict[type, tuple] = {}


def indexed(model, *pairs: tuple[str, str, str]):
    """Declare that `model`'s index attributes follow their source attributes (e.g. ("phone", "phone_index", "phone"))."""
    COMPANIONS[model] = tuple(pairs)
    return model


def _index_of(keys: KeyRing, kind: str, value):
    return keys.phone_index(value) if kind == "phone" else keys.name_index(value)


def fill_new(obj) -> None:
    """The blind indexes of a new object, from its values (`tickets.db.insert_pending` and the flush call it): an
    index already given is kept."""
    pairs = COMPANIONS.get(type(obj))
    if not pairs:
        return
    keys, state = ring(), obj.__dict__
    for source, target, kind in pairs:
        if state.get(target) is None:
            value = state.get(source)
            if value is not None:
                setattr(obj, target, _index_of(keys, kind, value))


def _before_flush(session, _context, _instances) -> None:
    for obj in session.new:
        if type(obj) in COMPANIONS:
            fill_new(obj)
    for obj in session.dirty:
        pairs = COMPANIONS.get(type(obj))
        if not pairs:
            continue
        for source, target, kind in pairs:
            # a changed value gets its index, unless the same change set the index itself (anonymising clears it)
            if (attributes.get_history(obj, source).has_changes()
                    and not attributes.get_history(obj, target).has_changes()):
                setattr(obj, target, _index_of(ring(), kind, getattr(obj, source)))


def install() -> None:
    """Keep the blind indexes in step on every flush and every `insert_pending` (once per process)."""
    from ..db import BEFORE_INSERT_PENDING

    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
    if fill_new not in BEFORE_INSERT_PENDING:
        BEFORE_INSERT_PENDING.append(fill_new)
