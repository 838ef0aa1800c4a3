"""Cross-process wake-ups for followers of a log: no busy polling, no missed commit.

A follower (a dispatcher, a worker daemon, a subscription) opens a ``Waker`` on a ledger: it
binds a Linux abstract-namespace datagram socket (nothing on the filesystem to clean up,
no path-length limit) and announces it with an empty registry file under
``<home>/wake/<log>/`` whose name is the socket's address. Every writer's ledger, after each
commit is durable, sends one non-blocking datagram to every follower listed there
(``Notifier``): a full queue drops the datagram (that follower is awake anyway), a follower
whose socket is gone (a killed process) loses its registry file, and nothing here ever fails
a commit. ``Waker.wait`` sleeps in ``poll`` and drains every queued wake-up, so many commits
while a follower was busy are one wake-up.

Register, then read, then wait: a commit after the registration always reaches the follower,
and one before it is already in the log the follower reads next.

Where abstract sockets are missing (not Linux), a Waker looks at the log's last position in
steps of ``WAKE_FALLBACK_STEP_S`` instead, and wakes at once for commits in its own process.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import select
import socket
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from sheratan.store.limits import MAX_FOLLOWERS_PER_LOG, WAKE_FALLBACK_STEP_S

if TYPE_CHECKING:
    from sheratan.store.ledger import Ledger

log = logging.getLogger(__name__)

#: Linux has an abstract socket namespace; elsewhere followers use the stepped fallback.
ABSTRACT_SOCKETS = sys.platform.startswith("linux")

#: The folder of a home that holds one registry folder per followed log.
WAKE_DIR = "wake"

#: A listing taken within this long of the folder's mtime is not trusted to be complete:
#: file times come from a coarse clock, so a follower registering in the same tick as the
#: listing would leave the mtime unchanged ("racy git"); such a listing is simply redone.
_RACY_NS = 1_000_000_000

_ADDRESS_PREFIX = b"\0sheratan-wake-"
_NAME = re.compile(r"[0-9]+-[0-9a-f]{16}\Z")
_DATAGRAM = b"w"
_DRAIN_MAX = 4096  # datagrams read per drain; a queue holds far fewer (net.unix.max_dgram_qlen)


def _address(name: str) -> bytes:
    return _ADDRESS_PREFIX + name.encode()


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
                self._sock.sendto(_DATAGRAM, _address(name))
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
            self._names = [n for n in os.listdir(self.folder) if _NAME.match(n)]
            racy = time.time_ns() - mtime_ns < _RACY_NS
            self._mtime_ns = None if racy else mtime_ns
        return self._names

    def _forget(self, name: str) -> None:
        with contextlib.suppress(OSError):  # gone already, or not a file we may remove
            os.unlink(self.folder / name)
        with contextlib.suppress(ValueError):
            self._names.remove(name)


class Waker(contextlib.AbstractContextManager["Waker"]):
    """A follower's side: ``wait`` returns once a commit happened since the last ``wait``.

    One thread waits on a Waker; any thread, or a signal handler, may call ``wake`` (to stop
    a follower promptly). Use it as a context manager, or call ``close``.
    """

    def __init__(self, ledger: Ledger, *, sockets: bool | None = None) -> None:
        """``sockets``: None uses abstract sockets where they exist; False forces the
        fallback (stepped checks of the log's position); True fails where they are missing.
        """
        self.ledger = ledger
        self.folder = ledger.home / WAKE_DIR / ledger.name
        self._lock = threading.Lock()  # wake() against close()
        self._closed = False
        self._event = threading.Event()  # the fallback's in-process wake-up
        self._sock: socket.socket | None = None
        self._name = ""
        if sockets and not ABSTRACT_SOCKETS:
            msg = f"abstract sockets exist only on Linux, not on {sys.platform}"
            raise OSError(msg)
        if sockets is not False and ABSTRACT_SOCKETS:
            try:
                self._sock, self._name = _register(self.folder)
            except OSError as error:
                if sockets:
                    raise
                log.warning("following %s by stepped checks: %s", self.folder, error)
        if self._sock is None:
            ledger.listen(self._event)
            self._seen = ledger.last_position()
        else:
            self._poll = select.poll()
            self._poll.register(self._sock, select.POLLIN)
        self._finalizer = weakref.finalize(
            self, _release, ledger, self._event, self._sock, self.folder / self._name, os.getpid()
        )

    @property
    def uses_sockets(self) -> bool:
        """False when this Waker runs on the fallback (stepped checks of the log)."""
        return self._sock is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a commit (or ``wake``) since the last wait: True; or ``timeout``
        seconds (None: no limit) without one: False. Every queued wake-up is consumed."""
        if self._closed:
            msg = "wait on a closed Waker"
            raise ValueError(msg)
        if self._sock is None:
            return self._wait_stepped(timeout)
        if self._drain():
            return True
        timeout_ms = -1 if timeout is None else max(0, math.ceil(timeout * 1000))
        if not self._poll.poll(timeout_ms):
            return False
        self._drain()
        return True

    def wake(self) -> None:
        """Make the current or next ``wait`` return True; safe from a signal handler."""
        if not self._lock.acquire(blocking=False):
            return  # another wake() is sending one, or close() ends all waiting
        try:
            if self._closed:
                return
            if self._sock is None:
                self._event.set()
                return
            with contextlib.suppress(OSError):  # a full queue: a wake-up is pending anyway
                self._sock.sendto(_DATAGRAM, _address(self._name))
        finally:
            self._lock.release()

    def close(self) -> None:
        """Unregister (no writer sends here any more) and release the socket; idempotent."""
        with self._lock:
            self._closed = True
            self._finalizer()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drain(self) -> bool:
        assert self._sock is not None
        woken = False
        for _ in range(_DRAIN_MAX):
            try:
                self._sock.recv(16)
            except BlockingIOError:
                break
            woken = True
        return woken

    def _wait_stepped(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            position = self.ledger.last_position()
            if self._event.is_set() or position != self._seen:
                self._event.clear()
                self._seen = position
                return True
            left = WAKE_FALLBACK_STEP_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            self._event.wait(min(WAKE_FALLBACK_STEP_S, left))


def _register(folder: Path) -> tuple[socket.socket, str]:
    """Bind a fresh abstract address, then announce it (in that order: a writer that finds
    a registry file with nobody bound behind it removes the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    if _count(folder) >= MAX_FOLLOWERS_PER_LOG:
        Notifier(folder).notify()  # removes the registry files of dead followers
        if _count(folder) >= MAX_FOLLOWERS_PER_LOG:
            msg = f"{folder} already holds {MAX_FOLLOWERS_PER_LOG} followers"
            raise OSError(msg)
    name = f"{os.getpid()}-{secrets.token_hex(8)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(_address(name))
        sock.setblocking(False)
        os.close(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except BaseException:
        sock.close()
        raise
    return sock, name


def _count(folder: Path) -> int:
    return sum(1 for name in os.listdir(folder) if _NAME.match(name))


def _release(
    ledger: Ledger, event: threading.Event, sock: socket.socket | None, path: Path, pid: int
) -> None:
    """Unregister first, then close; a forked child leaves its parent's registration be."""
    if sock is None:
        ledger.unlisten(event)
        return
    if os.getpid() == pid:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    sock.close()
