"""Issue 11's parts in one log: paid attempts (held, settled, released), a chain with refused
and folded follow-ups, a worker at its attempt limit, system state moves and the self-heal of
a failed attempt. Each part has its own tests; here exact replay must find no drift over a log
that holds them all together, as the issue's acceptance asks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from cli_helpers import as_json, invoke
from process_helpers import events_of
from round_helpers import run_round
from store_helpers import log_lines

from events.decisions import ErrorInfo
from sheratan.home import Home
from sheratan.workers.daemon import register_process_worker
from sheratan.workers.outcome import Outcome

PRICE = 2.0


def followups(*notes: str) -> dict[str, Any]:
    return {"followups": [{"kind": "noop", "payload": {"note": note}} for note in notes]}


def gated_by(decisions: list[dict[str, Any]], gate: str) -> int:
    """How many decisions kept a candidate out with ``gate``."""
    return sum(
        any(
            check["gate"] == gate and not check["passed"]
            for candidate in decision["data"]["candidates"]
            for check in candidate["gates"]
        )
        for decision in decisions
    )


def test_one_log_holding_every_part_of_issue_11_replays_without_drift(
    any_home: Path, tmp_path: Path
) -> None:
    home = any_home
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"workers": {"max_attempts": 2}, "chains": {"max_jobs": 3}}))
    options = ("--limits", str(limits))
    opened = Home.open(home)
    try:
        for worker in ("w1", "w2"):
            register_process_worker(opened, worker, ("noop",), price=PRICE)
    finally:
        opened.close()
    invoke(home, "account", "open", "acme", "--balance", "100")
    for note in ("root", "flaky", "one", "two", "three"):
        payload = json.dumps({"note": note})
        invoke(home, "job", "create", "noop", "--payload", payload, "--payer", "acme")

    failed = Outcome(ok=False, latency_ms=1.0, error=ErrorInfo("boom", "a failed attempt"))
    asking = Outcome(
        ok=True, latency_ms=1.0, quality=1.0, cost=1.5, result=followups("a", "a", "b", "c")
    )
    run_round(home, {"root": asking, "flaky": failed}, *options)
    invoke(home, "system", "transition", "DEGRADED", "--reason", "an operator looks")
    run_round(home, {}, *options)
    invoke(home, "system", "transition", "OPERATIONAL", "--reason", "looked")
    for _ in range(3):
        run_round(home, {}, *options)

    jobs = as_json(home, "job", "list")
    assert [job["status"] for job in jobs] == ["completed"] * 7  # 5 + the 2 follow-ups allowed
    topics = Counter(line["topic"] for line in log_lines(home))
    assert topics["account.held"] == topics["job.dispatched"] == 8  # flaky ran twice
    assert topics["account.settled"] == 7 and topics["account.released"] == 1
    assert topics["job.followup_refused"] == 2  # "c" over max_jobs; the second "a" folded
    assert topics["self_heal.taken"] == topics["self_heal.resolved"] == 1
    assert topics["system.state_changed"] == 2
    assert gated_by(events_of(home, "decision.made"), "worker_limit") >= 1
    acme = as_json(home, "account", "show", "acme")
    assert acme["balance_micros"] == 100_000_000 - 1_500_000  # only root's attempt cost

    replay = as_json(home, "replay", "--exact", "--all")
    assert replay["ok"], replay
    assert replay["drift"]["major"] == replay["drift"]["minor"] == 0
    assert replay["drift"]["none"] == topics["decision.made"]
