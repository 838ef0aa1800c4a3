"""The WebRelay bridge: attempts handed to an outside worker through files, results read back.

An outside worker (a browser-driven LLM, a script on another machine sharing a folder) has no
access to the log. The dispatcher writes each attempt it leases to such a worker as
``<relay>/out/<job_id>.job.json``; the outside worker writes ``<relay>/in/<job_id>.result.json``;
whichever dispatcher looks next collects it. Both sides write a temp file of their own and
rename it into place, so neither ever sees half a file (docs/workers.md has the protocol).

A result is accepted only for the attempt the worker holds now. Everything else (undecodable,
too large, an unknown job, an attempt that is over) is moved to ``<relay>/rejected/`` beside a
``.reason.txt``: never dropped silently. A result for the worker's own attempt that arrives
after its lease is also recorded in the log as late (``job.result_late``).
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from uuid import UUID

import msgspec

from events.decisions import ErrorInfo
from projections.jobs import LEASED, JobState, JobsView
from projections.workers import WorkerState, WorkersView
from sheratan.inputs import InvalidInputError
from sheratan.store.files import write_durably
from sheratan.workers.outcome import MAX_ERROR_MESSAGE_CHARS, Collected, Outcome
from sheratan.workers.report import holds
from sheratan.workers.wire import ReportedMetrics

#: The folders of a relay directory: attempts out, results in, results refused.
OUT, IN, REJECTED = "out", "in", "rejected"
JOB_SUFFIX = ".job.json"
RESULT_SUFFIX = ".result.json"
#: Largest result file read (a bigger one is rejected unread: results enter the log).
MAX_RESULT_BYTES = 1024 * 1024
#: Most result files one collect looks at (the rest wait for the next round).
MAX_RESULTS_PER_COLLECT = 256
#: The profile key that holds a webrelay worker's relay directory.
RELAY_DIR_KEY = "relay_dir"


class RelayTitle(msgspec.Struct, frozen=True):
    id: UUID
    title: str


class RelayJob(msgspec.Struct, frozen=True, kw_only=True):
    """What ``out/<job_id>.job.json`` holds: the attempt and what the outside worker needs."""

    format: Literal[1] = 1
    job_id: UUID
    worker: str
    attempt: int
    lease_until: datetime | None
    kind: str
    payload: dict[str, Any]
    mission: RelayTitle | None
    task: RelayTitle | None
    params: dict[str, Any]
    last_result: dict[str, Any] | None
    last_error: str | None


class RelayError(ErrorInfo, frozen=True, forbid_unknown_fields=True):
    """The log's error shape, strict at the boundary: an unknown field is refused."""


class RelayResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What ``in/<job_id>.result.json`` must hold (anything else is rejected)."""

    job_id: UUID
    attempt: int
    ok: bool
    result: dict[str, Any] | None = None
    error: RelayError | None = None
    metrics: ReportedMetrics = ReportedMetrics()


_decode_result = msgspec.json.Decoder(RelayResult).decode


def relay_dir(given: str | Path) -> Path:
    """The relay directory, absolute, with its three folders made; InvalidInputError if not."""
    path = Path(given).expanduser().resolve()
    if path.exists() and not path.is_dir():
        msg = f"relay dir {path} is not a directory"
        raise InvalidInputError(msg)
    try:
        for folder in (OUT, IN, REJECTED):
            (path / folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"relay dir {path}: {error.strerror or error}"
        raise InvalidInputError(msg) from None
    return path


class Titles(msgspec.Struct, frozen=True):
    mission: RelayTitle | None = None
    task: RelayTitle | None = None


class Catalogue(Protocol):
    """Where missions and tasks are looked up (the application)."""

    def get_mission(self, mission_id: UUID) -> Any: ...

    def get_task(self, task_id: UUID) -> Any: ...


def job_titles(catalogue: Catalogue, job: JobState) -> Titles:
    """The titles of the job's mission and task, those it has."""
    mission = task = None
    if job.mission_id is not None:
        mission = RelayTitle(job.mission_id, catalogue.get_mission(job.mission_id).title)
    if job.task_id is not None:
        task = RelayTitle(job.task_id, catalogue.get_task(job.task_id).title)
    return Titles(mission, task)


class WebRelay:
    """The ``webrelay`` handoff of a dispatcher (sheratan.workers.outcome.Handoff)."""

    def __init__(self, workers: WorkersView, catalogue: Catalogue | None = None) -> None:
        #: The live workers view (the relay directories are in the workers' profiles).
        self.workers = workers
        self.catalogue = catalogue

    def send(self, job: JobState, worker: WorkerState) -> None:
        titles = job_titles(self.catalogue, job) if self.catalogue is not None else Titles()
        relay = RelayJob(
            job_id=job.id,
            worker=worker.id,
            attempt=job.attempt,
            lease_until=job.lease_until,
            kind=job.kind,
            payload=job.payload,
            mission=titles.mission,
            task=titles.task,
            params={
                "priority": job.priority,
                "timeout_seconds": job.timeout_seconds,
                "max_retries": job.max_retries,
                "retry_count": job.retry_count,
            },
            last_result=job.result,
            last_error=job.error,
        )
        out = _folder(worker) / OUT
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_durably(out / f"{job.id}{JOB_SUFFIX}", msgspec.json.encode(relay))
        except OSError:
            return  # unreachable (a full disk, a lost mount): the lease expires, recovery runs

    def collect(self, jobs: JobsView, now: datetime) -> list[Collected]:
        collected: list[Collected] = []
        for worker in self.workers.workers.values():
            if worker.transport != "webrelay" or worker.namespace:
                continue
            folder = _folder(worker)
            try:
                names = sorted(os.listdir(folder / IN))
            except OSError:
                continue  # the folder is gone: nothing can be collected from it
            results = [n for n in names if n.endswith(RESULT_SUFFIX)]
            for name in results[:MAX_RESULTS_PER_COLLECT]:
                taken = _take(folder, name, worker.id, jobs, now)
                if taken is not None:
                    collected.append(taken)
        return collected


def _folder(worker: WorkerState) -> Path:
    return Path(str((worker.profile or {})[RELAY_DIR_KEY]))


def _take(folder: Path, name: str, worker: str, jobs: JobsView, now: datetime) -> Collected | None:
    """The outcome of one result file, or None; files that are not accepted are moved away.

    An accepted file stays in ``in/`` until a later collect sees its attempt ended (then it
    goes to ``done/``): if the round that recorded it loses a race and is not saved, the
    next round collects it again.
    """
    path = folder / IN / name
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            _reject(folder, name, f"the file is over {MAX_RESULT_BYTES} bytes")
            return None
        result = _decode_result(path.read_bytes())
    except FileNotFoundError:
        return None  # another dispatcher moved it
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        _reject(folder, name, f"not a valid result: {error}")
        return None
    if name != f"{result.job_id}{RESULT_SUFFIX}":
        _reject(folder, name, f"the file names another job than its job_id {result.job_id}")
        return None
    job = jobs.jobs.get(result.job_id)
    if job is None:
        _reject(folder, name, f"unknown job {result.job_id}")
        return None
    if job.worker != worker or job.attempt != result.attempt:
        _reject(folder, name, f"attempt {result.attempt} of {job.id} is not {worker}'s")
        return None
    outcome = _outcome(result)
    if holds(job, worker, result.attempt, now):
        return Collected(job.id, worker, result.attempt, outcome)
    if job.status in ("completed", "failed"):
        _move(folder, name, "done")  # this attempt ended by this very result
        return None
    why = "lease expired" if job.status in LEASED else f"the job is {job.status}"
    _reject(folder, name, f"late: attempt {result.attempt} is over ({why})")
    return Collected(job.id, worker, result.attempt, outcome)  # recorded as late


def _outcome(result: RelayResult) -> Outcome:
    error = None
    if not result.ok:
        given = result.error or RelayError("error", "the outside worker reported a failure")
        error = ErrorInfo(given.code[:100], given.message[:MAX_ERROR_MESSAGE_CHARS])
    metrics = result.metrics
    return Outcome(
        ok=result.ok,
        latency_ms=metrics.latency_ms,
        cost=metrics.cost,
        quality=metrics.quality,
        risk=metrics.risk,
        result=result.result if result.ok else None,
        error=error,
    )


def _reject(folder: Path, name: str, reason: str) -> None:
    """Move the file to ``rejected/`` and write why beside it (the reason first, so a
    rejected file never stands there without one)."""
    (folder / REJECTED).mkdir(exist_ok=True)
    write_durably(folder / REJECTED / f"{name}.reason.txt", f"{reason}\n".encode())
    _move(folder, name, REJECTED)


def _move(folder: Path, name: str, to: str) -> None:
    (folder / to).mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # another dispatcher moved it first
        os.replace(folder / IN / name, folder / to / name)


def relay_profile(
    transport: str, given: str | None, profile: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The profile a worker is registered with: a webrelay worker's names its relay
    directory (checked and made here); InvalidInputError when --relay-dir and the
    transport disagree."""
    if transport != "webrelay":
        if given is not None:
            msg = "--relay-dir is only for --transport webrelay"
            raise InvalidInputError(msg)
        return profile
    if given is None:
        msg = "a webrelay worker needs --relay-dir"
        raise InvalidInputError(msg)
    return {**(profile or {}), RELAY_DIR_KEY: str(relay_dir(given))}
