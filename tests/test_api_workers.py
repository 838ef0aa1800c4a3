"""The worker routes and the pull protocol over a real server (issue 10, items 2, 3 and 6).

Workers "a" and "b" are process workers with tokens of their own: each may claim, heartbeat
and report only for itself and only for the attempt it holds; a report is applied once.
"""

from __future__ import annotations

import hashlib
import json
import select
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from api_helpers import Server, free_port, serving
from cli_helpers import as_json, invoke, log_digest, refused
from process_helpers import events_of, start_cli, stop, wait_until
from worker_helpers import gates_with

from sheratan.api.worker_tokens import WorkerTokens
from sheratan.home import init_home
from sheratan.store.notify import WAKE_DIR

KINDS = "noop,file_read"


@dataclass
class Pull:
    server: Server
    tokens: dict[str, str]

    def worker(self, name: str) -> httpx.Client:
        return self.server.client(self.tokens[name])


def register(home: Path, name: str, token_file: Path) -> str:
    invoke(
        home,
        "worker",
        "register",
        name,
        "--kinds",
        KINDS,
        "--transport",
        "process",
        "--issue-token",
        "--token-file",
        str(token_file),
    )
    return token_file.read_text().strip()


@pytest.fixture
def pull(tmp_path: Path) -> Iterator[Pull]:
    home = tmp_path / "home"
    init_home(home)
    tokens = {name: register(home, name, tmp_path / f"{name}.token") for name in ("a", "b")}
    with serving(home) as server:
        yield Pull(server, tokens)


def leased_job(home: Path, worker: str = "a") -> str:
    """A noop job, dispatched to ``worker`` (leased, not started)."""
    job = str(as_json(home, "job", "create", "noop")["id"])
    invoke(home, "dispatch", "--policy", f"always:{worker}")
    return job


def report(claim: dict[str, Any], **changed: Any) -> dict[str, Any]:
    """A successful report of a claimed attempt (fields replaced by ``changed``)."""
    body = {
        "job_id": claim["job"]["id"],
        "attempt": claim["job"]["attempt"],
        "attempt_token": claim["attempt_token"],
        "ok": True,
        "result": {"done": True},
        "metrics": {"latency_ms": 1.5, "quality": 1.0},
    }
    return body | changed


def completions(home: Path, job: str) -> int:
    return sum(1 for line in events_of(home, "job.completed") if line["stream"] == job)


def test_every_worker_route_refuses_no_token_401_and_another_workers_token_403(
    pull: Pull,
) -> None:
    home = pull.server.home
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/workers", {"id": "c", "kinds": ["noop"]}),
        ("GET", "/api/workers", None),
        ("GET", "/api/workers/b", None),
        ("POST", "/api/workers/b/quarantine", {}),
        ("POST", "/api/workers/b/release", None),
        ("POST", "/api/workers/b/claim", None),
        ("POST", "/api/workers/b/heartbeat", None),
        ("POST", "/api/workers/b/result", {"job_id": "0" * 32, "attempt": 1}),
        ("GET", "/schema/openapi.json", None),
    ]
    before = log_digest(home)
    for method, path, body in routes:
        for token, status in (("", 401), (pull.tokens["a"], 403)):
            answer = pull.server.client(token).request(method, path, json=body)
            assert answer.status_code == status, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            detail = answer.json()["detail"]
            if status == 403:
                assert detail == "the token of worker a acts only on that worker's own routes"
    # a's own token is still no operator's: it may not quarantine or release a either
    for action in ("quarantine", "release"):
        assert pull.worker("a").post(f"/api/workers/a/{action}", json={}).status_code == 403
    assert log_digest(home) == before


def test_a_worker_claims_its_attempt_and_a_repeated_result_is_answered_not_applied(
    pull: Pull,
) -> None:
    home = pull.server.home
    job = leased_job(home)
    assert pull.worker("b").post("/api/workers/b/claim").json() == {
        "job": None,
        "attempt_token": None,
    }
    claim = pull.worker("a").post("/api/workers/a/claim").json()
    assert (claim["job"]["id"], claim["job"]["status"], claim["job"]["attempt"]) == (
        job,
        "running",
        1,
    )
    assert pull.worker("a").post("/api/workers/a/claim").json()["job"] is None
    first = pull.worker("a").post("/api/workers/a/result", json=report(claim))
    assert first.status_code == 200
    assert first.json() | {"job_id": job} == {
        "job_id": job,
        "attempt": 1,
        "recorded": True,
        "event": "job.completed",
        "status": "completed",
        "result": {"done": True},
        "error": None,
        "error_code": None,
    }
    again = pull.worker("a").post("/api/workers/a/result", json=report(claim, ok=False))
    assert again.status_code == 200
    assert (again.json()["recorded"], again.json()["status"]) == (False, "completed")
    assert again.json()["result"] == {"done": True}
    assert completions(home, job) == 1
    assert not events_of(home, "job.failed")


def test_a_stale_or_foreign_attempt_token_changes_nothing(pull: Pull) -> None:
    home = pull.server.home
    job = leased_job(home)
    claim = pull.worker("a").post("/api/workers/a/claim").json()
    before = log_digest(home)
    tries = [
        ("a", report(claim, attempt=2)),  # a token of attempt 1 for attempt 2
        ("a", report(claim, attempt_token="0" * 64)),  # no token of this home
        ("b", report(claim)),  # a's attempt token, reported as b
    ]
    for worker, body in tries:
        answer = pull.worker(worker).post(f"/api/workers/{worker}/result", json=body)
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"] == (
            f"the attempt token is not the one of attempt {body['attempt']} of this worker"
        )
    assert log_digest(home) == before
    assert invoke(home, "job", "show", job, "--json").stdout.count('"running"') == 1
    assert pull.worker("a").post("/api/workers/a/result", json=report(claim)).json()["recorded"]


def test_a_failed_attempt_is_reported_with_its_error_and_bad_metrics_are_refused(
    pull: Pull,
) -> None:
    home = pull.server.home
    job = leased_job(home)
    claim = pull.worker("a").post("/api/workers/a/claim").json()
    before = log_digest(home)
    # JSON has no infinity, but 1e400 reads as one; a latency is never negative
    infinite = json.dumps(report(claim, metrics={"cost": "COST"})).replace('"COST"', "1e400")
    for body, detail in (
        (infinite, "Number out of range - at `$[...][...]`"),
        (
            json.dumps(report(claim, metrics={"latency_ms": -1})),
            "metrics.latency_ms: Expected `float` >= 0.0",
        ),
    ):
        answer = pull.worker("a").post(
            "/api/workers/a/result", content=body, headers={"Content-Type": "application/json"}
        )
        assert (answer.status_code, answer.json()["detail"]) == (400, detail)
    assert log_digest(home) == before
    failed = report(claim, ok=False, result=None, error={"code": "E1", "message": "boom"})
    answer = pull.worker("a").post("/api/workers/a/result", json=failed).json()
    assert (answer["recorded"], answer["event"], answer["error_code"]) == (
        True,
        "job.failed",
        "E1",
    )
    assert [line["stream"] for line in events_of(home, "job.failed")] == [job]


def test_a_claim_waits_for_an_attempt_leased_after_it_began(pull: Pull) -> None:
    home = pull.server.home
    claimed: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: claimed.append(
            pull.worker("a").post("/api/workers/a/claim", params={"wait": 30}).json()
        )
    )
    waiting.start()
    job = leased_job(home)
    waiting.join()
    assert claimed[0]["job"]["id"] == job


def test_many_waiting_claims_hold_no_server_thread(pull: Pull) -> None:
    """More long-polls than the server has threads (anyio's pool: 40): other routes still
    answer while they wait, a job leased meanwhile is claimed by one of them, and SIGTERM
    ends the others at once."""
    home = pull.server.home
    claims = 60
    answers: list[dict[str, Any]] = []

    def claim() -> None:
        with pull.worker("a") as client:
            answers.append(client.post("/api/workers/a/claim", params={"wait": 30}).json())

    threads = [threading.Thread(target=claim) for _ in range(claims)]
    for thread in threads:
        thread.start()
    try:
        registry = home / WAKE_DIR / "events"  # one file per waiting claim's Waker
        wait_until(
            lambda: registry.is_dir() and len(list(registry.iterdir())) >= claims,
            what="every claim waiting",
        )
        with pull.server.client() as operator:
            listing = operator.get("/api/jobs", timeout=5)  # the claims wait 30 s
            assert listing.status_code == 200
        job = leased_job(home)
        wait_until(lambda: answers, what="the leased job claimed")
        stop(pull.server.process, signal.SIGTERM)
    finally:
        for thread in threads:
            thread.join()
    claimed = [answer["job"]["id"] for answer in answers if answer["job"] is not None]
    assert claimed == [job]
    assert len(answers) == claims


def test_claim_wait_is_bounded_and_an_unknown_job_is_404(pull: Pull) -> None:
    too_long = pull.worker("a").post("/api/workers/a/claim", params={"wait": 31})
    assert too_long.status_code == 400
    nobody = uuid4()
    # the attempt token of a job that does not exist, made with the home's secret
    token = WorkerTokens(pull.server.home).attempt_token("a", nobody, 1)
    claim = {"job": {"id": str(nobody), "attempt": 1}, "attempt_token": token}
    missing = pull.worker("a").post("/api/workers/a/result", json=report(claim))
    assert (missing.status_code, missing.json()["detail"]) == (404, f"no job {nobody}")


def test_a_result_for_a_cancelled_attempt_is_answered_with_the_cancellation(pull: Pull) -> None:
    home = pull.server.home
    job = leased_job(home)
    claim = pull.worker("a").post("/api/workers/a/claim").json()
    invoke(home, "job", "cancel", job, "--reason", "not needed")
    before = log_digest(home)
    answer = pull.worker("a").post("/api/workers/a/result", json=report(claim)).json()
    assert (answer["recorded"], answer["event"], answer["status"]) == (False, None, "cancelled")
    assert log_digest(home) == before


def test_heartbeat_records_that_the_worker_is_alive(pull: Pull) -> None:
    home = pull.server.home
    beats = len(events_of(home, "worker.heartbeat"))
    answer = pull.worker("a").post("/api/workers/a/heartbeat")
    assert answer.status_code == 200 and answer.json()["worker_id"] == "a"
    assert len(events_of(home, "worker.heartbeat")) == beats + 1


def test_a_heartbeat_extends_the_lease_of_the_attempt_it_names_and_nothing_else(
    pull: Pull, tmp_path: Path
) -> None:
    """A pull worker is leased one term (3 s here) of its attempt's 600 s: a heartbeat of its
    own naming the attempt, with less than half a term left, extends it (and says so); one
    by another worker's token is 403; one for an attempt it no longer holds records nothing."""
    home = pull.server.home
    job = str(as_json(home, "job", "create", "noop", "--timeout", "600")["id"])
    invoke(
        home,
        "dispatch",
        "--policy",
        "always:a",
        "--gates",
        str(gates_with(tmp_path, lease_term_s=3)),
    )
    claim = pull.worker("a").post("/api/workers/a/claim").json()
    lease_until = datetime.fromisoformat(claim["job"]["lease_until"])
    deadline = datetime.fromisoformat(claim["job"]["deadline"])
    mine = {"running": [{"job_id": job, "attempt": 1}]}
    before = log_digest(home)
    other = pull.worker("b").post("/api/workers/a/heartbeat", json=mine)
    assert other.status_code == 403 and log_digest(home) == before
    bad = pull.worker("a").post("/api/workers/a/heartbeat", json={"running": [{"job_id": job}]})
    assert bad.status_code == 400 and log_digest(home) == before

    half_left = lease_until - timedelta(seconds=1.4)  # less than half the term is left then
    time.sleep(max(0.0, (half_left - datetime.now(UTC)).total_seconds()))
    beat = "/api/workers/a/heartbeat"
    for unnamed in (None, {"running": []}, {"running": [{"job_id": job, "attempt": 2}]}):
        assert pull.worker("a").post(beat, json=unnamed).json()["extended"] == []
    assert events_of(home, "job.lease_extended") == []
    [extended] = pull.worker("a").post(beat, json=mine).json()["extended"]
    assert (extended["job_id"], extended["attempt"]) == (job, 1)
    assert lease_until < datetime.fromisoformat(extended["lease_until"]) <= deadline
    assert pull.worker("a").post(beat, json=mine).json()["extended"] == []  # a term is left
    [recorded] = events_of(home, "job.lease_extended")
    assert recorded["stream"] == job and recorded["data"]["lease_until"] == extended["lease_until"]
    # an extension leaves the status as it was, in SQL too (its job's last event)
    [row] = as_json(home, "sql", f"SELECT status FROM jobs WHERE job_id = '{job}'")
    assert row == {"status": "running"}

    assert pull.worker("a").post("/api/workers/a/result", json=report(claim)).json()["recorded"]
    assert pull.worker("a").post(beat, json=mine).json()["extended"] == []
    assert len(events_of(home, "job.lease_extended")) == 1


def test_register_over_http_issues_a_token_for_that_worker_and_keeps_only_its_digest(
    pull: Pull,
) -> None:
    home = pull.server.home
    admin = pull.server.client()
    made = admin.post("/api/workers", json={"id": "c", "kinds": ["noop"], "issue_token": True})
    assert made.status_code == 201
    token = made.json()["token"]
    assert made.json()["worker"]["transport"] == "process"
    assert pull.server.client(token).get("/api/workers/c").json()["id"] == "c"
    assert pull.server.client(token).get("/api/workers/a").status_code == 403
    kept = home / "worker-tokens" / "c.sha256"
    assert kept.read_text() == hashlib.sha256(token.encode()).hexdigest()
    assert kept.stat().st_mode & 0o777 == 0o600
    assert not any(
        token.encode() in path.read_bytes() for path in home.rglob("*") if path.is_file()
    )
    assert [w["id"] for w in admin.get("/api/workers").json()] == ["a", "b", "c"]
    bad = admin.post("/api/workers", json={"id": "../x", "kinds": ["noop"], "issue_token": True})
    assert bad.status_code == 400


def test_quarantine_and_release_over_http(pull: Pull) -> None:
    admin = pull.server.client()
    quarantined = admin.post("/api/workers/a/quarantine", json={"reason": "flaky disk"})
    assert (quarantined.status_code, quarantined.json()["status"]) == (200, "quarantined")
    again = admin.post("/api/workers/a/quarantine", json={})
    assert (again.status_code, again.json()["detail"]) == (409, "worker 'a' is already quarantined")
    assert admin.post("/api/workers/a/release").json()["status"] == "active"
    assert admin.post("/api/workers/a/release").status_code == 409
    missing = admin.post("/api/workers/nobody/release")
    assert (missing.status_code, missing.json()["detail"]) == (404, "no worker 'nobody'")


def test_worker_run_api_refuses_bad_options_and_a_refused_token(pull: Pull, tmp_path: Path) -> None:
    home = pull.server.home
    run_a = ["worker", "run", "a", "--kinds", "noop", "--api", pull.server.url]
    refused(home, *run_a, needle="--api and --token-file go together")
    local = ["worker", "register", "l", "--kinds", "noop", "--transport", "local"]
    refused(
        home,
        *local,
        "--issue-token",
        needle="--issue-token (with --token-file) is for a process worker",
    )
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-a-token\n")
    result = invoke(home, *run_a, "--token-file", str(wrong), code=1)
    assert result.stderr.strip() == (
        "error: the API refused the worker (401): a valid bearer token is required"
    )


def test_smoke_run_over_http_reads_readme_with_a_remote_worker(tmp_path: Path) -> None:
    """Item 6: serve, dispatch --follow and worker run --api as processes of their own; a
    mission, a task and a file_read job of README.md, all made over HTTP; the job completes
    with the file's hash, and its decision is one the WHY-API (and so the page) shows."""
    home = tmp_path / "home"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    readme = Path(__file__).resolve().parents[1] / "README.md"
    (workspace / "README.md").write_bytes(readme.read_bytes())
    init_home(home)
    token_file = tmp_path / "remote.token"
    register(home, "remote", token_file)
    with serving(home) as server:
        follower = start_cli(home, "dispatch", "--follow", "--workspace", str(workspace))
        worker = start_cli(
            tmp_path / "no-home-needed",
            "worker",
            "run",
            "remote",
            "--api",
            server.url,
            "--token-file",
            str(token_file),
            "--kinds",
            KINDS,
            "--workspace",
            str(workspace),
            "--heartbeat",
            "0.5",
        )
        api = server.client()
        mission = api.post("/api/missions", json={"title": "smoke"}).json()["id"]
        task = api.post(f"/api/missions/{mission}/tasks", json={"title": "read the readme"})
        made = api.post(
            f"/api/tasks/{task.json()['id']}/jobs",
            json={"kind": "file_read", "payload": {"path": "README.md"}},
        )
        assert made.status_code == 201, made.text
        job = made.json()
        done = wait_until(
            lambda: [e for e in events_of(home, "job.completed") if e["stream"] == job["id"]],
            "the job to complete",
            follower,
            worker,
        )
        assert (
            done[0]["data"]["result"]["sha256"] == hashlib.sha256(readme.read_bytes()).hexdigest()
        )
        shown = api.get(f"/api/why/job/{job['id']}")
        assert shown.status_code == 200 and job["id"] in shown.text
        code, out, err = stop(worker, signal.SIGTERM)
        assert code == 0, err
        assert out.strip() == (
            "worker remote stopped: 1 attempt(s) claimed, 1 completed, 0 failed, 0 late, "
            "0 handed back"
        )
        assert "Traceback" not in err
        code, _, err = stop(follower, signal.SIGTERM)
        assert code == 0 and "Traceback" not in err


def test_a_remote_worker_started_before_its_server_waits_for_it_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """The README starts serve and worker run --api together: a worker whose server is not
    up yet says so once and keeps trying; SIGTERM still stops it with exit 0."""
    home = tmp_path / "home"
    init_home(home)
    token_file = tmp_path / "remote.token"
    register(home, "remote", token_file)
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    worker = start_cli(
        tmp_path / "no-home-needed", "worker", "run", "remote", "--api", url,
        "--token-file", str(token_file), "--kinds", KINDS, "--workspace", str(tmp_path),
    )  # fmt: skip
    wait_until(lambda: worker.poll() is None and stderr_so_far(worker), "a first line", worker)
    code, out, err = stop(worker, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "trying again" in line] == [
        "worker remote: [Errno 111] Connection refused; trying again"
    ]
    assert out.startswith("worker remote stopped: 0 attempt(s) claimed")


def stderr_so_far(process: Any) -> bool:
    """Whether the process wrote to stderr yet (without waiting for it to end)."""
    ready, _, _ = select.select([process.stderr], [], [], 0)
    return bool(ready)
