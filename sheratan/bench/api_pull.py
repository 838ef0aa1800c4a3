"""``bench api``'s pull figure: one outside worker's claim→result round trip over HTTP.

The worker holds attempts leased to it (jobs created and dispatched before the server
starts); each round claims one without waiting and reports it done: two requests on one
kept-alive connection, each a durable save. The anchor is two ``GET /health`` on the same
server and connection, what two round trips through the framework cost with no work.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sheratan.api.worker_tokens import issue_worker_token
from sheratan.bench.figures import figure
from sheratan.bench.serving import WAIT_S, serve_command, server_process
from sheratan.dispatch.service import EngineConfig, dispatch
from sheratan.home import Home, init_home

WORKER = "bench"
#: The issue's bound for the round trip's median.
TARGET_P50_MS = 10.0


def run_pull_roundtrip(root: Path, *, rounds: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The claim→result figure: medians and the 99th percentile of ``rounds`` round trips."""
    home = root / "pull-home"
    init_home(home)
    opened = Home.open(home)
    try:
        opened.app.register_worker(WORKER, ("noop",), "process")
        token = issue_worker_token(home, WORKER)
        say(f"pull: {rounds:,} jobs leased to one worker")
        for _ in range(rounds):
            opened.app.create_job("noop", {})
        # The bench measures the protocol, not the limits: the worker may hold every attempt,
        # and the server takes every write.
        limits = root / "pull-limits.json"
        limits.write_text(
            json.dumps(
                {
                    "writes": {"per_second": 1e9, "burst": 1_000_000_000},
                    "workers": {"max_attempts": rounds},
                }
            )
        )
        config = EngineConfig.load(policy=f"always:{WORKER}", workspace=root, limits_path=limits)
        dispatch(opened, config)
    finally:
        opened.close()
    say(f"pull: {rounds:,} claim→result round trips against two GET /health")
    with (
        server_process(serve_command(home, "--limits", str(limits)), port_option=True) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT_S
        ) as http,
    ):
        health = [_timed(lambda: (http.get("/health"), http.get("/health"))) for _ in range(rounds)]
        trips = [_timed(lambda: _claim_and_report(http)) for _ in range(rounds)]
    p50, anchor = statistics.median(trips), statistics.median(health)
    return figure(
        p50,
        "ms",
        "two GET /health",
        anchor,
        f"p50 <= {TARGET_P50_MS:g} ms",
        p50 <= TARGET_P50_MS,
        p99_ms=statistics.quantiles(trips, n=100)[98],
        rounds=rounds,
    )


def _timed(step: Callable[[], object]) -> float:
    began = time.perf_counter()
    step()
    return (time.perf_counter() - began) * 1000


def _claim_and_report(http: httpx.Client) -> None:
    claim = http.post(f"/api/workers/{WORKER}/claim", params={"wait": 0}).json()
    if claim.get("job") is None:
        raise RuntimeError(f"bench api: the worker had nothing to claim: {claim}")
    job = claim["job"]
    report = {
        "job_id": job["id"],
        "attempt": job["attempt"],
        "attempt_token": claim["attempt_token"],
        "ok": True,
        "result": {"done": True},
        "metrics": {"latency_ms": 1.0, "quality": 1.0},
    }
    answer = http.post(f"/api/workers/{WORKER}/result", json=report)
    if answer.status_code != 200 or not answer.json()["recorded"]:
        raise RuntimeError(f"bench api: the result was not recorded: {answer.text[:200]}")
