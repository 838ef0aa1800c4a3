"""The server's side of the pull protocol: claims, heartbeats and reports of outside workers.

One ``PullDesk`` per server holds a jobs view that follows the log, and serialises the
claims, lease extensions and reports of every worker through it (a lock: each is one small
save). It records exactly what the in-home daemon records (``sheratan.workers.report``):
``job.started`` when a worker claims an attempt leased to it, ``job.lease_extended`` when its
heartbeat finds less than half a lease term left, then ``job.completed``/``job.failed`` — or
``job.result_late`` once the lease is gone. A save that loses a version race (a dispatcher
sweeping a lease, an operator cancelling) is a re-read and another try, never an error.

A report is applied at most once: one for an attempt that is over, or already reported, is
answered with what the log holds and records nothing. (``job.result_late`` leaves the job as
it was, so the desk remembers which attempts it recorded late for; after a server restart a
repeated late report would be recorded late once more, which completes and scores nothing.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from uuid import UUID

import anyio
import anyio.to_thread

from events import Event
from projections.jobs import LEASED, JobState, JobsView
from sheratan.home import Home
from sheratan.recording import Recorder, ViewsDivergedError, WallClock
from sheratan.store.wake import Waker
from sheratan.workers.daemon import MAX_RACES_PER_STEP, follow_jobs
from sheratan.workers.report import claim_event, extensions, outcome_event, unstarted
from sheratan.workers.wire import Answer, Report

#: Longest wait of the fallback Waker (no sockets) per thread it holds.
FALLBACK_STEP_S = 1.0


class LostRacesError(RuntimeError):
    """Every try of a save lost a version race to another process (a busy log)."""


class UnknownJobError(LookupError):
    pass


class PullDesk:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.clock = WallClock()
        self.lock = threading.Lock()
        self.jobs: JobsView | None = None
        self.recorder: Recorder | None = None
        #: (job, attempt) whose result this desk recorded as late.
        self.late: set[tuple[UUID, int]] = set()
        #: Set when the server stops: every long-poll answers at once (nothing claimed).
        self.closing = threading.Event()
        self.waiting: set[Waker] = set()

    def close(self) -> None:
        """End every long-poll now (the server is stopping; safe from a signal handler)."""
        self.closing.set()
        for waker in list(self.waiting):
            waker.wake()

    def _fresh(self) -> tuple[JobsView, Recorder]:
        if self.jobs is None or self.recorder is None:
            self.jobs, self.recorder = follow_jobs(self.home)
        else:
            self.recorder.catch_up()
        return self.jobs, self.recorder

    def _save(self, *events: Event) -> bool:
        """Record and save events; False (views dropped, to be read again) on a lost race."""
        assert self.recorder is not None
        self.recorder.record(*events)
        try:
            self.recorder.flush()
        except ViewsDivergedError:
            self.jobs = self.recorder = None
            return False
        return True

    # ------------------------------------------------------------------ claims

    def claim_now(self, worker_id: str) -> JobState | None:
        """Claim the oldest-leased unstarted attempt of ``worker_id``, if there is one."""
        with self.lock:
            for _ in range(MAX_RACES_PER_STEP):
                jobs, _ = self._fresh()
                job = next(unstarted(jobs, worker_id, self.clock.now()), None)
                if job is None:
                    return None
                if self._save(claim_event(job, self.clock.now())):
                    assert self.jobs is not None
                    return self.jobs.jobs[job.id]
        raise LostRacesError(f"the claim lost {MAX_RACES_PER_STEP} races in a row: try again")

    async def claim(self, worker_id: str, wait_s: float) -> JobState | None:
        """Claim an attempt, waiting up to ``wait_s`` for one. The waiting request holds no
        thread: it sleeps on the Waker's socket in the event loop until a commit of any
        process (registered before the look, so no commit goes unheard); each look and
        claim runs in a worker thread, under the desk's lock."""
        job = await anyio.to_thread.run_sync(self.claim_now, worker_id)
        if job is not None or wait_s <= 0:
            return job
        deadline = time.monotonic() + wait_s
        with self.home.waker() as waker:
            self.waiting.add(waker)
            try:
                while (job := await anyio.to_thread.run_sync(self.claim_now, worker_id)) is None:
                    left = deadline - time.monotonic()
                    if left <= 0 or self.closing.is_set():
                        return None
                    await _commit_or_timeout(waker, left)
            finally:
                self.waiting.discard(waker)
        return job

    # -------------------------------------------------------------- heartbeats

    def extend(self, worker_id: str, running: Mapping[UUID, int]) -> list[JobState]:
        """Extend the leases a heartbeat of ``worker_id`` earns (see report.extensions):
        the jobs whose lease moved, as they are now."""
        with self.lock:
            for _ in range(MAX_RACES_PER_STEP):
                jobs, _ = self._fresh()
                events = extensions(jobs, worker_id, running, self.clock.now())
                if not events:
                    return []
                if self._save(*events):
                    assert self.jobs is not None
                    return [self.jobs.jobs[event.originator_id] for event in events]
        raise LostRacesError(f"the heartbeat lost {MAX_RACES_PER_STEP} races in a row: beat again")

    # ----------------------------------------------------------------- reports

    def report(self, worker_id: str, report: Report) -> Answer:
        """Apply a worker's report of its attempt once; UnknownJobError for a job not in the
        log."""
        with self.lock:
            for _ in range(MAX_RACES_PER_STEP):
                jobs, _ = self._fresh()
                job = jobs.jobs.get(report.job_id)
                if job is None:
                    raise UnknownJobError(f"no job {report.job_id}")
                key = (job.id, report.attempt)
                if not _open(job, worker_id, report.attempt) or key in self.late:
                    return _answer(job, report.attempt, None)
                event = outcome_event(
                    job, worker_id, report.attempt, report.outcome(), self.clock.now()
                )
                if self._save(event):
                    if job.status in LEASED and event.TOPIC == "job.result_late":
                        self.late.add(key)
                    assert self.jobs is not None
                    return _answer(self.jobs.jobs[job.id], report.attempt, event.TOPIC)
        raise LostRacesError(f"the report lost {MAX_RACES_PER_STEP} races in a row: send it again")


async def _commit_or_timeout(waker: Waker, timeout: float) -> None:
    """Return after a commit (or a ``wake``) or ``timeout`` seconds. Where the Waker has no
    socket (not Linux), its stepped wait runs in a thread for one step at a time."""
    fd = waker.fileno()
    if fd is None:
        await anyio.to_thread.run_sync(waker.wait, min(timeout, FALLBACK_STEP_S))
        return
    with anyio.move_on_after(timeout):
        await anyio.wait_readable(fd)
    waker.consume()


def _open(job: JobState, worker_id: str, attempt: int) -> bool:
    """Whether the attempt is the job's current one, claimed by this worker and not ended."""
    return job.attempt == attempt and job.worker == worker_id and job.status == "running"


def _answer(job: JobState, attempt: int, event: str | None) -> Answer:
    return Answer(
        job_id=job.id,
        attempt=attempt,
        recorded=event is not None,
        event=event,
        status=job.status,
        result=job.result,
        error=job.error,
        error_code=job.error_code,
    )
