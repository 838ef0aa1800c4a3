"""The job system's limits (``policies/limits.json``, a user's file merged over it).

    {"writes":  {"per_second": 20.0, "burst": 100},
     "queue":   {"max_waiting": 10000, "retry_after_s": 5.0},
     "sources": {"jobs_per_minute": 600, "max_in_flight": 2000},
     "workers": {"max_attempts": 16},
     "chains":  {"max_depth": 5, "max_jobs": 50, "max_files": 50, "max_bytes": 200000}}

- ``writes``: the HTTP API's per-client rate of writes (``sheratan.api.limits``); a client is
  the bearer token, so it is also the per-token rate of job creation.
- ``queue``: backpressure. While ``max_waiting`` jobs wait for a worker (created, queued or
  scheduled for a retry), job creation is refused, and nothing is recorded: exit 2 on the
  CLI, 429 with ``Retry-After: retry_after_s`` over HTTP.
- ``sources``: per source of work (each mission and each payer), at most
  ``jobs_per_minute`` jobs created in the last 60 s and ``max_in_flight`` jobs not yet
  ended; refused the same way.
- ``workers``: the most attempts one worker holds at once. A gate at each dispatch decision
  (``worker_limit``), so it travels with the gate policy every decision records
  (``EngineConfig.load`` copies it into ``GatePolicy.worker_max_attempts``) and replay
  re-runs it.

- ``chains``: what the follow-ups a result asks for may add up to (``sheratan.chains``): a
  chain at most ``max_depth`` follow-ups deep, ``max_jobs`` jobs in all, ``max_files``
  follow-ups that write a file and ``max_bytes`` of follow-up payloads.

The creation limits are checked against the log as it stands before the job is recorded;
creates racing in several processes may pass a limit by as many as race.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from events.jobs import JobCreated
from projections.queue import QueueView, sources_of
from sheratan.decide.policy import load_merged

#: The window of ``jobs_per_minute``.
MINUTE = timedelta(minutes=1)


class WriteRate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_second > 0 or self.burst < 1:
            msg = "writes.per_second must be above 0 and writes.burst at least 1"
            raise ValueError(msg)


class QueueLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_waiting: int
    retry_after_s: float

    def __post_init__(self) -> None:
        if self.max_waiting < 1 or not self.retry_after_s > 0:
            msg = "queue.max_waiting must be at least 1 and queue.retry_after_s above 0"
            raise ValueError(msg)


class SourceLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    jobs_per_minute: int
    max_in_flight: int

    def __post_init__(self) -> None:
        if self.jobs_per_minute < 1 or self.max_in_flight < 1:
            msg = "sources.jobs_per_minute and sources.max_in_flight must be at least 1"
            raise ValueError(msg)


class WorkerLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_attempts: int

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = "workers.max_attempts must be at least 1"
            raise ValueError(msg)


class ChainLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_depth: int
    max_jobs: int
    max_files: int
    max_bytes: int

    def __post_init__(self) -> None:
        if min(self.max_depth, self.max_jobs, self.max_files, self.max_bytes) < 0:
            msg = "chains.max_depth, max_jobs, max_files and max_bytes must not be negative"
            raise ValueError(msg)


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    writes: WriteRate
    queue: QueueLimit
    sources: SourceLimit
    workers: WorkerLimit
    chains: ChainLimit


def load_limits(path: Path | None = None) -> Limits:
    """The shipped limits with ``path`` merged over them."""
    return load_merged("limits.json", path, Limits).policy


class BackpressureError(Exception):
    """A job refused before it was recorded: the queue or its source is over a limit."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        #: Whole seconds after which trying again may succeed (``Retry-After``).
        self.retry_after_s = max(1, math.ceil(retry_after_s))


def check_backpressure(
    limits: Limits, queue: QueueView, created: JobCreated, now: datetime, slack: int = 0
) -> None:
    """Refuse ``created`` (BackpressureError) if recording it would pass a creation limit.

    ``slack``: how many events the queue view may lag the log by. Each event moves a count
    by at most one, so a check that passes with every count raised by ``slack`` passes on
    the log as it is (the API server checks so first, and folds only near a limit)."""
    waiting = queue.waiting_count() + slack
    if waiting >= limits.queue.max_waiting:
        raise BackpressureError(
            f"the queue is full: {waiting} jobs wait for a worker (queue.max_waiting is "
            f"{limits.queue.max_waiting}); try again in {limits.queue.retry_after_s:g} s",
            limits.queue.retry_after_s,
        )
    rule = limits.sources
    for source in sources_of(created):
        in_flight = queue.in_flight.get(source, 0) + slack
        if in_flight >= rule.max_in_flight:
            raise BackpressureError(
                f"{source} has {in_flight} jobs in flight (sources.max_in_flight is "
                f"{rule.max_in_flight}); try again once some have ended",
                limits.queue.retry_after_s,
            )
        recent = queue.created_since(source, now - MINUTE)
        if len(recent) + slack >= rule.jobs_per_minute:
            # When the minute holds the limit, it frees up as its oldest counted job leaves
            # the window; below it (only the slack reached the limit) in a minute at most.
            over = len(recent) - rule.jobs_per_minute
            frees_at = (recent[over] if over >= 0 else now) + MINUTE
            raise BackpressureError(
                f"{source} created {len(recent)} jobs in the last minute "
                f"(sources.jobs_per_minute is {rule.jobs_per_minute}); try again in "
                f"{math.ceil((frees_at - now).total_seconds())} s",
                (frees_at - now).total_seconds(),
            )
