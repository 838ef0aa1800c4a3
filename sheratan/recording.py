"""Recording for the live engine (dispatchers, worker daemons): events folded into the live
views at once, saved in batches.

The dispatcher must see each event's effect before the next step (a dispatched job is no
longer queued), yet one fsync per event would cap it at the disk's rate. So events are folded
into the in-memory views immediately and saved together, atomically, by ``flush``: a batch is
one save, so a crash loses the whole unflushed batch and never half of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking

from events import Event

if TYPE_CHECKING:
    from sheratan.home import Home


class View(Protocol):
    position: int
    FOLDS: frozenset[type[Event]]

    def apply(self, position: int, event: Event) -> None: ...


class EventSource(Protocol):
    """The log as the recorder reads it back: its end, and the events of a range."""

    def last_position(self) -> int: ...

    def events(self, first: int, last: int) -> Iterable[tuple[int, Event]]: ...


class LogSource(EventSource):
    """A home's log as the live recorder reads it back."""

    def __init__(self, home: Home, topics: frozenset[str] | None = None) -> None:
        self.home = home
        #: Only these topics are read back (None: all), when the views fold no others.
        self.topics = topics

    def last_position(self) -> int:
        return self.home.log.last_position()

    def events(self, first: int, last: int) -> Iterator[tuple[int, Event]]:
        return self.home.views.reader.events(self.home.log, first, last, self.topics)


class ViewsDivergedError(Exception):
    """A save failed after its events were folded into the live views: they hold events the
    log does not, and must be loaded again before anything is decided on them."""


class Recorder:
    """Collects events, folds them into views, and saves them in one batch per ``flush``.

    Other processes may save between two flushes (workers, operators, other dispatchers): a
    flush folds their events too, and ``catch_up`` folds them without saving anything, so the
    live views follow the whole log. Their events are folded after this process's own
    unsaved ones, which is the log's order for everything but the order of independent
    streams. A failed save (another process took a version first) leaves the views holding
    events the log does not: ``ViewsDivergedError`` says they must be loaded again.
    """

    def __init__(
        self,
        app: Application[Any],
        views: list[View],
        on_flush: Callable[[], None] | None = None,
        source: EventSource | None = None,
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
        self.source = source
        #: Set when a save failed after its events were folded: the views must not be saved.
        self.diverged = False
        #: The log position the views have folded (their lowest, when loaded one by one).
        self.position = min((view.position for view in views), default=0)

    def record(self, *events: Event) -> None:
        routes = self._routes
        for event in events:
            for view in routes.get(type(event), ()):
                view.apply(view.position, event)
        self.pending.extend(events)

    def flush(self, tracking: Tracking | None = None) -> list[int]:
        """Save every pending event in one atomic save (with ``tracking``, the position this
        save acted on, when given); fold what others saved before it; return its positions."""
        if not self.pending:
            return []
        # Straight to the recorder: Application.save would re-check every event against a
        # runtime Protocol and wrap each in Recording objects, which costs more than encoding.
        to_stored = self.app.mapper.to_stored_event
        stored = [to_stored(e) for e in self.pending]
        count = len(self.pending)
        self.pending.clear()
        try:
            positions = list(self.app.recorder.insert_events(stored, tracking=tracking) or [])
        except IntegrityError as error:
            self.diverged = True
            raise ViewsDivergedError(str(error)) from error
        except BaseException:
            self.diverged = True
            raise
        self.recorded += count
        if positions:
            self._fold_others(positions[0] - 1)
            self._advance(positions[-1])
        if self._on_flush is not None:
            self._on_flush()
        return positions

    def catch_up(self) -> list[tuple[int, Event]]:
        """Fold the events other processes saved since the views were last advanced."""
        if self.source is None:
            return []
        return self._fold_others(self.source.last_position())

    def _fold_others(self, last: int) -> list[tuple[int, Event]]:
        if self.source is None or last <= self.position:
            return []
        others = list(self.source.events(self.position + 1, last))
        routes = self._routes
        for position, event in others:
            for view in routes.get(type(event), ()):
                if view.position < position:
                    view.apply(position, event)
        self._advance(last)
        return others

    def _advance(self, position: int) -> None:
        self.position = position
        for view in self.views:
            view.position = max(view.position, position)


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
