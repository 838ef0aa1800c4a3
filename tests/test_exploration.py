"""Safe exploration and honest counterfactuals (issue 9, points 7 and 8), on real logs.

The acceptance: four simulated workers (success 95%, 70%, 90%, 50%), epsilon 0.1, 3,000
jobs, one seed, through the real engine and store (``simulate``): no worker is quarantined
without the evidence gate passing, the best worker gets at least 85% of the last 1,000
dispatches, and UCB's mean score is above uniform random routing's on the same seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.decisions import Candidate, DecisionMade, Evidence
from events.workers import WorkerQuarantined
from sheratan.decide.gates import evidence, g5_evidence
from sheratan.decide.policy import PriorSeed, QuarantineEvidence, load_gates
from sheratan.decide.selection import REVERSIBLE
from sheratan.home import Home
from tests.cli_helpers import as_json, invoke, refused_unrecorded
from tests.decision_helpers import decisions, events

SUCCESS = {"w95": 0.95, "w70": 0.70, "w90": 0.90, "w50": 0.50}
BEST = "w95"
JOBS = 3000
EPSILON = 0.1
SEED = "7"
RULE = load_gates().quarantine_evidence


def _profiles(path: Path) -> Path:
    """Four workers alike in all but their success rate."""
    workers = [
        {
            "id": worker,
            "kinds": ["llm_call"],
            "success": success,
            "latency_ms": {"p50": 500, "p95": 1500},
            "cost": 2.0,
            "quality": 0.8,
        }
        for worker, success in SUCCESS.items()
    ]
    path.write_text(json.dumps({"workers": workers}))
    return path


def _simulate(
    root: Path, name: str, init: Callable[[Path], Path], *options: str
) -> tuple[Path, dict[str, Any]]:
    """A fresh home (``init`` makes it), simulated with the four workers and fixed baselines
    (a score does not depend on what the policy chose before)."""
    (root / "fixed.json").write_text(json.dumps({"baselines": {"mode": "fixed"}}))
    home = init(root / name)
    report = as_json(
        home, "simulate", "--workers", str(_profiles(root / "workers.json")),
        "--jobs", str(JOBS), "--epsilon", str(EPSILON), "--seed", SEED,
        "--scoring", str(root / "fixed.json"), *options,
    )  # fmt: skip
    return home, report


def _made(home: Path) -> list[DecisionMade]:
    opened = Home.open(home)
    try:
        return [made for made, _ in decisions(opened)]
    finally:
        opened.close()


def _gate(candidate: Candidate, name: str) -> bool | None:
    return next((g.passed for g in candidate.gates if g.gate == name), None)


@pytest.fixture(scope="module")
def runs(
    make_module_home: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The acceptance's two runs, UCB and uniform random, on each store."""
    root = tmp_path_factory.mktemp("exploration")
    ucb, ucb_report = _simulate(root, "ucb", make_module_home)
    _, random_report = _simulate(root, "random", make_module_home, "--policy", "random")
    return {"home": ucb, "ucb": ucb_report, "random": random_report, "made": _made(ucb)}


# ---------------------------------------------------------------- acceptance


def test_no_worker_is_quarantined_without_evidence(runs: dict[str, Any]) -> None:
    made: list[DecisionMade] = runs["made"]
    chosen = [m.candidates[m.chosen] for m in made if m.chosen >= 0]
    for candidate in chosen:
        if candidate.type == "QUARANTINE":
            assert _gate(candidate, "G5_evidence") is True, candidate
    quarantines = [c for m in made for c in m.candidates if c.type == "QUARANTINE"]
    unproven = [c for c in quarantines if _gate(c, "G5_evidence") is False]
    assert unproven, "the run never offered a QUARANTINE without evidence: nothing was tested"
    assert all(c.gated and c.probability == 0.0 for c in unproven)
    on_best = [c for c in unproven if c.params["worker"] == BEST]
    assert on_best, "the best worker failed and was never a QUARANTINE candidate"
    opened = Home.open(runs["home"])
    quarantined = [e for _, e in events(opened) if isinstance(e, WorkerQuarantined)]
    opened.close()
    assert len(quarantined) == sum(c.type == "QUARANTINE" for c in chosen)


def test_the_best_worker_gets_most_of_the_last_1000_dispatches(runs: dict[str, Any]) -> None:
    routed = [
        m.candidates[m.chosen].params["worker"]
        for m in runs["made"]
        if m.intent == "dispatch_job" and m.chosen >= 0
    ]
    assert len(routed) == JOBS
    share = routed[-1000:].count(BEST) / 1000
    assert share >= 0.85, share


def test_ucb_scores_above_uniform_random_on_the_same_seed(runs: dict[str, Any]) -> None:
    assert runs["ucb"]["mean_score"] > runs["random"]["mean_score"], (
        runs["ucb"]["mean_score"],
        runs["random"]["mean_score"],
    )
    shares = [s["chosen"] / JOBS for s in runs["random"]["per_worker"].values()]
    assert len(shares) == 4 and min(shares) > 0.2  # random stays uniform: nothing quarantined


# ------------------------------------------------------------ the decisions


def _greedy(candidates: tuple[Candidate, ...]) -> int:
    open_ = [i for i, c in enumerate(candidates) if c.select_score is not None]
    return max(open_, key=lambda i: (candidates[i].select_score, -i))


def test_exploration_picks_only_reversible_actions_with_exact_probabilities(
    runs: dict[str, Any],
) -> None:
    """The record says which candidates exploration could pick; the others have probability
    0 unless they are the greedy choice, and get no UCB bonus."""
    for made in runs["made"]:
        candidates = made.candidates
        assert sum(c.probability for c in candidates) == pytest.approx(1.0)
        explorable = [i for i, c in enumerate(candidates) if c.explorable]
        for i, c in enumerate(candidates):
            assert c.explorable == (c.type in REVERSIBLE and not c.gated), c
            if c.type not in REVERSIBLE:
                assert c.ucb_bonus == 0.0, c
            if not c.explorable and c.probability > 0:
                assert i == _greedy(candidates), made
                assert c.probability == pytest.approx(1.0 if not explorable else 1 - EPSILON)
        for i in explorable:
            assert candidates[i].probability >= EPSILON / len(explorable) - 1e-12


def test_abort_is_the_last_resort(runs: dict[str, Any]) -> None:
    recoveries = [m for m in runs["made"] if m.intent == "recover_failure"]
    assert recoveries
    aborted = 0
    for made in recoveries:
        abort = next(c for c in made.candidates if c.type == "ABORT")
        reversible_open = any(c.explorable for c in made.candidates)
        assert _gate(abort, "last_resort") is (not reversible_open), made
        if made.candidates[made.chosen].type == "ABORT":
            aborted += 1
            assert not reversible_open
    assert aborted  # jobs that used every retry still end


def test_exact_replay_of_the_run_reports_no_drift(runs: dict[str, Any]) -> None:
    report = as_json(runs["home"], "replay", "--exact")
    assert report["decisions"] == len(runs["made"])
    assert report["drift"] == {"none": len(runs["made"]), "minor": 0, "major": 0}


# --------------------------------------------------------- with evidence


@pytest.fixture(scope="module")
def quarantining(
    make_module_home: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A run whose priors make quarantining the 50% worker the greedy recovery: it is then
    quarantined each time, and only when, its record shows the evidence; on each store."""
    root = tmp_path_factory.mktemp("quarantining")
    home = make_module_home(root / "home")
    opened = Home.open(home)
    opened.app.seed_priors(
        {"recover_failure": {"QUARANTINE:w50": PriorSeed(visits=50, mean_score=9.0)}}
    )
    opened.close()
    (root / "fixed.json").write_text(json.dumps({"baselines": {"mode": "fixed"}}))
    as_json(
        home, "simulate", "--workers", str(_profiles(root / "workers.json")), "--jobs", "1500",
        "--epsilon", str(EPSILON), "--seed", SEED, "--scoring", str(root / "fixed.json"),
    )  # fmt: skip
    return {"home": home, "made": _made(home)}


def test_a_quarantine_is_chosen_only_on_the_evidence_it_records(
    quarantining: dict[str, Any],
) -> None:
    chosen = [
        m.candidates[m.chosen]
        for m in quarantining["made"]
        if m.chosen >= 0 and m.candidates[m.chosen].type == "QUARANTINE"
    ]
    assert chosen, "the seeded prior made no quarantine"
    for candidate in chosen:
        assert candidate.params["worker"] == "w50"
        assert _gate(candidate, "G5_evidence") is True
        assert not candidate.explorable
        seen = candidate.params["evidence"]
        assert seen["streak"] >= RULE.consecutive_failures or (
            seen["attempts"] >= RULE.window
            and seen["failures"] > RULE.failure_rate * seen["attempts"]
        ), seen
    report = as_json(quarantining["home"], "replay", "--exact")
    assert report["drift"]["major"] == report["drift"]["minor"] == 0


def test_counterfactual_reports_gated_target_actions_and_logged_quarantines(
    quarantining: dict[str, Any],
) -> None:
    home = quarantining["home"]
    report = as_json(home, "replay", "--counterfactual", "--policy", "always:w50")
    gated = report["target_gated"]
    assert gated["decisions"] > 0
    assert gated["by_gate"]["G0_barrier"] == gated["decisions"]
    assert gated["share"] == pytest.approx(gated["decisions"] / report["n"])
    logged = report["logged_quarantines"]
    chosen = sum(
        m.candidates[m.chosen].type == "QUARANTINE" for m in quarantining["made"] if m.chosen >= 0
    )
    assert logged["count"] == chosen > 0
    assert logged["workers"] == ["w50"]
    assert logged["decisions_affected"] >= gated["decisions"]
    assert "w50" in logged["warning"]
    text = invoke(home, "replay", "--counterfactual", "--policy", "always:w50").stdout
    assert f"the target's action was gated in {gated['decisions']} decision(s)" in text
    assert "G0_barrier" in text
    assert "warning: the logged policy quarantined w50" in text


def test_counterfactual_without_quarantines_has_no_warning(runs: dict[str, Any]) -> None:
    report = as_json(runs["home"], "replay", "--counterfactual", "--policy", f"always:{BEST}")
    assert report["target_gated"] == {"decisions": 0, "share": 0.0, "by_gate": {}}
    assert report["logged_quarantines"]["count"] == 0
    assert report["logged_quarantines"]["warning"] is None
    text = invoke(runs["home"], "replay", "--counterfactual", "--policy", "random").stdout
    assert "warning" not in text


# ---------------------------------------------------------------- the gate


def _outcomes() -> st.SearchStrategy[tuple[bool, ...]]:
    return st.lists(st.booleans(), max_size=60).map(tuple)


@given(_outcomes(), st.integers(1, 50), st.integers(1, 50), st.floats(0.0, 0.99))
def test_g5_passes_exactly_on_a_failure_streak_or_a_full_window_over_the_rate(
    recent: tuple[bool, ...], streak_needed: int, window: int, rate: float
) -> None:
    rule = QuarantineEvidence(consecutive_failures=streak_needed, window=window, failure_rate=rate)
    seen = evidence(rule, "w", recent)
    tail = len(recent) - max((i + 1 for i, ok in enumerate(recent) if ok), default=0)
    last = recent[-window:]
    expected = tail >= streak_needed or (len(last) == window and last.count(False) > rate * window)
    result = g5_evidence(rule, seen)
    assert result.passed is expected
    assert (result.reason is None) is expected
    assert seen == Evidence(worker="w", streak=tail, attempts=len(last), failures=last.count(False))


def _recent(home: Path) -> Iterator[tuple[str, tuple[bool, ...]]]:
    opened = Home.open(home)
    try:
        from sheratan.views import WORKERS

        live = opened.views.current(WORKERS)
        rebuilt = opened.views.rebuild(WORKERS)
        assert live.workers == rebuilt.workers and live.attempts == rebuilt.attempts
        yield from ((w.id, w.recent) for w in rebuilt.workers.values())
    finally:
        opened.close()


def test_the_workers_view_folds_each_workers_recent_record(runs: dict[str, Any]) -> None:
    recent = dict(_recent(runs["home"]))
    assert set(recent) == set(SUCCESS)
    for worker, outcomes in recent.items():
        assert 0 < len(outcomes) <= 50, worker
    assert recent[BEST].count(True) > recent[BEST].count(False)


def test_the_evidence_rule_is_merged_from_a_partial_gates_file(tmp_path: Path) -> None:
    partial = tmp_path / "gates.json"
    partial.write_text(json.dumps({"quarantine_evidence": {"window": 20}}))
    merged = load_gates(partial).quarantine_evidence
    assert merged == QuarantineEvidence(
        consecutive_failures=RULE.consecutive_failures, window=20, failure_rate=RULE.failure_rate
    )
    home = tmp_path / "h"
    as_json(home, "init")
    shown = as_json(home, "policy", "show", "--gates", str(partial))
    assert shown["sources"]["gates"]["quarantine_evidence.window"] == str(partial)
    assert shown["sources"]["gates"]["quarantine_evidence.failure_rate"] == "policies/gates.json"
    partial.write_text(json.dumps({"quarantine_evidence": {"window": 51}}))
    refused_unrecorded(home, "policy", "show", "--gates", str(partial), needle="window")
    partial.write_text(json.dumps({"quarantine_evidence": {"streak": 2}}))
    refused_unrecorded(
        home,
        "simulate",
        "--jobs",
        "3",
        "--gates",
        str(partial),
        needle="quarantine_evidence.streak",
    )


def test_a_workers_view_saved_before_recent_records_is_folded_afresh(
    quarantining: dict[str, Any],
) -> None:
    """A snapshot in the older shape (workers without records, no open attempts) would load
    with empty records and blind G5: it is dropped and the log folded again."""
    import msgspec

    from sheratan.views import WORKERS

    opened = Home.open(quarantining["home"])
    try:
        rebuilt = opened.views.rebuild(WORKERS)
        position = rebuilt.position
        older = {
            "workers": [
                {k: v for k, v in msgspec.to_builtins(w).items() if k != "recent"}
                for w in rebuilt.workers.values()
            ]
        }
        saved = {
            "position": position,
            "head": opened.log.hash_at(position),  # what the views check a snapshot by
            "state": msgspec.Raw(msgspec.msgpack.encode(older)),
        }
        path = opened.path / "projections" / "workers.msgpack"
        path.write_bytes(msgspec.msgpack.encode(saved))
        loaded = opened.views.current(WORKERS)
        assert loaded.workers == rebuilt.workers
        assert all(w.recent for w in loaded.workers.values())
    finally:
        opened.close()


def test_a_policy_recorded_before_the_evidence_rule_replays_with_the_shipped_rule() -> None:
    import msgspec

    from sheratan.decide.policy import PolicySnapshot, load_scoring

    gates = msgspec.to_builtins(load_gates())
    del gates["quarantine_evidence"]
    snapshot = PolicySnapshot.from_plain(msgspec.to_builtins(load_scoring()), gates, "/w")
    assert snapshot.gates.quarantine_evidence == RULE
    assert snapshot.gates.epsilon == gates["epsilon"]


def test_exact_replay_calls_other_evidence_major_drift(quarantining: dict[str, Any]) -> None:
    """The evidence is not in the hashes: replay compares what the gate read on its own."""
    import msgspec

    from sheratan.replay.exact import compare

    made = next(
        m
        for m in quarantining["made"]
        if m.chosen >= 0 and m.candidates[m.chosen].type == "QUARANTINE"
    )
    candidates = list(made.candidates)
    seen = {**candidates[made.chosen].params["evidence"], "streak": 0}
    candidates[made.chosen] = msgspec.structs.replace(
        candidates[made.chosen], params={**candidates[made.chosen].params, "evidence": seen}
    )
    other = msgspec.structs.replace(made, candidates=tuple(candidates))
    assert compare(made, made) == ("none", [])
    drift, differences = compare(other, made)
    assert drift == "major"
    assert any("QUARANTINE:w50 params" in d for d in differences), differences
