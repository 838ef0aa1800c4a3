"""The job-state fold and the jobs/queue view: pure functions of the events, nothing else.

``apply_job(state, event)`` evolves one job; ``JobsView`` folds every job event of a log and
keeps the position it has reached, so it can resume, be rebuilt from zero, or be computed
"as of position N" by stopping there. The fold trusts the log: the application checks the
lifecycle before it records an event (sheratan.lifecycle), so every recorded transition is
one that was allowed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import msgspec

from events import Event
from events.chains import ChainLink
from events.decisions import Metrics
from events.jobs import (
    JOB_EVENTS,
    PRIORITIES,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDispatched,
    JobFailed,
    JobLeaseExtended,
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
    #: The open attempt's hard limit, and the term its heartbeats extend the lease by (None:
    #: the lease is the deadline and is never extended; see events.jobs.JobDispatched).
    deadline: datetime | None = None
    lease_term_s: float | None = None
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
    #: A follow-up job's place in its chain (None: a job someone created).
    chain: ChainLink | None = None
    #: Who pays for its attempts and the most one may be estimated at (micro-units).
    payer: str | None = None
    budget_micros: int | None = None


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
        chain=event.chain,
        payer=event.payer,
        budget_micros=event.budget_micros,
        created_at=event.timestamp,
        updated_at=event.timestamp,
    )


#: The status each job event leaves a job in (None: the status stays). One table for the
#: full fold (``_created``, ``_advance``) and the slider's compact ``JobStatusView``.
STATUS_AFTER: dict[type[Event], Status | None] = {
    JobCreated: "created",
    JobQueued: "queued",
    JobDispatched: "dispatched",
    JobStarted: "running",
    JobCompleted: "completed",
    JobFailed: "failed",
    JobRetryScheduled: "retry_scheduled",
    JobTimedOut: "timed_out",
    JobCancelled: "cancelled",
    JobQuarantined: "quarantined",
    JobRequeued: "queued",
    JobResumed: "queued",
    JobResultLate: None,
    JobLeaseExtended: None,
}


def _advance(job: JobState, event: Any, **changes: Any) -> JobState:
    """The job one event later: its version, time and status, and what the event changes."""
    status = STATUS_AFTER[type(event)]
    if status is not None:
        changes["status"] = status
    return msgspec.structs.replace(
        job, version=event.originator_version, updated_at=event.timestamp, **changes
    )


#: How each non-creating job event changes a job (a table, not a chain of isinstance checks:
#: the fold runs for every event of a rebuild).
_STEPS: dict[type[Event], Callable[[JobState, Any], JobState]] = {
    JobQueued: lambda j, e: _advance(j, e, queued_at=e.timestamp),
    JobDispatched: lambda j, e: _advance(
        j,
        e,
        worker=e.worker,
        attempt=e.attempt,
        lease_until=e.lease_until,
        deadline=e.deadline,
        lease_term_s=e.lease_term_s,
        decision_id=e.decision_id,
        retry_worker=None,
        not_before=None,
    ),
    JobStarted: lambda j, e: _advance(j, e, worker=e.worker, attempt=e.attempt),
    JobLeaseExtended: lambda j, e: _advance(j, e, lease_until=e.lease_until),
    JobCompleted: lambda j, e: _advance(
        j,
        e,
        result=e.result,
        lease_until=None,
        metrics=e.metrics,
        artifacts=e.artifacts,
    ),
    JobFailed: lambda j, e: _advance(
        j,
        e,
        error=e.error,
        error_code=e.code,
        lease_until=None,
        metrics=e.metrics,
        artifacts=(),
    ),
    JobRetryScheduled: lambda j, e: _advance(
        j,
        e,
        retry_count=e.retry_count,
        decision_id=e.decision_id,
        retry_worker=e.worker,
        not_before=e.not_before,
    ),
    JobTimedOut: lambda j, e: _advance(
        j, e, error="timed out", error_code="timeout", lease_until=None
    ),
    JobCancelled: lambda j, e: _advance(
        j, e, error=e.reason or None, lease_until=None, cancelled_by=e.cause
    ),
    JobQuarantined: lambda j, e: _advance(j, e, error=e.reason, lease_until=None),
    JobRequeued: lambda j, e: _back_in_queue(j, e),
    JobResumed: lambda j, e: _back_in_queue(j, e),
    JobResultLate: lambda j, e: _advance(j, e),
}


def _back_in_queue(job: JobState, event: Any) -> JobState:
    """An operator's requeue or resume: queued again, the last error and cause cleared."""
    return _advance(
        job,
        event,
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
        #: Queued jobs per namespace (real work "", the simulations'): the queue-depth rule's.
        self._queued_in: Counter[str] = Counter(job.namespace for job in waiting)

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
                self._queued_in[after.namespace] -= 1
            elif after.status == "queued" and not was_queued:
                self._queued[PRIORITY_RANK[after.priority]][job_id] = None
                self._queued_in[after.namespace] += 1
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

    def queue_depth(self, namespace: str | None = None) -> int:
        """How many jobs are queued, of ``namespace`` or of every namespace (O(1))."""
        if namespace is None:
            return sum(len(level) for level in self._queued)
        return self._queued_in[namespace]

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


class JobStatusView:
    """Each job's status and nothing else: what the time-travel slider counts.

    The full ``JobsView`` of a 1M-event log saves to tens of megabytes; this one saves to a
    few, so many snapshots of it can be kept along the log. It folds by ``STATUS_AFTER``,
    the table the full fold takes its statuses from, so both always agree. Jobs are keyed by
    their id's number (``UUID.int``): a snapshot loads 200k of them in a tenth of the time
    UUID objects take.
    """

    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(STATUS_AFTER)

    def __init__(self, position: int = 0, statuses: dict[int, Status] | None = None) -> None:
        self.position = position
        self.statuses: dict[int, Status] = statuses if statuses is not None else {}

    def apply(self, position: int, event: Event) -> None:
        """Fold the event at ``position``; events that change no status only advance it."""
        status = STATUS_AFTER.get(type(event))
        if status is not None:
            self.statuses[event.originator_id.int] = status
        self.position = position

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        return dict(Counter(self.statuses.values()))

    def summary(self) -> dict[str, Any]:
        return {"jobs": len(self.statuses), "counts": self.counts()}
