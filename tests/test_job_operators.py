"""Operators act on jobs (issue 9, point 10): ``job cancel``, ``job requeue`` and
``job retry-dependents``; each an event, each refused with one line (exit 2, the log's bytes
unchanged) where the lifecycle forbids it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events.jobs import JobDispatched
from sheratan.home import Home, init_home
from sheratan.lifecycle import job_event
from tests.cli_helpers import as_json, invoke, refused_unrecorded


def last_topics(home: Path, count: int) -> list[str]:
    """The topics of the log's last ``count`` events (``events tail --json``: one per line)."""
    lines = invoke(home, "events", "tail", "-n", str(count), "--json").stdout.splitlines()
    return [json.loads(line)["topic"] for line in lines]


def setup_failed_chain(tmp_path: Path) -> dict[str, Any]:
    """a reads a missing file with no retries; b depends on a, c on b. After one dispatch:
    a failed (ABORT), b and c cancelled because of a."""
    home, workspace = tmp_path / "h", tmp_path / "ws"
    workspace.mkdir()
    as_json(home, "init")
    as_json(home, "worker", "register", "w1", "--kinds", "file_read,noop", "--transport", "local")
    read = json.dumps({"path": "missing.txt"})
    a = as_json(home, "job", "create", "file_read", "--payload", read, "--max-retries", "0")["id"]
    b = as_json(home, "job", "create", "noop", "--depends-on", a)["id"]
    c = as_json(home, "job", "create", "noop", "--depends-on", b)["id"]
    report = as_json(home, "dispatch", "--until-idle", "--workspace", str(workspace))
    assert report["failed"] == 1 and report["completed"] == 0
    return {"home": home, "workspace": workspace, "a": a, "b": b, "c": c}


def test_a_failed_job_cascades_then_requeue_and_retry_dependents_bring_all_back(
    tmp_path: Path,
) -> None:
    s = setup_failed_chain(tmp_path)
    home, a, b, c = s["home"], s["a"], s["b"], s["c"]
    assert as_json(home, "job", "show", a)["status"] == "failed"
    for dependent in (b, c):
        shown = as_json(home, "job", "show", dependent)
        assert shown["status"] == "cancelled" and shown["cancelled_by"] == a
    assert as_json(home, "job", "show", c)["error"].startswith(f"dependency {a} failed: ")

    # while a is failed its dependents cannot resume; cancelled jobs cannot be requeued
    refused_unrecorded(
        home, "job", "retry-dependents", a,
        needle=f"job {a} is failed: the jobs it cancelled resume only once it is completed",
    )  # fmt: skip
    refused_unrecorded(
        home, "job", "requeue", b, "--reason", "again",
        needle=f"job {b} is cancelled: job.requeued needs one of failed, quarantined, timed_out",
    )  # fmt: skip
    refused_unrecorded(home, "job", "requeue", a, needle="Missing option '--reason'")
    refused_unrecorded(
        home, "job", "requeue", a, "--reason", " ", needle="reason must be a non-empty string"
    )
    refused_unrecorded(home, "job", "cancel", c, needle=f"job {c} is cancelled: job.cancelled")

    (s["workspace"] / "missing.txt").write_text("here now")
    requeued = as_json(home, "job", "requeue", a, "--reason", "file restored")
    assert requeued == {"id": a, "status": "queued", "reason": "file restored"}
    assert as_json(home, "job", "retry-dependents", a) == {"id": a, "resumed": [b, c]}
    assert last_topics(home, 3) == ["job.requeued", "job.resumed", "job.resumed"]
    for job_id in (b, c):
        shown = as_json(home, "job", "show", job_id)
        assert shown["status"] == "queued" and shown["cancelled_by"] is None
    statuses = as_json(home, "sql", "SELECT job_id, status FROM jobs ORDER BY job_id")
    assert {row["job_id"]: row["status"] for row in statuses} == dict.fromkeys((a, b, c), "queued")

    report = as_json(home, "dispatch", "--until-idle", "--workspace", str(s["workspace"]))
    assert report["completed"] == 3
    assert as_json(home, "job", "show", a)["attempt"] == 2  # a new attempt, not a new job

    refused_unrecorded(home, "job", "cancel", a, needle=f"job {a} is completed: job.cancelled")
    refused_unrecorded(
        home, "job", "requeue", a, "--reason", "again", needle=f"job {a} is completed"
    )
    assert as_json(home, "job", "retry-dependents", a) == {"id": a, "resumed": []}


def test_cancel_takes_its_dependents_and_a_cancelled_job_is_final(tmp_path: Path) -> None:
    """``job cancel`` reports the dependents it cancelled; a cancelled job can be neither
    requeued nor have its dependents resumed; bad and unknown ids are refused in one line."""
    home = tmp_path / "h"
    as_json(home, "init")
    a = as_json(home, "job", "create", "noop")["id"]
    b = as_json(home, "job", "create", "noop", "--depends-on", a)["id"]
    other = as_json(home, "job", "create", "noop")["id"]
    cancelled = as_json(home, "job", "cancel", a, "--reason", "paused")
    assert cancelled == {"id": a, "status": "cancelled", "dependents_cancelled": [b]}
    as_json(home, "job", "cancel", other)
    refused_unrecorded(
        home, "job", "retry-dependents", a,
        needle=f"job {a} is cancelled, which is final: the jobs it cancelled cannot resume",
    )  # fmt: skip
    refused_unrecorded(
        home, "job", "requeue", a, "--reason", "x", needle=f"job {a} is cancelled: job.requeued"
    )
    refused_unrecorded(
        home, "job", "cancel", "not-an-id", needle="'not-an-id' is not an id (a UUID)"
    )
    missing = "00000000-0000-4000-8000-000000000000"
    refused_unrecorded(home, "job", "cancel", missing, needle=f"no job {missing}")
    assert as_json(home, "job", "show", other)["status"] == "cancelled"  # no dependents, alone


def test_a_quarantined_job_goes_back_to_the_queue_with_the_reason(tmp_path: Path) -> None:
    """Every candidate gated (a path outside the workspace): ABORT quarantines the job; the
    operator requeues it; the text output says so in one line."""
    home, workspace = tmp_path / "h", tmp_path / "ws"
    workspace.mkdir()
    as_json(home, "init")
    as_json(home, "worker", "register", "w1", "--kinds", "file_read", "--transport", "local")
    read = json.dumps({"path": "../outside.txt"})
    job = as_json(home, "job", "create", "file_read", "--payload", read)["id"]
    assert as_json(home, "dispatch", "--workspace", str(workspace))["aborted"] == 1
    assert as_json(home, "job", "show", job)["status"] == "quarantined"
    said = invoke(home, "job", "requeue", job, "--reason", "path checked by hand")
    assert said.stdout == f"{job} queued again: path checked by hand\n"
    shown = as_json(home, "job", "show", job)
    assert shown["status"] == "queued" and shown["error"] is None
    refused_unrecorded(
        home, "job", "requeue", job, "--reason", "twice", needle=f"job {job} is queued"
    )
    said = invoke(home, "job", "cancel", job)
    assert said.stdout == (
        f"{job} cancelled: cancelled by an operator; 0 dependent job(s) cancelled\n"
    )


def test_an_operator_who_loses_a_race_reads_again_and_still_acts(tmp_path: Path) -> None:
    """Another process (here a second handle on the same home, as a dispatcher would be)
    leases the job between the operator's read and save: the cancel reads again, finds the
    job dispatched (which may still be cancelled), and records the cancel on top."""
    init_home(tmp_path / "h")
    operator = Home.open(tmp_path / "h")
    dispatcher = Home.open(tmp_path / "h")
    job_id = operator.app.create_job("noop", {})
    save = operator.app.save
    raced = []

    def save_after_a_dispatcher(*events: Any, **kwargs: Any) -> Any:
        if not raced:
            job = dispatcher.app.get_job(job_id)
            now = datetime.now(UTC)
            lease = job_event(
                job, JobDispatched, now, worker="w", attempt=1, lease_until=now + timedelta(1)
            )
            raced.append(dispatcher.app.save(lease))
        return save(*events, **kwargs)

    operator.app.save = save_after_a_dispatcher  # type: ignore[method-assign]
    operator.app.cancel_job(job_id, "not needed")
    job = dispatcher.app.get_job(job_id)
    assert raced and job.status == "cancelled" and job.version == 4
