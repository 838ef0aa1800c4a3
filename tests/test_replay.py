"""Replay: exact (determinism), counterfactual (off-policy accuracy) and regression.

Everything runs on real logs made by the real engine through the CLI; the counterfactual
estimates are held to separate on-policy runs, the issue's acceptance.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from cli import cli
from events.decisions import GateResult
from events.policy import ReplayRun
from sheratan.decide.engine import output_hash
from sheratan.home import Home
from sheratan.replay.exact import compare
from tests.cli_helpers import refused
from tests.decision_helpers import (
    EXAMPLE_WORKERS,
    ROOT,
    decisions,
    dispatch_under_unrecorded_budget,
    events,
    simulated,
)

WORKERS = ("fast-cheap", "slow-reliable", "expensive-quality")
FIXED = {
    "baselines": {
        "mode": "fixed",
        "latency_ms": {"p50": 500, "p95": 2000},
        "cost": {"p50": 1, "p95": 10},
    }
}
NEW_WEIGHTS = {"weights": {"wS": 3.0, "wQ": 0.5, "wR": 1.0, "wL": 2.5, "wC": 0.2, "wK": 2.0}}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def run_json(*args: str, expect: int = 0) -> Any:
    """The command's JSON answer (stdout; a PostgreSQL home says its export's lag on stderr)."""
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == expect, result.output
    return json.loads(result.stdout)


def simulate(home: Path, jobs: int, *options: str) -> dict[str, Any]:
    return run_json(  # type: ignore[no-any-return]
        "simulate", "--home", str(home), "--workers", str(EXAMPLE_WORKERS), "--jobs", str(jobs),
        *options,
    )  # fmt: skip


# --------------------------------------------------------------------- exact


@pytest.fixture(scope="module")
def weighted_log(
    make_module_home: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A log of two runs: the default weights, then other weights (--scoring); on each
    store."""
    root = tmp_path_factory.mktemp("exact")
    (root / "new.json").write_text(json.dumps(NEW_WEIGHTS))
    home = make_module_home(root / "home")
    simulate(home, 600, "--epsilon", "0.2", "--seed", "4")
    simulate(home, 300, "--epsilon", "0.2", "--seed", "5", "--scoring", str(root / "new.json"))
    return home


def test_exact_replay_reports_no_drift_for_every_decision(weighted_log: Path) -> None:
    report = run_json("replay", "--home", str(weighted_log), "--exact")
    opened = Home.open(weighted_log)
    made = decisions(opened)
    opened.close()
    assert report["decisions"] == len(made) > 900
    assert report["drift"] == {"none": len(made), "minor": 0, "major": 0}
    assert report["input_hash_matches"] == report["output_hash_matches"] == len(made)
    assert report["scores_checked"] == sum(1 for _, s in made if s and s.breakdown)
    assert report["policy_not_recorded"] == 0
    assert report["ok"] is True


def test_exact_replay_of_one_trace_and_from_a_position(weighted_log: Path) -> None:
    opened = Home.open(weighted_log)
    made = decisions(opened)
    positions = [p for p, e in events(opened) if type(e).TOPIC == "decision.made"]
    opened.close()
    trace = next(m.trace_id for m, _ in made if m.depth > 0)
    in_trace = sum(1 for m, _ in made if m.trace_id == trace)
    report = run_json("replay", "--home", str(weighted_log), "--exact", "--trace", str(trace))
    assert report["decisions"] == in_trace >= 2
    since = positions[-10]
    report = run_json("replay", "--home", str(weighted_log), "--exact", "--since", str(since))
    assert report["decisions"] == 10
    assert report["drift"]["none"] == 10


def test_regression_with_new_weights_reports_the_change(weighted_log: Path) -> None:
    new = weighted_log.parent / "new.json"
    report = run_json("replay", "--home", str(weighted_log), "--regression", "--weights", str(new))
    opened = Home.open(weighted_log)
    scored = [s for _, s in decisions(opened) if s is not None]
    opened.close()
    old_mean = sum(s.score for s in scored) / len(scored)
    w = NEW_WEIGHTS["weights"]
    rescored = [
        s.score
        if s.breakdown is None
        else w["wS"] * s.breakdown.S + w["wQ"] * s.breakdown.Q + w["wR"] * s.breakdown.R
        - w["wL"] * s.breakdown.L_norm - w["wC"] * s.breakdown.C_norm - w["wK"] * s.breakdown.K
        for s in scored
    ]  # fmt: skip
    assert report["mean_score_old"] == pytest.approx(old_mean, abs=1e-9)
    assert report["mean_score_new"] == pytest.approx(sum(rescored) / len(rescored), abs=1e-9)
    assert report["mean_score_new"] != pytest.approx(report["mean_score_old"], abs=1e-3)
    assert 0 < report["changed"] <= report["decisions"]
    assert report["changed_share"] == pytest.approx(report["changed"] / report["decisions"])
    assert report["top_changed"][0]["old_choice"] != report["top_changed"][0]["new_choice"]
    # exact replay still uses what was recorded: no drift after the weights changed
    exact = run_json("replay", "--home", str(weighted_log), "--exact")
    assert exact["drift"]["major"] == exact["drift"]["minor"] == 0


def test_regression_fails_when_the_mean_drops_more_than_allowed(weighted_log: Path) -> None:
    worse = weighted_log.parent / "worse.json"
    worse.write_text(json.dumps({"weights": {"wS": 1.0, "wQ": 0.5, "wR": 0.5, "wL": 3.0}}))
    args = ("replay", "--home", str(weighted_log), "--regression", "--weights", str(worse))
    dropped = run_json(*args, "--fail-if-drop", "0.5", expect=1)
    assert dropped["mean_drop"] > 0.5
    assert dropped["ok"] is False
    kept = run_json(*args, "--fail-if-drop", str(dropped["mean_drop"] + 0.01))
    assert kept["ok"] is True


def test_every_replay_run_is_recorded(weighted_log: Path) -> None:
    run_json("replay", "--home", str(weighted_log), "--exact", "--since", "1")
    opened = Home.open(weighted_log)
    runs = [e for _, e in events(opened) if isinstance(e, ReplayRun)]
    opened.close()
    assert runs
    last = runs[-1]
    assert last.mode == "exact"
    assert last.options == {"trace": None, "since": 1}
    assert set(last.summary) >= {"decisions", "drift", "ok"}


def test_a_decision_input_replay_cannot_see_is_major_drift(any_home: Path) -> None:
    """Constraints given to the dispatcher but recorded nowhere change a gate: major."""
    home, _ = simulated(any_home, 20, seed=1)
    dispatch_under_unrecorded_budget(home, 10)
    home.close()
    report = run_json("replay", "--home", str(any_home), "--exact", expect=1)
    assert report["drift"]["major"] >= 10
    assert report["ok"] is False
    assert any("budget" in d for f in report["findings"] for d in f["differences"])


def test_compare_classifies_drift(weighted_log: Path) -> None:
    opened = Home.open(weighted_log)
    made = next(m for m, _ in decisions(opened) if len(m.candidates) > 1)
    opened.close()
    assert compare(made, made) == ("none", [])
    first = made.candidates[0]
    nudged = msgspec.structs.replace(first, select_score=(first.select_score or 0.0) + 1e-6)
    # what the engine would record for each change: the hashes follow the content
    candidates = (nudged, *made.candidates[1:])
    minor = msgspec.structs.replace(
        made, candidates=candidates, output_hash=output_hash(candidates, made.chosen)
    )
    assert compare(made, minor)[0] == "minor"
    blocked = msgspec.structs.replace(first, gates=(GateResult("G1_kind", False, "no"),))
    major = msgspec.structs.replace(
        made, candidates=(blocked, *made.candidates[1:]), input_hash="another input"
    )
    assert compare(made, major)[0] == "major"
    chosen = (made.chosen + 1) % len(made.candidates)
    other = msgspec.structs.replace(
        made, chosen=chosen, output_hash=output_hash(made.candidates, chosen)
    )
    assert compare(made, other)[0] == "major"


# ------------------------------------------------------------ counterfactual


@pytest.fixture(scope="module")
def off_policy(
    make_module_home: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A logged run (UCB, epsilon 0.2) and one on-policy run per worker, in an environment
    that does not depend on the policy: fixed baselines (a score does not depend on which
    policy ran) and no quarantine cooldown (a quarantine, itself a recovery action of the
    logged policy, would otherwise gate workers for a while, which no ``always`` run sees).

    8,000 logged jobs: the rarely chosen workers get about 7% of them, and with ~550
    effective samples the estimate's standard error is about 0.075, half the 0.15 allowed.
    """
    root = tmp_path_factory.mktemp("counterfactual")
    fixed = root / "fixed.json"
    fixed.write_text(json.dumps(FIXED))
    gates = json.loads((ROOT / "policies" / "gates.json").read_text())
    (root / "gates.json").write_text(json.dumps({**gates, "quarantine_cooldown_s": 0}))
    environment = ("--scoring", str(fixed), "--gates", str(root / "gates.json"))
    logged = make_module_home(root / "logged")
    simulate(logged, 8000, "--epsilon", "0.2", "--seed", "1", *environment)
    on_policy = {
        worker: simulate(
            make_module_home(root / f"always-{worker}"), 3000,
            "--policy", f"always:{worker}", "--seed", "99",
            *environment,
        )["mean_score"]
        for worker in WORKERS
    }  # fmt: skip
    return {"logged": logged, "on_policy": on_policy}


@pytest.mark.parametrize("estimator", ["dr", "snips"])
def test_counterfactual_estimates_match_on_policy_runs(
    off_policy: dict[str, Any], estimator: str
) -> None:
    covered = 0
    for worker in WORKERS:
        report = run_json(
            "replay", "--home", str(off_policy["logged"]), "--counterfactual",
            "--policy", f"always:{worker}", "--estimator", estimator,
        )  # fmt: skip
        truth = off_policy["on_policy"][worker]
        assert set(report) >= {"policy", "estimator", "estimate", "ci", "n", "ess", "logged_mean"}
        assert report["n"] >= 8000
        assert 0 < report["ess"] <= report["n"]
        assert abs(report["estimate"] - truth) <= 0.15, (worker, report, truth)
        low, high = report["ci"]
        covered += low <= truth <= high
    assert covered >= 2


def test_counterfactual_of_the_logged_policy_is_its_observed_mean(
    off_policy: dict[str, Any],
) -> None:
    report = run_json(
        "replay", "--home", str(off_policy["logged"]), "--counterfactual",
        "--policy", "ucb:c=0.5,epsilon=0.2", "--estimator", "ips",
    )  # fmt: skip
    assert report["estimate"] == pytest.approx(report["logged_mean"], abs=1e-9)
    assert report["ess"] == pytest.approx(report["n"])


def test_ips_refuses_a_policy_the_log_never_supports(any_home: Path) -> None:
    """With epsilon 0 the logging policy gives the non-best workers probability 0."""
    home = any_home
    simulate(home, 200, "--epsilon", "0", "--seed", "3")
    opened = Home.open(home)
    chosen = Counter(m.candidates[m.chosen].key for m, _ in decisions(opened) if m.depth == 0)
    opened.close()
    # each decision gave every worker but its argmax probability 0
    never = next(w for w in WORKERS if f"ROUTE:{w}" != chosen.most_common(1)[0][0])
    for estimator in ("ips", "snips", "dr"):
        code, output = run(
            "replay", "--home", str(home), "--counterfactual", "--policy", f"always:{never}",
            "--estimator", estimator,
        )  # fmt: skip
        assert code == 2
        assert "probability" in output
    dm = run_json(
        "replay", "--home", str(home), "--counterfactual", "--policy", f"always:{never}",
        "--estimator", "dm",
    )  # fmt: skip
    assert dm["estimator"] == "dm"


def test_counterfactual_at_one_node_is_labelled_model_based(off_policy: dict[str, Any]) -> None:
    opened = Home.open(off_policy["logged"])
    made, scored = next(
        (m, s) for m, s in decisions(opened) if m.intent == "dispatch_job" and s is not None
    )
    nodes = decisions(opened)
    opened.close()
    other = next(c.key for i, c in enumerate(made.candidates) if i != made.chosen)
    report = run_json(
        "replay", "--home", str(off_policy["logged"]), "--counterfactual",
        "--at", str(made.originator_id), "--action", other,
    )  # fmt: skip
    observed = [
        s.score
        for m, s in nodes
        if s is not None and m.intent == "dispatch_job" and m.candidates[m.chosen].key == other
    ]
    assert "model-based" in report["estimate_kind"]
    assert report["action"] == other
    assert report["evidence"]["observations"] == len(observed)
    assert report["estimate"] == pytest.approx(sum(observed) / len(observed), abs=1e-9)
    assert report["actual"]["score"] == pytest.approx(scored.score)  # type: ignore[union-attr]
    code, output = run(
        "replay", "--home", str(off_policy["logged"]), "--counterfactual",
        "--at", str(made.originator_id), "--action", "no-such-worker",
    )  # fmt: skip
    assert code == 2
    assert "not a candidate" in output


def test_replay_needs_one_mode_and_its_options(any_home: Path) -> None:
    home = str(any_home)
    refused(Path(home), "replay", needle="choose one of --exact, --counterfactual")
    refused(Path(home), "replay", "--counterfactual", needle="--counterfactual needs --policy")
    refused(Path(home), "replay", "--regression", needle="--regression needs --weights")
    code, output = run("replay", "--home", home, "--counterfactual", "--policy", "sometimes")
    assert code == 2
    assert "policy" in output
