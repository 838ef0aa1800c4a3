"""Real CLI processes for tests: start one, wait for what the log shows, stop it by a signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store_helpers import REPO_ROOT, log_lines

#: How long a test waits for another process to get somewhere (a guard, not a check).
WAIT_S = 60.0


def start_cli(home: Path, *args: str) -> subprocess.Popen[str]:
    """``cli.py ARGS --home HOME`` as a process of its own, its output captured."""
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "cli.py"), *args, "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``cli.py ARGS --home HOME`` run to its end, stdout and stderr captured (so neither is
    a terminal); ``env`` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


def cli_ok(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``run_cli`` that must succeed (a process of its own: no state shared with the test)."""
    done = run_cli(home, *args)
    assert done.returncode == 0, done.stderr
    return done


def cli_json(home: Path, *args: str) -> Any:
    return json.loads(cli_ok(home, *args, "--json").stdout)


def cli_refused(home: Path, *args: str, code: int = 2, needle: str) -> str:
    """A refusal: exit ``code``, one line on stderr naming ``needle``, nothing on stdout."""
    done = run_cli(home, *args)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert needle in lines[0], lines[0]
    assert not done.stdout.strip()
    return lines[0]


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    """Send ``sig`` and wait for the process: its exit code, stdout and stderr."""
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def stop_cleanly(processes: list[subprocess.Popen[str]]) -> dict[Any, tuple[int, str, str]]:
    """SIGTERM each process in turn: each must exit 0 without a traceback. Their exit codes
    and outputs, by process."""
    outputs = {process: stop(process) for process in processes}
    for process, (code, out, err) in outputs.items():
        assert code == 0, (process.args, out, err)
        assert "Traceback" not in out + err
    return outputs


def kill_left(started: list[subprocess.Popen[str]]) -> None:
    """After a test (also a failed one): kill whatever it started that still runs."""
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_until(check: Callable[[], Any], what: str, *alive: subprocess.Popen[str]) -> Any:
    """Poll ``check`` until it returns something true; fail if a process of ``alive`` ended
    or WAIT_S passed, with ``what`` (and the dead process's output) as the message."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = check()
        if found:
            return found
        for process in alive:
            assert process.poll() is None, (what, process.communicate())
        assert time.monotonic() < deadline, f"waited in vain for {what}"
        time.sleep(0.05)


def events_of(home: Path, topic: str) -> list[dict[str, Any]]:
    """The log's events of one topic, in log order (lines as written: stream, data, ...), on
    either store."""
    return [line for line in log_lines(home) if line["topic"] == topic]


def topics_by_stream(home: Path, stream: str) -> Counter[str]:
    return Counter(line["topic"] for line in log_lines(home) if line["stream"] == stream)
