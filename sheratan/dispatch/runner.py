"""Driving a dispatcher over a home that other processes share: rounds, races, following.

Several dispatchers may serve one home (separate processes, on several hosts when the log is
in PostgreSQL), beside worker daemons, operators and job creators. Each round runs under the
log's dispatch lock (a lock file, or a PostgreSQL advisory lock): catch up on the log, act
(``Dispatcher.round``), and save everything in one save with a tracking record naming the
position acted on (eventsourcing's process-application habit: ``max_tracking_id`` says where
a dispatcher stopped). So two dispatchers never decide on the same state, and every decision
is made on the log as it stood right before it: exact replay holds across processes.

Writers outside the lock (a worker reporting, an operator cancelling) can still take a
version first: the save then fails as a whole, nothing it held ran (in-process work is
claimed durably before it runs), and the round is a lost race: the views are loaded again
from the log and the next round goes on. No error, no traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from eventsourcing.persistence import Tracking

from sheratan.dispatch.context import RunStats
from sheratan.dispatch.loop import Dispatcher, Round
from sheratan.recording import ViewsDivergedError

#: Most jobs one round leases (one save): large enough that a deep queue costs few saves,
#: small enough that another dispatcher waiting for the lock waits little.
ROUND_JOBS = 256
#: Longest a follower sleeps without looking (a lease may be swept a little late, never early).
MAX_IDLE_WAIT_S = 30.0


#: How often a follower looks for outcomes while a handed-off attempt is open (a webrelay
#: result file arrives without a commit to wake anyone).
HANDOFF_POLL_S = 0.2
#: How often a follower saves its views while it runs (so a restart folds little).
SAVE_VIEWS_EVERY_S = 60.0


class Waiter(Protocol):
    """How a follower sleeps until the log changes (or a deadline passes)."""

    def wait(self, timeout: float | None = None) -> bool: ...

    def wake(self) -> None: ...


class RoundLock(Protocol):
    """What a round runs under, shared by every dispatcher of the log: a lock file on an
    embedded home, an advisory lock on a PostgreSQL home (``sheratan.postgres.locks``)."""

    def acquire(self) -> None: ...

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class Stop:
    """Asks a follower to stop: settable from a signal handler; wakes it if it sleeps."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._waiters: list[Waiter] = []

    def set(self) -> None:
        self._event.set()
        for waiter in self._waiters:
            waiter.wake()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wakes(self, waiter: Waiter) -> None:
        self._waiters.append(waiter)


class Runner:
    """One process's dispatcher, run in rounds under the home's dispatch lock."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        lock: RoundLock | None = None,
        tracking: str | None = None,
        reload: Callable[[RunStats], Dispatcher] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.lock = lock
        self.tracking = tracking
        self.reload = reload
        #: Rounds whose save lost a version race to another writer (and were re-read).
        self.lost_races = 0

    def close(self) -> None:
        """Let go of the lock (its file, or its database session)."""
        if self.lock is not None:
            self.lock.close()

    @property
    def stats(self) -> RunStats:
        return self.dispatcher.stats

    def round(self, batch: int) -> Round:
        """Catch up, act, save with the tracking record: one atomic step under the lock."""
        if self.lock is not None:
            self.lock.acquire()
        try:
            return self._round(batch)
        finally:
            if self.lock is not None:
                self.lock.release()

    def _round(self, batch: int) -> Round:
        recorder = self.dispatcher.recorder
        recorder.catch_up()
        acted_on = recorder.position
        try:
            done = self.dispatcher.round(batch)
            tracked = recorder.pending and self.tracking is not None
            recorder.flush(Tracking(self.tracking, acted_on) if tracked else None)  # type: ignore[arg-type]
        except ViewsDivergedError:
            if self.reload is None:
                raise
            self.lost_races += 1
            self.dispatcher = self.reload(self.dispatcher.stats)
            return Round(0, 1, None)  # look again at once
        return done

    def drain(
        self,
        *,
        max_jobs: int | None = None,
        batch: int = 1,
        progress: Callable[[int], None] | None = None,
        stop: Stop | None = None,
    ) -> RunStats:
        """Rounds until no job is ready (or ``max_jobs`` dispatch decisions, or ``stop``).
        Retries waiting for their backoff are waited for (on virtual time, the clock jumps);
        attempts held by workers of other processes are not: whoever follows the log
        settles them."""
        while (max_jobs is None or self.stats.jobs < max_jobs) and not (stop and stop.is_set()):
            left = batch if max_jobs is None else min(batch, max_jobs - self.stats.jobs)
            done = self.round(left)
            if progress is not None and done.dispatched:
                progress(self.stats.jobs)
            if done.dispatched or done.settled:
                continue
            if done.retry_at is None:
                break
            self.dispatcher.clock.wait_until(done.retry_at)
        return self.stats

    def follow(
        self,
        stop: Stop,
        waiter: Waiter,
        *,
        batch: int = ROUND_JOBS,
        save: Callable[[Dispatcher], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RunStats:
        """Rounds until ``stop`` is set; between them, sleep until the log changes, a lease
        expires or a retry's backoff ends (no busy polling). ``save`` persists the views now
        and then, and at the end; ``progress`` hears the count of jobs dispatched."""
        stop.wakes(waiter)
        saved_at = time.monotonic()
        try:
            while not stop.is_set():
                done = self.round(batch)
                if progress is not None and done.dispatched:
                    progress(self.stats.jobs)
                if done.dispatched or done.settled:
                    continue
                if save is not None and time.monotonic() - saved_at > SAVE_VIEWS_EVERY_S:
                    save(self.dispatcher)
                    saved_at = time.monotonic()
                waiter.wait(self._idle_timeout(done.retry_at))
        finally:
            if save is not None:
                save(self.dispatcher)
        return self.stats

    def _idle_timeout(self, retry_at: datetime | None) -> float:
        dispatcher = self.dispatcher
        deadlines = [t for t in (retry_at, dispatcher.next_lease_expiry()) if t is not None]
        longest = HANDOFF_POLL_S if dispatcher.handoff_open() else MAX_IDLE_WAIT_S
        if not deadlines:
            return longest
        seconds = (min(deadlines) - datetime.now(UTC)).total_seconds()
        return min(longest, max(0.001, seconds + 0.001))
