"""One analytics session per cut of the log, shared by the WHY-API's requests.

Opening a session parses the log's uncached tail and sets up its views: about 0.1 s on a
small home, several times that while a browser and dispatchers share the CPU. DecisionView
asks several questions per screen, and a log at rest does not change between them, so the
session is kept while the log's last committed position is the one it was opened at and
made again once the log has moved. Requests take turns on it: a DuckDB connection runs one
statement at a time, and the session's temporary tables live in that one connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sheratan.analytics.session import Analytics
from sheratan.home import Home


class SharedAnalytics:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.lock = threading.Lock()
        self.session: Analytics | None = None

    @contextmanager
    def current(self) -> Iterator[Analytics]:
        """The session over the log as it is now (reused if the log has not moved)."""
        with self.lock:
            _, last = self.home.ledger.committed_cut()
            if self.session is None or self.session.last_position != last:
                self.close_session()
                self.session = Analytics(self.home.path)
            yield self.session

    def close(self) -> None:
        """Close the session (the server is stopping)."""
        with self.lock:
            self.close_session()

    def close_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.close()
