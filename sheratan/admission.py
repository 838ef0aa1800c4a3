"""What is checked of a job right before it is recorded (``Sheratan.submit_job``'s ``admit``).

``job create`` checks the creation limits; the API server also checks the job-only gates
(403). Both read the saved queue view and fold it forward only when a create comes near a
limit: until then the events it lags behind could not push any count over one
(``check_backpressure``'s ``slack``), so a create reads no more of the log than its own
position. A fold near a limit is saved, so the next process starts nearer the end.
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


class Admission:
    """The job-only gates when given (GateRefusedError), then the creation limits
    (BackpressureError); safe to share between a server's threads."""

    def __init__(self, home: Home, limits: Limits, gates: JobGates | None = None) -> None:
        self.home = home
        self.limits = limits
        self.gates = gates
        self._lock = threading.Lock()
        self._queue: QueueView | None = None

    def __call__(self, created: JobCreated) -> None:
        if self.gates is not None:
            refusal = self.gates.admission(created.kind, created.payload)
            if refusal is not None:
                raise GateRefusedError(refusal)
        now = utc_now()
        views = self.home.views
        with self._lock:
            if self._queue is None:
                self._queue = views.saved(QUEUE)
            queue = self._queue
            behind = self.home.log.last_position() - queue.position
            try:  # far from every limit: no need to read what the view lags behind
                check_backpressure(self.limits, queue, created, now, slack=behind)
            except BackpressureError:
                views.save(QUEUE, views.advance(queue))
                check_backpressure(self.limits, queue, created, now)
