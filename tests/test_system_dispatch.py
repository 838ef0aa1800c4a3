"""The system state gates the dispatcher, and anomalies move the state.

PAUSED leases nothing while jobs wait; RECOVERY leases only jobs tried before; DEGRADED
leases fewer and explores less. A burst of failures (a simulated worker that always fails)
raises an alarm, moves the simulations to DEGRADED and, once the failures stop, back to
OPERATIONAL; exact replay of that log finds no drift.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from cli_helpers import as_json, invoke, refused
from round_helpers import run_round

from events.decisions import DecisionMade
from events.system import AlarmCleared, AlarmRaised, SystemStateChanged
from projections.jobs import JobState
from sheratan.decide.policy import PolicyError, load_gates
from sheratan.decide.selection import SelectionPolicy
from sheratan.dispatch.gating import admits, leases_allowed, load_system_policy, selection_in
from sheratan.dispatch.service import SIMULATION, EngineConfig, build_dispatcher
from sheratan.home import Home
from sheratan.recording import Ids, VirtualClock
from tests.decision_helpers import events, simulated_home

PROFILE = {"latency_ms": {"p50": 100, "p95": 300}, "cost": 1.0, "quality": 0.8}
FLAKY = {"id": "flaky", "kinds": ["llm_call"], "success": 0.0, **PROFILE}
STEADY = {"id": "steady", "kinds": ["llm_call"], "success": 1.0, **PROFILE}


def workers_file(path: Path, *profiles: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"workers": list(profiles)}))
    return path


def simulate(home: Path, workers: Path, jobs: int) -> dict[str, Any]:
    report: dict[str, Any] = as_json(
        home, "simulate", "--workers", str(workers), "--jobs", str(jobs)
    )
    return report


# ------------------------------------------------------------------ gating


def test_paused_dispatches_nothing_while_jobs_wait_then_operational_dispatches_them(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    invoke(home, "worker", "register", "w1", "--kinds", "noop", "--transport", "local")
    jobs = [as_json(home, "job", "create", "noop")["id"] for _ in range(3)]
    invoke(home, "system", "transition", "PAUSED", "--reason", "maintenance")

    paused = as_json(home, "dispatch", "--until-idle")
    assert paused["dispatches"] == 0
    assert {as_json(home, "job", "show", job)["status"] for job in jobs} == {"queued"}
    state = as_json(home, "system", "state")
    assert state["state"] == "PAUSED"
    assert state["queued"] == 3
    assert "queued jobs wait" in state["dispatch"]

    invoke(home, "system", "transition", "OPERATIONAL", "--reason", "maintenance done")
    resumed = as_json(home, "dispatch", "--until-idle")
    assert (resumed["dispatches"], resumed["completed"]) == (3, 3)
    assert {as_json(home, "job", "show", job)["status"] for job in jobs} == {"completed"}


def test_recovery_holds_new_jobs_back_until_operational(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    steady = workers_file(tmp_path / "steady.json", STEADY)
    invoke(home, "system", "transition", "RECOVERY", "--reason", "drill", "--simulation")
    held = simulate(home, steady, 5)
    assert held["dispatches"] == 0
    state = as_json(home, "system", "state", "--simulation")
    assert (state["state"], state["queued"]) == ("RECOVERY", 5)
    assert "new jobs wait" in state["dispatch"]
    invoke(home, "system", "transition", "OPERATIONAL", "--reason", "drill over", "--simulation")
    assert simulate(home, steady, 1)["dispatches"] == 6


def job(attempt: int) -> JobState:
    now = datetime.now(UTC)
    return JobState(
        id=uuid4(), version=2, status="queued", kind="noop", payload={}, payload_hash="h",
        priority="normal", timeout_seconds=1.0, depends_on=(), idempotency_key=None,
        max_retries=2, attempt=attempt, created_at=now, updated_at=now,
    )  # fmt: skip


def test_what_each_state_lets_a_round_do() -> None:
    policy = load_system_policy()
    assert leases_allowed(policy, "OPERATIONAL", 256, 0) == 256
    assert leases_allowed(policy, "PAUSED", 256, 0) == 0
    assert leases_allowed(policy, "DEGRADED", 10, 0) == 5
    assert leases_allowed(policy, "DEGRADED", 1, 0) == 1
    assert leases_allowed(policy, "REFLECTIVE", 256, 0) == policy.degraded.max_in_flight
    assert leases_allowed(policy, "DEGRADED", 256, policy.degraded.max_in_flight) == 0
    assert admits("RECOVERY", job(1)) and not admits("RECOVERY", job(0))
    assert admits("OPERATIONAL", job(0)) and admits("DEGRADED", job(0))
    base = SelectionPolicy("ucb", c=0.5, epsilon=0.2)
    assert selection_in(policy, "OPERATIONAL", base) == base
    cautious = selection_in(policy, "DEGRADED", base)
    assert (cautious.epsilon, cautious.c) == (0.1, 0.25)


def test_a_system_policy_file_merges_over_the_shipped_one(tmp_path: Path) -> None:
    mine = tmp_path / "system.json"
    mine.write_text(json.dumps({"rules": {"failure_rate": {"raise_above": 0.9}}}))
    config = EngineConfig.load(system_path=mine)
    assert config.system.rules.failure_rate.raise_above == 0.9
    assert config.system.rules.failure_rate.clear_below == 0.3
    mine.write_text(json.dumps({"rules": {"failure_rate": {"clear_below": 0.95}}}))
    with pytest.raises(PolicyError, match="clear_below must not be above raise_above"):
        load_system_policy(mine)
    mine.write_text(json.dumps({"rules": {"failure_rates": {}}}))
    with pytest.raises(PolicyError, match=r"unknown field `rules\.failure_rates`"):
        load_system_policy(mine)


# ----------------------------------------------------------------- anomalies


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulation whose only worker fails every attempt, then one with a steady worker."""
    root = tmp_path_factory.mktemp("burst")
    home = root / "home"
    invoke(home, "init")
    simulate(home, workers_file(root / "flaky.json", FLAKY), 30)
    simulate(home, workers_file(root / "both.json", FLAKY, STEADY), 200)
    return home


def system_events(home: Path) -> list[tuple[int, Any]]:
    opened = Home.open(home)
    try:
        return [
            (position, event)
            for position, event in events(opened)
            if isinstance(event, SystemStateChanged | AlarmRaised | AlarmCleared | DecisionMade)
        ]
    finally:
        opened.close()


def test_a_burst_of_failures_degrades_the_system_and_recovery_restores_it(burst: Path) -> None:
    logged = system_events(burst)
    system = [(p, e) for p, e in logged if not isinstance(e, DecisionMade)]
    assert [type(e).__name__ for _, e in system] == [
        "AlarmRaised",
        "SystemStateChanged",
        "AlarmCleared",
        "SystemStateChanged",
    ]
    raised, degraded, cleared, restored = (e for _, e in system)
    assert (raised.rule, raised.severity, raised.threshold) == ("failure_rate", "degrade", 0.6)
    assert raised.value > 0.6 and "attempts failed or timed out" in raised.detail
    assert (degraded.from_state, degraded.to_state) == ("OPERATIONAL", "DEGRADED")
    assert (degraded.cause, degraded.alarm) == ("rule:failure_rate", "failure_rate")
    assert cleared.rule == "failure_rate" and cleared.value <= 0.3
    assert (restored.from_state, restored.to_state) == ("DEGRADED", "OPERATIONAL")
    assert restored.cause == "rule:failure_rate" and restored.reason == "every alarm cleared"
    assert {e.namespace for _, e in system} == {"simulation"}

    # decisions while DEGRADED explored less: epsilon and c halved, and recorded so
    base = load_gates()
    start, end = system[1][0], system[3][0]
    during = [e.rng for p, e in logged if isinstance(e, DecisionMade) and start < p < end]
    outside = [e.rng for p, e in logged if isinstance(e, DecisionMade) and not start < p < end]
    assert during and outside
    assert {(r.epsilon, r.c) for r in during} == {(base.epsilon * 0.5, base.ucb_c * 0.5)}
    assert {(r.epsilon, r.c) for r in outside} == {(base.epsilon, base.ucb_c)}

    state = as_json(burst, "system", "state", "--simulation")
    assert (state["state"], state["alarms"]) == ("OPERATIONAL", [])
    history = as_json(burst, "system", "history", "--simulation")
    assert [r["topic"] for r in history] == [
        "system.alarm_raised",
        "system.state_changed",
        "self_heal.taken",
        "system.alarm_cleared",
        "system.state_changed",
        "self_heal.resolved",
    ]
    assert (history[2]["trigger"], history[5]["outcome"]) == ("alarm:failure_rate", "healed")
    assert as_json(burst, "system", "state")["state"] == "OPERATIONAL"  # real work untouched


def test_timeouts_move_the_system_to_recovery_and_completed_retries_restore_it(
    tmp_path: Path,
) -> None:
    """Attempts of a process worker that never reports time out: the timeout rule raises its
    alarm and moves real work to RECOVERY, where a new job waits while the retries run; once
    they complete the alarm clears and the system is OPERATIONAL again."""
    home = tmp_path / "home"
    invoke(home, "init")
    invoke(home, "worker", "register", "w", "--kinds", "noop", "--transport", "process")
    system = tmp_path / "system.json"
    timeouts = {"window": 4, "min_attempts": 3, "raise_above": 0.5, "clear_below": 0.25}
    quiet = {"enabled": False}
    system.write_text(
        json.dumps({"rules": {"timeouts": timeouts, "failure_rate": quiet, "drift": quiet}})
    )
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"retry_backoff": {"base_s": 0.01}}))
    options = ("--system", str(system), "--gates", str(gates))
    jobs = [as_json(home, "job", "create", "noop", "--timeout", "2")["id"] for _ in range(3)]
    assert as_json(home, "dispatch", "--until-idle", *options)["dispatches"] == 3
    time.sleep(2.1)  # no worker reports: every lease expires
    invoke(home, "dispatch", "--until-idle", *options)
    state = as_json(home, "system", "state")
    assert state["state"] == "RECOVERY"
    assert [a["rule"] for a in state["alarms"]] == ["timeouts"]
    newcomer = as_json(home, "job", "create", "noop")["id"]
    invoke(home, "dispatch", "--until-idle", *options)
    assert as_json(home, "job", "show", newcomer)["status"] == "queued"  # never leased before

    run_round(home, {}, *options)  # the retries complete; the alarm clears
    assert as_json(home, "system", "state")["state"] == "OPERATIONAL"
    assert [as_json(home, "job", "show", job)["status"] for job in jobs] == ["completed"] * 3
    history = as_json(home, "system", "history")
    moves = [(r["from_state"], r["to_state"]) for r in history if "to_state" in r]
    assert moves == [("OPERATIONAL", "RECOVERY"), ("RECOVERY", "OPERATIONAL")]
    raised = next(r for r in history if r["topic"] == "system.alarm_raised")
    assert raised["rule"] == "timeouts" and "3 of the last 3 attempts timed out" in raised["detail"]
    run_round(home, {}, *options)
    assert as_json(home, "job", "show", newcomer)["status"] == "completed"
    assert as_json(home, "replay", "--exact", "--all")["drift"]["major"] == 0


def test_exact_replay_of_a_degraded_and_restored_log_has_no_drift(burst: Path) -> None:
    report = as_json(burst, "replay", "--exact")
    assert report["decisions"] > 200
    assert report["drift"] == {"none": report["decisions"], "minor": 0, "major": 0}
    assert report["ok"] is True


def test_a_state_an_operator_chose_is_not_moved_by_the_rules(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    invoke(home, "system", "transition", "REFLECTIVE", "--reason", "looking", "--simulation")
    simulate(home, workers_file(tmp_path / "flaky.json", FLAKY), 30)
    state = as_json(home, "system", "state", "--simulation")
    assert (state["state"], state["cause"]) == ("REFLECTIVE", "operator")
    assert [a["rule"] for a in state["alarms"]] == ["failure_rate"]
    line = refused(
        home, "system", "transition", "RECOVERY", "--reason", "x", "--simulation",
        needle="is REFLECTIVE",
    )  # fmt: skip
    assert "may move to DEGRADED, OPERATIONAL, PAUSED, not RECOVERY" in line


def test_every_automatic_recovery_is_a_self_heal_with_its_outcome(burst: Path) -> None:
    heals = as_json(burst, "sql", "SELECT * FROM self_heals ORDER BY pos")
    by_kind = Counter((h["trigger"], h["action"], h["outcome"]) for h in heals)
    recoveries = as_json(
        burst,
        "sql",
        "SELECT node_id, action_type FROM decisions WHERE intent = 'recover_failure' "
        "AND action_type <> 'ABORT'",
    )
    assert sorted(h["decision_id"] for h in heals if h["decision_id"]) == sorted(
        r["node_id"] for r in recoveries
    )
    assert by_kind[("failure", "RETRY", "failed")] > 0  # flaky again
    assert by_kind[("failure", "FALLBACK", "healed")] > 0  # steady took over
    assert by_kind[("alarm:failure_rate", "system DEGRADED", "healed")] == 1
    assert all(h["outcome"] != "pending" and 0 < h["confidence"] <= 1 for h in heals)
    counted = as_json(burst, "why", "stats")["self_heal"]
    assert {(c["trigger"], c["action"], c["outcome"]): c["count"] for c in counted} == by_kind
    assert "self-heal (trigger, action: outcome):" in invoke(burst, "why", "stats").stdout
    audited = as_json(burst, "audit", "report")["self_heals"]
    assert {(c["trigger"], c["action"], c["outcome"]): c["count"] for c in audited} == by_kind
    assert "## Self-heals" in invoke(burst, "audit", "report").stdout

    healed = next(h for h in heals if h["action"] == "FALLBACK" and h["outcome"] == "healed")
    trace = as_json(burst, "why", "trace", healed["decision_id"])
    (node,) = [n for n in trace["nodes"] if n["node_id"] == healed["decision_id"]]
    assert node["self_heal"]["heal_id"] == healed["heal_id"]
    assert (node["self_heal"]["trigger"], node["self_heal"]["outcome"]) == ("failure", "healed")
    shown = invoke(burst, "why", "trace", healed["decision_id"]).stdout
    assert "self-heal: FALLBACK after failure (confidence " in shown


def test_a_dispatch_the_logged_state_forbade_is_major_drift(tmp_path: Path) -> None:
    """A dispatcher that decides on a state the log had already left (the race the dispatch
    lock around ``system transition`` prevents) is caught by exact replay."""
    home, _ = simulated_home(tmp_path / "home", 5, seed=1)
    for i in range(3):
        home.app.create_job("llm_call", {"prompt": f"late {i}"}, namespace=SIMULATION)
    dispatcher = build_dispatcher(
        home,
        EngineConfig.load(seed=2),
        clock=VirtualClock(datetime.now(UTC)),
        ids=Ids(seed="stale"),
        outcomes_rng=random.Random(2),
        namespace=SIMULATION,
    )
    home.app.transition_system("PAUSED", "behind the dispatcher's back", namespace=SIMULATION)
    dispatcher.round(10)  # on views loaded before the pause, without catching up
    dispatcher.recorder.flush()
    home.close()
    report = json.loads(invoke(tmp_path / "home", "replay", "--exact", "--json", code=1).stdout)
    assert report["ok"] is False
    assert report["drift"]["major"] == 3
    assert all(
        "dispatched while the system was PAUSED" in f["differences"]
        for f in report["findings"]
        if f["drift"] == "major"
    )


def test_a_full_queue_degrades_until_it_drains(tmp_path: Path) -> None:
    """The queue_depth rule, with thresholds from a system file of one's own (--system)."""
    home = tmp_path / "home"
    invoke(home, "init")
    mine = tmp_path / "system.json"
    mine.write_text(json.dumps({"rules": {"queue_depth": {"raise_above": 3, "clear_below": 0}}}))
    steady = workers_file(tmp_path / "steady.json", STEADY)
    report = as_json(
        home, "simulate", "--workers", str(steady), "--jobs", "6", "--system", str(mine)
    )
    assert report["completed"] == 6
    history = as_json(home, "system", "history", "--simulation")
    assert [(r["topic"], r.get("rule") or r.get("to_state")) for r in history] == [
        ("system.alarm_raised", "queue_depth"),
        ("system.state_changed", "DEGRADED"),
        ("self_heal.taken", None),
        ("system.alarm_cleared", "queue_depth"),
        ("system.state_changed", "OPERATIONAL"),
        ("self_heal.resolved", None),
    ]
    assert history[0]["detail"] == "6 job(s) queued" and history[0]["threshold"] == 3


def test_the_queue_depth_rule_counts_only_its_own_namespace(tmp_path: Path) -> None:
    """Real work waiting (no worker runs its kind) does not fill the simulations' queue."""
    home = tmp_path / "home"
    invoke(home, "init")
    for _ in range(5):
        invoke(home, "job", "create", "noop")
    mine = tmp_path / "system.json"
    mine.write_text(json.dumps({"rules": {"queue_depth": {"raise_above": 3, "clear_below": 0}}}))
    steady = workers_file(tmp_path / "steady.json", STEADY)
    as_json(home, "simulate", "--workers", str(steady), "--jobs", "2", "--system", str(mine))
    assert as_json(home, "system", "history", "--simulation") == []


def test_a_latency_shift_raises_a_drift_alarm_that_clears_once_it_settles(tmp_path: Path) -> None:
    """Page-Hinkley (the detector of ``why drift``) on the attempts' latency: the work moves
    from a fast worker to a ten times slower one."""
    home = tmp_path / "home"
    invoke(home, "init")
    fast = {**STEADY, "id": "fast", "latency_ms": {"p50": 100, "p95": 200}}
    slow = {**STEADY, "id": "slow", "latency_ms": {"p50": 1000, "p95": 2000}}
    simulate(home, workers_file(tmp_path / "fast.json", fast), 300)
    assert as_json(home, "system", "history", "--simulation") == []
    invoke(home, "worker", "quarantine", "fast", "--reason", "retired")
    simulate(home, workers_file(tmp_path / "slow.json", slow), 400)
    history = as_json(home, "system", "history", "--simulation")
    assert [(r["topic"], r.get("rule") or r.get("to_state")) for r in history] == [
        ("system.alarm_raised", "drift"),
        ("system.state_changed", "DEGRADED"),
        ("self_heal.taken", None),
        ("system.alarm_cleared", "drift"),
        ("system.state_changed", "OPERATIONAL"),
        ("self_heal.resolved", None),
    ]
    assert history[0]["detail"].startswith("latency shifted up from p50 1")
    assert as_json(home, "replay", "--exact")["drift"]["major"] == 0


def test_a_silent_worker_daemon_moves_the_system_to_recovery_until_its_lease_is_swept(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    invoke(home, "init")
    mine = tmp_path / "system.json"
    mine.write_text(json.dumps({"rules": {"silent_workers": {"silent_after_s": 0.5}}}))
    invoke(home, "worker", "register", "w1", "--kinds", "noop", "--transport", "process")
    as_json(home, "job", "create", "noop", "--timeout", "2", "--max-retries", "0")
    invoke(home, "dispatch", "--system", str(mine))  # leased to w1, whose daemon never runs
    time.sleep(1.0)  # w1 not heard of for longer than silent_after_s
    invoke(home, "dispatch", "--system", str(mine))
    state = as_json(home, "system", "state")
    assert (state["state"], state["cause"]) == ("RECOVERY", "rule:silent_workers")
    assert [a["detail"] for a in state["alarms"]] == ["silent for over 0.5s: w1"]
    deadline = time.monotonic() + 60
    while as_json(home, "system", "state")["state"] != "OPERATIONAL":
        assert time.monotonic() < deadline, "the lease was never swept"
        time.sleep(0.2)
        invoke(home, "dispatch", "--system", str(mine))  # sweeps the expired lease
    history = as_json(home, "system", "history")
    assert [r["topic"] for r in history][-3:] == [
        "system.alarm_cleared",
        "system.state_changed",
        "self_heal.resolved",
    ]
    assert history[-2]["reason"] == "every alarm cleared"
