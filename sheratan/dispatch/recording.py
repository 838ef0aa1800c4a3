"""Recording for the live engine: events applied to the live views at once, saved in batches.

The dispatcher must see each event's effect before the next step (a dispatched job is no
longer queued), yet one fsync per event would cap it at the disk's rate. So events are folded
into the in-memory views immediately and saved together, atomically, by ``flush``: a batch is
one save, so a crash loses the whole unflushed batch and never half of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.application import Application

from events import Event


class View(Protocol):
    position: int
    FOLDS: frozenset[type[Event]]

    def apply(self, position: int, event: Event) -> None: ...


class Recorder:
    """Collects events, folds them into views, and saves them in one batch per ``flush``."""

    def __init__(
        self, app: Application[Any], views: list[View], on_flush: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self.views = views
        # Each event goes only to the views that fold its type (most fold one kind only).
        self._routes: dict[type[Event], list[View]] = {}
        for view in views:
            for event_type in view.FOLDS:
                self._routes.setdefault(event_type, []).append(view)
        self.pending: list[Event] = []
        self.recorded = 0
        self._on_flush = on_flush

    def record(self, *events: Event) -> None:
        routes = self._routes
        for event in events:
            for view in routes.get(type(event), ()):
                view.apply(view.position, event)
        self.pending.extend(events)

    def flush(self) -> None:
        """Save every pending event in one atomic save; views take the log's last position."""
        if not self.pending:
            return
        # Straight to the recorder: Application.save would re-check every event against a
        # runtime Protocol and wrap each in Recording objects, which costs more than encoding.
        to_stored = self.app.mapper.to_stored_event
        positions = self.app.recorder.insert_events([to_stored(e) for e in self.pending])
        self.recorded += len(self.pending)
        self.pending.clear()
        if positions:
            for view in self.views:
                view.position = positions[-1]
        if self._on_flush is not None:
            self._on_flush()


class Clock(Protocol):
    def now(self) -> datetime: ...

    def advance(self, milliseconds: float) -> None: ...

    def wait_until(self, when: datetime) -> None: ...


class WallClock:
    """Real time; ``advance`` does nothing (the work itself took the time)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, milliseconds: float) -> None:
        return None

    def wait_until(self, when: datetime) -> None:
        time.sleep(max(0.0, (when - self.now()).total_seconds()))


class VirtualClock:
    """Simulated time: it moves only when a simulated attempt takes its latency."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, milliseconds: float) -> None:
        self._now += timedelta(milliseconds=milliseconds)

    def wait_until(self, when: datetime) -> None:
        self._now = max(self._now, when)


class Ids:
    """Where new ids come from: random in production, seeded in simulations (reproducible)."""

    def __init__(self, seed: int | str | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else None

    def new(self) -> UUID:
        if self._rng is None:
            return uuid4()
        return UUID(int=self._rng.getrandbits(128), version=4)
