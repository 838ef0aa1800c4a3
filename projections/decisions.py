"""Decisions waiting for their score, and the jobs whose ended attempt has not scored them yet.

Dispatching and completing are separate steps joined by events: a ``decision.made`` opens a
decision, the job's attempt ends later (``job.completed``, ``job.failed``, ``job.timed_out``,
or the job is cancelled or quarantined under it), however late, in whichever process, and
then the decision is scored (``decision.scored`` closes it). This view is what joins them:
every open decision by job, and the jobs to settle, so a dispatcher that restarts finds
exactly the work it left.

An attempt's end settles every open decision of its job: the dispatch decision of the attempt
and a recovery decision that waited for it (a QUARANTINE sends the job to a new dispatch
decision; the recovery is scored by that attempt).
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from events import Event
from events.decisions import DecisionMade, DecisionScored
from events.jobs import JobCancelled, JobCompleted, JobFailed, JobQuarantined, JobTimedOut

#: Job events that end an attempt (or a job) and so settle its open decisions.
ENDINGS: frozenset[type[Event]] = frozenset(
    {JobCompleted, JobFailed, JobTimedOut, JobCancelled, JobQuarantined}
)


class OpenDecisionsView:
    """Open decisions by id and by job, and the jobs whose open decisions an ending awaits."""

    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset({DecisionMade, DecisionScored, *ENDINGS})

    def __init__(self) -> None:
        self.position = 0
        self.open: dict[UUID, DecisionMade] = {}
        self.by_job: dict[UUID, list[UUID]] = {}
        #: Jobs whose attempt ended while decisions of theirs were open, in ending order.
        self.to_settle: dict[UUID, None] = {}

    def apply(self, position: int, event: Event) -> None:
        kind = type(event)
        if kind is DecisionMade:
            made: DecisionMade = event  # type: ignore[assignment]
            self.open[made.originator_id] = made
            if made.job_id is not None:
                self.by_job.setdefault(made.job_id, []).append(made.originator_id)
        elif kind is DecisionScored:
            closed = self.open.pop(event.originator_id, None)
            if closed is not None and closed.job_id is not None:
                waiting = self.by_job.get(closed.job_id, [])
                if closed.originator_id in waiting:
                    waiting.remove(closed.originator_id)
                if not waiting:
                    self.by_job.pop(closed.job_id, None)
                    self.to_settle.pop(closed.job_id, None)
        elif kind in ENDINGS and event.originator_id in self.by_job:
            self.to_settle[event.originator_id] = None
        self.position = position

    def of_job(self, job_id: UUID) -> list[DecisionMade]:
        """The job's open decisions, oldest first."""
        return [self.open[d] for d in self.by_job.get(job_id, ())]

    def summary(self) -> dict[str, int]:
        return {"open": len(self.open), "to_settle": len(self.to_settle)}
