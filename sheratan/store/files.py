"""Small, careful file primitives: durable writes, directory fsync, the cross-process lock."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_DIGEST_CHUNK_BYTES = 8 * 1024 * 1024


def file_digest(path: Path, start: int = 0, end: int | None = None) -> str:
    """sha256 (hex) of bytes ``start``..``end`` of ``path`` (to its end by default)."""
    digest = hashlib.sha256()
    left = (end if end is not None else os.stat(path).st_size) - start
    with path.open("rb") as handle:
        handle.seek(start)
        while left > 0 and (chunk := handle.read(min(left, _DIGEST_CHUNK_BYTES))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a directory entry (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def own_temp(path: Path) -> Path:
    """A temp file name beside ``path`` that is this writer's own (process and thread).

    Every temp-then-rename in Sheratan takes its name from here, so two writers replacing
    one file never share, truncate or rename each other's temp file: the last rename wins.
    """
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def write_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically with ``data``: temp file (``own_temp``), fsync, rename,
    fsync dir. The temp file is always created anew, so ``mode`` (0600 for a private key)
    always applies.
    """
    tmp = own_temp(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and fsync before returning (creating the file if needed)."""
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


class FileLock:
    """An exclusive advisory lock (flock) on a lock file, shared by every process of a home.

    flock locks belong to the open file description, so each FileLock instance excludes every
    other one, in this process or another. Callers serialise their own threads first.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (at once) if somebody does."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextmanager
    def held(self) -> Iterator[None]:
        """For the rare paths; the commit path calls acquire/release (a generator costs)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class UtcClock:
    """Formats the current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, cheaply."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        ns = time.time_ns()
        second, micros = divmod(ns // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micros:06d}Z"
