"""What is checked of a job right before it is recorded (``Sheratan.submit_job``'s ``admit``).

The CLI checks the creation limits against the saved queue view, folded to the end of the
log (``job create``); the API server also checks the job-only gates (403) and keeps its queue
view live in memory, folding only what was appended since the last create (``ApiAdmission``).
"""

from __future__ import annotations

import threading

from events import utc_now
from events.jobs import JobCreated
from projections.queue import QueueView
from sheratan.app import GateRefusedError
from sheratan.decide.gates import JobGates
from sheratan.home import Home
from sheratan.limits import Limits, check_backpressure
from sheratan.views import QUEUE


class CliAdmission:
    """The creation limits, against the queue as the log has it now (exit 2 when refused)."""

    def __init__(self, home: Home, limits: Limits) -> None:
        self.home = home
        self.limits = limits

    def __call__(self, created: JobCreated) -> None:
        check_backpressure(self.limits, self.home.views.current(QUEUE), created, utc_now())


class ApiAdmission:
    """The job-only gates (GateRefusedError: 403), then the creation limits
    (BackpressureError: 429), against a queue view the server keeps up to date."""

    def __init__(self, home: Home, gates: JobGates, limits: Limits) -> None:
        self.home = home
        self.gates = gates
        self.limits = limits
        self._lock = threading.Lock()
        self._queue: QueueView | None = None

    def __call__(self, created: JobCreated) -> None:
        refusal = self.gates.admission(created.kind, created.payload)
        if refusal is not None:
            raise GateRefusedError(refusal)
        with self._lock:
            if self._queue is None:
                self._queue = self.home.views.current(QUEUE)
            else:
                self.home.views.advance(self._queue)
            check_backpressure(self.limits, self._queue, created, utc_now())
