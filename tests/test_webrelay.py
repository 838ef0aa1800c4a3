"""The WebRelay bridge: attempts out as files, results back as files, nothing half-read.

The outside worker is a separate process (tests/relay_writer.py) that sees only the files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cli_helpers import as_json, invoke, refused
from process_helpers import WAIT_S, events_of
from store_helpers import REPO_ROOT

from sheratan.workers.webrelay import RelayJob


def relay_worker(home: Path, tmp_path: Path, worker: str = "relay") -> Path:
    relay = tmp_path / "relay"
    invoke(
        home,
        "worker",
        "register",
        worker,
        "--kinds",
        "llm_call",
        "--transport",
        "webrelay",
        "--relay-dir",
        str(relay),
    )
    return relay


def llm_job(home: Path, *more: str) -> str:
    payload = json.dumps({"prompt": "say hello"})
    return str(as_json(home, "job", "create", "llm_call", "--payload", payload, *more)["id"])


def dispatch(home: Path) -> dict[str, Any]:
    return dict(as_json(home, "dispatch", "--until-idle"))


def put_result(relay: Path, name: str, body: bytes) -> None:
    """Write a result as the protocol asks: a temp file of one's own, then a rename."""
    temp = relay / "in" / f".{name}.test.tmp"
    temp.write_bytes(body)
    os.replace(temp, relay / "in" / name)


def result_for(job: str, attempt: int = 1, **more: Any) -> bytes:
    return json.dumps({"job_id": job, "attempt": attempt, "ok": True, **more}).encode()


def rejected(relay: Path) -> dict[str, str]:
    """Rejected file name -> its reason."""
    folder = relay / "rejected"
    return {
        path.name: (folder / f"{path.name}.reason.txt").read_text().strip()
        for path in folder.iterdir()
        if not path.name.endswith(".reason.txt")
    }


def test_register_makes_the_relay_folders_and_keeps_the_absolute_path(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shown = as_json(
        home,
        "worker",
        "register",
        "r",
        "--kinds",
        "llm_call",
        "--transport",
        "webrelay",
        "--relay-dir",
        "rel/../relay",
    )
    assert shown["profile"] == {"relay_dir": str(tmp_path / "relay")}
    assert sorted(p.name for p in (tmp_path / "relay").iterdir()) == ["in", "out", "rejected"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--transport", "webrelay"), "a webrelay worker needs --relay-dir"),
        (("--transport", "process", "--relay-dir", "x"), "--relay-dir is only for"),
        (("--transport", "webrelay", "--relay-dir", "{file}"), "is not a directory"),
    ],
)
def test_bad_relay_registration_is_one_line_and_exit_2(
    home: Path, tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    given = tuple(arg.replace("{file}", str(a_file)) for arg in args)
    refused(home, "worker", "register", "r", "--kinds", "llm_call", *given, needle=needle)
    assert not events_of(home, "worker.registered")


def test_round_trip_with_an_outside_writer_process(home: Path, tmp_path: Path) -> None:
    relay = relay_worker(home, tmp_path)
    mission = str(as_json(home, "mission", "create", "Greetings")["id"])
    task = str(as_json(home, "task", "create", mission, "Say hello")["id"])
    job = llm_job(home, "--task", task)
    assert dispatch(home)["dispatches"] == 1
    sent = msgspec.json.decode((relay / "out" / f"{job}.job.json").read_bytes(), type=RelayJob)
    assert (str(sent.job_id), sent.attempt, sent.worker) == (job, 1, "relay")
    assert (sent.mission and sent.mission.title, sent.task and sent.task.title) == (
        "Greetings",
        "Say hello",
    )
    assert sent.payload == {"prompt": "say hello"} and sent.lease_until is not None

    writer = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "relay_writer.py"), str(relay), "1"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=True,
    )
    assert writer.stdout.strip() == "answered 1"
    dispatch(home)  # collects, records, settles
    shown = as_json(home, "job", "show", job)
    assert shown["status"] == "completed"
    assert shown["result"]["echo"] == {"prompt": "say hello"}
    assert shown["metrics"]["latency_ms"] == 12.5
    dispatch(home)  # the result file, recorded, goes to done/; nothing is recorded twice
    assert [p.name for p in (relay / "done").iterdir()] == [f"{job}.result.json"]
    assert not list((relay / "in").iterdir()) and not rejected(relay)
    assert len([e for e in events_of(home, "job.completed") if e["stream"] == job]) == 1
    assert set(Counter(e["stream"] for e in events_of(home, "decision.scored")).values()) == {1}


def test_malformed_and_unknown_results_are_rejected_with_reasons(
    home: Path, tmp_path: Path
) -> None:
    relay = relay_worker(home, tmp_path)
    job = llm_job(home)
    dispatch(home)
    stranger = str(uuid.uuid4())
    put_result(relay, f"{job}.result.json", b'{"job_id": "' + job.encode() + b'", "ok": tr')
    put_result(relay, f"{stranger}.result.json", result_for(stranger))
    put_result(relay, "other.result.json", result_for(job))
    put_result(relay, f"{job}x.result.json", b"[]")
    (relay / "in" / f".{job}.half.tmp").write_bytes(b'{"job_id": ')  # a writer mid-write
    before = len(events_of(home, "job.completed"))
    dispatch(home)
    reasons = rejected(relay)
    assert reasons[f"{job}.result.json"].startswith("not a valid result: ")
    assert reasons[f"{stranger}.result.json"] == f"unknown job {stranger}"
    assert reasons["other.result.json"].startswith("the file names another job")
    assert reasons[f"{job}x.result.json"].startswith("not a valid result: ")
    assert [p.name for p in (relay / "in").iterdir()] == [f".{job}.half.tmp"]  # not touched
    assert len(events_of(home, "job.completed")) == before
    assert as_json(home, "job", "show", job)["status"] == "dispatched"

    put_result(relay, f"{job}.result.json", result_for(job, attempt=7))
    dispatch(home)
    assert rejected(relay)[f"{job}.result.json"] == f"attempt 7 of {job} is not relay's"
    infinite = result_for(job, metrics={"cost": 1}).replace(b'"cost": 1', b'"cost": 1e999')
    put_result(relay, f"{job}.result.json", infinite)
    dispatch(home)
    assert "Number out of range" in rejected(relay)[f"{job}.result.json"]


def test_a_late_result_is_rejected_and_recorded_late(home: Path, tmp_path: Path) -> None:
    relay = relay_worker(home, tmp_path)
    job = llm_job(home, "--timeout", "0.5", "--max-retries", "0")
    dispatch(home)
    time.sleep(0.6)  # past the lease
    dispatch(home)  # sweeps it: timed out
    assert [e["data"]["attempt"] for e in events_of(home, "job.timed_out")] == [1]
    put_result(relay, f"{job}.result.json", result_for(job, result={"text": "hello"}))
    dispatch(home)
    reason = rejected(relay)[f"{job}.result.json"]
    assert reason.startswith("late: attempt 1 is over (the job is ")
    late = events_of(home, "job.result_late")
    assert [(e["stream"], e["data"]["worker"], e["data"]["attempt"]) for e in late] == [
        (job, "relay", 1)
    ]
    assert not events_of(home, "job.completed")


#: Sends one attempt through WebRelay.send, killed by SIGKILL between write and rename.
KILLED_WRITER = """
import os, signal, sys, uuid
from datetime import UTC, datetime
from pathlib import Path
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.workers.webrelay import WebRelay
from projections.workers import WorkersView

now = datetime.now(UTC)
job = JobState(id=uuid.UUID(sys.argv[2]), version=3, status="dispatched", kind="llm_call",
    payload={"prompt": "x" * 1_000_000}, payload_hash="h", priority="normal",
    timeout_seconds=60, depends_on=(), idempotency_key=None, max_retries=0, attempt=1,
    worker="relay", created_at=now, updated_at=now)
worker = WorkerState(id="relay", stream=uuid.uuid4(), version=1, kinds=("llm_call",),
    transport="webrelay", cost_hint=0, profile={"relay_dir": sys.argv[1]},
    registered_at=now, last_seen=now)
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # die before the rename
WebRelay(WorkersView()).send(job, worker)
print("renamed")
"""


def test_a_sender_killed_between_write_and_rename_leaves_no_partial_file(
    home: Path, tmp_path: Path
) -> None:
    relay = relay_worker(home, tmp_path)
    job = str(uuid.uuid4())
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(relay), job],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "renamed" not in killed.stdout
    left = [p.name for p in (relay / "out").iterdir()]
    assert not [name for name in left if name.endswith(".job.json")]
    assert len(left) == 1 and left[0].startswith(f"{job}.job.json.") and left[0].endswith(".tmp")
    assert (relay / "out" / left[0]).stat().st_size > 1_000_000  # written, never renamed
