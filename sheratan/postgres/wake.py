"""Wake-ups for followers of a PostgreSQL log: LISTEN/NOTIFY instead of the wake files.

The library's PostgreSQL recorder sends ``NOTIFY <channel>`` in every transaction that
inserts events, so a follower on any host learns of every commit without polling.
``PostgresWaker`` has the embedded ``Waker``'s interface (``wait``, ``wake``, ``fileno``,
``consume``, ``close``), so dispatchers, worker daemons and the API's long polls follow
either log the same way.

It LISTENs on a connection of its own (not one of the application's pool, which it would
hold for its whole life) before its constructor returns: register, then read, then wait,
so no commit after the follower's first read is missed. A thread turns each notification
into a byte on a pipe; ``wait`` sleeps on the pipe, ``wake`` writes to it (safe from a
signal handler), and an event loop may wait on ``fileno`` itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from typing import Any

from psycopg import sql

from sheratan.postgres.session import connect_beside

log = logging.getLogger(__name__)

#: How often the listening thread looks whether it should stop.
_STOP_CHECK_S = 0.5


class PostgresWaker(contextlib.AbstractContextManager["PostgresWaker"]):
    """A follower's side: ``wait`` returns once a commit happened since the last ``wait``."""

    def __init__(self, recorder: Any) -> None:
        """``recorder``: the application's PostgreSQL recorder (its datastore's connection
        settings and its NOTIFY channel)."""
        self._conn = connect_beside(recorder)
        self._conn.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(recorder.channel_name)))
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="pg-listen", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a commit (or ``wake``) since the last wait: True; or ``timeout``
        seconds (None: no limit) without one: False. Every queued wake-up is consumed."""
        if self._closed.is_set():
            msg = "wait on a closed PostgresWaker"
            raise ValueError(msg)
        if self.consume():
            return True
        ready, _, _ = select.select([self._read], [], [], timeout)
        return bool(ready) and (self.consume() or True)

    def fileno(self) -> int:
        """The pipe an event loop may wait on until it is readable (then ``consume``)."""
        return self._read

    def consume(self) -> bool:
        """Take every queued wake-up without waiting: whether there was one."""
        woken = False
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                woken = True
        return woken

    def wake(self) -> None:
        """Make the current or next ``wait`` return True; safe from a signal handler."""
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending
            os.write(self._write, b"w")

    def close(self) -> None:
        """Stop listening and release the connection and the pipe; idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join()
        self._conn.close()
        os.close(self._read)
        os.close(self._write)

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _listen(self) -> None:
        try:
            while not self._closed.is_set():
                for _ in self._conn.notifies(timeout=_STOP_CHECK_S, stop_after=1):
                    self.wake()
        except Exception as error:  # the server went away: followers fall back to timeouts
            if not self._closed.is_set():
                log.warning("LISTEN stopped: %s; followers wake on their timeouts", error)
