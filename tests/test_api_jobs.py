"""Missions, tasks and jobs over HTTP against a real ``serve`` (issue 10, 2-3): the same
services, messages and redaction as the CLI; idempotency, paging, limits, concurrency."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import Server, serving
from cli_helpers import as_json, invoke, log_digest, refused

from sheratan.api.app import MAX_BODY_BYTES
from sheratan.api.limits import WriteLimiter
from sheratan.home import init_home
from sheratan.limits import WriteRate

#: Limits high enough that no test but the rate-limit one meets them.
ROOMY = {"writes": {"per_second": 1000.0, "burst": 1000}}


def serve_with(tmp_path: Path, limits: dict[str, Any]) -> Iterator[Server]:
    home = tmp_path / "home"
    init_home(home)
    limits_file = tmp_path / "limits.json"
    limits_file.write_text(json.dumps(limits))
    with serving(home, "--limits", str(limits_file)) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve_with(tmp_path, ROOMY)


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def problem(response: httpx.Response, status: int) -> str:
    """The detail of a problem-details answer with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return str(body["detail"])


def test_missions_and_tasks(server: Server, api: httpx.Client) -> None:
    made = api.post("/api/missions", json={"title": "ship it", "description": "soon"})
    assert made.status_code == 201
    mission = made.json()
    assert mission["title"] == "ship it" and mission["status"] == "created"
    task = api.post(f"/api/missions/{mission['id']}/tasks", json={"title": "step one"})
    assert task.status_code == 201 and task.json()["mission_id"] == mission["id"]
    assert api.get(f"/api/tasks/{task.json()['id']}").json() == task.json()
    shown = api.get(f"/api/missions/{mission['id']}").json()
    assert [t["id"] for t in shown.pop("tasks")] == [task.json()["id"]]
    assert shown == mission
    cli_shown = as_json(server.home, "mission", "show", mission["id"])
    assert cli_shown["tasks"][0]["id"] == task.json()["id"]
    listed = api.get("/api/missions").json()
    assert [m["id"] for m in listed["items"]] == [mission["id"]]
    assert listed["next_cursor"] is None


def test_jobs_filters_paging_and_cancel(server: Server, api: httpx.Client) -> None:
    mission = api.post("/api/missions", json={"title": "m"}).json()
    task = api.post(f"/api/missions/{mission['id']}/tasks", json={"title": "t"}).json()
    in_task = api.post(f"/api/tasks/{task['id']}/jobs", json={"kind": "noop"})
    assert in_task.status_code == 201
    job = in_task.json()
    assert (job["task_id"], job["mission_id"], job["status"]) == (
        task["id"],
        mission["id"],
        "queued",
    )
    loose = [
        api.post("/api/jobs", json={"kind": "noop", "priority": "low"}).json() for _ in range(4)
    ]
    assert api.get(f"/api/jobs/{job['id']}").json() == job

    def ids(**params: Any) -> list[str]:
        return [j["id"] for j in api.get("/api/jobs", params=params).json()["items"]]

    assert ids(task=task["id"]) == ids(mission=mission["id"]) == [job["id"]]
    for option, value in (("--task", task["id"]), ("--mission", mission["id"])):
        listed = as_json(server.home, "job", "list", option, value)
        assert [j["id"] for j in listed] == [job["id"]]
    listed = as_json(server.home, "job", "list", "--kind", "noop", "--status", "queued")
    assert [j["id"] for j in listed] == ids(kind="noop", status="queued")
    assert ids(kind="noop", status="queued") == [job["id"]] + [j["id"] for j in loose]
    assert ids(kind="file_read") == []
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/jobs", params=params).json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == ids()

    cancelled = api.post(f"/api/jobs/{job['id']}/cancel", json={"reason": "not needed"})
    assert cancelled.json() == {"id": job["id"], "status": "cancelled", "dependents_cancelled": []}
    assert ids(status="cancelled") == [job["id"]]
    again = problem(api.post(f"/api/jobs/{job['id']}/cancel", json={}), 409)
    cli_line = refused(server.home, "job", "cancel", job["id"], needle="cancelled")
    assert cli_line == f"error: {again}"


def test_idempotent_repeat_and_a_reused_key(server: Server, api: httpx.Client) -> None:
    body = {"kind": "noop", "payload": {"n": 1}, "idempotency_key": "order-7"}
    first = api.post("/api/jobs", json=body)
    repeat = api.post("/api/jobs", json=body)
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json() == first.json()
    before = log_digest(server.home)
    other = problem(api.post("/api/jobs", json=body | {"payload": {"n": 2}}), 409)
    assert other == "idempotency key 'order-7' was used for a job with a different payload"
    cli_line = refused(
        server.home, "job", "create", "noop", "--payload", '{"n": 2}', "--idempotency-key",
        "order-7", needle="order-7",
    )  # fmt: skip
    assert cli_line == f"error: {other}"
    assert log_digest(server.home) == before


@pytest.mark.parametrize(
    ("body", "cli_args"),
    [
        ({"kind": "shell_exec"}, ["shell_exec"]),
        ({"kind": "noop", "timeout_seconds": 0}, ["noop", "--timeout", "0"]),
        ({"kind": "noop", "max_retries": 101}, ["noop", "--max-retries", "101"]),
        ({"kind": "file_read", "payload": {}}, ["file_read"]),
        ({"kind": "noop", "idempotency_key": " "}, ["noop", "--idempotency-key", " "]),
        ({"kind": "noop", "payer": "nobody"}, ["noop", "--payer", "nobody"]),
    ],
)
def test_bad_jobs_are_refused_with_the_clis_message(
    server: Server, api: httpx.Client, body: dict[str, Any], cli_args: list[str]
) -> None:
    before = log_digest(server.home)
    detail = problem(api.post("/api/jobs", json=body), 400)
    assert refused(server.home, "job", "create", *cli_args, needle="") == f"error: {detail}"
    assert log_digest(server.home) == before


def test_bad_titles_shapes_ids_and_cursors(server: Server, api: httpx.Client) -> None:
    detail = problem(api.post("/api/missions", json={"title": "  "}), 400)
    assert refused(server.home, "mission", "create", "  ", needle="title") == f"error: {detail}"
    shape = problem(api.post("/api/jobs", json={"kind": "noop", "max_retries": "many"}), 400)
    assert shape == "max_retries: Expected `int`, got `str`"
    unknown = problem(api.post("/api/jobs", json={"kind": "noop", "colour": "red"}), 400)
    assert "colour" in unknown
    nobody = "00000000-0000-0000-0000-000000000001"
    assert problem(api.get(f"/api/jobs/{nobody}"), 404) == f"no job {nobody}"
    assert problem(api.get(f"/api/missions/{nobody}"), 404) == f"no mission {nobody}"
    assert problem(api.get(f"/api/tasks/{nobody}"), 404) == f"no task {nobody}"
    assert problem(api.post(f"/api/tasks/{nobody}/jobs", json={"kind": "noop"}), 404)
    assert problem(api.post(f"/api/jobs/{nobody}/cancel", json={}), 404)
    missing_dependency = {"kind": "noop", "depends_on": [nobody]}
    assert "dependencies must exist first" in problem(
        api.post("/api/jobs", json=missing_dependency), 404
    )
    assert problem(api.get("/api/jobs", params={"cursor": "bm9wZQ"}), 400).startswith("cursor")
    assert "limit" in problem(api.get("/api/jobs", params={"limit": 501}), 400)


def test_jobs_are_shown_redacted_as_the_cli_shows_them(server: Server, api: httpx.Client) -> None:
    secret = "sk_live_0123456789abcdefghij"
    made = api.post("/api/jobs", json={"kind": "noop", "payload": {"api_key": secret, "n": 1}})
    assert secret not in made.text
    job = made.json()
    assert job["payload"] == {"api_key": "[redacted]", "n": 1}
    assert api.get(f"/api/jobs/{job['id']}").json() == as_json(
        server.home, "job", "show", job["id"]
    )
    assert secret not in api.get("/api/jobs").text


def test_an_oversize_body_is_refused_with_413(api: httpx.Client) -> None:
    huge = {"kind": "noop", "payload": {"blob": "x" * MAX_BODY_BYTES}}
    detail = problem(api.post("/api/jobs", json=huge), 413)
    assert detail


def test_writes_beyond_the_rate_get_429_with_retry_after(tmp_path: Path) -> None:
    slow = {"writes": {"per_second": 0.001, "burst": 2}}
    for server in serve_with(tmp_path, slow):
        with server.client() as api:
            codes = [api.post("/api/jobs", json={"kind": "noop"}).status_code for _ in range(2)]
            assert codes == [201, 201]
            refused_write = api.post("/api/missions", json={"title": "one too many"})
            detail = problem(refused_write, 429)
            assert int(refused_write.headers["retry-after"]) >= 1
            assert detail.startswith("too many writes: at most 0.001 a second (bursts of 2)")
            assert api.get("/api/jobs").status_code == 200  # reads are not limited
            assert len(api.get("/api/jobs").json()["items"]) == 2


def test_a_bad_limits_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    bad = tmp_path / "limits.json"
    bad.write_text(json.dumps({"writes": {"burst": 0}}))
    line = refused(home, "serve", "--limits", str(bad), needle=str(bad))
    assert "burst at least 1" in line


def test_twenty_concurrent_creates_with_one_key_make_one_job(
    server: Server, api: httpx.Client
) -> None:
    body = {"kind": "noop", "payload": {"n": 1}, "idempotency_key": "race"}

    def create(_: int) -> httpx.Response:
        with server.client() as own:
            return own.post("/api/jobs", json=body)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(create, range(20)))
    assert Counter(a.status_code for a in answers) == {201: 1, 200: 19}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(api.get("/api/jobs").json()["items"]) == 1
    listed = invoke(server.home, "job", "list", "--json").stdout
    assert len(json.loads(listed)) == 1


def test_each_client_has_a_bucket_of_its_own() -> None:
    limiter = WriteLimiter(WriteRate(per_second=0.001, burst=2))
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") > 0  # a's bucket is empty, and stays so while a keeps asking
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0  # b is not held back by a


def test_options_lists_every_method_of_a_path(api: httpx.Client) -> None:
    assert api.options("/api/jobs").headers["allow"] == "GET, OPTIONS, POST"
    assert api.options("/api/missions").headers["allow"] == "GET, OPTIONS, POST"


@pytest.mark.parametrize(
    ("body", "gate", "reason"),
    [
        ({"kind": "file_read", "payload": {"path": "/etc/passwd"}}, "G3_path", "path"),
        ({"kind": "noop", "payload": {"note": "please rm -rf /"}}, "G4_escalation", "rm -rf"),
    ],
)
def test_a_job_a_gate_refuses_is_refused_with_403_and_nothing_recorded(
    server: Server, api: httpx.Client, body: dict[str, Any], gate: str, reason: str
) -> None:
    before = log_digest(server.home)
    refused_job = api.post("/api/jobs", json=body)
    detail = problem(refused_job, 403)
    answer = refused_job.json()
    assert answer["gate"] == gate and reason in answer["reason"]
    assert detail == f"gate {gate} refuses the job: {answer['reason']}"
    assert log_digest(server.home) == before


def test_serve_takes_the_dispatchers_gates(tmp_path: Path) -> None:
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"forbidden_kinds": ["llm_call"]}))
    home = tmp_path / "home"
    init_home(home)
    with serving(home, "--gates", str(gates)) as running, running.client() as api:
        refused_job = api.post("/api/jobs", json={"kind": "llm_call", "payload": {"prompt": "hi"}})
        problem(refused_job, 403)
        assert refused_job.json()["gate"] == "G2_kind"
        assert api.post("/api/jobs", json={"kind": "noop"}).status_code == 201
