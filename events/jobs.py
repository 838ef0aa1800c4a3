"""Jobs: the unit a worker executes, and every transition of its lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from events import Event
from events.chains import ChainLink
from events.decisions import ErrorInfo, Metrics

Priority = Literal["critical", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("critical", "high", "normal", "low")


class JobCreated(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "job.created"

    task_id: UUID | None = None
    mission_id: UUID | None = None
    kind: str
    payload: dict[str, Any]
    payload_hash: str
    priority: Priority = "normal"
    timeout_seconds: float = 300.0
    depends_on: tuple[UUID, ...] = ()
    idempotency_key: str | None = None
    max_retries: int = 3
    #: Whose work this is: "" is real work; a simulation's jobs carry its own namespace, so
    #: ``dispatch`` never runs them and a simulation never runs a real job.
    namespace: str = ""
    #: A follow-up job's place in its chain (None: a job someone created).
    chain: ChainLink | None = None
    #: The account that pays for the job's attempts (None: nobody is charged), and the most
    #: one attempt may be estimated at, in micro-units (None: no limit).
    payer: str | None = None
    budget_micros: int | None = None


class JobQueued(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "job.queued"


class JobDispatched(Event, frozen=True, kw_only=True):
    """An attempt leased to ``worker`` until ``lease_until``.

    ``deadline`` is the attempt's hard limit (dispatch + the job's ``timeout_seconds``). A
    worker whose transport heartbeats gets a lease of one ``lease_term_s`` (at most the
    deadline), which its heartbeats extend (``job.lease_extended``) up to the deadline, so a
    dead worker's attempt is swept within a term. ``lease_term_s`` is None when the lease is
    the deadline (transports that do not heartbeat); both are None in logs written before
    lease terms, whose lease was always the deadline.
    """

    TOPIC: ClassVar[str] = "job.dispatched"

    worker: str
    attempt: int
    lease_until: datetime
    decision_id: UUID | None = None
    deadline: datetime | None = None
    lease_term_s: float | None = None


class JobStarted(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "job.started"

    worker: str
    attempt: int


class JobCompleted(Event, frozen=True, kw_only=True):
    """An attempt's success, recorded by the worker that held its lease.

    ``attempt`` and ``metrics`` (what Score v1 reads) are None in logs written before
    attempts were asynchronous: their decisions were scored in the dispatching process.
    """

    TOPIC: ClassVar[str] = "job.completed"

    result: dict[str, Any]
    attempt: int | None = None
    metrics: Metrics | None = None
    artifacts: tuple[str, ...] = ()


class JobFailed(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "job.failed"

    error: str
    code: str = "error"
    attempt: int | None = None
    metrics: Metrics | None = None


class JobRetryScheduled(Event, frozen=True, kw_only=True):
    """A recovery decision sends the job round again: to ``worker`` (RETRY, FALLBACK) or to a
    new dispatch decision (None: QUARANTINE), not before ``not_before``.

    A RETRY waits ``backoff_s`` (exponential in the retry count, ``jitter`` its random
    fraction, drawn from the run's seed and recorded here so replay needs no generator)."""

    TOPIC: ClassVar[str] = "job.retry_scheduled"

    retry_count: int
    not_before: datetime | None = None
    decision_id: UUID | None = None
    worker: str | None = None
    backoff_s: float = 0.0
    jitter: float = 0.0


class JobLeaseExtended(Event, frozen=True, kw_only=True):
    """The leased worker's heartbeat moved its attempt's lease to ``lease_until`` (never past
    the attempt's deadline): the worker is alive and still holds the attempt."""

    TOPIC: ClassVar[str] = "job.lease_extended"

    attempt: int
    lease_until: datetime


class JobTimedOut(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "job.timed_out"

    attempt: int


class JobResultLate(Event, frozen=True, kw_only=True):
    """A result for an attempt the worker no longer held (its lease expired, or the job was
    cancelled): kept for the record, it completes nothing and scores nothing."""

    TOPIC: ClassVar[str] = "job.result_late"

    attempt: int
    worker: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    reason: str


class JobCancelled(Event, frozen=True, kw_only=True):
    """A job that will not run. ``cause`` is the job whose end made it impossible (a failed,
    aborted, quarantined or cancelled dependency, direct or transitive), None when an operator
    or the lifecycle cancelled it for its own sake."""

    TOPIC: ClassVar[str] = "job.cancelled"

    reason: str = ""
    cause: UUID | None = None


class JobQuarantined(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "job.quarantined"

    reason: str


class JobRequeued(Event, frozen=True, kw_only=True):
    """An operator sent a failed, timed-out or quarantined job back to the queue for a new
    attempt (its retry count is kept: the operator grants one more attempt, not a new budget)."""

    TOPIC: ClassVar[str] = "job.requeued"

    reason: str


class JobResumed(Event, frozen=True, kw_only=True):
    """A job cancelled because of ``dependency`` is queued again: that dependency is back in
    play (completed, or requeued)."""

    TOPIC: ClassVar[str] = "job.resumed"

    dependency: UUID


JOB_EVENTS = (
    JobCreated,
    JobQueued,
    JobDispatched,
    JobStarted,
    JobCompleted,
    JobFailed,
    JobRetryScheduled,
    JobTimedOut,
    JobCancelled,
    JobQuarantined,
    JobRequeued,
    JobResumed,
    JobResultLate,
    JobLeaseExtended,
)
