"""Worker daemons for tests, and jobs that count their executions apart from the log.

A ``patch_apply`` job replacing "0" with "01" in a file of its own appends one "1" per
execution (the old text still matches once), so the file says how often it ran.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_helpers import as_json
from process_helpers import events_of, start_cli, wait_until

#: Heartbeat of the daemons under test (seconds; well under any heartbeat timeout).
BEAT = "0.2"


def run_worker(home: Path, workspace: Path, worker: str, *more: str) -> subprocess.Popen[str]:
    """A daemon of ``worker`` (noop, patch_apply, file_read), once it has registered."""
    process = start_cli(
        home,
        "worker",
        "run",
        worker,
        "--kinds",
        "noop,patch_apply,file_read",
        "--workspace",
        str(workspace),
        "--heartbeat",
        BEAT,
        *more,
    )
    wait_until(lambda: registered(home, worker), f"{worker} to register", process)
    return process


def registered(home: Path, worker: str) -> bool:
    return any(
        line["data"]["worker_id"] == worker and line["data"]["transport"] == "process"
        for line in events_of(home, "worker.registered")
    )


def counting_job(home: Path, workspace: Path, name: str, *more: str) -> str:
    """A patch_apply job whose file gains one "1" per execution."""
    (workspace / name).write_text("0")
    payload = json.dumps({"path": name, "old": "0", "new": "01"})
    return str(as_json(home, "job", "create", "patch_apply", "--payload", payload, *more)["id"])


def executions(workspace: Path, name: str) -> int:
    return (workspace / name).read_text().count("1")
