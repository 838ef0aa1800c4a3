"""Workers as their events made them: kinds, transport, health, and their recent record.

The recent record (the outcomes of a worker's last ``RECENT_ATTEMPTS`` attempts) is folded
from the job events: ``job.dispatched`` names the worker of an attempt, ``job.completed``,
``job.failed`` and ``job.timed_out`` end it. Gate G5_evidence reads it before a decision may
quarantine the worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import msgspec

from events import Event
from events.jobs import (
    JobCancelled,
    JobCompleted,
    JobDispatched,
    JobFailed,
    JobQuarantined,
    JobTimedOut,
)
from events.workers import (
    WORKER_EVENTS,
    Transport,
    WorkerHeartbeat,
    WorkerQuarantined,
    WorkerRegistered,
    WorkerReleased,
)


class WorkerState(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    stream: UUID
    version: int
    kinds: tuple[str, ...]
    transport: Transport
    cost_hint: float
    profile: dict[str, Any] | None
    status: Literal["active", "quarantined"] = "active"
    quarantine_reason: str | None = None
    quarantined_until: datetime | None = None
    registered_at: datetime
    last_seen: datetime
    #: Outcomes of its last attempts, oldest first (True: completed), at most RECENT_ATTEMPTS.
    recent: tuple[bool, ...] = ()
    namespace: str = ""


#: Attempts kept in a worker's recent record (the evidence gate's window is at most this).
RECENT_ATTEMPTS = 50
#: Job events that end an attempt, and whether the attempt succeeded.
_ENDS: dict[type[Event], bool | None] = {
    JobCompleted: True,
    JobFailed: False,
    JobTimedOut: False,
    JobCancelled: None,  # ends the attempt without saying anything about the worker
    JobQuarantined: None,
}


def record_outcome(state: WorkerState, ok: bool) -> WorkerState:
    """The worker with one more attempt outcome in its recent record."""
    return msgspec.structs.replace(state, recent=(*state.recent, ok)[-RECENT_ATTEMPTS:])


def apply_worker(state: WorkerState | None, event: Event) -> WorkerState:
    if isinstance(event, WorkerRegistered):
        described: dict[str, Any] = {
            "version": event.originator_version,
            "kinds": event.kinds,
            "transport": event.transport,
            "cost_hint": event.cost_hint,
            "profile": event.profile,
            "namespace": event.namespace,
            "last_seen": event.timestamp,
        }
        if state is not None:  # registered again: what it is changes, its record stays
            return msgspec.structs.replace(state, **described)
        return WorkerState(
            id=event.worker_id,
            stream=event.originator_id,
            registered_at=event.timestamp,
            **described,
        )
    if state is None:
        msg = f"{type(event).__name__} before worker.registered"
        raise ValueError(msg)
    common = {"version": event.originator_version}
    if isinstance(event, WorkerHeartbeat):
        return msgspec.structs.replace(state, last_seen=event.timestamp, **common)
    if isinstance(event, WorkerQuarantined):
        return msgspec.structs.replace(
            state,
            status="quarantined",
            quarantine_reason=event.reason,
            quarantined_until=event.until,
            **common,
        )
    if isinstance(event, WorkerReleased):
        return msgspec.structs.replace(
            state, status="active", quarantine_reason=None, quarantined_until=None, **common
        )
    msg = f"{type(event).__name__} is not a worker event"
    raise TypeError(msg)


def project_worker(state: WorkerState | None, events: Any) -> WorkerState | None:
    """A projector function for eventsourcing's Repository.get."""
    for event in events:
        state = apply_worker(state, event)
    return state


class WorkersView:
    """Every registered worker's state, and which worker holds each job's open attempt."""

    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset({*WORKER_EVENTS, JobDispatched, *_ENDS})

    def __init__(self) -> None:
        self.position = 0
        self.workers: dict[str, WorkerState] = {}
        self.by_stream: dict[Any, str] = {}
        #: job id -> the worker its open attempt was dispatched to.
        self.attempts: dict[UUID, str] = {}
        #: worker id -> how many open attempts it holds (the ``worker_limit`` gate's count).
        self.held: dict[str, int] = {}

    def restore_attempts(self, attempts: dict[UUID, str]) -> None:
        """Put back the open attempts of a saved snapshot, with the counts per worker."""
        self.attempts = dict(attempts)
        self.held = {}
        for worker_id in attempts.values():
            self.held[worker_id] = self.held.get(worker_id, 0) + 1

    def _release(self, job_id: UUID) -> str | None:
        worker_id = self.attempts.pop(job_id, None)
        if worker_id is not None:
            left = self.held[worker_id] - 1
            if left:
                self.held[worker_id] = left
            else:
                del self.held[worker_id]
        return worker_id

    def apply(self, position: int, event: Event) -> None:
        kind = type(event)
        if kind is JobDispatched:
            holder: str = event.worker  # type: ignore[attr-defined]
            self._release(event.originator_id)
            self.attempts[event.originator_id] = holder
            self.held[holder] = self.held.get(holder, 0) + 1
        elif kind in _ENDS:
            worker_id = self._release(event.originator_id)
            ok = _ENDS[kind]
            if worker_id in self.workers and ok is not None:
                self.workers[worker_id] = record_outcome(self.workers[worker_id], ok)
        elif isinstance(event, WorkerRegistered):
            self.by_stream[event.originator_id] = event.worker_id
            self.workers[event.worker_id] = apply_worker(self.workers.get(event.worker_id), event)
        elif isinstance(event, WorkerHeartbeat | WorkerQuarantined | WorkerReleased):
            worker_id = self.by_stream[event.originator_id]
            self.workers[worker_id] = apply_worker(self.workers[worker_id], event)
        self.position = position

    def summary(self) -> dict[str, int]:
        quarantined = sum(w.status == "quarantined" for w in self.workers.values())
        return {"workers": len(self.workers), "quarantined": quarantined}
