"""The decision commands through the CLI: the earlier system's smoke run, simulate, workers,
policy show and diff."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sheratan.store.files import FileLock
from tests.cli_helpers import refused, refused_unrecorded
from tests.decision_helpers import EXAMPLE_WORKERS, ROOT
from tests.test_cli import run


def test_the_smoke_run_reads_readme_through_a_local_worker(any_home: Path) -> None:
    home = any_home
    run(home, "worker", "register", "local-1", "--kinds", "file_read,noop", "--transport", "local")
    mission = run(home, "mission", "create", "smoke")["id"]
    task = run(home, "task", "create", mission, "read")["id"]
    job = run(
        home, "job", "create", "file_read", "--task", task, "--payload", '{"path": "README.md"}'
    )["id"]
    report = run(home, "dispatch", "--until-idle", "--workspace", str(ROOT))
    assert (report["dispatches"], report["completed"]) == (1, 1)
    shown = run(home, "job", "show", job)
    assert shown["status"] == "completed"
    assert shown["worker"] == "local-1"
    assert (
        shown["result"]["sha256"] == hashlib.sha256((ROOT / "README.md").read_bytes()).hexdigest()
    )
    assert run(home, "audit", "verify")["ok"]


def test_a_second_simulate_in_one_home_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """Two simulations started at one position would draw the same job ids: the second is
    refused at once, with one line and nothing recorded, and runs once the first is done."""
    home = tmp_path / "h"
    run(home, "init")
    running = FileLock(home / "locks" / "simulate.lock")  # what a running simulate holds
    assert running.try_acquire()
    try:
        refused_unrecorded(home, "simulate", "--jobs", "5", needle="another simulate is running")
    finally:
        running.close()
    assert run(home, "simulate", "--jobs", "5")["jobs"] == 5


def test_simulate_reports_the_documented_keys_and_continues_a_home(any_home: Path) -> None:
    home = any_home
    first = run(home, "simulate", "--workers", str(EXAMPLE_WORKERS), "--jobs", "150", "--seed", "4")
    assert {"jobs", "events", "mean_score", "success_rate", "per_worker"} <= set(first)
    assert first["jobs"] == 150
    assert set(first["per_worker"]) == {"fast-cheap", "slow-reliable", "expensive-quality"}
    assert sum(w["chosen"] for w in first["per_worker"].values()) >= 150
    second = run(home, "simulate", "--workers", str(EXAMPLE_WORKERS), "--jobs", "50", "--seed", "4")
    assert second["jobs"] == 50
    workers = run(home, "worker", "list")
    assert sorted(w["id"] for w in workers) == ["expensive-quality", "fast-cheap", "slow-reliable"]
    priors = run(home, "policy", "show", "--intent", "dispatch_job")["priors"]
    routed = {p["action"]: p["visits"] for p in priors}
    assert (
        sum(
            v
            for k, v in routed.items()
            if k in ("ROUTE:fast-cheap", "ROUTE:slow-reliable", "ROUTE:expensive-quality")
        )
        >= 200
    )
    total = run(home, "audit", "verify")["events"]
    diff = run(
        home, "policy", "diff", "--from", "8", "--to", str(total), "--intent", "dispatch_job"
    )
    assert {c["action"] for c in diff["changes"]} >= {"ROUTE:fast-cheap", "ROUTE:slow-reliable"}


def test_simulate_with_an_always_policy_chooses_only_its_worker(any_home: Path) -> None:
    always = run(
        any_home,
        "simulate",
        "--workers",
        str(EXAMPLE_WORKERS),
        "--jobs",
        "50",
        "--policy",
        "always:fast-cheap",
    )
    assert always["per_worker"]["fast-cheap"]["chosen"] == always["dispatches"]
    assert set(always["per_worker"]) == {"fast-cheap"}


def test_worker_quarantine_and_release(any_home: Path) -> None:
    home = any_home
    run(home, "worker", "register", "w", "--kinds", "noop", "--transport", "local")
    assert (
        run(home, "worker", "quarantine", "w", "--reason", "maintenance")["status"] == "quarantined"
    )
    run(home, "job", "create", "noop")
    report = run(home, "dispatch", "--until-idle")
    assert report["aborted"] == 1  # the only worker is quarantined: G0 gates it
    assert run(home, "worker", "release", "w")["status"] == "active"


def test_bad_decision_input_is_one_line_and_exit_2(any_home: Path, tmp_path: Path) -> None:
    home = any_home
    bad_profile = tmp_path / "workers.json"
    bad_profile.write_text(
        json.dumps({"workers": [{"id": "x", "kinds": ["llm_call"], "success": 2}]})
    )
    cases = [
        (["simulate", "--workers", str(bad_profile), "--jobs", "5"], "workers.json"),
        (
            ["simulate", "--workers", str(EXAMPLE_WORKERS), "--jobs", "5", "--policy", "greedy"],
            "not 'greedy'",
        ),
        (
            ["worker", "register", "s", "--kinds", "llm_call", "--transport", "simulated"],
            "simulated worker s needs --profile",
        ),
        (
            [
                "worker",
                "register",
                "s",
                "--kinds",
                "llm_call",
                "--transport",
                "local",
                "--profile",
                "[1]",
            ],
            "--profile must be a JSON object",
        ),
        (["worker", "quarantine", "nobody"], "no worker 'nobody'"),
    ]
    for args, needle in cases:
        refused(home, *args, needle=needle)


def test_a_run_after_quarantining_a_saved_worker_goes_on(any_home: Path) -> None:
    """The saved workers view keeps stream ids as UUIDs, so a later quarantine event finds
    its worker (it was reloaded as text once, and the next run failed with a KeyError)."""
    home = any_home
    workers = str(EXAMPLE_WORKERS)
    run(home, "simulate", "--workers", workers, "--jobs", "30")
    run(home, "worker", "quarantine", "fast-cheap")
    report = run(home, "simulate", "--workers", workers, "--jobs", "20")
    assert report["jobs"] == 20
    assert "fast-cheap" not in report["per_worker"]
    listed = run(home, "worker", "list")
    assert {w["id"]: w["status"] for w in listed}["fast-cheap"] == "quarantined"
