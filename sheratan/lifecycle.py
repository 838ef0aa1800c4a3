"""The job state machine: which event may follow which status. Checked before recording.

Also the one rule that spans jobs: a job whose dependency can no longer complete is cancelled,
transitively, naming the dependency that ended first (``cascade_cancellations``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, get_args
from uuid import UUID

from events import Event
from events.jobs import (
    JobCancelled,
    JobCompleted,
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
)
from projections.jobs import JobState, JobsView, Status

#: The reason recorded when an operator cancels a job without giving one.
OPERATOR_CANCEL_REASON = "cancelled by an operator"

TERMINAL: frozenset[Status] = frozenset({"completed", "cancelled", "quarantined"})

ALLOWED_FROM: dict[type[Event], frozenset[Status]] = {
    JobQueued: frozenset({"created", "retry_scheduled"}),
    JobDispatched: frozenset({"queued"}),
    JobStarted: frozenset({"dispatched"}),
    JobLeaseExtended: frozenset({"dispatched", "running"}),
    JobCompleted: frozenset({"dispatched", "running"}),
    JobFailed: frozenset({"dispatched", "running"}),
    JobTimedOut: frozenset({"dispatched", "running"}),
    JobRetryScheduled: frozenset({"failed", "timed_out"}),
    JobCancelled: frozenset(
        {"created", "queued", "dispatched", "running", "failed", "timed_out", "retry_scheduled"}
    ),
    JobQuarantined: frozenset({"created", "queued", "failed", "timed_out", "retry_scheduled"}),
    JobRequeued: frozenset({"failed", "timed_out", "quarantined"}),
    JobResumed: frozenset({"cancelled"}),
    # A late result changes nothing but the record: any status after the first dispatch.
    JobResultLate: frozenset(get_args(Status)) - {"created"},
}

#: The statuses a dependent may be cancelled from.
CANCELLABLE = ALLOWED_FROM[JobCancelled]

#: A dependency in one of these statuses is back in play, so the jobs it cancelled may resume.
IN_PLAY: frozenset[Status] = frozenset(
    {"created", "queued", "dispatched", "running", "retry_scheduled", "completed"}
)

#: How much of a dependency's error a dependent's cancellation reason quotes.
MAX_QUOTED_ERROR_CHARS = 200


class IllegalTransitionError(ValueError):
    """An event that the job's current status does not allow; nothing was recorded."""


def check_transition(job: JobState, event_type: type[Event]) -> None:
    """Raise IllegalTransitionError unless ``event_type`` may follow the job's status."""
    allowed = ALLOWED_FROM[event_type]
    if job.status not in allowed:
        msg = (
            f"job {job.id} is {job.status}: {event_type.TOPIC} needs one of "
            f"{', '.join(sorted(allowed))}"
        )
        raise IllegalTransitionError(msg)
    if event_type is JobRetryScheduled and job.retry_count >= job.max_retries:
        msg = f"job {job.id} has used all {job.max_retries} retries"
        raise IllegalTransitionError(msg)


def job_event(job: JobState, event_type: type[Event], now: datetime, **fields: Any) -> Event:
    """The job's next event, after checking that its status allows it."""
    check_transition(job, event_type)
    return event_type(
        originator_id=job.id, originator_version=job.version + 1, timestamp=now, **fields
    )


def cascade_cancellations(view: JobsView, ended: JobState, now: datetime) -> list[Event]:
    """``job.cancelled`` for every job that depends on ``ended``, directly or transitively,
    and may still be cancelled; ``ended`` can no longer complete (failed for good, aborted,
    quarantined or cancelled).

    Each event's ``cause`` is the job whose end started the cascade (``ended`` itself, or the
    job that cancelled ``ended`` in turn), so in a chain a->b->c, c names a; that is what
    ``retry_dependents`` follows back. The walk descends only through jobs it cancels now:
    a dependent that had already ended had its own cascade then.
    """
    cause = ended.cancelled_by or ended.id
    origin = ended if cause == ended.id else view.jobs.get(cause, ended)
    because = f"dependency {cause} {origin.status}"
    if origin.error:
        because += f": {origin.error[:MAX_QUOTED_ERROR_CHARS]}"
    events: list[Event] = []
    for parent, job in _descendants(view, ended.id, lambda j: j.status in CANCELLABLE):
        reason = because if parent == cause else f"{because} (through {parent})"
        events.append(job_event(job, JobCancelled, now, reason=reason, cause=cause))
    return events


def resumptions(view: JobsView, dependency: JobState, now: datetime) -> list[Event]:
    """``job.resumed`` for every job that ``dependency``'s end cancelled (directly or
    transitively), once ``dependency`` is back in play; refused while it is not."""
    if dependency.status == "cancelled":
        msg = (
            f"job {dependency.id} is cancelled, which is final: the jobs it cancelled cannot "
            "resume (create them again)"
        )
        raise IllegalTransitionError(msg)
    if dependency.status not in IN_PLAY:
        msg = (
            f"job {dependency.id} is {dependency.status}: the jobs it cancelled resume only once "
            "it is completed or queued again (job requeue)"
        )
        raise IllegalTransitionError(msg)

    def cancelled_by_it(job: JobState) -> bool:
        return job.status == "cancelled" and job.cancelled_by == dependency.id

    return [
        job_event(job, JobResumed, now, dependency=dependency.id)
        for _, job in _descendants(view, dependency.id, cancelled_by_it)
    ]


def _descendants(
    view: JobsView, root: UUID, take: Callable[[JobState], bool]
) -> Iterator[tuple[UUID, JobState]]:
    """(parent, job) for each job reachable from ``root`` through dependents that ``take``
    accepts, breadth first, each once (a job may depend on several jobs of the same tree)."""
    seen = {root}
    frontier = deque([root])
    while frontier:
        parent = frontier.popleft()
        for child in view.dependents.get(parent, ()):
            if child in seen:
                continue
            seen.add(child)
            job = view.jobs[child]
            if take(job):
                yield parent, job
                frontier.append(child)
