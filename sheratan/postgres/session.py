"""A connection of its own beside the application's pool, for what holds one for long.

LISTEN (``sheratan.postgres.wake``) and session-level advisory locks
(``sheratan.postgres.locks``) live as long as their connection: taken from the library's
pool, either would hold a pooled connection for the process's whole life. So each opens one
of its own, with the pool's settings (host, port, database, user, password).

TCP keepalives are on: when a host vanishes without closing its socket (power, network),
the server notices within about half a minute and ends the session, which releases its
advisory locks, so the other hosts go on.
"""

from __future__ import annotations

from typing import Any

#: libpq keepalive settings: probe an idle connection after 10 s, every 5 s, give up after 3.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def connect_beside(recorder: Any) -> Any:
    """An autocommit psycopg connection to the database of ``recorder`` (the application's
    PostgreSQL recorder), opened with its pool's settings."""
    import psycopg

    settings = dict(recorder.datastore.pool.kwargs)
    settings.pop("row_factory", None)
    timeout = getattr(recorder.datastore.pool, "timeout", 5)
    return psycopg.connect(
        **{**KEEPALIVES, **settings}, autocommit=True, connect_timeout=int(timeout)
    )
