"""PostgreSQL advisory locks: what the embedded store's lock files are on one disk, for
processes on several hosts that share one database.

A dispatcher's round (catch up, decide, save with its tracking record) must not overlap
another dispatcher's: every decision is made on the log as it stood right before it, so
exact replay holds across processes. On an embedded home a lock file does that; hosts that
share a database share no file, so the round takes a **session-level advisory lock** keyed
by the log (the events table) and the purpose ("dispatch", "simulate").

- Session-level, on a connection of its own (``connect_beside``): a round spans several of
  the application's transactions (the catch-up reads, the save), so a transaction-level
  lock (``pg_advisory_xact_lock``) would end with the first of them.
- The server releases it when the session ends: a dispatcher SIGKILLed inside a round, or a
  host that vanished (TCP keepalives), never blocks the others for longer than that.
- Not ``SELECT … FOR UPDATE SKIP LOCKED`` on ready jobs: jobs are not rows here but folded
  streams of events, and a dispatch decision reads the whole state (queue, workers' load,
  priors, funds), so the rounds must be taken one at a time, which one lock does. Two
  dispatchers claiming disjoint jobs at once would each decide on a state missing the
  other's choices.
- The lock is an optimisation, not the guarantee: if its session is lost mid-round, another
  dispatcher may act at the same time, and the library's version check (a unique key on
  stream and version) refuses the later save; the loser re-reads, as on an embedded home.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sheratan.postgres.session import connect_beside


def lock_key(table: str, purpose: str) -> int:
    """The advisory lock's 64-bit key for ``purpose`` on the log in ``table`` (advisory
    locks are per database already; the table keeps two applications' logs apart)."""
    digest = hashlib.sha256(f"sheratan:{table}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """An exclusive session-level advisory lock on the log of ``recorder``, with the file
    lock's interface (``acquire``, ``try_acquire``, ``release``, ``close``)."""

    def __init__(self, recorder: Any, purpose: str) -> None:
        self._recorder = recorder
        self.key = lock_key(recorder.events_table_name, purpose)
        self._conn: Any = None

    def acquire(self) -> None:
        """Wait until no other session holds the lock, then hold it."""
        self._session().execute("SELECT pg_advisory_lock(%s)", (self.key,))

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (at once) if somebody does."""
        row = self._session().execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def release(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))

    def close(self) -> None:
        """End the session (which releases the lock, if held); idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _session(self) -> Any:
        """The lock's connection, opened again if the last one broke (a lock held on a lost
        session is gone with it: holding nothing, a new session starts clean)."""
        if self._conn is None or self._conn.broken or self._conn.closed:
            self._conn = connect_beside(self._recorder)
        return self._conn


#: The key of the lock that the creation of the library's tables and functions runs under.
SCHEMA_KEY = lock_key("*", "schema")


@contextmanager
def creating_tables(datastore: Any) -> Iterator[None]:
    """Hold the schema lock while the library creates its tables and its insert function.

    Every process that opens the application runs the library's ``CREATE TABLE IF NOT
    EXISTS`` and ``CREATE OR REPLACE FUNCTION``; two processes starting at once (a follower
    and a worker on two hosts) collide on the catalog ("tuple concurrently updated"). Taken
    one at a time they are idempotent. The lock is held on one of the pool's connections,
    released before it goes back to the pool."""
    with datastore.get_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_KEY,))
