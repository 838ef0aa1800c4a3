"""What job creation's limits read (``sheratan.limits``): the jobs waiting for a worker, and
per source the jobs in flight and the ones created in the last minute.

Only jobs that have not completed are kept (nothing can change a completed job again), so
the view stays as small as the live work, however long the log: a ``job create`` loads it
in a moment. Statuses come from ``STATUS_AFTER``, the table the full job fold uses.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Any, ClassVar

from events import Event
from events.jobs import JobCreated
from projections.jobs import LEASED, STATUS_AFTER, Status

#: Statuses of a job that waits for a worker.
WAITING: frozenset[str] = frozenset({"created", "queued", "retry_scheduled"})
#: Statuses of a job in flight: waiting, or an attempt leased.
IN_FLIGHT: frozenset[str] = WAITING | LEASED
#: How far back creations are kept per source (``sources.jobs_per_minute``).
RECENT = timedelta(minutes=1)


def sources_of(created: JobCreated) -> tuple[str, ...]:
    """The sources a job counts against: its mission and its payer (each if it has one)."""
    sources: tuple[str, ...] = ()
    if created.mission_id is not None:
        sources += (f"mission:{created.mission_id}",)
    if created.payer is not None:
        sources += (f"payer:{created.payer}",)
    return sources


class QueueView:
    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(STATUS_AFTER)

    def __init__(self, position: int = 0) -> None:
        self.position = position
        #: Jobs not completed (by ``UUID.int``): their status and sources.
        self.open: dict[int, tuple[Status, tuple[str, ...]]] = {}
        #: How many open jobs are in each status.
        self.statuses: Counter[str] = Counter()
        #: Jobs in flight per source.
        self.in_flight: dict[str, int] = {}
        #: Creation times per source within ``RECENT`` of the source's latest, oldest first.
        self.recent: dict[str, deque[datetime]] = {}

    def apply(self, position: int, event: Event) -> None:
        self.position = position
        status = STATUS_AFTER.get(type(event))
        if status is None:
            return
        key = event.originator_id.int
        previous: Status | None = None
        if isinstance(event, JobCreated):
            sources = sources_of(event)
            for source in sources:
                self._created(source, event.timestamp)
        elif (entry := self.open.get(key)) is not None:
            previous, sources = entry
            self.statuses[previous] -= 1
        else:
            return  # a job this view no longer keeps: completed, so nothing changes it
        was = previous in IN_FLIGHT
        now = status in IN_FLIGHT
        if was != now:
            for source in sources:
                count = self.in_flight.get(source, 0) + (1 if now else -1)
                if count:
                    self.in_flight[source] = count
                else:
                    self.in_flight.pop(source, None)
        if status == "completed":
            self.open.pop(key, None)
        else:
            self.open[key] = (status, sources)
            self.statuses[status] += 1

    def restore(self, key: int, status: Status, sources: tuple[str, ...]) -> None:
        """Put back an open job from a saved snapshot, with its counts."""
        self.open[key] = (status, sources)
        self.statuses[status] += 1
        if status in IN_FLIGHT:
            for source in sources:
                self.in_flight[source] = self.in_flight.get(source, 0) + 1

    def _created(self, source: str, at: datetime) -> None:
        times = self.recent.setdefault(source, deque())
        times.append(at)
        while times[0] < at - RECENT:
            times.popleft()

    def waiting_count(self) -> int:
        """Jobs waiting for a worker."""
        return sum(self.statuses[status] for status in WAITING)

    def created_since(self, source: str, since: datetime) -> list[datetime]:
        """Creation times of ``source``'s jobs at or after ``since``, oldest first."""
        return [at for at in self.recent.get(source, ()) if at >= since]

    def summary(self) -> dict[str, Any]:
        return {
            "waiting": self.waiting_count(),
            "in_flight": dict(sorted(self.in_flight.items())),
            "open": len(self.open),
        }
