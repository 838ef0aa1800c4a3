"""The job state machine: which event may follow which status. Checked before recording."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events import Event
from events.jobs import (
    JobCancelled,
    JobCompleted,
    JobDispatched,
    JobFailed,
    JobQuarantined,
    JobQueued,
    JobRetryScheduled,
    JobStarted,
    JobTimedOut,
)
from projections.jobs import JobState, Status

TERMINAL: frozenset[Status] = frozenset({"completed", "cancelled", "quarantined"})

ALLOWED_FROM: dict[type[Event], frozenset[Status]] = {
    JobQueued: frozenset({"created", "retry_scheduled"}),
    JobDispatched: frozenset({"queued"}),
    JobStarted: frozenset({"dispatched"}),
    JobCompleted: frozenset({"dispatched", "running"}),
    JobFailed: frozenset({"dispatched", "running"}),
    JobTimedOut: frozenset({"dispatched", "running"}),
    JobRetryScheduled: frozenset({"failed", "timed_out"}),
    JobCancelled: frozenset(
        {"created", "queued", "dispatched", "running", "failed", "timed_out", "retry_scheduled"}
    ),
    JobQuarantined: frozenset({"created", "queued", "failed", "timed_out", "retry_scheduled"}),
}


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
