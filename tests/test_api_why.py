"""The WHY-API, the event stream and the audit over HTTP, against a real ``serve`` (issue 10,
point 3): the same answers as the CLI, redacted, read-only, bounded, errors declared."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import Server, serving
from cli_helpers import as_json
from decision_helpers import simulated_home
from process_helpers import wait_until

from sheratan.api.why import MAX_RESAMPLES
from sheratan.home import Home
from sheratan.store.wake import WAKE_DIR
from sheratan.views import PRIORS

SECRET = "sk-live-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("why") / "home"
    simulated_home(home, 20)
    with serving(home) as running:
        yield running


def get(server: Server, path: str, **params: Any) -> Any:
    answer = server.client().get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(server: Server, path: str, status: int, detail: str, **params: Any) -> None:
    answer = server.client().get(path, params=params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in answer.json()["detail"]


def last_position(home: Path) -> int:
    return int(as_json(home, "audit", "verify")["events"])


def test_why_answers_are_the_clis(server: Server) -> None:
    home = server.home
    latest = get(server, "/api/why/latest")
    assert latest == as_json(home, "why", "latest")
    dispatch = get(server, "/api/why/latest", intent="dispatch_job")
    assert dispatch == as_json(home, "why", "latest", "--intent", "dispatch_job")
    trace = get(server, f"/api/why/trace/{latest['trace_id']}")
    assert trace == as_json(home, "why", "trace", latest["trace_id"])
    assert trace["nodes"][0]["parent_node_id"] is None
    assert trace["nodes"][-1]["parent_node_id"] == trace["nodes"][-2]["node_id"]
    job = get(server, f"/api/why/job/{latest['job_id']}")
    assert job == as_json(home, "why", "job", latest["job_id"])
    stats = get(server, "/api/why/stats", window="7d")
    assert stats["count"] == as_json(home, "why", "stats", "--window", "7d")["count"] > 0
    drift = get(server, "/api/why/drift", window="1h")
    assert drift["rows"] == as_json(home, "why", "drift", "--window", "1h")["rows"]


def test_traces_list_filters_by_intent_worker_and_status(server: Server) -> None:
    everything = get(server, "/api/why/traces", limit=1000)["traces"]
    positions = [t["position"] for t in everything]
    assert positions == sorted(positions, reverse=True) and len(everything) == 20
    recoveries = get(server, "/api/why/traces", intent="recover_failure")["traces"]
    assert recoveries and all(t["nodes"] > 1 for t in recoveries)
    worker = next(t["chosen"] for t in everything if t["intent"] == "dispatch_job")
    bare = worker.split(":", 1)[1]
    by_worker = get(server, "/api/why/traces", worker=bare, intent="dispatch_job")["traces"]
    assert by_worker and all(t["chosen"] == worker for t in by_worker if t["nodes"] == 1)
    failed = get(server, "/api/why/traces", status="failure")["traces"]
    assert all(t["status"] == "failure" for t in failed)
    assert get(server, "/api/why/traces", since="2100-01-01T00:00:00Z")["traces"] == []
    assert len(get(server, "/api/why/traces", limit=3)["traces"]) == 3


def test_counterfactual_estimates_record_nothing_and_match_replay(server: Server) -> None:
    home = server.home
    before = last_position(home)
    estimate = get(server, "/api/why/counterfactual", policy="random", resamples=50, seed=3)
    assert last_position(home) == before  # read-only: no replay.run recorded
    cli = as_json(
        home, "replay", "--counterfactual", "--policy", "random", "--resamples", "50", "--seed", "3"
    )
    for key in ("estimate", "ci", "n"):
        assert estimate[key] == cli[key], key
    node = get(server, "/api/why/latest", intent="dispatch_job")
    at = get(
        server,
        f"/api/why/counterfactual/{node['node_id']}",
        action=node["chosen"]["action_key"],
    )
    assert at["mode"] == "counterfactual_at" and at["actual"]["score"] == node["result"]["score"]
    assert last_position(home) == before + 1  # only the CLI's replay.run


def test_regression_over_http_records_nothing_and_matches_replay(
    server: Server, tmp_path: Path
) -> None:
    home = server.home
    before = last_position(home)
    answer = get(server, "/api/why/regression", wK=9.0, wS=0.5)
    assert last_position(home) == before
    weights = tmp_path / "scoring.json"
    weights.write_text(json.dumps({"weights": {"wK": 9.0, "wS": 0.5}}))
    cli = as_json(home, "replay", "--regression", "--weights", str(weights))
    for key in ("decisions", "mean_score_old", "mean_score_new", "changed"):
        assert answer[key] == cli[key], key
    assert answer["mean_score_new"] != answer["mean_score_old"]


def test_bad_requests_are_declared_problems(server: Server) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    refused(server, f"/api/why/trace/{unknown}", 404, f"no trace or decision node {unknown}")
    refused(server, f"/api/why/job/{unknown}", 404, f"no job {unknown}")
    refused(server, "/api/why/latest", 404, "no decision for intent 'nothing'", intent="nothing")
    refused(server, "/api/why/stats", 400, "window must be a positive number", window="7x")
    refused(server, "/api/why/counterfactual", 400, "always", policy="always:nobody")
    refused(
        server,
        "/api/why/counterfactual",
        400,
        "resamples",
        policy="random",
        resamples=MAX_RESAMPLES + 1,
    )
    refused(server, "/api/why/trace/not-a-uuid", 404, "")
    refused(server, "/api/why/regression", 400, "wK", wK=-1)
    refused(server, "/api/why/stats", 400, "out of range", window="99999999999w")
    refused(server, "/api/why/stats", 400, "out of range", window="200000w")
    refused(server, "/api/why/traces", 400, "out of range", since="0001-01-01T00:00:00+14:00")
    schema = get(server, "/schema/openapi.json")
    for path, item in schema["paths"].items():
        if path.startswith(("/api/why", "/api/audit", "/api/events")):
            declared = set(item["get"]["responses"])
            assert {"200", "401"} <= declared, path
            names = {p["name"] for p in item["get"].get("parameters", [])}
            assert not names & {"path", "file", "log_path", "dir"}, path


def test_no_parameter_reaches_the_filesystem(server: Server) -> None:
    """The earlier system's ``log_path`` read any file; here unknown parameters are ignored
    and no route takes a path."""
    answer = get(server, "/api/why/latest", log_path="/etc/passwd", file="/etc/passwd")
    assert "root:" not in json.dumps(answer)
    refused(server, "/api/why/trace/..%2F..%2Fetc%2Fpasswd", 404, "")


def test_the_event_stream_sends_redacted_events_from_a_position(server: Server) -> None:
    home = server.home
    with server.client() as client:
        response = client.get("/api/events", params={"from": 1, "until": 5})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e["id"] for e in events] == ["1", "2", "3", "4", "5"]
    assert [json.loads(e["data"])["pos"] for e in events] == [1, 2, 3, 4, 5]
    as_json(home, "job", "create", "noop", "--payload", json.dumps({"api_key": SECRET}))
    last = last_position(home)
    with server.client() as client:
        tail = client.get("/api/events", params={"from": last - 1, "until": last}).text
    assert SECRET not in tail and "job.created" in tail


def test_the_stream_follows_new_commits_and_ends_when_the_client_goes(server: Server) -> None:
    home = server.home
    wake = home / WAKE_DIR
    followers = lambda: sum(1 for _ in wake.rglob("*") if _.is_file())  # noqa: E731
    before = followers()
    seen: list[dict[str, str]] = []
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=server.url, headers=auth(server), timeout=60) as client,
            client.stream("GET", "/api/events") as response,
        ):
            ready.set()
            buffer = ""
            for chunk in response.iter_text():
                buffer += chunk
                seen.extend(parse_sse(buffer))
                if any("job.created" in e.get("data", "") for e in seen):
                    return  # leaving the block closes the connection

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait(60)
    wait_until(lambda: followers() > before, "the stream to register its waker")
    job = as_json(home, "job", "create", "noop", "--payload", "{}")["id"]
    listener.join(60)
    assert not listener.is_alive()
    created = [json.loads(e["data"]) for e in seen if "job.created" in e.get("data", "")]
    assert created[0]["stream"] == job
    wait_until(lambda: followers() == before, "the stream to end with its client")


def test_audit_reports_the_chain_and_the_latest_checkpoint(server: Server, tmp_path: Path) -> None:
    home = server.home
    audit = get(server, "/api/audit")
    assert audit["ok"] is True and audit["latest_checkpoint"] is None
    assert audit["chain"]["events"] == audit["chain"]["verified"] == last_position(home)
    keys = tmp_path / "keys"
    as_json(home, "audit", "keygen", "--out", str(keys))
    signed = as_json(home, "audit", "checkpoint", "--sign", str(keys / "sheratan-signing.key"))
    latest = get(server, "/api/audit")["latest_checkpoint"]
    assert latest["tree_size"] == signed["tree_size"] and latest["signature"]


def test_views_as_of_a_position_travel_back_in_time(server: Server) -> None:
    home = Home.open(server.home)
    last = last_position(server.home)
    start = get(server, "/api/views", at=1)
    assert start["position"] == 1 and start["jobs"]["total"] == 0
    now = get(server, "/api/views", at=10**9)  # past the end: the log as it is
    assert now["position"] == last
    assert sum(now["jobs"]["by_status"].values()) == now["jobs"]["total"] >= 20
    priors = home.views.current(PRIORS).priors
    assert {(p["intent"], p["key"]): p["visits"] for p in now["priors"]} == {
        key: prior.visits for key, prior in priors.items()
    }
    assert {b["intent"] for b in now["baselines"]} >= {"dispatch_job"}
    middle = get(server, "/api/views", at=last // 2)["jobs"]["total"]
    assert 0 < middle < now["jobs"]["total"]
    refused(server, "/api/views", 400, "", at=0)


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def parse_sse(text: str) -> list[dict[str, str]]:
    """The complete messages of a server-sent event stream (fields per message)."""
    messages = []
    for block in text.split("\r\n\r\n" if "\r\n" in text else "\n\n")[:-1]:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            if key:
                fields[key] = value.removeprefix(" ")
        if fields:
            messages.append(fields)
    return messages


def test_the_page_is_served_without_data_under_a_strict_policy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    as_json(home, "init")
    with serving(home) as running, running.client("") as anyone:
        page = anyone.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert '<script src="/ui/app.js" defer></script>' in page.text
        assert page.text.count("<script") == 1  # no inline script
        script = anyone.get("/ui/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in script.text and "textContent" in script.text
        assert anyone.get("/ui/app.css").status_code == 200
        for probe in ("/ui/../pyproject.toml", "/ui/ui.py", "/static/app.js", "/ui/why.py"):
            assert anyone.get(probe).status_code in (401, 404), probe
        assert anyone.get("/api/why/traces").status_code == 401
