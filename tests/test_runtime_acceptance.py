"""Issue 9's acceptance run: 2 ``dispatch --follow`` and 3 ``worker run`` processes on one
home, 2,000 noop, file_read and counting jobs; one dispatcher SIGKILLed mid-run and started
again. Every job completes once, every attempt is dispatched, started and run once (counted
apart from the log), no process prints a traceback, and the log verifies and replays
without drift."""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

from cli_helpers import as_json, invoke
from process_helpers import events_of, start_cli, stop, wait_until
from worker_helpers import executions, run_worker

from sheratan.home import Home, init_home

JOBS = 2_000
COUNTING = 400
READS = 600


def test_two_followers_three_daemons_two_thousand_jobs_each_run_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    init_home(home)
    (workspace / "input.txt").write_text("read me")
    daemons = [run_worker(home, workspace, w, "--concurrency", "2") for w in ("w1", "w2", "w3")]
    followers = {
        name: start_cli(home, "dispatch", "--follow", "--name", name, "--workspace", str(workspace))
        for name in ("d1", "d2")
    }
    names = [f"count-{i}.txt" for i in range(COUNTING)]
    jobs = create_jobs(home, workspace, names)

    # SIGKILL one dispatcher once it has acted, then start it again: it resumes after its
    # tracking position.
    wait_until(lambda: tracked(home, "d1"), "d1 to act", *followers.values())
    followers["d1"].send_signal(signal.SIGKILL)
    followers["d1"].communicate()
    restarted = start_cli(
        home, "dispatch", "--follow", "--name", "d1", "--workspace", str(workspace)
    )
    processes = [*daemons, followers["d2"], restarted]
    wait_until(
        lambda: len({e["stream"] for e in events_of(home, "job.completed")}) == len(jobs),
        "every job to complete",
        *processes,
    )
    outputs = [stop(process) for process in processes]
    for code, out, err in outputs:
        assert code == 0, (out, err)
        assert "Traceback" not in out + err
    resumed = re.search(r"after position (\d+)", outputs[-1][2])
    assert resumed is not None and int(resumed.group(1)) > 0, outputs[-1][2]

    assert [executions(workspace, name) for name in names] == [1] * COUNTING
    completed = Counter(e["stream"] for e in events_of(home, "job.completed"))
    assert sorted(completed) == sorted(jobs) and set(completed.values()) == {1}
    dispatched = Counter(
        (e["stream"], e["data"]["attempt"]) for e in events_of(home, "job.dispatched")
    )
    started = Counter((e["stream"], e["data"]["attempt"]) for e in events_of(home, "job.started"))
    assert set(dispatched.values()) == {1} and set(started.values()) == {1}
    assert set(started) <= set(dispatched)
    scored = Counter(e["stream"] for e in events_of(home, "decision.scored"))
    assert set(scored.values()) == {1}
    assert len(scored) == len(events_of(home, "decision.made"))  # nothing left unscored
    assert as_json(home, "audit", "verify")["ok"] is True
    assert as_json(home, "replay", "--exact")["drift"]["major"] == 0
    invoke(home, "job", "list")


def create_jobs(home: Path, workspace: Path, counted: list[str]) -> list[str]:
    """JOBS jobs through the real create path: counting patch_apply jobs, file reads, noops."""
    opened = Home.open(home)
    try:
        ids = []
        for name in counted:
            (workspace / name).write_text("0")
            payload = {"path": name, "old": "0", "new": "01"}
            ids.append(opened.app.create_job("patch_apply", payload))
        ids += [opened.app.create_job("file_read", {"path": "input.txt"}) for _ in range(READS)]
        ids += [opened.app.create_job("noop", {}) for _ in range(JOBS - len(ids))]
    finally:
        opened.close()
    return [str(job_id) for job_id in ids]


def tracked(home: Path, name: str) -> bool:
    """Whether dispatcher ``name`` has a tracking record (it acted on some position)."""
    opened = Home.open(home)
    try:
        return opened.ledger.max_tracking_id(f"dispatcher:{name}") is not None
    finally:
        opened.close()
