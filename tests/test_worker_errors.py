"""No error escapes a worker (issue 9, point 13).

Reproduced before the fix: a ``patch_apply`` job on a file that is not UTF-8 raised
``UnicodeDecodeError`` out of the local transport, the CLI printed a traceback and the job
stayed ``running``. Now any exception while running a job is a failed attempt carrying the
exception's class and message, and recovery runs as for any failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sheratan.workers.local import LocalTransport
from sheratan.workers.outcome import MAX_ERROR_MESSAGE_CHARS, run_attempt
from tests.cli_helpers import as_json
from tests.states import job_state, worker_state
from tests.store_helpers import REPO_ROOT

NOT_UTF8 = b"caf\xe9 \xff\xfe old text\n"  # Latin-1 bytes: invalid as UTF-8


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``cli.py ARGS --home HOME`` in a process of its own (a traceback would reach stderr)."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_exception_in_the_transport_is_a_failed_outcome_naming_its_class(
    tmp_path: Path,
) -> None:
    (tmp_path / "latin1.txt").write_bytes(NOT_UTF8)
    job = job_state(
        "patch_apply",
        {"path": "latin1.txt", "old": "old", "new": "new"},
        version=3,
        status="running",
        timeout_seconds=5.0,
        max_retries=0,
    )
    worker = worker_state("local", kinds=("patch_apply",), cost_hint=0.0)
    outcome = run_attempt(LocalTransport(tmp_path), job, worker)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.code == "UnicodeDecodeError"
    assert outcome.error.message.startswith("UnicodeDecodeError: 'utf-8' codec can't decode")
    assert len(outcome.error.message) <= MAX_ERROR_MESSAGE_CHARS
    assert (tmp_path / "latin1.txt").read_bytes() == NOT_UTF8  # nothing half-written


def test_dispatch_records_a_crashing_job_as_failed_and_recovers_without_a_traceback(
    tmp_path: Path,
) -> None:
    """Through the CLI in a real process: exit 0, no traceback, the job failed (after its one
    retry, then ABORT) with UnicodeDecodeError in its error; never left running. Its dependent
    is cancelled naming it."""
    home, workspace = tmp_path / "h", tmp_path / "ws"
    workspace.mkdir()
    (workspace / "latin1.txt").write_bytes(NOT_UTF8)
    as_json(home, "init")
    as_json(home, "worker", "register", "w1", "--kinds", "patch_apply,noop", "--transport", "local")
    payload = json.dumps({"path": "latin1.txt", "old": "old", "new": "new"})
    job = as_json(home, "job", "create", "patch_apply", "--payload", payload, "--max-retries", "1")
    after = as_json(home, "job", "create", "noop", "--depends-on", job["id"])["id"]

    done = run_cli(home, "dispatch", "--until-idle", "--workspace", str(workspace), "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and not done.stderr.strip(), done.stderr
    report = json.loads(done.stdout)
    assert report["completed"] == 0 and report["failed"] == 1

    state = as_json(home, "job", "show", job["id"])
    assert state["status"] == "failed"
    assert state["attempt"] == 2 and state["retry_count"] == 1  # retried once, then ABORT
    assert state["error_code"] == "UnicodeDecodeError"
    assert state["error"].startswith("UnicodeDecodeError: ")
    assert as_json(home, "job", "list", "--status", "running") == []
    dependent = as_json(home, "job", "show", after)
    assert dependent["status"] == "cancelled" and dependent["cancelled_by"] == job["id"]
    assert dependent["error"].startswith(f"dependency {job['id']} failed: UnicodeDecodeError")
    assert (workspace / "latin1.txt").read_bytes() == NOT_UTF8
