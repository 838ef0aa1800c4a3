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
from sheratan.limits import BackpressureError, Limits, check_backpressure
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
    (BackpressureError: 429), against a queue view the server keeps in memory. The view is
    folded forward only when a create comes near a limit: until then the events it lags
    behind could not push any count over one (``check_backpressure``'s ``slack``)."""

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
        now = utc_now()
        with self._lock:
            if self._queue is None:
                self._queue = self.home.views.current(QUEUE)
            queue = self._queue
            behind = self.home.ledger.last_position() - queue.position
            try:  # far from every limit: no need to read what the view lags behind
                check_backpressure(self.limits, queue, created, now, slack=behind)
            except BackpressureError:
                self.home.views.advance(queue)
                check_backpressure(self.limits, queue, created, now)
