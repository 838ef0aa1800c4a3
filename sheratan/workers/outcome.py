"""What an attempt produced, whatever the transport: the input to Score v1."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from events.decisions import ErrorInfo
from projections.jobs import JobState
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


class Transport(Protocol):
    """How a job reaches a worker and its outcome comes back."""

    def execute(self, job: JobState, worker: WorkerState) -> Outcome: ...
