"""CLI calls for tests that read text and JSON from ``cli.py`` with a home."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from store_helpers import live_lines

from cli import cli
from sheratan.home import read_marker


def invoke(home: Path, *args: str, code: int = 0) -> Result:
    """Run ``cli.py ARGS --home HOME``, asserting the exit code."""
    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    assert result.exit_code == code, result.output + result.stderr
    return result


def as_json(home: Path, *args: str) -> Any:
    return json.loads(invoke(home, *args, "--json").stdout)


def refused(home: Path, *args: str, needle: str) -> str:
    """Run a command that must refuse its input: exit 2, nothing on stdout, one line on
    stderr that names the problem (``needle``). Returns that line."""
    result = invoke(home, *args, code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert needle in lines[0], (needle, lines[0])
    assert not result.stdout.strip(), result.stdout
    return lines[0]


def log_digest(home: Path) -> dict[str, str]:
    """sha256 of every file under the log (``events/``, ``checkpoints/``), by relative path,
    or of a PostgreSQL home's log read as lines: equal before and after a command that
    recorded nothing."""
    if read_marker(home).postgres is not None:
        return {"postgres": hashlib.sha256(b"\n".join(live_lines(home))).hexdigest()}
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("events", "checkpoints")
        for path in sorted((home / folder).rglob("*"))
        if path.is_file()
    }


def refused_unrecorded(home: Path, *args: str, needle: str) -> str:
    """``refused``, and the log's bytes are the same after it as before."""
    before = log_digest(home)
    line = refused(home, *args, needle=needle)
    assert log_digest(home) == before, f"{args} changed the log"
    return line
