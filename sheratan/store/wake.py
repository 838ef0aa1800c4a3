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
import secrets
import select
import socket
import sys
import threading
import time
import weakref
from pathlib import Path

from sheratan.store.ledger import Ledger
from sheratan.store.limits import MAX_FOLLOWERS_PER_LOG, WAKE_FALLBACK_STEP_S
from sheratan.store.notify import (
    ABSTRACT_SOCKETS,
    DATAGRAM,
    FOLLOWER_NAME,
    WAKE_DIR,
    Notifier,
    address,
)

log = logging.getLogger(__name__)

_DRAIN_MAX = 4096  # datagrams read per drain; a queue holds far fewer (net.unix.max_dgram_qlen)


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

    def fileno(self) -> int | None:
        """The socket an event loop may wait on until it is readable (then ``consume``), or
        None on the fallback, which only ``wait`` can follow."""
        return None if self._sock is None else self._sock.fileno()

    def consume(self) -> bool:
        """Take every queued wake-up without waiting: whether there was one (sockets only)."""
        return self._drain()

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
                self._sock.sendto(DATAGRAM, address(self._name))
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
        sock.bind(address(name))
        sock.setblocking(False)
        os.close(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except BaseException:
        sock.close()
        raise
    return sock, name


def _count(folder: Path) -> int:
    return sum(1 for name in os.listdir(folder) if FOLLOWER_NAME.match(name))


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
