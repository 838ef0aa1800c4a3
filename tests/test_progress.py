"""Long work shows progress on stderr: a bar on a terminal, a line every
$SHERATAN_PROGRESS_EVERY seconds elsewhere, nothing with --quiet; stdout never changes.

The commands run as real processes with stderr captured (a pipe, as in CI or a log file),
with a short interval so that lines appear within a small log's work.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from cli_helpers import invoke
from click.testing import CliRunner
from process_helpers import run_cli
from store_helpers import REPO_ROOT

from cli import cli
from sheratan.progress import EVERY_ENV, Progress

#: Lines every 5 ms: every command below works for longer than that.
OFTEN = {EVERY_ENV: "0.005"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose log holds 1,000 simulated jobs (about 10,000 events)."""
    path = tmp_path_factory.mktemp("progress") / "home"
    invoke(path, "init")
    invoke(path, "simulate", "--jobs", "1000")
    return path


@pytest.mark.parametrize(
    ("args", "label"),
    [
        (("simulate", "--jobs", "300"), "simulating: "),
        (("rebuild", "--view", "jobs", "--view", "queue"), "rebuilding views: "),
        (("rebuild", "--at", "5000", "--view", "jobs"), "rebuilding views: "),
        (("replay", "--exact"), "replaying: "),
        (("replay", "--regression", "--weights", "policies/scoring.json"), "replaying: "),
        (("replay", "--counterfactual", "--policy", "random", "--resamples", "50"), "counterf"),
        (("audit", "verify"), "verifying the hash chain: "),
        (("bench", "decide", "--decisions", "200", "--jobs", "200", "--repeats", "1"), "200 "),
    ],
)
def test_long_work_writes_lines_when_stderr_is_not_a_terminal(
    home: Path, args: tuple[str, ...], label: str
) -> None:
    args = tuple(str(REPO_ROOT / a) if a.startswith("policies/") else a for a in args)
    done = run_cli(home, *args, "--json", env=OFTEN)
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # stdout holds the answer alone
    lines = done.stderr.splitlines()
    assert any(line.startswith(label) for line in lines), done.stderr
    assert all("\r" not in line and "\x1b" not in line for line in lines)  # no bar in a log


def test_a_counted_line_names_label_count_rate_and_time(home: Path) -> None:
    done = run_cli(home, "replay", "--exact", env=OFTEN)
    assert done.returncode == 0, done.stderr
    last = done.stderr.splitlines()[-1]  # written when the count ends
    assert re.fullmatch(r"replaying: ([\d,]+)/\1 positions, [\d,]+/s, done in [\d.]+ s", last)


@pytest.mark.parametrize(
    "args",
    [
        ("--quiet", "simulate", "--jobs", "200"),
        ("replay", "--exact", "--quiet"),
        ("--quiet", "rebuild", "--view", "jobs"),
    ],
)
def test_quiet_before_or_after_the_command_leaves_stderr_empty(
    home: Path, args: tuple[str, ...]
) -> None:
    done = run_cli(home, *args, env=OFTEN)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout


@pytest.mark.parametrize("args", [("replay", "--exact"), ("audit", "verify")])
def test_progress_leaves_stdout_as_it_was(home: Path, args: tuple[str, ...]) -> None:
    shown = run_cli(home, *args, env=OFTEN)
    quiet = run_cli(home, "--quiet", *args, env=OFTEN)
    assert shown.stderr and not quiet.stderr
    assert shown.stdout == quiet.stdout


def test_a_bad_interval_is_refused_in_one_line(home: Path) -> None:
    result = CliRunner().invoke(
        cli, ["audit", "verify", "--home", str(home)], env={EVERY_ENV: "soon"}
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: {EVERY_ENV} must be a number of seconds above 0, got 'soon'\n"


def test_on_a_terminal_a_bar_is_redrawn_in_place() -> None:
    stream = io.StringIO()
    with Progress(stream, terminal=True, every_s=60) as shown:
        shown.say("step one")
        with shown.counting("counting", 10, "things") as advance:
            advance(10)
    text = stream.getvalue()
    assert text.startswith("step one\n")
    assert "\rcounting [########################] 100% 10/10 " in text
    assert text.endswith("\n")


def test_quiet_writes_nothing_at_all() -> None:
    stream = io.StringIO()
    with Progress(stream, quiet=True, terminal=True, every_s=0.001) as shown:
        shown.say("step")
        with shown.counting("counting", 10) as advance:
            advance(5)
    assert stream.getvalue() == ""


def test_off_a_terminal_a_step_is_named_with_its_time_so_far() -> None:
    stream = io.StringIO()
    with Progress(stream, terminal=False, every_s=0.001) as shown:
        shown.say("generating a log")
        deadline = time.monotonic() + 60
        while "so far" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.001)
    assert stream.getvalue().startswith("generating a log (")


def test_an_open_ended_count_that_does_not_move_stays_silent() -> None:
    """An idle `dispatch --follow` writes no line every interval; one that dispatches does."""
    stream = io.StringIO()
    shown = Progress(stream, terminal=False, every_s=0.001)
    with shown, shown.counting("dispatched", unit="jobs", moves_only=True) as advance:
        time.sleep(0.05)
        assert stream.getvalue() == ""
        advance(3)
        deadline = time.monotonic() + 60
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.05)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("dispatched: 3 jobs, ")
    assert len(lines) == 2 and lines[1].startswith("dispatched: 3 jobs, ") and "done in" in lines[1]


def test_work_stopped_midway_says_stopped_not_done() -> None:
    """Ctrl-C (or an error) inside counted work: the last line says where it stopped."""
    stream = io.StringIO()
    shown = Progress(stream, terminal=False, every_s=0.001)
    with shown, pytest.raises(KeyboardInterrupt), shown.counting("simulating", 10, "jobs") as go:
        go(4)
        deadline = time.monotonic() + 60
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.001)
        raise KeyboardInterrupt
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("simulating: 4/10 jobs, ") and "stopped after" in last
    assert "done in" not in stream.getvalue()
