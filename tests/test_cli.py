"""The CLI through click's CliRunner: JSON out, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import cli as cli_module
from cli import cli


def run(home: Path, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, [*args, "--home", str(home), "--json"])
    assert result.exit_code == code, result.output + result.stderr
    return json.loads(result.stdout) if code == 0 and result.stdout.strip() else result


def test_the_first_floor_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert run(home, "init") == {"home": str(home), "created": True}
    assert run(home, "init")["created"] is False
    seeded = run(home, "audit", "verify")["events"]  # init seeds the starter priors
    mission = run(home, "mission", "create", "First")["id"]
    task = run(home, "task", "create", mission, "Step")["id"]
    first = run(home, "job", "create", "file_read", "--task", task, "--payload", '{"path": "a"}')[
        "id"
    ]
    second = run(
        home,
        "job",
        "create",
        "noop",
        "--priority",
        "critical",
        "--depends-on",
        first,
        "--idempotency-key",
        "k",
        "--timeout",
        "30",
    )["id"]
    assert (
        run(
            home,
            "job",
            "create",
            "noop",
            "--priority",
            "critical",
            "--idempotency-key",
            "k",
            "--depends-on",
            first,
            "--timeout",
            "30",
        )["id"]
        == second
    )

    shown = run(home, "job", "show", second)
    assert shown["status"] == "queued"
    assert shown["depends_on"] == [first]
    assert shown["timeout_seconds"] == 30.0
    queue = run(home, "job", "list", "--status", "queued")
    assert [j["id"] for j in queue] == [second, first]  # critical before normal
    assert {j["id"] for j in run(home, "job", "list")} == {first, second}
    assert run(home, "job", "list", "--status", "completed") == []
    assert [m["id"] for m in run(home, "mission", "list")] == [mission]
    assert run(home, "mission", "show", mission)["tasks"][0]["id"] == task
    assert [t["id"] for t in run(home, "task", "list", "--mission", mission)] == [task]

    tail = CliRunner().invoke(cli, ["events", "tail", "-n", "2", "--home", str(home), "--json"])
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [line["pos"] for line in lines] == [seeded + 5, seeded + 6]
    assert lines[-1]["topic"] == "job.queued"

    rebuilt = run(home, "rebuild")
    assert rebuilt["views"]["jobs"]["counts"] == {"queued": 2}
    at_first_job_created = str(seeded + 3)
    assert run(home, "rebuild", "--at", at_first_job_created)["views"]["jobs"]["counts"] == {
        "created": 1
    }

    checkpoint = run(home, "audit", "checkpoint")
    assert checkpoint["pos"] == seeded + 6
    verified = run(home, "audit", "verify")
    assert verified["ok"] and verified["verified"] == verified["events"] == seeded + 6


def test_tampering_makes_audit_verify_exit_1_naming_the_position(tmp_path: Path) -> None:
    home = tmp_path / "h"
    run(home, "init")
    for _ in range(3):
        run(home, "job", "create", "noop")
    segment = next((home / "events").glob("*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    victim = next(i for i, line in enumerate(lines) if b'"kind":"noop"' in line)
    lines[victim] = lines[victim].replace(b'"kind":"noop"', b'"kind":"nope"')
    segment.write_bytes(b"".join(lines))
    result = CliRunner().invoke(cli, ["audit", "verify", "--home", str(home), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_position"] == victim + 1
    human = CliRunner().invoke(cli, ["audit", "verify", "--home", str(home)])
    assert human.exit_code == 1 and f"position {victim + 1}" in human.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["job", "show", "not-a-uuid"], "not an id"),
        (["job", "show", "00000000-0000-0000-0000-000000000001"], "no job"),
        (["job", "create", "noop", "--payload", "[1]"], "JSON object"),
        (["job", "create", "noop", "--payload", "{"], "not JSON"),
        (["job", "create", "noop", "--priority", "urgent"], "urgent"),
        (["job", "create", "noop", "--timeout", "-1"], "timeout"),
        (["task", "create", "00000000-0000-0000-0000-000000000001", "t"], "no mission"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    home = tmp_path / "h"
    run(home, "init")
    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr


def test_a_missing_home_says_to_run_init(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["job", "list", "--home", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "sheratan init" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_docs_cli_md_matches_the_help(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", Path(cli_module.__file__).parent / "scripts" / "gen_cli_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on_disk = (Path(cli_module.__file__).parent / "docs" / "cli.md").read_text()
    assert module.render() == on_disk, "docs/cli.md is stale: run python scripts/gen_cli_docs.py"


def test_events_tail_follow_prints_new_events_as_they_are_committed(tmp_path: Path) -> None:
    home = tmp_path / "h"
    run(home, "init")
    cli_path = Path(cli_module.__file__)
    follower = subprocess.Popen(
        [
            sys.executable,
            str(cli_path),
            "events",
            "tail",
            "-n",
            "1",
            "--follow",
            "--json",
            "--home",
            str(home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30, follower.kill)  # a broken --follow fails, never hangs
    watchdog.start()
    try:
        assert follower.stdout is not None
        ready = json.loads(follower.stdout.readline())  # the last event so far: it is following
        job_id = run(home, "job", "create", "noop")["id"]
        seen = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert [line["topic"] for line in seen] == ["job.created", "job.queued"]
        assert seen[0]["pos"] == ready["pos"] + 1
        assert {line["stream"] for line in seen} == {job_id}
    finally:
        watchdog.cancel()
        follower.terminate()
        follower.wait(timeout=10)


def test_home_and_json_count_the_same_before_the_command(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    made = runner.invoke(cli, ["--home", home, "--json", "mission", "create", "Before"])
    assert made.exit_code == 0, made.output
    mission = json.loads(made.stdout)["id"]
    before = runner.invoke(cli, ["--json", "--home", home, "mission", "list"])
    after = runner.invoke(cli, ["mission", "list", "--home", home, "--json"])
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert [m["id"] for m in json.loads(before.stdout)] == [mission]
    # the one after the command wins where both are given
    other = tmp_path / "other"
    runner.invoke(cli, ["init", "--home", str(other)])
    listed = runner.invoke(cli, ["--home", home, "mission", "list", "--home", str(other), "--json"])
    assert json.loads(listed.stdout) == []


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    shown = CliRunner().invoke(cli, ["--version"])
    assert shown.exit_code == 0
    assert shown.stdout == f"sheratan, version {version('sheratan')}\n"
