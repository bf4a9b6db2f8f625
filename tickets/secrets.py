"""Query codes and API tokens: generated here, stored only as hashes."""
from __future__ import annotations

import hashlib
import hmac
import secrets

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


def new_api_token() -> str:
    return "bj_" + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    # Tokens carry 256 random bits, so an unsalted fast hash is safe and lets us look the row up by it.
    return hashlib.sha256(token.encode()).hexdigest()
