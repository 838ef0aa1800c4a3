"""Creation limits and backpressure, and the worker_limit gate (issue 11, item 3).

Limits come from policies/limits.json with a file of one's own merged over it; a refused
create records nothing (CLI: exit 2 and one line; HTTP: 429 with Retry-After).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from api_helpers import serving
from cli_helpers import as_json, invoke, log_digest, refused_unrecorded
from hypothesis import given, settings
from hypothesis import strategies as st
from round_helpers import report_attempts
from test_views import COMMANDS, _run

from events.decisions import ErrorInfo
from projections.queue import IN_FLIGHT, WAITING
from sheratan.home import Home, init_home
from sheratan.views import JOBS, QUEUE
from sheratan.workers.outcome import Outcome


def limits_file(tmp_path: Path, **sections: dict[str, Any]) -> str:
    path = tmp_path / "limits.json"
    path.write_text(json.dumps(sections))
    return str(path)


@settings(max_examples=20, deadline=None)
@given(
    script=st.lists(st.tuples(st.integers(0, 10), COMMANDS), max_size=40),
    cut=st.floats(0, 1),
)
def test_the_queue_view_counts_what_the_jobs_view_holds(script: list, cut: float) -> None:
    """Saved part-way and resumed, the queue view's counts equal those recomputed from the
    full job fold: waiting jobs, and jobs in flight per mission."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h"
        init_home(path)
        home = Home.open(path)
        mission = home.app.create_mission("m")
        tasks = (None, home.app.create_task(mission, "t"))
        _run(home, script[: int(len(script) * cut)], jobs=4, tasks=tasks)
        home.views.current(QUEUE)  # saved part-way
        home.views.current(JOBS)
        _run(home, script[int(len(script) * cut) :], jobs=3, tasks=tasks)
        queue = home.views.current(QUEUE)
        jobs = home.views.rebuild(JOBS).jobs.values()
        assert queue.waiting_count() == sum(job.status in WAITING for job in jobs)
        queued = sum(job.status == "queued" for job in jobs)
        resumed = home.views.current(JOBS)
        assert resumed.queue_depth() == resumed.queue_depth("") == queued
        assert resumed.queue_depth("simulation") == 0
        in_flight = Counter(
            f"mission:{job.mission_id}"
            for job in jobs
            if job.status in IN_FLIGHT and job.mission_id is not None
        )
        assert queue.in_flight == dict(in_flight)
        assert len(queue.open) == sum(job.status != "completed" for job in jobs)
        home.close()


def test_a_full_queue_refuses_a_create_and_records_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    limits = limits_file(tmp_path, queue={"max_waiting": 2})
    for _ in range(2):
        invoke(home, "job", "create", "noop", "--limits", limits)
    line = refused_unrecorded(
        home, "job", "create", "noop", "--limits", limits, needle="the queue is full"
    )
    assert line == (
        "error: the queue is full: 2 jobs wait for a worker (queue.max_waiting is 2); "
        "try again in 5 s"
    )
    invoke(home, "job", "cancel", as_json(home, "job", "list")[0]["id"])
    invoke(home, "job", "create", "noop", "--limits", limits)  # room again


def test_a_mission_over_its_rate_or_in_flight_limit_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    mission = as_json(home, "mission", "create", "busy")["id"]
    task = as_json(home, "task", "create", mission, "step")["id"]
    per_minute = limits_file(tmp_path, sources={"jobs_per_minute": 2})
    for _ in range(2):
        invoke(home, "job", "create", "noop", "--task", task, "--limits", per_minute)
    line = refused_unrecorded(
        home, "job", "create", "noop", "--task", task, "--limits", per_minute, needle="minute"
    )
    assert f"mission:{mission} created 2 jobs in the last minute" in line
    invoke(home, "job", "create", "noop", "--limits", per_minute)  # outside the mission: fine

    in_flight = limits_file(tmp_path, sources={"max_in_flight": 2})
    line = refused_unrecorded(
        home, "job", "create", "noop", "--task", task, "--limits", in_flight, needle="in flight"
    )
    assert f"mission:{mission} has 2 jobs in flight (sources.max_in_flight is 2)" in line


def test_a_bad_limits_file_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    bad = limits_file(tmp_path, queue={"max_waiting": 0})
    refused_unrecorded(home, "job", "create", "noop", "--limits", bad, needle="max_waiting")


def test_over_http_a_full_queue_is_429_with_retry_after(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    limits = limits_file(
        tmp_path, queue={"max_waiting": 1, "retry_after_s": 7}, writes={"per_second": 1000}
    )
    with serving(home, "--limits", limits) as server, server.client() as api:
        assert api.post("/api/jobs", json={"kind": "noop"}).status_code == 201
        before = log_digest(home)
        refused_job = api.post("/api/jobs", json={"kind": "noop"})
        assert refused_job.status_code == 429
        assert refused_job.headers["retry-after"] == "7"
        assert refused_job.json()["detail"].startswith("the queue is full: 1 jobs wait")
        assert log_digest(home) == before


def test_a_worker_at_its_limit_is_gated_and_its_jobs_wait(tmp_path: Path) -> None:
    """Process workers hold their attempts (no daemon runs them): with one attempt each, a
    third job waits in the queue, is not quarantined, and the gate says why in the decision
    that routed the second job; exact replay agrees."""
    home = tmp_path / "home"
    invoke(home, "init")
    limits = limits_file(tmp_path, workers={"max_attempts": 1})
    invoke(home, "worker", "register", "w1", "--kinds", "noop", "--transport", "process")
    jobs = [as_json(home, "job", "create", "noop")["id"] for _ in range(3)]
    invoke(home, "dispatch", "--until-idle", "--limits", limits)
    statuses = [as_json(home, "job", "show", job)["status"] for job in jobs]
    assert statuses == ["dispatched", "queued", "queued"]

    invoke(home, "worker", "register", "w2", "--kinds", "noop", "--transport", "process")
    invoke(home, "dispatch", "--until-idle", "--limits", limits)
    statuses = [as_json(home, "job", "show", job)["status"] for job in jobs]
    assert statuses == ["dispatched", "dispatched", "queued"]
    latest = as_json(home, "why", "latest")
    assert latest["chosen"]["action_key"] == "ROUTE:w2"
    (other,) = latest["alternatives"]
    limit = {gate["gate"]: gate for gate in other["gates"]}["worker_limit"]
    assert other["action_key"] == "ROUTE:w1"
    assert limit == {
        "gate": "worker_limit",
        "passed": False,
        "reason": "worker w1 holds 1 attempts (workers.max_attempts is 1)",
    }
    replay = as_json(home, "replay", "--exact", "--all")
    assert replay["ok"] and replay["drift"]["major"] == replay["drift"]["minor"] == 0


def test_a_scheduled_retry_waits_for_its_worker_to_be_under_its_limit(tmp_path: Path) -> None:
    """A RETRY chosen while its worker was free does not lease that worker once another job
    took its one attempt in the backoff: the retry waits for it (queued, not quarantined, no
    new decision, not moved to the free worker) and runs when the worker is free again."""
    home = tmp_path / "home"
    invoke(home, "init")
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"retry_backoff": {"base_s": 0.4, "jitter": 0.0}}))
    options = ("--limits", limits_file(tmp_path, workers={"max_attempts": 1}))
    options += ("--gates", str(gates))
    invoke(home, "worker", "register", "w1", "--kinds", "noop", "--transport", "process")

    def job(note: str) -> str:
        created = as_json(home, "job", "create", "noop", "--payload", json.dumps({"note": note}))
        return str(created["id"])

    def status(job_id: str) -> str:
        return str(as_json(home, "job", "show", job_id)["status"])

    first = job("first")
    invoke(home, "dispatch", "--until-idle", *options)
    second = job("second")
    failed = Outcome(ok=False, latency_ms=1.0, error=ErrorInfo("boom", "failed"))
    report_attempts(home, {"first": failed})
    invoke(home, "dispatch", "--until-idle", *options)  # RETRY:w1 scheduled; second takes w1
    assert (status(first), status(second)) == ("queued", "dispatched")
    decisions = len(as_json(home, "sql", "SELECT node_id FROM decisions"))

    invoke(home, "worker", "register", "w2", "--kinds", "noop", "--transport", "process")
    time.sleep(0.5)  # the backoff is over: w1 still holds the second job's attempt, w2 is free
    invoke(home, "dispatch", "--until-idle", *options)
    assert (status(first), status(second)) == ("queued", "dispatched")
    assert len(as_json(home, "sql", "SELECT node_id FROM decisions")) == decisions

    report_attempts(home, {})  # the second completes: w1 is free
    invoke(home, "dispatch", "--until-idle", *options)
    shown = as_json(home, "job", "show", first)
    assert (shown["status"], shown["attempt"], shown["worker"]) == ("dispatched", 2, "w1")
    replay = as_json(home, "replay", "--exact", "--all")
    assert replay["ok"] and replay["drift"]["major"] == replay["drift"]["minor"] == 0


def test_over_http_a_mission_over_its_rate_is_429_and_never_a_server_error(tmp_path: Path) -> None:
    """The server checks with its queue view behind the log (folding only near a limit):
    a view behind must still refuse exactly at the limit, with a Retry-After."""
    home = tmp_path / "home"
    init_home(home)
    limits = limits_file(tmp_path, sources={"jobs_per_minute": 2}, writes={"per_second": 1000})
    with serving(home, "--limits", limits) as server, server.client() as api:
        mission = api.post("/api/missions", json={"title": "busy"}).json()["id"]
        task = api.post(f"/api/missions/{mission}/tasks", json={"title": "step"}).json()["id"]
        codes = [api.post(f"/api/tasks/{task}/jobs", json={"kind": "noop"}) for _ in range(3)]
        assert [answer.status_code for answer in codes] == [201, 201, 429]
        assert 1 <= int(codes[2].headers["retry-after"]) <= 60
        assert f"mission:{mission} created 2 jobs in the last minute" in codes[2].json()["detail"]
