"""The home's API token: random, made by ``init``, kept in a 0600 file, never a default.

Every route but ``/health`` needs ``Authorization: Bearer <token>``. ``token rotate``
replaces it and records the rotation (who, and the new token's fingerprint) in the log; the
token itself never enters the log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from sheratan.store.files import write_durably

TOKEN_FILE = "api-token"
TOKEN_BYTES = 32


class TokenMissingError(LookupError):
    """The home has no API token (made before tokens existed): ``token rotate`` makes one."""


def token_path(home: Path) -> Path:
    return home / TOKEN_FILE


def new_token(home: Path) -> str:
    """Write a fresh random token (file mode 0600) and return it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    write_durably(token_path(home), token.encode() + b"\n", mode=0o600)
    return token


def read_token(home: Path) -> str:
    try:
        token = token_path(home).read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        msg = f"no API token in {home}: run `sheratan token rotate` to make one"
        raise TokenMissingError(msg)
    return token


def fingerprint(token: str) -> str:
    """What the log may say of a token: the first 16 hex digits of its sha256."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def matches(given: str, expected: str) -> bool:
    """Constant-time comparison (no timing leak of how much of a guess was right)."""
    return hmac.compare_digest(given.encode(), expected.encode())
