"""``worker run --api``: the worker daemon's behaviour over HTTP, so a worker runs anywhere.

The same steps as the in-home daemon (``sheratan.workers.daemon``), through the API's pull
protocol instead of the log: claim an attempt leased to this worker (a long-poll: the server
records ``job.started``), run it with the local kinds inside the workspace, report its
outcome with the attempt token, and heartbeat in between. The server records exactly what the
daemon would; this process needs no home, only the API's address and the worker's token.

Each of ``concurrency`` threads claims, runs and reports one attempt at a time; the main
thread heartbeats, naming the attempts it runs, so the server extends their leases (every
``--heartbeat`` seconds, and every third of a lease term while it runs attempts, also
while it drains). A server that cannot be reached is tried again each second (a restart
loses nothing: a claim the server recorded but could not answer is handed back when its
lease expires). SIGTERM or Ctrl-C: no new claims; what runs finishes within the grace period
and is reported, the rest is handed back (its lease expires).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
import msgspec

from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.decide.policy import load_gates
from sheratan.workers.daemon import DaemonConfig, DaemonStats, check_config
from sheratan.workers.local import LocalTransport
from sheratan.workers.outcome import run_attempt
from sheratan.workers.report import beat_interval
from sheratan.workers.signals import stop_on_signals
from sheratan.workers.wire import MAX_WAIT_S, Answer, Beat, Beating, Claim, Held, Report

#: Seconds between tries while the server cannot be reached.
RETRY_S = 1.0
#: Longest a claim waits at the server (its maximum; the answer comes at once when one is due).
CLAIM_WAIT_S = MAX_WAIT_S
#: What an answer's ``event`` counts as in the stats.
_COUNTED = {"job.completed": "completed", "job.failed": "failed", "job.result_late": "late"}


class RefusedError(RuntimeError):
    """The API refused this worker (its token, its id): running on would not help."""


class PullClient:
    """The pull routes of one worker, with its token."""

    def __init__(self, api: str, token: str, worker_id: str) -> None:
        self.http = httpx.Client(
            base_url=api.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(CLAIM_WAIT_S + 30.0),
        )
        self.path = f"/api/workers/{worker_id}"

    def _post(self, route: str, **given: Any) -> bytes:
        return self._answered(self.http.post(f"{self.path}/{route}", **given))

    @staticmethod
    def _answered(response: httpx.Response) -> bytes:
        if response.status_code in (401, 403, 404):
            detail = response.json().get("detail", response.reason_phrase)
            msg = f"the API refused the worker ({response.status_code}): {detail}"
            raise RefusedError(msg)
        response.raise_for_status()
        return response.content

    def worker(self) -> WorkerState:
        data = msgspec.json.decode(self._answered(self.http.get(self.path)))
        return msgspec.convert(data, WorkerState, strict=False)

    def claim(self, wait_s: int) -> Claim:
        return msgspec.json.decode(self._post("claim", params={"wait": wait_s}), type=Claim)

    def heartbeat(self, running: list[Held]) -> Beat:
        body = msgspec.json.encode(Beating(running=running))
        content_type = {"Content-Type": "application/json"}
        return msgspec.json.decode(
            self._post("heartbeat", content=body, headers=content_type), type=Beat
        )

    def report(self, job: JobState, attempt_token: str, outcome: Any) -> Answer:
        body = msgspec.json.encode(Report.of(job, attempt_token, outcome))
        content_type = {"Content-Type": "application/json"}
        return msgspec.json.decode(
            self._post("result", content=body, headers=content_type), type=Answer
        )


class RemoteWorker:
    def __init__(self, client: PullClient, config: DaemonConfig) -> None:
        self.client = client
        self.config = config
        #: The worker as the server knows it (read at the start, once the server answers).
        self.worker: WorkerState | None = None
        self.transport = LocalTransport(config.workspace, load_gates().forbidden_path_prefixes)
        self.stats = DaemonStats()
        self.stop = threading.Event()
        #: Attempts claimed and not yet reported: the heartbeat names them, and the main
        #: thread drains on them.
        self.held: dict[UUID, JobState] = {}
        self.changed = threading.Condition()
        self.refused: RefusedError | None = None
        #: Wakes the main thread: an attempt was claimed (its term may need beats sooner), or
        #: the worker is stopping.
        self.wake = threading.Event()
        #: When the last heartbeat was sent (monotonic seconds).
        self.last_beat = time.monotonic()

    def _retrying(self, step: Callable[[], Any]) -> Any:
        """``step`` until it answers (the server may be restarting: said once, not each
        second); None once stopping."""
        said = False
        while True:
            try:
                return step()
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                if not said:
                    print(f"worker {self.config.worker_id}: {error}; trying again", file=sys.stderr)
                    said = True
                if self.stop.wait(RETRY_S):
                    return None

    def loop(self) -> None:
        """One thread's claim → run → report, until stopped (or refused)."""
        try:
            while not self.stop.is_set():
                claim = self._retrying(lambda: self.client.claim(CLAIM_WAIT_S))
                if claim is not None and claim.job is not None:
                    self._run(claim.job, claim.attempt_token or "")
        except RefusedError as error:
            self.refused = error
            self.stop.set()
            self.wake.set()

    def _run(self, job: JobState, attempt_token: str) -> None:
        with self.changed:
            self.held[job.id] = job
            self.stats.claimed += 1
        self.wake.set()
        answer = None
        assert self.worker is not None  # claims start once the server answered (run)
        try:
            outcome = run_attempt(self.transport, job, self.worker)
            answer = self._reported(job, attempt_token, outcome)
        finally:
            with self.changed:
                self.held.pop(job.id, None)
                if answer is not None and answer.event in _COUNTED:
                    counted = _COUNTED[answer.event]
                    setattr(self.stats, counted, getattr(self.stats, counted) + 1)
                self.changed.notify_all()

    def _reported(self, job: JobState, attempt_token: str, outcome: Any) -> Answer | None:
        """Report until the server answers (a report is applied once, so sending it again
        after a lost answer is safe); also while stopping, within the grace period."""
        deadline = time.monotonic() + self.config.grace_s
        while time.monotonic() < deadline or not self.stop.is_set():
            try:
                return self.client.report(job, attempt_token, outcome)
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                print(f"worker {self.config.worker_id}: {error}; reporting again", file=sys.stderr)
                time.sleep(RETRY_S)
        return None

    def run(self, on_start: Callable[[], object] | None) -> DaemonStats:
        """Reach the server (waiting for it, as for a restart), then claim in threads and
        heartbeat until stopped."""
        self.worker = self._retrying(self.client.worker)
        if self.worker is None:
            return self.stats  # stopped before the server ever answered
        threads = [
            threading.Thread(target=self.loop, daemon=True) for _ in range(self.config.concurrency)
        ]
        for thread in threads:
            thread.start()
        if on_start is not None:
            on_start()
        self.last_beat = -math.inf  # the first beat at once: the server hears it is up
        while True:
            self.wake.clear()  # before the look: a claim or a stop after it wakes the wait
            if self.stop.is_set():
                break
            self.wake.wait(max(0.0, self._beat_when_due() - time.monotonic()))
        self._drain()
        if self.refused is not None:
            raise self.refused
        return self.stats

    def _beat_when_due(self) -> float:
        """Heartbeat (naming the attempts it runs) if one is due; when the next one is."""
        with self.changed:
            held = list(self.held.values())
        interval = beat_interval(self.config.heartbeat_s, held)
        if time.monotonic() < self.last_beat + interval:
            return self.last_beat + interval
        running = [Held(job_id=job.id, attempt=job.attempt) for job in held]
        # Unreachable or refused: the claim threads say so, and the next beat tries again.
        with contextlib.suppress(httpx.TransportError, httpx.HTTPStatusError, RefusedError):
            self.client.heartbeat(running)
        self.last_beat = time.monotonic()
        return self.last_beat + interval

    def _drain(self) -> None:
        """Wait for what runs, up to the grace period, heartbeating so its leases hold."""
        deadline = time.monotonic() + self.config.grace_s
        while True:
            next_beat = self._beat_when_due()
            with self.changed:
                left = deadline - time.monotonic()
                if not self.held or left <= 0:
                    self.stats.handed_back = len(self.held)
                    return
                self.changed.wait(min(left, max(0.0, next_beat - time.monotonic())))


def run_remote_worker(
    api: str, token: str, config: DaemonConfig, on_start: Callable[[], object] | None = None
) -> DaemonStats:
    """Run a worker over the API until SIGTERM or Ctrl-C; RefusedError if the API refuses it."""
    config = check_config(config)
    client = PullClient(api, token, config.worker_id)
    remote = RemoteWorker(client, config)
    with stop_on_signals(remote.stop, remote.wake.set):
        return remote.run(on_start)
