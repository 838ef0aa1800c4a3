"""Issue 11's exactly-once charging run: 2 ``dispatch --follow`` and 3 priced ``worker run``
processes on one home, 1,000 paid noop jobs from three accounts (one too poor for its
share); two workers SIGKILLed at different moments while they hold attempts, each started
again. Every account's balance equals its credits minus the settled cost of the completed
attempts, recomputed here from the log's lines alone; no attempt is held, settled or
released twice; every hold is closed; the poor account's remaining jobs are gated for
insufficient funds; the log verifies and replays without drift."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from cli_helpers import as_json
from process_helpers import events_of, kill_left, start_cli, stop_cleanly, wait_until
from store_helpers import log_lines
from worker_helpers import run_worker

from events.accounts import to_micros
from sheratan.home import Home

JOBS = 1_000
ACCOUNTS = {"acme": "1000", "globex": "250.5", "initech": "75.25"}
PRICES = {"w1": "0.25", "w2": "0.5", "w3": "0.75"}
#: Workers SIGKILLed (and started again), and the share of the jobs completed before each.
KILLS = (("w1", 0.0), ("w2", 0.4))
#: How a job of the run ends: completed, or quarantined when its payer cannot pay.
ENDED = frozenset({"job.completed", "job.quarantined"})
#: Short leases, so the attempts of the killed worker time out and are retried within the run.
TIMEOUT_S = 4.0


def test_paid_jobs_under_a_killed_worker_are_charged_exactly_once(
    any_home: Path, tmp_path: Path
) -> None:
    home = any_home
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for account, balance in ACCOUNTS.items():
        as_json(home, "account", "open", account, "--balance", balance)
    started: list[subprocess.Popen[str]] = []
    try:
        daemons = {
            w: run_worker(home, workspace, w, "--concurrency", "2", "--price", price)
            for w, price in PRICES.items()
        }
        started += daemons.values()
        followers = [
            start_cli(home, "dispatch", "--follow", "--name", name, "--workspace", str(workspace))
            for name in ("d1", "d2")
        ]
        started += followers
        jobs = create_paid_jobs(home)

        # SIGKILL each worker of KILLS once it has started attempts and the share of the
        # jobs has completed, then start it again: an attempt it had started and not
        # reported times out, its hold is released and the job retried (leases it had not
        # claimed yet are claimed by the restarted daemon).
        for worker, share in KILLS:
            wait_until(
                lambda w=worker, n=share * JOBS: completed(home) >= n and started_by(home, w) >= 10,
                f"{worker} to start attempts",
                *followers,
            )
            daemons[worker].send_signal(signal.SIGKILL)
            daemons[worker].communicate()
            price = PRICES[worker]
            daemons[worker] = run_worker(
                home, workspace, worker, "--concurrency", "2", "--price", price
            )
            started.append(daemons[worker])
        processes = [*daemons.values(), *followers]
        wait_until(lambda: all_ended(home, jobs), "every job to end and settle", *processes)
        stop_cleanly(processes)
    finally:
        kill_left(started)  # a failed wait leaves none of them running

    lines = log_lines(home)
    expected = recomputed_balances(lines)
    for account in ACCOUNTS:
        shown = as_json(home, "account", "show", account)
        assert shown["balance_micros"] == expected[account], account
        assert shown["held_micros"] == 0 and shown["open_holds"] == 0, shown
    held = Counter(charge_of(line) for line in lines if line["topic"] == "account.held")
    closed = Counter(
        charge_of(line)
        for line in lines
        if line["topic"] in ("account.settled", "account.released")
    )
    assert set(held.values()) == {1} and set(closed.values()) == {1}
    assert held.keys() == closed.keys()
    dispatched = {
        (line["stream"], line["data"]["attempt"])
        for line in lines
        if line["topic"] == "job.dispatched"
    }
    assert held.keys() == dispatched  # every attempt of a paid job held once, none unleased
    # Every release is an attempt that timed out or failed (what the log says of the job).
    released = [line for line in lines if line["topic"] == "account.released"]
    unfinished = {
        (line["stream"], line["data"]["attempt"]): line["topic"].removeprefix("job.")
        for line in lines
        if line["topic"] in ("job.timed_out", "job.failed")
    }
    assert {charge_of(line): line["data"]["why"] for line in released} == unfinished
    # initech's 75.25 pays for about a hundred attempts of its third of the jobs: once its
    # funds are held or spent, every candidate of its jobs is gated at the budget gate.
    assert lowest_available(lines) >= 0  # at no position did holds exceed the funds
    quarantined = [line for line in lines if line["topic"] == "job.quarantined"]
    assert quarantined and all(
        "insufficient funds: account initech" in line["data"]["reason"] for line in quarantined
    )
    by_status = as_json(
        home,
        "sql",
        "SELECT status, count(*) AS n, max(closings) AS most FROM charges GROUP BY 1 ORDER BY 1",
    )
    expected = [
        {"status": "released", "n": len(released), "most": 1},
        {"status": "settled", "n": len(jobs) - len(quarantined), "most": 1},
    ]
    assert by_status == [row for row in expected if row["n"]]  # a run may release nothing
    assert as_json(home, "audit", "verify")["ok"] is True
    # Every decision re-runs to the same input and output (the funds its budget gate read
    # included); minor findings are only heartbeats that overtook a dispatcher's save.
    replayed = as_json(home, "replay", "--exact")
    assert replayed["drift"]["major"] == 0, replayed["drift"]
    decisions = replayed["decisions"]
    assert replayed["input_hash_matches"] == replayed["output_hash_matches"] == decisions
    assert replayed["scores_drifted"] == 0


def create_paid_jobs(home: Path) -> list[str]:
    """JOBS noop jobs through the real create path, their payers taking turns."""
    opened = Home.open(home)
    payers = list(ACCOUNTS)
    try:
        return [
            str(
                opened.app.create_job(
                    "noop",
                    {},
                    payer=payers[i % len(payers)],
                    timeout_seconds=TIMEOUT_S,
                    max_retries=6,
                )
            )
            for i in range(JOBS)
        ]
    finally:
        opened.close()


def started_by(home: Path, worker: str) -> int:
    return sum(1 for e in events_of(home, "job.started") if e["data"]["worker"] == worker)


def completed(home: Path) -> int:
    return len({e["stream"] for e in events_of(home, "job.completed")})


def all_ended(home: Path, jobs: list[str]) -> bool:
    """Every job completed (or quarantined: its payer's funds ran out), as many attempts
    settled as completed, and as many closed as held."""
    lines = log_lines(home)
    done = {line["stream"] for line in lines if line["topic"] in ENDED}
    topics = Counter(line["topic"] for line in lines)
    closed = topics["account.settled"] + topics["account.released"]
    return (
        done >= set(jobs)
        and topics["account.settled"] == topics["job.completed"]
        and closed == topics["account.held"]
    )


def charge_of(line: dict[str, Any]) -> tuple[str, int]:
    return line["data"]["job_id"], line["data"]["attempt"]


def lowest_available(lines: list[dict[str, Any]]) -> int:
    """The lowest available amount (credits - settled - held) of any account at any position
    of the log, folded from the lines (a daemon's settled cost equals its hold here)."""
    available: dict[str, int] = defaultdict(int)
    held: dict[tuple[str, int], int] = {}
    lowest = 0
    for line in lines:
        data, topic = line["data"], line["topic"]
        if topic == "account.credited":
            available[data["account_id"]] += data["amount_micros"]
        elif topic == "account.held":
            held[charge_of(line)] = data["amount_micros"]
            available[data["account_id"]] -= data["amount_micros"]
        elif topic == "account.settled":
            available[data["account_id"]] += held.pop(charge_of(line)) - data["cost_micros"]
        elif topic == "account.released":
            available[data["account_id"]] += held.pop(charge_of(line))
        if topic.startswith("account."):
            lowest = min(lowest, available[data["account_id"]])
    return lowest


def recomputed_balances(lines: list[dict[str, Any]]) -> dict[str, int]:
    """Credits minus the reported cost of every completed attempt, per payer, from the lines
    (no fold, no view: the job's payer from job.created, the cost from job.completed)."""
    balances: dict[str, int] = defaultdict(int)
    payer: dict[str, str] = {}
    for line in lines:
        data = line["data"]
        if line["topic"] == "account.credited":
            balances[data["account_id"]] += data["amount_micros"]
        elif line["topic"] == "job.created":
            payer[line["stream"]] = data["payer"]
        elif line["topic"] == "job.completed":
            balances[payer[line["stream"]]] -= to_micros(data["metrics"]["cost"])
    return balances
