"""Worker daemons for tests, jobs that count their executions apart from the log, and jobs
held for as long as a test wants.

A ``patch_apply`` job replacing "0" with "01" in a file of its own appends one "1" per
execution (the old text still matches once), so the file says how often it ran.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cli_helpers import as_json
from process_helpers import events_of, start_cli, wait_until
from store_helpers import REPO_ROOT

#: Heartbeat of the daemons under test (seconds; well under any heartbeat timeout).
BEAT = "0.2"


def run_worker(home: Path, workspace: Path, worker: str, *more: str) -> subprocess.Popen[str]:
    """A daemon of ``worker`` (noop, patch_apply, file_read), once it has registered (again,
    for a worker restarted: its handlers are up, so a SIGTERM is a clean stop)."""
    before = registrations(home, worker)
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
    wait_until(lambda: registrations(home, worker) > before, f"{worker} to register", process)
    return process


def gates_with(tmp_path: Path, **settings: Any) -> Path:
    """A gates.json (for ``dispatch --gates``): the shipped one with ``settings`` changed."""
    gates = json.loads((REPO_ROOT / "policies" / "gates.json").read_text())
    path = tmp_path / "gates.json"
    path.write_text(json.dumps(gates | settings))
    return path


def registrations(home: Path, worker: str) -> int:
    """How often ``worker`` registered (or registered again) as a process worker."""
    return sum(
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


class Holds:
    """Jobs held for as long as a test wants: a file_read job of a file this process holds a
    write lease on (fcntl F_SETLEASE). The worker's open blocks in the kernel until the lease
    is released (or the kernel breaks it after /proc/sys/fs/lease-break-time, 45 s)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.leases: dict[str, int] = {}

    def job(self, home: Path, name: str, *more: str) -> str:
        (self.workspace / name).write_text("held")
        fd = os.open(self.workspace / name, os.O_RDONLY)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        self.leases[name] = fd
        payload = json.dumps({"path": name})
        return str(as_json(home, "job", "create", "file_read", "--payload", payload, *more)["id"])

    def release(self, name: str) -> None:
        fd = self.leases.pop(name)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)


@contextmanager
def holding(workspace: Path) -> Iterator[Holds]:
    """Held jobs of ``workspace``, every lease let go at the end."""
    # A lease holder gets SIGIO when someone opens the file; its default action would kill us.
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    held = Holds(workspace)
    try:
        yield held
    finally:
        for name in list(held.leases):
            held.release(name)
        signal.signal(signal.SIGIO, previous)
