"""Bad input gets one clear line, exit 2, and records nothing (issue 8, point 7).

Every refusal is checked three ways: the exit code, the one line on stderr that names the
problem, and the log's bytes (a sha256 of every file under ``events/`` and ``checkpoints/``)
unchanged after the command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cli as cli_module
from scripts.gen_kind_schemas import render
from sheratan.inputs import (
    MAX_DESCRIPTION_CHARS,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_BYTES,
    MAX_TITLE_CHARS,
    json_depth,
    known_kinds,
)
from sheratan.packaged import schema_file
from sheratan.workers.kinds import PAYLOAD_SHAPES
from tests.cli_helpers import as_json, log_digest, refused_unrecorded

CLI = Path(cli_module.__file__)


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with a mission, a local worker, a job and a keyed job that depends on it."""
    home = tmp_path_factory.mktemp("inputs") / "h"
    as_json(home, "init")
    mission = as_json(home, "mission", "create", "m")["id"]
    as_json(home, "worker", "register", "w1", "--kinds", "noop,file_read", "--transport", "local")
    first = as_json(home, "job", "create", "noop")["id"]
    second = as_json(home, "job", "create", "noop")["id"]
    keyed = [
        "job", "create", "noop", "--payload", '{"prompt": "p"}', "--idempotency-key", "k1",
        "--depends-on", first, "--priority", "high", "--timeout", "60", "--max-retries", "2",
    ]  # fmt: skip
    job = as_json(home, *keyed)["id"]
    return {
        "home": home,
        "mission": mission,
        "first": first,
        "second": second,
        "keyed": keyed,
        "job": job,
    }


def keyed_with(setup: dict[str, Any], **changed: str) -> list[str]:
    """The keyed job's create command with some options changed (``None`` drops one)."""
    args = list(setup["keyed"])
    for name, value in changed.items():
        option = "--" + name.replace("_", "-")
        at = args.index(option)
        args[at + 1] = value
    return args


def test_kinds_and_their_schemas_agree() -> None:
    """Every known kind has a payload schema, and each schema file is the one its Struct
    generates (scripts/gen_kind_schemas.py), so create and the G1 gate cannot disagree."""
    assert set(known_kinds()) <= set(PAYLOAD_SHAPES)
    for kind in PAYLOAD_SHAPES:
        assert schema_file("kinds", f"{kind}.json").read_text() == render(kind), kind


@given(
    st.recursive(st.integers(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner))
)
def test_json_depth_matches_a_recursive_count(value: Any) -> None:
    def depth(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0

    cap = MAX_JSON_DEPTH + 1
    assert min(json_depth(value), cap) == min(depth(value), cap)
    assert json_depth(value) <= MAX_JSON_DEPTH or depth(value) > MAX_JSON_DEPTH


def test_bad_input_matrix_exits_2_with_one_line_and_records_nothing(
    setup: dict[str, Any],
) -> None:
    home, mission, first = setup["home"], setup["mission"], setup["first"]
    big = json.dumps({"blob": "x" * MAX_PAYLOAD_BYTES})
    known = "expensive-quality, fast-cheap, slow-reliable"  # w1 is real: never simulated
    cases: list[tuple[list[str], str]] = [
        (
            ["mission", "create", "t" * (MAX_TITLE_CHARS + 1)],
            f"title is {MAX_TITLE_CHARS + 1} characters, over the limit of {MAX_TITLE_CHARS}",
        ),
        (["mission", "create", "   "], "title must be a non-empty string"),
        (
            ["mission", "create", "t", "--description", "d" * (MAX_DESCRIPTION_CHARS + 1)],
            "description is",
        ),
        (["task", "create", mission, "t" * 1_000_000], "title is 1000000 characters"),
        (["job", "create", "rm_rf"], "unknown kind 'rm_rf': known kinds are noop, file_read"),
        (["job", "create", "shell_exec"], "unknown kind 'shell_exec'"),
        (["job", "create", "file_read"], "payload does not fit file_read at /: 'path' is a"),
        (
            ["job", "create", "file_read", "--payload", '{"path": 3}'],
            "payload does not fit file_read at /path: 3 is not of type 'string'",
        ),
        (
            ["job", "create", "noop", "--payload", nested(2000)],
            f"--payload is nested deeper than {MAX_JSON_DEPTH} levels",
        ),
        (
            ["job", "create", "noop", "--payload", nested(MAX_JSON_DEPTH + 1)],
            f"--payload is nested deeper than {MAX_JSON_DEPTH} levels",
        ),
        (["job", "create", "noop", "--payload", big], f"over the limit of {MAX_PAYLOAD_BYTES}"),
        (["job", "create", "noop", "--payload", "[1]"], "--payload must be a JSON object"),
        (
            ["job", "create", "noop", "--idempotency-key", ""],
            "idempotency key must be a non-empty string",
        ),
        (
            keyed_with(setup, payload='{"prompt": "q"}'),
            "'k1' was used for a job with a different payload",
        ),
        (keyed_with(setup, priority="normal"), "different priority"),
        (keyed_with(setup, timeout="61"), "different timeout"),
        (keyed_with(setup, max_retries="3"), "different max retries"),
        (keyed_with(setup, depends_on=setup["job"]), "cannot depend on itself"),
        (keyed_with(setup, depends_on=setup["second"]), "different dependencies"),
        ([*keyed_with(setup)[:2], "llm_call", *keyed_with(setup)[3:]], "different kind"),
        (
            ["worker", "register", "w2", "--kinds", "noop,rm_rf", "--transport", "local"],
            "unknown kind 'rm_rf'",
        ),
        (
            [
                "worker",
                "register",
                "w3",
                "--kinds",
                "noop",
                "--transport",
                "simulated",
                "--profile",
                nested(100),
            ],
            "--profile is nested deeper",
        ),
        (
            ["worker", "quarantine", "w1", "--reason", "r" * (MAX_DESCRIPTION_CHARS + 1)],
            "reason is",
        ),
        (
            ["replay", "--counterfactual", "--policy", "always:nobody"],
            "policy always:nobody: no worker 'nobody' (known workers: w1)",
        ),
        (["dispatch", "--policy", "always:nobody"], "no worker 'nobody' (known workers: w1)"),
        (
            ["simulate", "--jobs", "5", "--policy", "always:nobody"],
            f"no worker 'nobody' (known workers: {known})",
        ),
    ]
    for args, needle in cases:
        refused_unrecorded(home, *args, needle=needle)
    assert as_json(home, "job", "show", first)["status"] == "queued"  # dispatch never ran


def test_a_key_reused_with_the_same_fields_gives_the_same_job_and_records_nothing(
    setup: dict[str, Any],
) -> None:
    home = setup["home"]
    before = log_digest(home)
    # the same request, with its one dependency named twice: still the same job
    again = [*setup["keyed"], "--depends-on", setup["first"]]
    assert as_json(home, *again)["id"] == setup["job"]
    assert log_digest(home) == before


def test_a_dependency_named_twice_is_stored_once(tmp_path: Path) -> None:
    home = tmp_path / "h"
    as_json(home, "init")
    first = as_json(home, "job", "create", "noop")["id"]
    twice = as_json(home, "job", "create", "noop", "--depends-on", first, "--depends-on", first)
    assert as_json(home, "job", "show", twice["id"])["depends_on"] == [first]
    read = as_json(home, "job", "create", "file_read", "--payload", '{"path": "a.txt"}')
    assert as_json(home, "job", "show", read["id"])["payload"] == {"path": "a.txt"}


def run_process(home: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a real process, with arguments passed as bytes where given."""
    return subprocess.run(
        [sys.executable, str(CLI), *args, "--home", str(home)], capture_output=True, check=False
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((b"mission", b"create", b"\xff"), b"argument 3 (\\xff) is not valid UTF-8"),
        ((b"job", b"create", b"noop", b"--idempotency-key", b"k\xfe"), b"is not valid UTF-8"),
        (("job", "create", "noop", "--payload", nested(2000)), b"nested deeper than"),
    ],
)
def test_a_real_process_refuses_in_one_line_without_a_traceback(
    tmp_path: Path, args: tuple[str | bytes, ...], needle: bytes
) -> None:
    home = tmp_path / "h"
    as_json(home, "init")
    before = log_digest(home)
    done = run_process(home, *args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(b"error: ") and needle in lines[0], lines
    assert log_digest(home) == before
