"""Waking a log's followers after a commit: the writer's side of ``sheratan.store.wake``.

Every follower registers a file in ``<home>/wake/<log>/`` named after its abstract unix
datagram socket; after each commit the ledger sends one datagram to each of them. Kept apart
from the follower's side, which reads the ledger, so the ledger imports only this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Linux has an abstract socket namespace; elsewhere followers use the stepped fallback.
ABSTRACT_SOCKETS = sys.platform.startswith("linux")

#: The folder of a home that holds one registry folder per followed log.
WAKE_DIR = "wake"

#: A listing taken within this long of the folder's mtime is not trusted to be complete:
#: file times come from a coarse clock, so a follower registering in the same tick as the
#: listing would leave the mtime unchanged ("racy git"); such a listing is simply redone.
_RACY_NS = 1_000_000_000

ADDRESS_PREFIX = b"\0sheratan-wake-"
FOLLOWER_NAME = re.compile(r"[0-9]+-[0-9a-f]{16}\Z")
DATAGRAM = b"w"


def address(name: str) -> bytes:
    return ADDRESS_PREFIX + name.encode()


class Notifier:
    """The writer's side: one datagram per registered follower after each commit.

    Called by one thread at a time (a ledger's commit leader). The folder listing is cached
    and refreshed only when the folder's mtime changes (or the listing was racy).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sock: socket.socket | None = None
        self._mtime_ns: int | None = None  # the folder's mtime when listed; None: list again
        self._names: list[str] = []

    def notify(self) -> None:
        """Wake every follower of the log; never raises (the commit is durable already)."""
        try:
            self._notify()
        except Exception as error:  # a failed wake-up must not look like a failed commit
            log.warning("waking the followers of %s failed: %r", self.folder, error)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _notify(self) -> None:
        for name in list(self._followers()):  # _forget edits the cached listing
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            try:
                self._sock.sendto(DATAGRAM, address(name))
            except BlockingIOError:
                pass  # its queue is full: it has wake-ups waiting already
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(name)  # nobody listens there any more: the follower died
            except OSError as error:  # the next follower must still hear of the commit
                log.debug("could not wake follower %s of %s: %r", name, self.folder, error)

    def _followers(self) -> list[str]:
        try:
            mtime_ns = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            self._mtime_ns, self._names = None, []
            return []
        if mtime_ns != self._mtime_ns:
            self._names = [n for n in os.listdir(self.folder) if FOLLOWER_NAME.match(n)]
            racy = time.time_ns() - mtime_ns < _RACY_NS
            self._mtime_ns = None if racy else mtime_ns
        return self._names

    def _forget(self, name: str) -> None:
        with contextlib.suppress(OSError):  # gone already, or not a file we may remove
            os.unlink(self.folder / name)
        with contextlib.suppress(ValueError):
            self._names.remove(name)
