"""Rate limits on writes: a token bucket per client for every POST route (429, Retry-After).

A client is the bearer token it presents (the home's, or a worker's own), so one busy client
cannot starve the others. The numbers are the ``writes`` of ``policies/limits.json``
(``sheratan.limits``), with ``serve --limits FILE`` merged over it like
``policies/gates.json`` (a partial file changes only what it names):

    {"writes": {"per_second": 20.0, "burst": 100}}

``per_second`` is the steady rate of writes a client may make, ``burst`` how many it may make
at once after a quiet spell. Reads are not limited here (they change nothing).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from sheratan.limits import WriteRate

#: The most clients whose buckets are kept; the one idle longest is forgotten past it (a
#: forgotten client starts with a full bucket: never stricter than remembering it).
MAX_CLIENTS = 10_000
#: The methods that write, and so take a token.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WriteLimiter:
    """Token buckets by client, safe to share between the server's threads."""

    def __init__(self, rate: WriteRate) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Take one write for ``client``: 0.0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(client, (float(self.rate.burst), now))
            tokens = min(float(self.rate.burst), tokens + (now - then) * self.rate.per_second)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate.per_second
            self._buckets[client] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait


def client_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Who is writing: a digest of the credentials presented (never the token itself)."""
    given = connection.headers.get("authorization", "")
    return hashlib.sha256(given.encode()).hexdigest()


def write_limit_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Refuse a write beyond the client's rate with 429 and ``Retry-After`` (whole seconds)."""
    if connection.scope.get("method") not in WRITE_METHODS:
        return
    limiter: WriteLimiter = connection.app.state.writes
    wait = limiter.take(client_of(connection))
    if wait > 0:
        raise TooManyRequestsException(
            detail=f"too many writes: at most {limiter.rate.per_second:g} a second "
            f"(bursts of {limiter.rate.burst}); retry after {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
