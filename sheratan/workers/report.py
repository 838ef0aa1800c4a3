"""How a worker reports an attempt: the events of its claim, its lease and its outcome.

Every worker, in-process or a daemon of its own, reports through these functions, so an
attempt's events are the same whoever ran it. A worker reports only for the attempt it was
leased (``job.dispatched`` names worker and attempt); once the lease has expired, or the
job has moved on, its result is recorded as late (``job.result_late``) and completes and
scores nothing.

Leases. An attempt's deadline is its dispatch + the job's ``timeout_seconds``. A worker of a
transport that heartbeats (``HEARTBEATING``) is leased one term (``lease_term_s`` of
policies/gates.json) at a time: each heartbeat that finds less than half a term left records
``job.lease_extended`` to one term from now, never past the deadline. A worker that dies
stops extending, so its attempt is swept within a term rather than at its deadline.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from events import Event
from events.decisions import ErrorInfo
from events.jobs import JobCompleted, JobFailed, JobLeaseExtended, JobResultLate, JobStarted
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


#: Transports whose workers heartbeat while they hold attempts: the in-home daemon and outside
#: workers over the API (both register as ``process``). The others (local, simulated,
#: webrelay) are leased until the deadline.
HEARTBEATING = frozenset({"process"})


@dataclass(frozen=True)
class Lease:
    """An attempt's lease at dispatch: ``until`` (at most ``deadline``) and the term its
    heartbeats extend it by (None: never extended)."""

    until: datetime
    deadline: datetime
    term_s: float | None


def lease_at_dispatch(transport: str, timeout_s: float, term_s: float, now: datetime) -> Lease:
    """One term for a worker that heartbeats (its timeout when that is shorter), the whole
    timeout for the rest."""
    deadline = now + timedelta(seconds=timeout_s)
    if transport not in HEARTBEATING:
        return Lease(deadline, deadline, None)
    return Lease(min(deadline, now + timedelta(seconds=term_s)), deadline, term_s)


def extensions(
    jobs: JobsView, worker: str, running: Mapping[UUID, int], now: datetime
) -> list[Event]:
    """What a heartbeat of ``worker`` extends: each attempt leased to it that it still holds
    and either runs (``running`` names it: job -> attempt) or has yet to claim, once less than
    half its term is left. A running attempt it does not name (one a restarted worker lost)
    is left to expire."""
    events: list[Event] = []
    for job_id in jobs.leased:
        job = jobs.jobs[job_id]
        if not holds(job, worker, job.attempt, now):
            continue
        if job.status == "running" and running.get(job_id) != job.attempt:
            continue
        event = _extension(job, now)
        if event is not None:
            events.append(event)
    return events


def _extension(job: JobState, now: datetime) -> Event | None:
    if job.lease_term_s is None or job.deadline is None or job.lease_until is None:
        return None
    term = timedelta(seconds=job.lease_term_s)
    if job.lease_until - now >= term / 2:
        return None
    until = min(job.deadline, now + term)
    if until <= job.lease_until:
        return None  # at its deadline: nothing left to extend
    return job_event(job, JobLeaseExtended, now, attempt=job.attempt, lease_until=until)


def beat_interval(heartbeat_s: float, held: Iterable[JobState]) -> float:
    """Seconds between a worker's heartbeats: its own setting, and a third of the shortest
    lease term of the attempts it holds (so each lease is extended before it runs out)."""
    return min([heartbeat_s, *(job.lease_term_s / 3 for job in held if job.lease_term_s)])


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
