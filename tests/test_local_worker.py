"""The local transport: built-in kinds in a workspace, paths checked again at the moment of use."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from projections.jobs import JobState
from sheratan.workers.local import LocalTransport
from tests.states import job_state, worker_state

WORKER = worker_state(
    "local", kinds=("noop", "file_read", "file_write", "patch_apply"), cost_hint=0.0
)


def job(kind: str, payload: dict[str, Any]) -> JobState:
    return job_state(kind, payload, version=3, status="running", timeout_seconds=5.0, max_retries=0)


def test_write_patch_and_read_a_file(tmp_path: Path) -> None:
    worker = LocalTransport(tmp_path)
    wrote = worker.execute(
        job("file_write", {"path": "notes/a.txt", "content": "hello world"}), WORKER
    )
    assert wrote.ok and (tmp_path / "notes" / "a.txt").read_text() == "hello world"
    patched = worker.execute(
        job("patch_apply", {"path": "notes/a.txt", "old": "world", "new": "there"}), WORKER
    )
    assert patched.ok and (tmp_path / "notes" / "a.txt").read_text() == "hello there"
    read = worker.execute(job("file_read", {"path": "notes/a.txt"}), WORKER)
    assert read.ok and read.result == {
        "path": "notes/a.txt",
        "bytes": 11,
        "sha256": hashlib.sha256(b"hello there").hexdigest(),
    }
    assert "content" not in read.result  # file contents never go into the permanent log
    assert read.artifacts == ("file:notes/a.txt",)
    assert worker.execute(job("noop", {"anything": 1}), WORKER).ok


def test_failures_are_outcomes_with_codes_not_exceptions(tmp_path: Path) -> None:
    worker = LocalTransport(tmp_path)
    (tmp_path / "a.txt").write_text("x x")
    cases = {
        "not_found": job("file_read", {"path": "missing.txt"}),
        "patch_mismatch": job("patch_apply", {"path": "a.txt", "old": "x", "new": "y"}),
        "path_denied": job("file_write", {"path": "../escape.txt", "content": "no"}),
        "bad_payload": job("file_read", {"file": "a.txt"}),
        "unsupported_kind": job("llm_call", {"prompt": "hi"}),
    }
    for code, the_job in cases.items():
        outcome = worker.execute(the_job, WORKER)
        assert not outcome.ok and outcome.error is not None and outcome.error.code == code, code
    assert not (tmp_path.parent / "escape.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "x x"


def test_a_symlink_made_after_the_gate_is_still_refused(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    worker = LocalTransport(workspace)
    assert not worker.execute(
        job("file_read", {"path": "link/secret.txt"}), WORKER
    ).ok  # no link yet
    (workspace / "link").symlink_to(tmp_path)
    outcome = worker.execute(job("file_read", {"path": "link/secret.txt"}), WORKER)
    assert not outcome.ok and outcome.error is not None and outcome.error.code == "path_denied"
