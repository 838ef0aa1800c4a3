"""Workers as their events made them: kinds, transport, health."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import msgspec

from events import Event
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


def apply_worker(state: WorkerState | None, event: Event) -> WorkerState:
    if isinstance(event, WorkerRegistered):
        return WorkerState(
            id=event.worker_id,
            stream=event.originator_id,
            version=event.originator_version,
            kinds=event.kinds,
            transport=event.transport,
            cost_hint=event.cost_hint,
            profile=event.profile,
            registered_at=event.timestamp,
            last_seen=event.timestamp,
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
    """Every registered worker's state."""

    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(WORKER_EVENTS)

    def __init__(self) -> None:
        self.position = 0
        self.workers: dict[str, WorkerState] = {}
        self.by_stream: dict[Any, str] = {}

    def apply(self, position: int, event: Event) -> None:
        if isinstance(event, WorkerRegistered):
            self.by_stream[event.originator_id] = event.worker_id
            self.workers[event.worker_id] = apply_worker(None, event)
        elif isinstance(event, WorkerHeartbeat | WorkerQuarantined | WorkerReleased):
            worker_id = self.by_stream[event.originator_id]
            self.workers[worker_id] = apply_worker(self.workers[worker_id], event)
        self.position = position

    def summary(self) -> dict[str, int]:
        quarantined = sum(w.status == "quarantined" for w in self.workers.values())
        return {"workers": len(self.workers), "quarantined": quarantined}
