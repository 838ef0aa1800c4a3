"""``bench api``: job create over HTTP against a bare Litestar route, in the same run, and
the slider's views as of positions in a 1M-event log (``sheratan.bench.time_travel``).

Both servers are real processes on 127.0.0.1 with the same settings (uvicorn, one worker
process, access log off); 8 client threads each send their share of POSTs on a kept-alive
connection. The anchor is a route that decodes the same body and does no work, so the ratio
says what Sheratan's create (validation, the idempotency check, one durable save) costs on
top of the framework itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from sheratan.bench.figures import environment, figure
from sheratan.bench.time_travel import run_views_bench
from sheratan.home import init_home

CLI = Path(__file__).resolve().parents[2] / "cli.py"
CLIENTS = 8
WAIT_S = 60.0
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
GROUPS = ("create", "views")


def run_api_bench(
    *,
    requests: int = 2_000,
    events: int = 1_000_000,
    only: frozenset[str] = frozenset(GROUPS),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The figures of ``only``'s groups; ``events`` is the size of the views' log."""
    report: dict[str, Any] = {"figures": {}}
    if "create" in only:
        created = _create_figures(requests, progress)
        report |= created | {"figures": report["figures"] | created["figures"]}
    if "views" in only:
        viewed = run_views_bench(events=events, progress=progress)
        report |= viewed | {"figures": report["figures"] | viewed["figures"]}
    return report | {"environment": environment(("litestar", "uvicorn", "httpx"))}


def _create_figures(requests: int, progress: Callable[[str], None] | None) -> dict[str, Any]:
    say = progress or (lambda _: None)
    body = {"kind": "noop", "payload": {}}
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-api-") as tmp:
        root = Path(tmp)
        say(f"bare Litestar route, {CLIENTS} clients, {requests:,} requests")
        with _server([sys.executable, "-c", _BARE_APP]) as url:
            bare = _rate(url, {}, body, requests)
        home = root / "home"
        init_home(home)
        limits = root / "limits.json"  # the bench measures the create, not the limiter
        limits.write_text(json.dumps({"writes": {"per_second": 1e9, "burst": 1_000_000_000}}))
        token = (home / "api-token").read_text().strip()
        say(f"sheratan serve: job create, {CLIENTS} clients, {requests:,} requests")
        serve = [sys.executable, str(CLI), "--home", str(home), "serve", "--limits", str(limits)]
        with _server(serve, port_option=True) as url:
            created = _rate(url, {"Authorization": f"Bearer {token}"}, body, requests)
    return {
        "requests": requests,
        "clients": CLIENTS,
        "figures": {
            "job_create_per_s": figure(
                created, "req/s", "bare Litestar route", bare, ">= 0.5x", created >= 0.5 * bare
            )
        },
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _server(command: list[str], *, port_option: bool = False) -> Iterator[str]:
    """A server process on a free port until the block ends (SIGTERM)."""
    port = _free_port()
    args = [*command, "--port", str(port)] if port_option else [*command, str(port)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bench api: {args[0]} did not come up") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
