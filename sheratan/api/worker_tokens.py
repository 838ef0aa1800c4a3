"""Worker tokens: each scoped to one worker id, so a worker acts only for itself.

``worker register ID --issue-token --token-file F`` writes a random token to F (0600) and
keeps in the home only its sha256 (``<home>/worker-tokens/<id>.sha256``): the home never
holds the secret a worker presents. The API accepts such a token only on that worker's own
routes; anywhere else it is refused with 403.

Attempt tokens bind a claimed attempt to its worker: an HMAC of worker, job and attempt under
a secret of the home (``<home>/worker-tokens/attempt-secret``, 0600, made once), so the server
keeps no table of them and a token of another attempt never matches.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path
from uuid import UUID

from sheratan.api.tokens import TOKEN_BYTES
from sheratan.inputs import InvalidInputError
from sheratan.store.files import write_durably

TOKENS_DIR = "worker-tokens"
DIGEST_SUFFIX = ".sha256"
SECRET_FILE = "attempt-secret"
#: Worker ids that may name a token file (nothing that leaves the folder or hides in it).
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
#: A listing this close to the folder's mtime may miss a file of the same clock tick.
_RACY_NS = 1_000_000_000


def tokens_dir(home: Path) -> Path:
    return home / TOKENS_DIR


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_token_id(worker_id: str) -> None:
    """InvalidInputError unless ``worker_id`` may name a token file."""
    if not SAFE_ID.match(worker_id):
        msg = (
            "a worker with a token needs an id of letters, digits, '.', '_' and '-', "
            f"not {worker_id!r}"
        )
        raise InvalidInputError(msg)


def issue_worker_token(home: Path, worker_id: str) -> str:
    """A fresh random token for ``worker_id`` (replacing any earlier one); the home keeps only
    its digest, so the caller hands the token to the worker (``write_token_file``)."""
    check_token_id(worker_id)
    folder = tokens_dir(home)
    folder.mkdir(mode=0o700, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    write_durably(folder / f"{worker_id}{DIGEST_SUFFIX}", digest(token).encode(), mode=0o600)
    return token


def write_token_file(path: Path, token: str) -> None:
    """The worker's side of its token: a file of mode 0600 (made with its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, token.encode() + b"\n", mode=0o600)


def read_token_file(path: Path) -> str:
    """The token a worker presents, from its file; InvalidInputError if missing or empty."""
    try:
        token = path.read_text().strip()
    except OSError as error:
        msg = f"cannot read the token file {path}: {error.strerror}"
        raise InvalidInputError(msg) from error
    if not token:
        msg = f"the token file {path} is empty"
        raise InvalidInputError(msg)
    return token


class WorkerTokens:
    """The digests of the home's worker tokens (listed again when the folder changes) and the
    home's attempt secret."""

    def __init__(self, home: Path) -> None:
        self.folder = tokens_dir(home)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self._stamp: tuple[int, int] | None = None
        self._owners: dict[str, str] = {}
        self._secret = self._load_secret()

    def _load_secret(self) -> bytes:
        path = self.folder / SECRET_FILE
        if not path.exists():
            write_durably(path, secrets.token_hex(TOKEN_BYTES).encode(), mode=0o600)
        return path.read_bytes().strip()

    def owner(self, token: str) -> str | None:
        """The worker whose token this is, or None."""
        stat = os.stat(self.folder)
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._owners = {
                path.read_text().strip(): path.name.removesuffix(DIGEST_SUFFIX)
                for path in self.folder.glob(f"*{DIGEST_SUFFIX}")
            }
            racy = time.time_ns() - stat.st_mtime_ns < _RACY_NS
            self._stamp = None if racy else stamp
        return self._owners.get(digest(token))

    def attempt_token(self, worker_id: str, job_id: UUID, attempt: int) -> str:
        message = f"{worker_id}\n{job_id}\n{attempt}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def attempt_matches(self, worker_id: str, job_id: UUID, attempt: int, given: str) -> bool:
        expected = self.attempt_token(worker_id, job_id, attempt)
        return hmac.compare_digest(expected.encode(), given.encode())
