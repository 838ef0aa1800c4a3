"""The job-state fold and the jobs/queue view: pure functions of the events, nothing else.

``apply_job(state, event)`` evolves one job; ``JobsView`` folds every job event of a log and
keeps the position it has reached, so it can resume, be rebuilt from zero, or be computed
"as of position N" by stopping there. The fold trusts the log: the application checks the
lifecycle before it records an event (sheratan.lifecycle), so every recorded transition is
one that was allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import msgspec

from events import Event
from events.decisions import Metrics
from events.jobs import (
    JOB_EVENTS,
    PRIORITIES,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDispatched,
    JobFailed,
    JobQuarantined,
    JobQueued,
    JobRequeued,
    JobResultLate,
    JobResumed,
    JobRetryScheduled,
    JobStarted,
    JobTimedOut,
    Priority,
)

Status = Literal[
    "created",
    "queued",
    "dispatched",
    "running",
    "completed",
    "failed",
    "retry_scheduled",
    "timed_out",
    "cancelled",
    "quarantined",
]


def _age(job: JobState) -> tuple[datetime, UUID]:
    """Oldest first (the id orders jobs made in the same instant)."""
    return job.created_at, job.id


PRIORITY_RANK = {priority: rank for rank, priority in enumerate(PRIORITIES)}
#: The statuses in which an attempt holds a lease.
LEASED: frozenset[str] = frozenset({"dispatched", "running"})


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """A job as its events made it."""

    id: UUID
    version: int
    status: Status
    kind: str
    payload: dict[str, Any]
    payload_hash: str
    priority: Priority
    timeout_seconds: float
    depends_on: tuple[UUID, ...]
    idempotency_key: str | None
    max_retries: int
    task_id: UUID | None = None
    mission_id: UUID | None = None
    retry_count: int = 0
    attempt: int = 0
    worker: str | None = None
    lease_until: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    cancelled_by: UUID | None = None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None = None
    namespace: str = ""
    #: The decision whose attempt is open (the one its result will score), or the recovery
    #: decision that scheduled the next attempt.
    decision_id: UUID | None = None
    #: What a recovery decision scheduled: the worker of a RETRY or FALLBACK (None after a
    #: QUARANTINE: a new dispatch decision), and the earliest time of the next attempt.
    retry_worker: str | None = None
    not_before: datetime | None = None
    #: What the last ended attempt measured (Score v1's inputs) and the artifacts it made.
    metrics: Metrics | None = None
    artifacts: tuple[str, ...] = ()


def _created(event: JobCreated) -> JobState:
    return JobState(
        id=event.originator_id,
        version=event.originator_version,
        status="created",
        kind=event.kind,
        payload=event.payload,
        payload_hash=event.payload_hash,
        priority=event.priority,
        timeout_seconds=event.timeout_seconds,
        depends_on=event.depends_on,
        idempotency_key=event.idempotency_key,
        max_retries=event.max_retries,
        task_id=event.task_id,
        mission_id=event.mission_id,
        namespace=event.namespace,
        created_at=event.timestamp,
        updated_at=event.timestamp,
    )


def _advance(job: JobState, event: Any, **changes: Any) -> JobState:
    """The job one event later: its version and time, and what the event changes."""
    return msgspec.structs.replace(
        job, version=event.originator_version, updated_at=event.timestamp, **changes
    )


#: How each non-creating job event changes a job (a table, not a chain of isinstance checks:
#: the fold runs for every event of a rebuild).
_STEPS: dict[type[Event], Callable[[JobState, Any], JobState]] = {
    JobQueued: lambda j, e: _advance(j, e, status="queued", queued_at=e.timestamp),
    JobDispatched: lambda j, e: _advance(
        j,
        e,
        status="dispatched",
        worker=e.worker,
        attempt=e.attempt,
        lease_until=e.lease_until,
        decision_id=e.decision_id,
        retry_worker=None,
        not_before=None,
    ),
    JobStarted: lambda j, e: _advance(j, e, status="running", worker=e.worker, attempt=e.attempt),
    JobCompleted: lambda j, e: _advance(
        j,
        e,
        status="completed",
        result=e.result,
        lease_until=None,
        metrics=e.metrics,
        artifacts=e.artifacts,
    ),
    JobFailed: lambda j, e: _advance(
        j,
        e,
        status="failed",
        error=e.error,
        error_code=e.code,
        lease_until=None,
        metrics=e.metrics,
        artifacts=(),
    ),
    JobRetryScheduled: lambda j, e: _advance(
        j,
        e,
        status="retry_scheduled",
        retry_count=e.retry_count,
        decision_id=e.decision_id,
        retry_worker=e.worker,
        not_before=e.not_before,
    ),
    JobTimedOut: lambda j, e: _advance(
        j, e, status="timed_out", error="timed out", error_code="timeout", lease_until=None
    ),
    JobCancelled: lambda j, e: _advance(
        j, e, status="cancelled", error=e.reason or None, lease_until=None, cancelled_by=e.cause
    ),
    JobQuarantined: lambda j, e: _advance(
        j, e, status="quarantined", error=e.reason, lease_until=None
    ),
    JobRequeued: lambda j, e: _back_in_queue(j, e),
    JobResumed: lambda j, e: _back_in_queue(j, e),
    JobResultLate: lambda j, e: _advance(j, e),
}


def _back_in_queue(job: JobState, event: Any) -> JobState:
    """An operator's requeue or resume: queued again, the last error and cause cleared."""
    return _advance(
        job,
        event,
        status="queued",
        queued_at=event.timestamp,
        error=None,
        error_code=None,
        cancelled_by=None,
        retry_worker=None,
        not_before=None,
    )


def apply_job(state: JobState | None, event: Event) -> JobState:
    """Evolve one job by one of its events."""
    step = _STEPS.get(type(event))
    if step is None:
        if isinstance(event, JobCreated):
            return _created(event)
        msg = f"{type(event).__name__} is not a job event"
        raise TypeError(msg)
    if state is None:
        msg = f"{type(event).__name__} for job {event.originator_id} before job.created"
        raise ValueError(msg)
    return step(state, event)


def project_job(state: JobState | None, events: Any) -> JobState | None:
    """A projector function for eventsourcing's Repository.get: fold a job's events."""
    for event in events:
        state = apply_job(state, event)
    return state


JOB_TOPICS = frozenset(cls.TOPIC for cls in JOB_EVENTS)


class JobsView:
    """Every job's state, the queue, and the log position folded so far.

    The queue is kept incrementally, one insertion-ordered dict per priority, so taking the
    next job is O(1) however many jobs the view holds.
    """

    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(JOB_EVENTS)

    def __init__(self, position: int = 0, jobs: dict[UUID, JobState] | None = None) -> None:
        self.position = position
        self.jobs: dict[UUID, JobState] = jobs if jobs is not None else {}
        #: Each job's direct dependents, in creation order (derived from depends_on, so a
        #: saved snapshot needs no second copy of it).
        self.dependents: dict[UUID, list[UUID]] = {}
        for job in sorted(self.jobs.values(), key=lambda job: (job.created_at, str(job.id))):
            self._link(job)
        self._queued: list[dict[UUID, None]] = [{} for _ in PRIORITIES]
        #: Jobs whose attempt holds a lease (dispatched or running): what a sweep looks at.
        self.leased: dict[UUID, None] = {
            job.id: None for job in self.jobs.values() if job.status in LEASED
        }
        waiting = [job for job in self.jobs.values() if job.status == "queued"]
        for job in sorted(waiting, key=lambda job: (job.queued_at, str(job.id))):
            self._queued[PRIORITY_RANK[job.priority]][job.id] = None

    def apply(self, position: int, event: Event) -> None:
        """Fold the event at ``position``; events of other kinds only advance the position."""
        if type(event) in self.FOLDS:
            job_id = event.originator_id
            before = self.jobs.get(job_id)
            after = apply_job(before, event)
            self.jobs[job_id] = after
            if before is None:
                self._link(after)
            was_queued = before is not None and before.status == "queued"
            if was_queued and after.status != "queued":
                del self._queued[PRIORITY_RANK[after.priority]][job_id]
            elif after.status == "queued" and not was_queued:
                self._queued[PRIORITY_RANK[after.priority]][job_id] = None
            if after.status in LEASED:
                self.leased[job_id] = None
            elif before is not None and before.status in LEASED:
                self.leased.pop(job_id, None)
        self.position = position

    def _link(self, job: JobState) -> None:
        for dependency in job.depends_on:
            self.dependents.setdefault(dependency, []).append(job.id)

    def queue(self) -> list[JobState]:
        """Queued jobs in dispatch order: by priority, then first queued first."""
        return [self.jobs[job_id] for level in self._queued for job_id in level]

    def queue_depth(self) -> int:
        """How many jobs are queued, of every namespace (O(1))."""
        return sum(len(level) for level in self._queued)

    def queued(self) -> Iterator[JobState]:
        """The queue, lazily: stop early without building the whole list.

        Do not fold events while iterating (a job leaving the queue changes it).
        """
        for level in self._queued:
            for job_id in level:
                yield self.jobs[job_id]

    def matching(
        self,
        status: str | None = None,
        kind: str | None = None,
        mission_id: UUID | None = None,
        task_id: UUID | None = None,
    ) -> list[JobState]:
        """The jobs matching every filter given (``job list``, ``GET /api/jobs``): oldest
        first, but queued jobs alone (``status`` "queued") in dispatch order."""
        jobs = self.queue() if status == "queued" else sorted(self.jobs.values(), key=_age)
        return [
            job
            for job in jobs
            if (status is None or job.status == status)
            and (kind is None or job.kind == kind)
            and (mission_id is None or job.mission_id == mission_id)
            and (task_id is None or job.task_id == task_id)
        ]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        out: dict[str, int] = {}
        for job in self.jobs.values():
            out[job.status] = out.get(job.status, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        return {"jobs": len(self.jobs), "counts": self.counts()}
