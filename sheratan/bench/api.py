"""``bench api``: the API's figures, each against an anchor measured in the same run.

- ``create``: job create over HTTP with 8 clients against a bare Litestar route. Both
  servers are real processes on 127.0.0.1 with the same settings (uvicorn, one worker
  process, access log off); each client sends its share of POSTs on a kept-alive
  connection. The anchor decodes the same body and does no work, so the ratio says what
  Sheratan's create (validation, the idempotency check, one durable save) costs on top of
  the framework itself.
- ``pull``: an outside worker's claim→result round trip (``sheratan.bench.api_pull``).
- ``page``: DecisionView's first render in Chromium (``sheratan.bench.page``); skipped, with
  the reason, where Debian's chromium or Playwright is missing.
- ``views``: the slider's views as of positions in a 1M-event log
  (``sheratan.bench.time_travel``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sheratan.bench.api_pull import run_pull_roundtrip
from sheratan.bench.figures import environment, figure
from sheratan.bench.page import missing_browser, run_first_render
from sheratan.bench.serving import WAIT_S, serve_command, server_process
from sheratan.bench.time_travel import run_views_bench
from sheratan.home import init_home

CLIENTS = 8
#: Page loads per render figure (the median is reported).
PAGE_LOADS = 5
_BARE_APP = """
import sys, uvicorn
from litestar import Litestar, post

@post("/api/jobs", sync_to_thread=False)
def create(data: dict) -> dict:
    return {"id": "0"}

uvicorn.run(Litestar([create]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""

#: The groups of figures ``bench api`` runs (all by default; ``--only`` picks some).
GROUPS = ("create", "pull", "page", "views")


def run_api_bench(
    *,
    requests: int = 2_000,
    rounds: int = 300,
    decisions: int = 1_000,
    events: int = 1_000_000,
    only: frozenset[str] = frozenset(GROUPS),
    progress: Callable[[str], None] | None = None,
    page_loads: int = PAGE_LOADS,
) -> dict[str, Any]:
    """The figures of ``only``'s groups: ``requests`` creates, ``rounds`` round trips, a
    page over ``decisions`` decisions (``page_loads`` renders of each kind), the views of an
    ``events``-event log."""
    say = progress or (lambda _: None)
    report: dict[str, Any] = {"figures": {}, "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-api-") as tmp:
        root = Path(tmp)
        if "create" in only:
            report["requests"], report["clients"] = requests, CLIENTS
            report["figures"]["job_create_per_s"] = _create_figure(root, requests, say)
        if "pull" in only:
            report["figures"]["claim_result_p50"] = run_pull_roundtrip(root, rounds=rounds, say=say)
        if "page" in only:
            if (why_not := missing_browser()) is None:
                report["figures"]["page_first_render"] = run_first_render(
                    root, decisions=decisions, loads=page_loads, say=say
                )
            else:
                report["skipped"]["page_first_render"] = why_not
    if "views" in only:
        viewed = run_views_bench(events=events, progress=progress)
        report |= viewed | {"figures": report["figures"] | viewed["figures"]}
    return report | {"environment": environment(("litestar", "uvicorn", "httpx"))}


def _create_figure(root: Path, requests: int, say: Callable[[str], None]) -> dict[str, Any]:
    body = {"kind": "noop", "payload": {}}
    say(f"bare Litestar route, {CLIENTS} clients, {requests:,} requests")
    with server_process([sys.executable, "-c", _BARE_APP]) as url:
        bare = _rate(url, {}, body, requests)
    home = root / "home"
    init_home(home)
    limits = root / "limits.json"  # the bench measures the create, not the limiter
    limits.write_text(json.dumps({"writes": {"per_second": 1e9, "burst": 1_000_000_000}}))
    token = (home / "api-token").read_text().strip()
    say(f"sheratan serve: job create, {CLIENTS} clients, {requests:,} requests")
    with server_process(serve_command(home, "--limits", str(limits)), port_option=True) as url:
        created = _rate(url, {"Authorization": f"Bearer {token}"}, body, requests)
    return figure(created, "req/s", "bare Litestar route", bare, ">= 0.5x", created >= 0.5 * bare)


def _rate(url: str, headers: dict[str, str], body: dict[str, Any], requests: int) -> float:
    """Requests per second of CLIENTS threads POSTing ``body`` (every answer must be 2xx)."""
    share = requests // CLIENTS
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=WAIT_S) as http:
            for _ in range(share):
                answer = http.post("/api/jobs", json=body)
                if answer.status_code >= 300:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                    return

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"bench api: {url} answered {failures[0]}")
    return share * CLIENTS / elapsed
