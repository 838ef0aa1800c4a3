"""`bench cli`: how long the CLI takes to start, against a bare interpreter.

Each figure is a whole process, timed as the CPU it used (user + system, from the OS's
accounting of the finished child: steadier than wall time on a loaded machine), median of
``repeats`` runs, the command and its anchor in turn, after one warm-up run each:

- ``cli_help``: ``sheratan --help`` (target: at most 4x the anchor);
- ``job_show``: ``sheratan job show ID`` on a small home (at most 5x);
- ``job_create``: ``sheratan job create noop`` on that home (at most 6x);

against ``python -c pass`` with the same interpreter and environment. The processes run
with a bytecode cache (in a temporary folder, ``PYTHONPYCACHEPREFIX``), as an installed CLI
has; the ``info`` figures are the same runs without one (``PYTHONDONTWRITEBYTECODE``: every
module compiled at each start), for information.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sheratan.bench.figures import environment, figure

#: The targets of issue 12: the command's CPU at most this many times ``python -c pass``.
TARGETS = {"cli_help": 4.0, "job_show": 5.0, "job_create": 6.0}
#: Jobs in the small home ``job show`` reads.
HOME_JOBS = 20


def run_cli_bench(*, repeats: int, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-cli-") as folder:
        home = Path(folder) / "home"
        job_id = _small_home(home)
        commands = {
            "cli_help": ["--help"],
            "job_show": ["job", "show", job_id, "--home", str(home)],
            "job_create": ["job", "create", "noop", "--home", str(home)],
        }
        cached = _environment(Path(folder) / "pycache")
        uncached = _environment(None)
        figures: dict[str, Any] = {}
        info: dict[str, Any] = {}
        for name, args in commands.items():
            say(f"timing sheratan {' '.join(args[:2])} ({repeats} runs, and the anchor's)")
            figures[name] = _figure(args, cached, repeats, TARGETS[name])
            info[f"{name}_no_bytecode_cache"] = _figure(args, uncached, repeats, None)
    return {
        "figures": figures,
        "info": info,
        "repeats": repeats,
        "environment": environment(("click", "msgspec", "eventsourcing")),
    }


def sheratan_command() -> list[str]:
    """The installed ``sheratan`` script beside this interpreter, else ``python -m cli``."""
    script = Path(sys.executable).with_name("sheratan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def _small_home(home: Path) -> str:
    """A home holding HOME_JOBS queued jobs; the id of the first."""
    from sheratan.home import Home, init_home

    init_home(home)
    opened = Home.open(home)
    try:
        ids = [opened.app.create_job("noop", {"n": n}) for n in range(HOME_JOBS)]
    finally:
        opened.close()
    return str(ids[0])


def _environment(pycache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _figure(
    args: list[str], env: dict[str, str], repeats: int, target: float | None
) -> dict[str, Any]:
    command = [*sheratan_command(), *args]
    anchor = [sys.executable, "-c", "pass"]
    _cpu_s(command, env)  # warm-up: fills the bytecode cache and the OS's file cache
    _cpu_s(anchor, env)
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(repeats):
        ours.append(_cpu_s(command, env))
        bare.append(_cpu_s(anchor, env))
    value, anchor_value = statistics.median(ours), statistics.median(bare)
    return figure(
        value * 1000,
        "ms",
        "python -c pass",
        anchor_value * 1000,
        None if target is None else f"<= {target:g}x",
        None if target is None else value / anchor_value <= target,
        runs_ms=[round(s * 1000, 1) for s in ours],
        anchor_runs_ms=[round(s * 1000, 1) for s in bare],
    )


def _cpu_s(command: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of one run of ``command`` (its output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        msg = f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()[-300:]}"
        raise RuntimeError(msg)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
