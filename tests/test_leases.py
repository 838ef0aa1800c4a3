"""Leases of workers that heartbeat (issue 10, the pull protocol's heartbeat; the daemon too).

An attempt's deadline is its dispatch + the job's timeout_seconds. A worker of a transport
that heartbeats (``process``: the in-home daemon and ``worker run --api``) is leased one term
(``lease_term_s``) at a time; each heartbeat that finds less than half a term left records
``job.lease_extended``, never past the deadline. A long attempt of a live worker runs on; a
killed worker's attempt is swept within a term, long before its deadline.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from api_helpers import serving
from cli_helpers import as_json, invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from process_helpers import events_of, start_cli, stop, wait_until
from store_helpers import verify_home
from worker_helpers import gates_with, holding, run_worker

from events import Event
from events.jobs import (
    JobCompleted,
    JobCreated,
    JobDispatched,
    JobLeaseExtended,
    JobQueued,
    JobStarted,
)
from projections.jobs import JobsView
from sheratan.codec import EventCodec
from sheratan.lifecycle import IllegalTransitionError, job_event
from sheratan.workers.report import extensions, holds, lease_at_dispatch

JOB = UUID(int=7)
T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
#: The lease term of the end-to-end tests (seconds): short, so a sweep comes soon.
TERM_S = 3.0


# ------------------------------------------------------------------- the fold


def queued(timeout_ms: int) -> JobsView:
    """A view of one noop job, queued at T0."""
    view = JobsView()
    view.apply(
        1,
        JobCreated(
            originator_id=JOB,
            originator_version=1,
            timestamp=T0,
            kind="noop",
            payload={},
            payload_hash="0" * 64,
            timeout_seconds=timeout_ms / 1000,
        ),
    )
    view.apply(2, JobQueued(originator_id=JOB, originator_version=2, timestamp=T0))
    return view


def leased(term_ms: int, timeout_ms: int, *, started: bool = True) -> JobsView:
    """The job leased at T0 to a ``process`` worker "w" (and claimed)."""
    view = queued(timeout_ms)
    lease = lease_at_dispatch("process", timeout_ms / 1000, term_ms / 1000, T0)
    events: list[Event] = [
        JobDispatched(
            originator_id=JOB,
            originator_version=3,
            timestamp=T0,
            worker="w",
            attempt=1,
            lease_until=lease.until,
            deadline=lease.deadline,
            lease_term_s=lease.term_s,
        ),
    ]
    if started:
        events.append(
            JobStarted(originator_id=JOB, originator_version=4, timestamp=T0, worker="w", attempt=1)
        )
    for position, event in enumerate(events, 3):
        view.apply(position, event)
    return view


@settings(max_examples=200, deadline=None)
@given(
    term_ms=st.integers(min_value=100, max_value=60_000),
    timeout_ms=st.integers(min_value=1, max_value=600_000),
    halves=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60),
)
def test_a_worker_beating_every_half_term_holds_its_attempt_until_the_deadline(
    term_ms: int, timeout_ms: int, halves: list[float]
) -> None:
    """Beats at most half a term apart: the lease never lapses before the deadline, each
    extension is to one term from the beat (at most the deadline), and leases only grow."""
    view = leased(term_ms, timeout_ms)
    job = view.jobs[JOB]
    term = timedelta(milliseconds=term_ms)
    assert job.lease_until == T0 + min(term, timedelta(milliseconds=timeout_ms))
    assert job.deadline == T0 + timedelta(milliseconds=timeout_ms)
    now = T0
    for position, half in enumerate(halves, 5):
        now += timedelta(milliseconds=int(half * term_ms / 2))
        if now > job.deadline:
            break
        assert holds(job, "w", 1, now)
        events = extensions(view, "w", {JOB: 1}, now)
        for event in events:
            assert isinstance(event, JobLeaseExtended) and event.attempt == 1
            assert job.lease_until - now < term / 2
            assert event.lease_until == min(job.deadline, now + term) > job.lease_until
            view.apply(position, event)
        if not events:
            assert job.lease_until - now >= term / 2 or job.lease_until == job.deadline
        after = view.jobs[JOB]
        assert after.status == "running" and after.lease_until <= after.deadline
        job = after


def test_only_the_holder_extends_and_only_what_it_runs_or_has_yet_to_claim() -> None:
    late = T0 + timedelta(seconds=9)  # 1 s of a 10 s term left
    running = leased(10_000, 600_000)
    assert extensions(running, "other", {JOB: 1}, late) == []  # not its attempt
    assert extensions(running, "w", {}, late) == []  # a restarted worker runs it no more
    assert extensions(running, "w", {JOB: 2}, late) == []  # another attempt
    assert extensions(running, "w", {JOB: 1}, T0 + timedelta(seconds=11)) == []  # lapsed
    [event] = extensions(running, "w", {JOB: 1}, late)
    assert event.lease_until == late + timedelta(seconds=10)  # type: ignore[attr-defined]
    unclaimed = leased(10_000, 600_000, started=False)
    assert len(extensions(unclaimed, "w", {}, late)) == 1  # it will claim it


def test_no_extension_once_the_attempt_ended() -> None:
    view = leased(10_000, 600_000)
    view.apply(5, JobCompleted(originator_id=JOB, originator_version=5, timestamp=T0, result={}))
    late = T0 + timedelta(seconds=9)
    assert extensions(view, "w", {JOB: 1}, late) == []
    with pytest.raises(IllegalTransitionError, match=r"job\.lease_extended needs one of"):
        job_event(view.jobs[JOB], JobLeaseExtended, late, attempt=1, lease_until=late)


def test_a_dispatch_recorded_before_lease_terms_decodes_and_is_never_extended() -> None:
    """An old log's job.dispatched has no deadline and no term: its lease was the deadline."""
    old = b'{"timestamp":"2026-12-02T06:00:00Z","worker":"w","attempt":1,' + (
        b'"lease_until":"2026-12-02T06:00:10Z","decision_id":null}'
    )
    event = EventCodec().decode("job.dispatched", old, JOB, 3)
    assert isinstance(event, JobDispatched)
    assert (event.deadline, event.lease_term_s) == (None, None)
    view = queued(10_000)
    view.apply(3, event)
    job = view.jobs[JOB]
    assert job.lease_until == T0 + timedelta(seconds=10)
    assert (job.deadline, job.lease_term_s) == (None, None)
    assert extensions(view, "w", {}, T0 + timedelta(seconds=9)) == []


def test_a_worker_that_does_not_heartbeat_is_leased_until_its_deadline() -> None:
    for transport in ("local", "simulated", "webrelay"):
        lease = lease_at_dispatch(transport, 600.0, 30.0, T0)
        assert (lease.until, lease.term_s) == (lease.deadline, None)
    shorter = lease_at_dispatch("process", 5.0, 30.0, T0)  # the timeout is shorter: kept
    assert shorter.until == shorter.deadline == T0 + timedelta(seconds=5)


# ----------------------------------------------------------- the dispatcher


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def dispatched(home: Path, job: str) -> dict[str, Any]:
    """The data and time of the job's last job.dispatched."""
    line = [e for e in events_of(home, "job.dispatched") if e["stream"] == job][-1]
    return dict(line["data"]) | {"ts": line["ts"]}


def test_dispatch_leases_one_term_to_a_process_worker_and_the_timeout_to_the_rest(
    home: Path, tmp_path: Path
) -> None:
    gates = gates_with(tmp_path, lease_term_s=5)
    invoke(home, "worker", "register", "p", "--kinds", "noop", "--transport", "process")
    invoke(home, "worker", "register", "l", "--kinds", "noop", "--transport", "local")
    cases = [("p", 600.0, 5.0, 5.0), ("p", 2.0, 2.0, 5.0), ("l", 600.0, 600.0, None)]
    for worker, timeout_s, lease_s, term_s in cases:
        job = str(as_json(home, "job", "create", "noop", "--timeout", str(timeout_s))["id"])
        invoke(home, "dispatch", "--policy", f"always:{worker}", "--gates", str(gates))
        data = dispatched(home, job)
        at = stamp(data["deadline"]) - timedelta(seconds=timeout_s)  # the dispatch's now
        assert at <= stamp(data["ts"])  # the line's time is its write's
        assert data["worker"] == worker and data["lease_term_s"] == term_s
        assert stamp(data["lease_until"]) - at == timedelta(seconds=lease_s)


# --------------------------------------------------------------- end to end


@contextmanager
def heartbeating_worker(where: str, home: Path, workspace: Path) -> Iterator[Any]:
    """Worker "w" (file_read), as an in-home daemon or as ``worker run --api`` over a
    server of the home."""
    if where == "daemon":
        process = run_worker(home, workspace, "w")
        try:
            yield process
        finally:
            stop(process, signal.SIGTERM)
        return
    token_file = workspace.parent / "w.token"
    invoke(
        home, "worker", "register", "w", "--kinds", "file_read", "--transport", "process",
        "--issue-token", "--token-file", str(token_file),
    )  # fmt: skip
    with serving(home) as server:
        process = start_cli(
            workspace.parent / "no-home-needed", "worker", "run", "w", "--api", server.url,
            "--token-file", str(token_file), "--kinds", "file_read",
            "--workspace", str(workspace),
        )  # fmt: skip
        try:  # w, the home's only worker, is up once it has heartbeated
            wait_until(lambda: events_of(home, "worker.heartbeat"), "a first heartbeat", process)
            yield process
        finally:
            stop(process, signal.SIGTERM)


def of_job(home: Path, topic: str, job: str) -> list[dict[str, Any]]:
    return [e for e in events_of(home, topic) if e["stream"] == job]


def extended_since(home: Path, job: str, position: int) -> list[dict[str, Any]]:
    return [e for e in of_job(home, "job.lease_extended", job) if e["pos"] > position]


def status(home: Path, job: str) -> str:
    return str(as_json(home, "job", "show", job)["status"])


@pytest.mark.parametrize("where", ["daemon", "api"])
def test_a_heartbeating_worker_keeps_its_long_attempt_and_a_killed_one_is_swept_in_a_term(
    where: str, home: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    gates = gates_with(tmp_path, lease_term_s=TERM_S)
    with ExitStack() as stack:
        held = stack.enter_context(holding(workspace))
        worker: subprocess.Popen[str] = stack.enter_context(
            heartbeating_worker(where, home, workspace)
        )
        follower = start_cli(
            home, "dispatch", "--follow", "--workspace", str(workspace), "--gates", str(gates)
        )
        stack.callback(stop, follower, signal.SIGTERM)

        # a long attempt (600 s timeout, many terms) of a live worker: extended, not swept
        long = held.job(home, "long.txt", "--timeout", "600")
        [claimed] = wait_until(
            lambda: of_job(home, "job.started", long), "the claim", worker, follower
        )
        wait_until(
            lambda: len(extended_since(home, long, claimed["pos"])) >= 3,
            "three lease extensions of the running attempt",
            worker,
            follower,
        )
        assert status(home, long) == "running"
        held.release("long.txt")
        wait_until(lambda: status(home, long) == "completed", "completion", worker, follower)
        assert of_job(home, "job.timed_out", long) == []
        deadline = stamp(dispatched(home, long)["deadline"])
        for extended in of_job(home, "job.lease_extended", long):
            assert extended["data"]["attempt"] == 1
            assert stamp(extended["data"]["lease_until"]) <= deadline

        # a killed worker's attempt: swept at its lease, long before its deadline
        lost = held.job(home, "lost.txt", "--timeout", "600", "--max-retries", "0")
        wait_until(lambda: status(home, lost) == "running", "the claim", worker, follower)
        worker.kill()
        worker.communicate()
        [timed_out] = wait_until(
            lambda: of_job(home, "job.timed_out", lost), "the sweep of the lost attempt", follower
        )
        leases = [dispatched(home, lost)] + [
            e["data"] for e in of_job(home, "job.lease_extended", lost)
        ]
        last_lease = stamp(leases[-1]["lease_until"])
        assert last_lease < stamp(timed_out["ts"]) < stamp(dispatched(home, lost)["deadline"])

    # replaying the log with its extensions changes no decision
    report = as_json(home, "replay", "--exact")
    assert report["ok"] is True and report["decisions"] >= 2
    assert report["drift"] == {"none": report["decisions"], "minor": 0, "major": 0}
    assert verify_home(home).ok
