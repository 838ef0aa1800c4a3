"""How a worker reports an attempt: the events of its claim and of its outcome.

Every worker, in-process or a daemon of its own, reports through these functions, so an
attempt's events are the same whoever ran it. A worker reports only for the attempt it was
leased (``job.dispatched`` names worker and attempt); once the lease has expired, or the
job has moved on, its result is recorded as late (``job.result_late``) and completes and
scores nothing.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from datetime import datetime

from events import Event
from events.decisions import ErrorInfo
from events.jobs import JobCompleted, JobFailed, JobResultLate, JobStarted
from projections.jobs import LEASED, JobState, JobsView
from sheratan.lifecycle import job_event
from sheratan.workers.outcome import Outcome


def holds(job: JobState, worker: str, attempt: int, now: datetime) -> bool:
    """Whether ``worker`` still holds the lease of the job's attempt ``attempt``."""
    return (
        job.status in LEASED
        and job.worker == worker
        and job.attempt == attempt
        and (job.lease_until is None or now <= job.lease_until)
    )


def unstarted(
    jobs: JobsView, worker: str, now: datetime, skip: Container[object] = ()
) -> Iterator[JobState]:
    """The attempts leased to ``worker`` that nobody has started (claimed) yet and whose
    lease still holds, but for the jobs in ``skip`` (ones the caller runs already)."""
    for job_id in jobs.leased:
        job = jobs.jobs[job_id]
        if (
            job.worker == worker
            and job.status == "dispatched"
            and job_id not in skip
            and holds(job, worker, job.attempt, now)
        ):
            yield job


def claim_event(job: JobState, now: datetime) -> Event:
    """``job.started``: the leased worker takes the attempt (recorded before it runs, so a
    worker that restarts never runs an attempt a second time)."""
    return job_event(job, JobStarted, now, worker=job.worker, attempt=job.attempt)


def outcome_event(
    job: JobState, worker: str, attempt: int, outcome: Outcome, now: datetime
) -> Event:
    """The attempt's completion or failure, or a late result when the lease is gone."""
    error = outcome.error or (None if outcome.ok else ErrorInfo("error", "the attempt failed"))
    if not holds(job, worker, attempt, now):
        return job_event(
            job,
            JobResultLate,
            now,
            attempt=attempt,
            worker=worker,
            ok=outcome.ok,
            result=outcome.result if outcome.ok else None,
            error=error,
            reason=_why_late(job, worker, attempt, now),
        )
    metrics = outcome.metrics(job.retry_count)
    if outcome.ok:
        return job_event(
            job,
            JobCompleted,
            now,
            result=outcome.result or {},
            attempt=attempt,
            metrics=metrics,
            artifacts=outcome.artifacts,
        )
    assert error is not None
    return job_event(
        job, JobFailed, now, error=error.message, code=error.code, attempt=attempt, metrics=metrics
    )


def _why_late(job: JobState, worker: str, attempt: int, now: datetime) -> str:
    if job.attempt != attempt or job.worker != worker:
        return f"attempt {attempt} of {worker} is over: the job is on attempt {job.attempt}"
    if job.status not in LEASED:
        return f"the job is {job.status}"
    return f"the lease expired at {job.lease_until:%Y-%m-%dT%H:%M:%S.%fZ}"
