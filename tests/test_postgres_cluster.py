"""Issue 13's acceptance run: 3 ``dispatch --follow``, 2 ``serve`` and 4 priced ``worker run``
processes on one PostgreSQL database, each with a home folder of its own (a host each);
5,000 paid counting jobs created through the two API servers; one dispatcher and one worker
SIGKILLed mid-run and started again. Every job completes once; no attempt is dispatched,
started, executed (counted in the jobs' own files, apart from the log) or charged twice;
every account's balance equals its credits minus the cost of the completed attempts,
recomputed from the log's lines alone; nothing is left leased or held; the restarted
dispatcher resumes after its own tracking record; ``audit verify`` is clean on the export
and every decision replays exactly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle
from pathlib import Path

from api_helpers import Server, serving
from cli_helpers import as_json
from cluster_helpers import (
    events_with,
    host,
    log_lines,
    start_worker,
    streams_with,
    topic_counts,
    wait_progressing,
)
from process_helpers import kill_left, start_cli, stop_cleanly
from test_accounts_acceptance import charge_of, recomputed_balances
from worker_helpers import executions

JOBS = 5_000
ACCOUNTS = {"acme": "5000", "globex": "4000", "initech": "3000"}
PRICES = {"w1": "0.25", "w2": "0.5", "w3": "0.75", "w4": "1"}
DISPATCHERS = ("d1", "d2", "d3")
#: A lease long enough for a busy 2-core machine, short enough that the attempts of the
#: killed worker time out and are retried within the run.
TIMEOUT_S = 10.0
#: Rate limits out of the way: the run creates jobs as fast as the servers take them.
LIMITS = {
    "writes": {"per_second": 100_000.0, "burst": 100_000},
    "sources": {"jobs_per_minute": 1_000_000, "max_in_flight": 1_000_000},
}


def test_three_dispatchers_two_servers_four_workers_on_one_database(
    tmp_path: Path, postgres_dsn: str
) -> None:
    dsn = postgres_dsn
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps(LIMITS))
    operator = host(tmp_path, "ops", dsn)
    for account, balance in ACCOUNTS.items():
        as_json(operator, "account", "open", account, "--balance", balance)
    started: list[subprocess.Popen[str]] = []
    try:
        workers = {
            w: start_worker(host(tmp_path, w, dsn), dsn, workspace, w, *priced(w)) for w in PRICES
        }
        started += workers.values()
        dispatchers = {d: follow(host(tmp_path, d, dsn), workspace, d) for d in DISPATCHERS}
        started += dispatchers.values()
        with (
            serving(
                host(tmp_path, "a1", dsn), "--limits", str(limits), "--workspace", str(workspace)
            ) as a1,
            serving(
                host(tmp_path, "a2", dsn), "--limits", str(limits), "--workspace", str(workspace)
            ) as a2,
            ThreadPoolExecutor(1) as creator,
        ):
            creating = creator.submit(create_jobs, [a1, a2], workspace)
            # While the jobs are being created: SIGKILL d1 once it has acted and w1 once it
            # has started attempts; start both again. An attempt w1 started and never
            # reported times out and is retried; d1 resumes after its own tracking record.
            wait_progressing(
                lambda: (
                    completed(dsn) >= JOBS // 10
                    and events_with(dsn, "job.started", "worker", "w1") >= 10
                ),
                lambda: completed(dsn),
                "a tenth done, w1 among the workers",
                *started,
            )
            for process in (dispatchers["d1"], workers["w1"]):
                process.send_signal(signal.SIGKILL)
                process.communicate()
            dispatchers["d1"] = follow(tmp_path / "d1", workspace, "d1")
            workers["w1"] = start_worker(tmp_path / "w1", dsn, workspace, "w1", *priced("w1"))
            started += [dispatchers["d1"], workers["w1"]]
            files = creating.result()
        running = [*workers.values(), *dispatchers.values()]
        wait_progressing(
            lambda: all_settled(dsn),
            lambda: completed(dsn),
            "every job to complete and settle",
            *running,
        )
        outputs = stop_cleanly(running)
    finally:
        kill_left(started)  # a failed wait leaves none of them running

    resumed = re.search(r"after position (\d+)", outputs[dispatchers["d1"]][2])
    assert resumed is not None and int(resumed.group(1)) > 0, outputs[dispatchers["d1"]][2]
    lines = log_lines(tmp_path / "d2")
    by_topic: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_topic[line["topic"]].append(line)
    completions = Counter(line["stream"] for line in by_topic["job.completed"])
    assert sorted(completions) == sorted(files) and set(completions.values()) == {1}
    attempts = {
        topic: Counter((line["stream"], line["data"]["attempt"]) for line in by_topic[topic])
        for topic in ("job.dispatched", "job.started")
    }
    assert set(attempts["job.dispatched"].values()) == {1}
    assert set(attempts["job.started"].values()) == {1}
    assert set(attempts["job.started"]) <= set(attempts["job.dispatched"])
    # Executions, counted in each job's file: one per job whose only attempt started, and
    # never more than the attempts started (an attempt of the killed worker may have run
    # before it died, then timed out; none ran twice).
    started_of = Counter(job for job, _ in attempts["job.started"])
    ran = {job: executions(workspace, name) for job, name in files.items()}
    assert all(1 <= ran[job] <= started_of[job] for job in files), [
        (job, ran[job], started_of[job]) for job in files if not 1 <= ran[job] <= started_of[job]
    ][:5]
    assert all(ran[job] == 1 for job in files if started_of[job] == 1)
    # No attempt charged twice: each is held once and closed (settled or released) once.
    held = Counter(charge_of(line) for line in by_topic["account.held"])
    closed = Counter(
        charge_of(line)
        for topic in ("account.settled", "account.released")
        for line in by_topic[topic]
    )
    assert set(held.values()) == {1} and set(closed.values()) == {1}
    assert held.keys() == closed.keys() == attempts["job.dispatched"].keys()
    # Balances: the accounts view equals credits minus the cost of completed attempts.
    expected = recomputed_balances(lines)
    for account in ACCOUNTS:
        shown = as_json(tmp_path / "a1", "account", "show", account)
        assert shown["balance_micros"] == expected[account], account
        assert shown["held_micros"] == 0 and shown["open_holds"] == 0, shown
    assert as_json(tmp_path / "d3", "job", "list", "--status", "dispatched") == []
    assert as_json(tmp_path / "d3", "job", "list", "--status", "running") == []
    # The export (brought up to date and checked against the database first) verifies.
    assert as_json(tmp_path / "d2", "audit", "verify")["ok"] is True
    # Every decision of the three dispatchers re-runs to the same input and output: each was
    # made on the log as it stood right before it (the advisory lock serialised the rounds).
    replayed = as_json(tmp_path / "d1", "replay", "--exact")
    assert replayed["drift"]["major"] == 0, replayed["drift"]
    decisions = replayed["decisions"]
    assert replayed["input_hash_matches"] == replayed["output_hash_matches"] == decisions
    assert replayed["scores_drifted"] == 0


def priced(worker: str) -> tuple[str, ...]:
    return ("--concurrency", "2", "--price", PRICES[worker])


def follow(home: Path, workspace: Path, name: str) -> subprocess.Popen[str]:
    return start_cli(home, "dispatch", "--follow", "--name", name, "--workspace", str(workspace))


def create_jobs(servers: list[Server], workspace: Path) -> dict[str, str]:
    """JOBS counting patch_apply jobs over HTTP, spread over the servers and the payers:
    each job's id and its file (which gains one "1" per execution)."""
    targets = cycle([(server, payer) for server in servers for payer in ACCOUNTS])
    work = [(i, *next(targets)) for i in range(JOBS)]
    clients = {server.url: server.client() for server in servers}

    def create(item: tuple[int, Server, str]) -> tuple[str, str]:
        i, server, payer = item
        name = f"count-{i}.txt"
        (workspace / name).write_text("0")
        body = {
            "kind": "patch_apply",
            "payload": {"path": name, "old": "0", "new": "01"},
            "payer": payer,
            "timeout_seconds": TIMEOUT_S,
            "max_retries": 6,
        }
        answer = clients[server.url].post("/api/jobs", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"], name

    try:
        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(create, work))
    finally:
        for client in clients.values():
            client.close()


def completed(dsn: str) -> int:
    return streams_with(dsn, "job.completed")


def all_settled(dsn: str) -> bool:
    """Every job completed, as many attempts settled as completed, as many closed as held."""
    if completed(dsn) < JOBS:
        return False
    count = topic_counts(dsn)
    closed = count["account.settled"] + count["account.released"]
    return count["account.settled"] == count["job.completed"] and closed == count["account.held"]
