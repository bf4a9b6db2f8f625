"""Query codes and API tokens: generated here, stored only as hashes; and values sealed for the session cookie and
for the answers kept for idempotent requests."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# No 0/O, 1/I/L: citizens read these codes off a phone screen and type them back.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
QUERY_CODE_LENGTH = 8


def new_query_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(QUERY_CODE_LENGTH))


def normalise_query_code(code: str) -> str:
    return "".join(code.split()).upper() if isinstance(code, str) else ""


def hash_query_code(code: str) -> str:
    # A salted SHA-256 is enough here: the code is looked up online behind a rate limit, and a slow hash
    # (scrypt) would cost more CPU per filing than all the rest of the request.
    salt = secrets.token_hex(8)
    digest = hashlib.sha256(f"{salt}:{normalise_query_code(code)}".encode()).hexdigest()
    return f"sha256${salt}${digest}"


def check_query_code(stored: str, code: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$", 2)
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    candidate = hashlib.sha256(f"{salt}:{normalise_query_code(code)}".encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


def code_stamp(secret_key: str, stored: str) -> str:
    """A short keyed fingerprint of a case's current query code (its stored hash): what a browser that proved the code
    keeps beside the tracking number, so a new code (找回查询码) shuts out every browser that knew only the old one. It
    tells the cookie's reader nothing of the code."""
    mac = hmac.new(secret_key.encode(), f"banjie: the query code a browser proved:{stored}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


def new_api_token() -> str:
    return "bj_" + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    # Tokens carry 256 random bits, so an unsalted fast hash is safe and lets us look the row up by it.
    return hashlib.sha256(token.encode()).hexdigest()


# --- sealed values ----------------------------------------------------------------------------------------
# Flask's session cookie is signed, not encrypted: anyone holding it reads it by base64-decoding. The filing
# receipt carries the query code from the POST to the confirmation page that shows it once, so the code
# travels sealed (AES-GCM, a key derived from SECRET_KEY, bound to the tracking number). The answers kept for
# idempotent requests (tickets/idempotency.py) hold a filing's query code too, and are sealed the same way with a
# key of their own (`purpose="stored"`), bound to the user and the key.

_PURPOSES = {"cookie": b"banjie: values sealed in the session cookie",
             "stored": b"banjie: answers kept for idempotent requests"}


def _sealing_key(secret_key: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSES[purpose]).derive(secret_key.encode())


def seal(secret_key: str, value: str, context: str, *, purpose: str = "cookie") -> str:
    """`value` encrypted and authenticated; only `unseal` with the same key, context and purpose opens it."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_sealing_key(secret_key, purpose)).encrypt(nonce, value.encode(), context.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(secret_key: str, sealed, context: str, *, purpose: str = "cookie") -> str | None:
    """The value `seal` sealed, or None for anything else (tampered, another key or context, not ours)."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return AESGCM(_sealing_key(secret_key, purpose)).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (AttributeError, ValueError, InvalidTag, UnicodeError):
        return None
