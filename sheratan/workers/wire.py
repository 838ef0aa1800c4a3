"""The pull protocol's bodies, shared by the API's worker routes and ``worker run --api``.

A worker claims an attempt (``Claim``: the job and its attempt token), runs it, and reports
the outcome (``Report``); the answer (``Answer``) says what the log holds for the job after
it, and whether this report was the one recorded. In between it heartbeats (``Beating``:
the attempts it runs), and the answer (``Beat``) names the leases that beat extended.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from events.decisions import ErrorInfo
from projections.jobs import JobState
from sheratan.workers.outcome import Outcome

#: Longest long-poll of a claim (seconds).
MAX_WAIT_S = 30
#: Most attempts one worker runs at once (``--concurrency``), so most one heartbeat names.
MAX_RUNNING = 64


class Claim(msgspec.Struct, kw_only=True):
    """An attempt leased to the worker and now claimed by it (``job.started`` recorded), or
    nothing (``job`` null) when none came within the wait."""

    job: JobState | None = None
    attempt_token: str | None = None


#: A latency or a cost: never negative.
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class ReportedMetrics(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What an outside worker measured (over HTTP or in a WebRelay result file)."""

    latency_ms: NonNegative = 0.0
    cost: NonNegative = 0.0
    quality: float = 0.0
    risk: float = 0.0


class Report(msgspec.Struct, kw_only=True):
    """The outcome of one claimed attempt, with the attempt token the claim gave."""

    job_id: UUID
    attempt: int
    attempt_token: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    metrics: ReportedMetrics = msgspec.field(default_factory=ReportedMetrics)
    artifacts: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, job: JobState, attempt_token: str, outcome: Outcome) -> Report:
        return cls(
            job_id=job.id,
            attempt=job.attempt,
            attempt_token=attempt_token,
            ok=outcome.ok,
            result=outcome.result,
            error=outcome.error,
            metrics=ReportedMetrics(
                latency_ms=outcome.latency_ms,
                cost=outcome.cost,
                quality=outcome.quality,
                risk=outcome.risk,
            ),
            artifacts=list(outcome.artifacts),
        )

    def outcome(self) -> Outcome:
        return Outcome(
            self.ok,
            self.metrics.latency_ms,
            self.metrics.cost,
            self.metrics.quality,
            self.metrics.risk,
            result=self.result,
            error=self.error,
            artifacts=tuple(self.artifacts),
        )


class Answer(msgspec.Struct, kw_only=True):
    """What the log holds for the job after a report: ``recorded`` is true for the report
    that was applied (``event`` names it), false for a repeated, stale or late-again one,
    which changed nothing."""

    job_id: UUID
    attempt: int
    recorded: bool
    event: str | None
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None


class Held(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An attempt a worker runs."""

    job_id: UUID
    attempt: int


class Beating(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A heartbeat's body: the attempts the worker runs now. Their leases, and those of the
    attempts leased to it that it has yet to claim, are extended when less than half a term
    is left; a running attempt it does not name is left to expire."""

    running: Annotated[list[Held], msgspec.Meta(max_length=MAX_RUNNING)] = msgspec.field(
        default_factory=list
    )


class Extended(msgspec.Struct, kw_only=True, frozen=True):
    """A lease a heartbeat extended (``job.lease_extended``), and until when."""

    job_id: UUID
    attempt: int
    lease_until: datetime


class Beat(msgspec.Struct, kw_only=True):
    """The answer to a heartbeat: the worker's last_seen, and the leases it extended."""

    worker_id: str
    last_seen: str
    extended: list[Extended] = msgspec.field(default_factory=list)
