"""The decision loop's acceptance: learning, determinism, probabilities, scores, rebuilds."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from events.decisions import BaselineUpdated, PriorsSeeded, PriorsUpdated
from sheratan.decide.policy import load_scoring
from sheratan.decide.scoring import normalize
from sheratan.decide.trace import trace_record, violations
from sheratan.dispatch.service import EngineConfig, simulate
from sheratan.views import PRIORS, baselines_kind
from sheratan.workers.simulated import Z95, load_profiles
from tests.cli_helpers import as_json
from tests.decision_helpers import EXAMPLE_WORKERS, decisions, events, simulated


@pytest.fixture(scope="module")
def learned(make_module_home: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory):
    """3,000 jobs with the three example workers, UCB with epsilon (the default 0.1), on
    each store."""
    home, report = simulated(make_module_home(tmp_path_factory.mktemp("learn") / "h"), 3000, seed=7)
    yield home, report
    home.close()  # before its database is dropped


def expected_scores(baseline: tuple[float, float, float, float]) -> dict[str, float]:
    """Each example worker's expected dispatch score under a baseline, by Monte Carlo."""
    policy = load_scoring()
    w = policy.weights
    lat50, lat95, cost50, cost95 = baseline
    rng = random.Random(1)
    out = {}
    for p in load_profiles(EXAMPLE_WORKERS):
        mu = math.log(p.latency_ms.p50)
        sigma = (math.log(p.latency_ms.p95) - mu) / Z95
        total = 0.0
        n = 20_000
        for _ in range(n):
            ok = rng.random() < p.success
            latency = rng.lognormvariate(mu, sigma)
            s = 1.0 if ok else 0.0
            total += (
                w.wS * s
                + w.wQ * (p.quality if ok else 0.0)
                + w.wR * s
                - w.wL * normalize(latency, lat50, lat95)
                - w.wC * normalize(p.cost, cost50, cost95)
                - w.wK * p.risk
            )
        out[p.id] = total / n
    return out


def test_ucb_with_epsilon_learns_the_best_worker(learned) -> None:
    home, report = learned
    assert report["jobs"] == 3000
    dispatches = [m for m, _ in decisions(home) if m.intent == "dispatch_job"]
    chosen = [m.candidates[m.chosen].params["worker"] for m in dispatches]
    baselines = home.views.current(baselines_kind(200)).intent("dispatch_job")
    expected = expected_scores(baselines.percentiles())
    best = max(expected, key=expected.__getitem__)
    last = chosen[-1000:]
    share = last.count(best) / len(last)
    assert share >= 0.70, (best, expected, share)


def test_probabilities_sum_to_one_over_ungated_and_the_chosen_one_is_possible(learned) -> None:
    home, _ = learned
    for made, _ in decisions(home):
        ungated = [c for c in made.candidates if not c.gated]
        assert math.isclose(sum(c.probability for c in ungated), 1.0, abs_tol=1e-12)
        assert all(c.probability == 0.0 for c in made.candidates if c.gated)
        assert made.candidates[made.chosen].probability > 0.0


def test_score_breakdown_reproduces_the_formula_and_baselines_switch_after_20(learned) -> None:
    home, _ = learned
    scored = [s for m, s in decisions(home) if m.intent == "dispatch_job" and s is not None]
    sources = [s.breakdown.baseline.source for s in scored]
    assert sources[:20] == ["default"] * 20
    assert set(sources[20:]) == {"observed"}
    assert [s.breakdown.baseline.observations for s in scored[:25]] == list(range(25))
    for s in scored:
        b = s.breakdown
        w = b.weights
        formula = (
            w.wS * b.S + w.wQ * b.Q + w.wR * b.R - w.wL * b.L_norm - w.wC * b.C_norm - w.wK * b.K
        )
        assert s.score == pytest.approx(formula, abs=1e-12)
        lat = b.baseline.latency_ms
        assert b.L_norm == pytest.approx(normalize(s.metrics.latency_ms, lat.p50, lat.p95))


def test_every_exported_record_validates_against_the_published_schema(learned) -> None:
    home, _ = learned
    count = 0
    for made, scored in decisions(home):
        assert scored is not None
        record = msgspec.json.decode(msgspec.json.encode(trace_record(made, scored)))
        assert violations(record) == [], record
        count += 1
    assert count >= 3000


def test_priors_and_baselines_rebuilt_from_the_log_equal_the_live_ones(any_home: Path) -> None:
    home, _ = simulated(any_home, 400, seed=3)
    live_priors = home.views.current(PRIORS)  # saved by the live engine after its run
    live_baselines = home.views.current(baselines_kind(200))
    assert home.views.rebuild(PRIORS).priors == live_priors.priors
    rebuilt_baselines = home.views.rebuild(baselines_kind(200))
    assert {k: w.percentiles() for k, w in rebuilt_baselines.actions.items()} == {
        k: w.percentiles() for k, w in live_baselines.actions.items()
    }
    # At a middle position: fold the learning events by hand up to there and compare.
    log = events(home)
    middle = log[len(log) // 2][0]
    by_hand: dict[tuple[str, str], list[float]] = {}
    for position, event in log:
        if position > middle:
            break
        if isinstance(event, PriorsSeeded):
            by_hand[(event.intent, event.action_key)] = [event.mean_score] * event.visits
        elif isinstance(event, PriorsUpdated):
            by_hand.setdefault((event.intent, event.action_key), []).append(event.score)
    as_of = home.views.as_of(PRIORS, middle)
    assert set(as_of.priors) == set(by_hand)
    for key, scores in by_hand.items():
        assert as_of.priors[key].visits == len(scores)
        assert as_of.priors[key].mean_score == pytest.approx(sum(scores) / len(scores))
    windows = home.views.as_of(baselines_kind(200), middle).intents
    observed = [
        e.latency_ms
        for p, e in log
        if p <= middle and isinstance(e, BaselineUpdated) and e.intent == "dispatch_job"
    ]
    assert list(windows["dispatch_job"].latency_ms) == observed[-200:]


def test_epsilon_zero_and_one_seed_give_identical_decisions(
    make_home: Callable[[Path], Path], tmp_path: Path
) -> None:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)

    def run(name: str) -> list:
        home, _ = simulated(make_home(tmp_path / name), 300, seed=11, epsilon=0.0)
        out = []
        for made, scored in decisions(home):
            assert scored is not None
            out.append(msgspec.structs.replace(made, timestamp=epoch))
            out.append(msgspec.structs.replace(scored, timestamp=epoch))
        return out

    first, second = run("a"), run("b")
    assert len(first) > 600
    assert first == second
    dispatches = [m for m in first[::2] if m.intent == "dispatch_job"]
    assert all(max(c.probability for c in m.candidates) == 1.0 for m in dispatches)  # argmax


def test_a_split_run_continues_the_same_home(any_home: Path) -> None:
    home, first = simulated(any_home, 200, seed=5)
    assert first["jobs"] == 200
    visits_before = home.views.current(PRIORS).intent_visits("dispatch_job")
    second = simulate(home, EngineConfig.load(seed=5), load_profiles(EXAMPLE_WORKERS), 200)
    assert second["jobs"] == 200
    priors = home.views.rebuild(PRIORS)
    assert priors.intent_visits("dispatch_job") >= visits_before + 200
    verified = as_json(home.path, "audit", "verify")
    assert verified["ok"] and verified["events"] == home.log.last_position()  # the whole log
