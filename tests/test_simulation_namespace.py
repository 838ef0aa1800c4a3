"""A simulation writes into the home's log but never touches real work.

Its jobs and workers carry the namespace "simulation": ``simulate`` runs no real job and
routes to no real worker, ``dispatch`` runs no simulated job, and Ctrl-C cancels (as events)
every simulated job still open.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from cli_helpers import as_json, invoke
from store_helpers import REPO_ROOT

from events import Event
from events.jobs import JobCreated
from events.workers import WorkerRegistered
from sheratan.codec import EventCodec

REAL_WORKER = "real-1"
PROFILE = {"latency_ms": {"p50": 100, "p95": 300}, "cost": 1.0, "quality": 0.8, "risk": 0.0}
SIM_WORKERS = {
    "workers": [
        {"id": "sim-a", "kinds": ["noop"], "success": 0.9, **PROFILE},
        {"id": "sim-b", "kinds": ["noop"], "success": 0.6, **PROFILE},
    ]
}
#: How long the SIGINT test waits for the simulation to show queued jobs (a guard, not a check).
WAIT_S = 120


def real_home(tmp_path: Path) -> tuple[Path, Path, str]:
    """A home with a real local noop worker and one queued real noop job; a workers file whose
    simulated workers run noop too (so the kinds overlap)."""
    home = tmp_path / "home"
    invoke(home, "init")
    invoke(home, "worker", "register", REAL_WORKER, "--kinds", "noop", "--transport", "local")
    invoke(home, "job", "create", "noop")
    (job,) = as_json(home, "sql", "SELECT job_id FROM jobs")
    workers = tmp_path / "workers.json"
    workers.write_text(json.dumps(SIM_WORKERS))
    return home, workers, job["job_id"]


def sql(home: Path, query: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = as_json(home, "sql", query)
    return rows


def dispatched(home: Path) -> list[dict[str, Any]]:
    return sql(
        home,
        "SELECT e.stream AS job_id, e.data->>'worker' AS worker, j.namespace FROM events e "
        "JOIN jobs j ON j.job_id = e.stream WHERE e.topic = 'job.dispatched' ORDER BY e.pos",
    )


@pytest.mark.parametrize(
    "event",
    [
        JobCreated(
            originator_id=uuid4(),
            originator_version=1,
            timestamp=datetime.now(UTC),
            kind="noop",
            payload={},
            payload_hash="h",
        ),
        WorkerRegistered(
            originator_id=uuid4(),
            originator_version=1,
            timestamp=datetime.now(UTC),
            worker_id="w",
            kinds=("noop",),
            transport="local",
        ),
    ],
)
def test_an_event_written_before_the_namespace_decodes_as_real_work(event: Event) -> None:
    codec = EventCodec()
    topic, data = codec.encode(event)
    old = data.replace(b',"namespace":""', b"")
    assert b"namespace" not in old
    decoded = codec.decode(topic, old, event.originator_id, 1)
    assert decoded == event
    assert decoded.namespace == ""  # type: ignore[attr-defined]


def test_simulate_runs_no_real_job_and_routes_to_no_real_worker(tmp_path: Path) -> None:
    home, workers, real_job = real_home(tmp_path)
    report = as_json(home, "simulate", "--workers", str(workers), "--jobs", "50", "--seed", "3")
    assert report["jobs"] == 50
    assert set(report["per_worker"]) <= {"sim-a", "sim-b"}
    rows = dispatched(home)
    assert rows and all(r["namespace"] == "simulation" for r in rows)
    assert {r["worker"] for r in rows} <= {"sim-a", "sim-b"}
    assert real_job not in {r["job_id"] for r in rows}
    # No decision of the simulation even had the real worker among its candidates.
    keys = sql(home, "SELECT DISTINCT unnest(candidates).key AS key FROM decisions")
    assert not [k for k in keys if k["key"] and REAL_WORKER in k["key"]]
    registered = sql(
        home,
        "SELECT data->>'worker_id' AS id, coalesce(data->>'namespace', '') AS namespace "
        "FROM events WHERE topic = 'worker.registered' ORDER BY id",
    )
    assert registered == [
        {"id": REAL_WORKER, "namespace": ""},
        {"id": "sim-a", "namespace": "simulation"},
        {"id": "sim-b", "namespace": "simulation"},
    ]
    (real,) = sql(home, f"SELECT status FROM jobs WHERE job_id = '{real_job}'")
    assert real["status"] == "queued"


def test_dispatch_runs_the_real_job_only(tmp_path: Path) -> None:
    home, workers, real_job = real_home(tmp_path)
    invoke(home, "simulate", "--workers", str(workers), "--jobs", "50", "--seed", "3")
    before = len(dispatched(home))
    report = as_json(home, "dispatch", "--until-idle")
    assert report["dispatches"] == 1
    assert report["completed"] == 1
    after = dispatched(home)[before:]
    assert after == [{"job_id": real_job, "worker": REAL_WORKER, "namespace": ""}]
    replayed = as_json(home, "replay", "--exact")
    assert replayed["ok"] is True
    assert replayed["drift"]["major"] == replayed["drift"]["minor"] == 0


def test_a_real_worker_id_is_refused_as_a_simulated_one(tmp_path: Path) -> None:
    home, workers, _ = real_home(tmp_path)
    clash = {"workers": [{**SIM_WORKERS["workers"][0], "id": REAL_WORKER}]}
    workers.write_text(json.dumps(clash))
    result = invoke(home, "simulate", "--workers", str(workers), "--jobs", "5", code=2)
    assert result.stderr.strip().splitlines() == [
        f"error: worker '{REAL_WORKER}' is a real worker of this home; "
        "give the simulated worker another id"
    ]
    assert sql(home, "SELECT count(*) AS n FROM decisions") == [{"n": 0}]


@pytest.mark.parametrize(
    ("jobs", "seen"),
    [
        ("200000", "SELECT count(*) AS n FROM jobs WHERE namespace = 'simulation'"),
        ("60000", "SELECT count(*) AS n FROM events WHERE topic = 'job.dispatched'"),
    ],
    ids=["while-queueing", "while-dispatching"],
)
def test_ctrl_c_cancels_every_simulated_job_it_queued(tmp_path: Path, jobs: str, seen: str) -> None:
    """SIGINT once the log shows simulated jobs queued (or already dispatched)."""
    home, workers, real_job = real_home(tmp_path)
    command = [sys.executable, str(REPO_ROOT / "cli.py"), "simulate", "--home", str(home)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers), "--jobs", jobs, "--seed", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while sql(home, seen) == [{"n": 0}]:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the simulation queued nothing"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: cancelled ")
    statuses = sql(
        home,
        "SELECT status, count(*) AS n FROM jobs WHERE namespace = 'simulation' GROUP BY status",
    )
    by_status = {row["status"]: row["n"] for row in statuses}
    assert by_status.get("cancelled", 0) > 0
    assert ("completed" in by_status) == ("dispatched" in seen)
    assert set(by_status) <= {"completed", "cancelled", "quarantined"}, by_status
    reasons = sql(
        home,
        "SELECT DISTINCT e.data->>'reason' AS reason FROM events e JOIN jobs j "
        "ON j.job_id = e.stream WHERE e.topic = 'job.cancelled' AND j.namespace = 'simulation'",
    )
    assert reasons == [{"reason": "simulation interrupted"}]
    before = len(dispatched(home))
    report = as_json(home, "dispatch", "--until-idle")
    assert report["dispatches"] == 1
    assert dispatched(home)[before:] == [
        {"job_id": real_job, "worker": REAL_WORKER, "namespace": ""}
    ]
