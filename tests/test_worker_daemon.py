"""``worker run``: a daemon process that claims, runs and reports the attempts leased to it.

Real processes, real signals, the real store. Executions are counted apart from the log:
a ``patch_apply`` job replacing "0" with "01" in a file of its own appends one "1" per
execution (the old text still matches once), so the file says how often it ran.

A job is held for as long as a test wants by a file lease (``worker_helpers.Holds``): the
worker's open of the file blocks in the kernel until the test lets go.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import as_json, invoke, refused
from process_helpers import WAIT_S, events_of, start_cli, stop, wait_until
from store_helpers import verify_home
from worker_helpers import Holds, counting_job, executions, gates_with, holding, run_worker


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def holds(workspace: Path) -> Iterator[Holds]:
    with holding(workspace) as held:
        yield held


def status(home: Path, job_id: str) -> str:
    return str(as_json(home, "job", "show", job_id)["status"])


def dispatch(home: Path, workspace: Path, *more: str) -> dict[str, Any]:
    return dict(as_json(home, "dispatch", "--until-idle", "--workspace", str(workspace), *more))


def stopped_cleanly(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Stop the daemon: exit 0, no traceback, its start line on stderr, one line on stdout;
    that line."""
    code, out, err = stop(process, sig)
    assert code == 0, (out, err)
    assert "Traceback" not in out + err
    [started] = err.strip().splitlines()
    assert "stop with Ctrl-C" in started, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


def test_a_daemon_runs_what_dispatch_leased_to_it_once(home: Path, workspace: Path) -> None:
    daemon = run_worker(home, workspace, "w1", "--concurrency", "3")
    names = [f"count-{i}.txt" for i in range(6)]
    jobs = [counting_job(home, workspace, name) for name in names]
    jobs.append(str(as_json(home, "job", "create", "noop")["id"]))
    assert dispatch(home, workspace)["dispatches"] == len(jobs)
    wait_until(lambda: all(status(home, job) == "completed" for job in jobs), "completion", daemon)
    line = stopped_cleanly(daemon)
    assert line.startswith("worker w1 stopped: 7 attempt(s) claimed, 7 completed")
    assert [executions(workspace, name) for name in names] == [1] * len(names)

    dispatch(home, workspace)  # settles the attempts the daemon reported
    made = {e["stream"] for e in events_of(home, "decision.made")}
    scored = Counter(e["stream"] for e in events_of(home, "decision.scored"))
    assert set(scored) == made and set(scored.values()) == {1}
    dispatch(home, workspace)  # nothing is scored twice
    assert Counter(e["stream"] for e in events_of(home, "decision.scored")) == scored
    for job in jobs:
        assert Counter(
            e["topic"]
            for e in events_of(home, "job.started") + events_of(home, "job.completed")
            if e["stream"] == job
        ) == {"job.started": 1, "job.completed": 1}
        assert as_json(home, "job", "show", job)["worker"] == "w1"
    assert verify_home(home).ok


def test_a_daemon_started_again_does_not_run_a_started_attempt_again(
    home: Path, workspace: Path, holds: Holds
) -> None:
    daemon = run_worker(home, workspace, "w1", "--grace", "0")
    job = holds.job(home, "held.txt", "--timeout", "600")
    dispatch(home, workspace)
    wait_until(lambda: status(home, job) == "running", "the claim", daemon)
    daemon.kill()
    daemon.communicate()
    again = run_worker(home, workspace, "w1")
    counting = counting_job(home, workspace, "after.txt")
    dispatch(home, workspace)
    wait_until(lambda: status(home, counting) == "completed", "the next job", again)
    assert status(home, job) == "running"  # the killed daemon's attempt, left to its lease
    assert len([e for e in events_of(home, "job.started") if e["stream"] == job]) == 1
    assert stopped_cleanly(again).startswith("worker w1 stopped: 1 attempt(s) claimed")


def test_sigterm_finishes_the_attempt_it_holds(home: Path, workspace: Path, holds: Holds) -> None:
    daemon = run_worker(home, workspace, "w1")
    job = holds.job(home, "held.txt")
    dispatch(home, workspace)
    wait_until(lambda: status(home, job) == "running", "the claim", daemon)
    daemon.send_signal(signal.SIGTERM)
    queued = counting_job(home, workspace, "not-claimed.txt")
    dispatch(home, workspace)  # leased to w1, which no longer claims
    holds.release("held.txt")
    line = stopped_cleanly(daemon, 0)  # signal 0: only wait for it
    assert line == (
        "worker w1 stopped: 1 attempt(s) claimed, 1 completed, 0 failed, 0 late, 0 handed back"
    )
    assert as_json(home, "job", "show", job)["result"]["bytes"] == len("held")
    assert status(home, queued) == "dispatched"
    assert executions(workspace, "not-claimed.txt") == 0


def test_sigterm_hands_back_what_outlasts_the_grace_period(
    home: Path, workspace: Path, holds: Holds
) -> None:
    daemon = run_worker(home, workspace, "w1", "--grace", "0.2")
    job = holds.job(home, "held.txt")
    dispatch(home, workspace)
    wait_until(lambda: status(home, job) == "running", "the claim", daemon)
    assert stopped_cleanly(daemon, signal.SIGINT).endswith(", 1 handed back")
    assert status(home, job) == "running"  # nothing recorded: its lease will expire
    assert not events_of(home, "job.completed")


def gates_with_heartbeat_timeout(tmp_path: Path, seconds: float) -> Path:
    return gates_with(tmp_path, heartbeat_timeout_s=seconds)


def sweep_until(home: Path, workspace: Path, gates: Path, done: Any) -> None:
    """Dispatch rounds (sweeping expired leases, recovering) until ``done()``."""
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, "recovery did not finish"
        dispatch(home, workspace, "--gates", str(gates))
        time.sleep(0.1)


def test_sigkill_leaves_the_held_attempt_to_time_out_and_recover_elsewhere(
    home: Path, workspace: Path, tmp_path: Path, holds: Holds
) -> None:
    gates = gates_with_heartbeat_timeout(tmp_path, 1.0)
    first = run_worker(home, workspace, "w1")
    job = holds.job(home, "held.txt", "--timeout", "1")
    dispatch(home, workspace, "--gates", str(gates))
    wait_until(lambda: status(home, job) == "running", "the claim", first)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    holds.release("held.txt")  # the next attempt reads it at once
    second = run_worker(home, workspace, "w2")
    time.sleep(1.5)  # w1 silent past the heartbeat timeout: gate G0 keeps it out
    sweep_until(home, workspace, gates, lambda: status(home, job) == "completed")
    line = stopped_cleanly(second)
    timed_out = [e for e in events_of(home, "job.timed_out") if e["stream"] == job]
    assert [e["data"]["attempt"] for e in timed_out] == [1]
    recoveries = [
        e
        for e in events_of(home, "decision.made")
        if e["data"]["job_id"] == job and e["data"]["intent"] == "recover_failure"
    ]
    assert recoveries
    completed = [e for e in events_of(home, "job.completed") if e["stream"] == job]
    assert len(completed) == 1
    shown = as_json(home, "job", "show", job)
    assert shown["worker"] == "w2" and shown["attempt"] == completed[0]["data"]["attempt"]
    assert "1 completed" in line
    # the recovery is a visible self_heal, resolved by the attempt it scheduled once a
    # dispatcher settles that attempt, and counted
    dispatch(home, workspace, "--gates", str(gates))
    heals = as_json(home, "sql", f"SELECT * FROM self_heals WHERE job_id = '{job}'")
    assert [(h["trigger"], h["outcome"]) for h in heals] == [("timeout", "healed")]
    assert heals[0]["decision_id"] == recoveries[0]["stream"]
    counted = as_json(home, "why", "stats")["self_heal"]
    healed = {"trigger": "timeout", "action": heals[0]["action"], "outcome": "healed", "count": 1}
    assert healed in counted


def test_a_result_after_the_lease_is_recorded_late_and_completes_nothing_twice(
    home: Path, workspace: Path, tmp_path: Path, holds: Holds
) -> None:
    gates = gates_with_heartbeat_timeout(tmp_path, 300.0)
    slow = run_worker(home, workspace, "w1")
    job = holds.job(home, "held.txt", "--timeout", "1")
    dispatch(home, workspace, "--gates", str(gates))
    wait_until(lambda: status(home, job) == "running", "the claim", slow)
    invoke(home, "worker", "quarantine", "w1", "--reason", "too slow")
    other = workspace / "other"
    other.mkdir()
    (other / "held.txt").write_text("held")
    fast = run_worker(home, other, "w2")  # not where w1's read is held
    time.sleep(1.1)  # the lease of attempt 1 expires
    sweep_until(home, workspace, gates, lambda: events_of(home, "job.timed_out"))
    holds.release("held.txt")  # w1 ends attempt 1 now, after its lease
    wait_until(lambda: events_of(home, "job.result_late"), "the late result", slow)
    sweep_until(home, workspace, gates, lambda: status(home, job) == "completed")
    assert stopped_cleanly(slow).startswith("worker w1 stopped: 1 attempt(s) claimed, 0 completed")
    stopped_cleanly(fast)
    late = events_of(home, "job.result_late")
    assert [(e["data"]["worker"], e["data"]["attempt"]) for e in late] == [("w1", 1)]
    completed = [e for e in events_of(home, "job.completed") if e["stream"] == job]
    assert len(completed) == 1 and completed[0]["data"]["attempt"] > 1
    scored = Counter(e["stream"] for e in events_of(home, "decision.scored"))
    assert set(scored.values()) == {1}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--kinds", "llm_call"), "a worker daemon runs"),
        (("--kinds", "noop", "--concurrency", "0"), "concurrency must be 1 to 64"),
        (("--kinds", "noop", "--heartbeat", "0"), "heartbeat must be over 0"),
        (("--kinds", "noop", "--heartbeat", "1000"), "heartbeat must be over 0"),
        (("--kinds", "noop", "--grace", "-1"), "grace must be 0 to 3600"),
        (("--kinds", "noop", "--workspace", "/nonexistent/ws"), "is not a directory"),
    ],
)
def test_bad_daemon_input_is_one_line_and_exit_2(
    home: Path, args: tuple[str, ...], needle: str
) -> None:
    refused(home, "worker", "run", "w1", *args, needle=needle)
    assert not events_of(home, "worker.registered")


def test_a_simulated_worker_id_is_refused(home: Path) -> None:
    invoke(home, "simulate", "--jobs", "1")
    simulated = events_of(home, "worker.registered")[0]["data"]["worker_id"]
    refused(home, "worker", "run", simulated, "--kinds", "noop", needle="namespace")


def test_an_idle_daemon_heartbeats(home: Path, workspace: Path) -> None:
    daemon = run_worker(home, workspace, "w1")
    start = datetime.now(UTC)
    wait_until(lambda: len(events_of(home, "worker.heartbeat")) >= 2, "heartbeats", daemon)
    seen = as_json(home, "worker", "list")[0]["last_seen"]
    assert datetime.fromisoformat(seen.replace("Z", "+00:00")) >= start
    assert stopped_cleanly(daemon).startswith("worker w1 stopped: 0 attempt(s) claimed")


def test_two_followers_and_two_daemons_run_every_job_once(home: Path, workspace: Path) -> None:
    """dispatch --follow twice and worker run twice, on one home: every job completes,
    once; every attempt is dispatched once and run once; the log verifies."""
    daemons = [run_worker(home, workspace, w, "--concurrency", "2") for w in ("w1", "w2")]
    followers = [
        start_cli(home, "dispatch", "--follow", "--name", n, "--workspace", str(workspace))
        for n in ("d1", "d2")
    ]
    names = [f"count-{i}.txt" for i in range(60)]
    jobs = [counting_job(home, workspace, name) for name in names]
    jobs += [str(as_json(home, "job", "create", "noop")["id"]) for _ in range(30)]
    processes = [*daemons, *followers]
    wait_until(
        lambda: len({e["stream"] for e in events_of(home, "job.completed")}) == len(jobs),
        "every job to complete",
        *processes,
    )
    for process in processes:
        code, out, err = stop(process)
        assert code == 0, (out, err)
        assert "Traceback" not in out + err
    assert [executions(workspace, name) for name in names] == [1] * len(names)
    per_job = Counter(e["stream"] for e in events_of(home, "job.completed"))
    assert sorted(per_job) == sorted(jobs) and set(per_job.values()) == {1}
    attempts = Counter(
        (e["stream"], e["data"]["attempt"]) for e in events_of(home, "job.dispatched")
    )
    started = Counter((e["stream"], e["data"]["attempt"]) for e in events_of(home, "job.started"))
    assert set(attempts.values()) == {1} and set(started.values()) == {1}
    assert set(Counter(e["stream"] for e in events_of(home, "decision.scored")).values()) == {1}
    invoke(home, "audit", "verify")
