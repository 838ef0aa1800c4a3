"""What an attempt produced, whatever the transport: the input to Score v1."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from events.decisions import ErrorInfo, Metrics
from projections.jobs import JobState, JobsView
from projections.workers import WorkerState


@dataclass(frozen=True)
class Outcome:
    ok: bool
    latency_ms: float
    cost: float = 0.0
    quality: float = 0.0
    risk: float = 0.0
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    artifacts: tuple[str, ...] = field(default_factory=tuple)

    def metrics(self, retries: int) -> Metrics:
        """What Score v1 reads of this outcome, for a job that had ``retries`` retries."""
        return Metrics(
            latency_ms=self.latency_ms,
            cost=self.cost,
            retries=retries,
            risk=self.risk,
            quality=self.quality,
        )


class Transport(Protocol):
    """How a job reaches a worker and its outcome comes back, within the dispatching process
    (local, simulated): ``execute`` runs the attempt and returns its outcome."""

    def execute(self, job: JobState, worker: WorkerState) -> Outcome: ...


@dataclass(frozen=True)
class Collected:
    """An outcome a handoff collected for one attempt."""

    job_id: UUID
    worker: str
    attempt: int
    outcome: Outcome


class Handoff(Protocol):
    """A transport whose worker runs elsewhere and is reached by the dispatcher (webrelay):
    the attempt is handed over right after its lease, and its outcome collected later, by
    whichever dispatcher looks. ``collect`` returns each outcome once; what it cannot accept
    it keeps out of the log, with a reason, its own way."""

    def send(self, job: JobState, worker: WorkerState) -> None: ...

    def collect(self, jobs: JobsView, now: datetime) -> list[Collected]: ...


#: How much of an unexpected error's message an outcome keeps (it goes into the permanent log).
MAX_ERROR_MESSAGE_CHARS = 500


def run_attempt(transport: Transport, job: JobState, worker: WorkerState) -> Outcome:
    """The transport's outcome; any exception it raises is a failed outcome instead.

    No error escapes a worker: an exception left to propagate would leave the job running
    with nobody holding it, so it becomes a failed attempt whose error code is the
    exception's class and whose message names the class too, and recovery runs as for any
    failure. (KeyboardInterrupt and SystemExit are not errors of the job; they still stop.)
    """
    started = time.perf_counter()
    try:
        outcome = transport.execute(job, worker)
    except Exception as error:  # every error of the job, whatever its class
        elapsed_ms = (time.perf_counter() - started) * 1000
        name = type(error).__name__
        message = f"{name}: {error}"[:MAX_ERROR_MESSAGE_CHARS]
        return Outcome(False, elapsed_ms, error=ErrorInfo(name, message))
    problem = outcome_problem(outcome)
    if problem is None:
        return outcome
    elapsed_ms = (time.perf_counter() - started) * 1000
    return Outcome(False, elapsed_ms, error=ErrorInfo("invalid_outcome", problem))


def outcome_problem(outcome: Outcome) -> str | None:
    """Why an outcome may not enter the log (a non-finite metric, a result that is not JSON,
    an artifact that is not text), or None. JSON has no NaN: a NaN would be written as null
    and the event could not be read back."""
    numbers = {
        "latency_ms": outcome.latency_ms,
        "cost": outcome.cost,
        "quality": outcome.quality,
        "risk": outcome.risk,
    }
    bad = [name for name, value in numbers.items() if not math.isfinite(value)]
    if bad:
        return f"the worker reported a non-finite {', '.join(bad)}"
    if not all(isinstance(artifact, str) for artifact in outcome.artifacts):
        return "the worker reported an artifact that is not text"
    try:
        msgspec.json.encode(outcome.result)
    except (TypeError, ValueError, OverflowError) as error:
        return f"the worker's result is not JSON: {error}"[:MAX_ERROR_MESSAGE_CHARS]
    return None
