"""Off-policy estimators against synthetic logged bandits whose true policy values are known.

Each bandit has k = 3 actions with known mean rewards, logged by epsilon-greedy (epsilon 0.2)
around a leader that changes from decision to decision, as UCB's does. Tolerances are a few
standard errors, computed from the known logging probabilities, not from the estimator itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sheratan.replay import estimators
from sheratan.replay.estimators import (
    ESTIMATORS,
    MAX_RESAMPLES,
    Estimate,
    LoggedData,
    SupportError,
    action_means,
    check_support,
    estimate,
)

TRUE_MEANS = np.array([0.3, 0.5, 0.7])
K = len(TRUE_MEANS)
EPSILON = 0.2
#: How often each action is the UCB leader (the greedy pick) at a decision.
LEADER_PROBS = (0.2, 0.3, 0.5)
N = 20_000
RESAMPLES = 500
#: Distance from the truth allowed, in standard errors.
Z = 4.0


@dataclass(frozen=True)
class Bandit:
    rewards: np.ndarray
    chosen: np.ndarray
    logged: np.ndarray
    #: Variance of one reward, and E[r^2], per action.
    reward_var: np.ndarray


def simulate(
    n: int,
    *,
    seed: int,
    epsilon: float = EPSILON,
    leader_probs: tuple[float, ...] = LEADER_PROBS,
    rewards: str = "bernoulli",
) -> Bandit:
    """Epsilon-greedy logging: epsilon/k on every action, 1 - epsilon more on the leader."""
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    leader = rng.choice(K, size=n, p=leader_probs)
    logged = np.full((n, K), epsilon / K)
    logged[rows, leader] += 1 - epsilon
    chosen = draw(rng, logged)
    if rewards == "bernoulli":
        observed = rng.binomial(1, TRUE_MEANS[chosen]).astype(np.float64)
        reward_var = TRUE_MEANS * (1 - TRUE_MEANS)
    else:
        sd = 0.5
        observed = rng.normal(TRUE_MEANS[chosen], sd)
        reward_var = np.full(K, sd**2)
    return Bandit(observed, chosen, logged, reward_var)


def draw(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One action per row, drawn from that row's distribution (zero-probability actions never)."""
    u = rng.random((probabilities.shape[0], 1))
    return np.minimum((u >= probabilities.cumsum(axis=1)).sum(axis=1), probabilities.shape[1] - 1)


def always(action: int, n: int, k: int = K) -> np.ndarray:
    target = np.zeros((n, k))
    target[:, action] = 1.0
    return target


def per_action_model(bandit: Bandit) -> np.ndarray:
    n = bandit.rewards.shape[0]
    return np.broadcast_to(action_means(bandit.rewards, bandit.chosen, K), (n, K))


def ips_standard_error(bandit: Bandit, action: int) -> float:
    """Exact SE of IPS for "always action": Var(w r) = E[r^2] E[1/p] - mu^2 over the logging.

    It bounds the SE of the other estimators here too (DM, SNIPS and DR with a per-action
    model reweight residuals, not rewards), so it serves as the tolerance for all of them.
    """
    n = bandit.rewards.shape[0]
    mu = TRUE_MEANS[action]
    second_moment = bandit.reward_var[action] + mu**2
    inverse_propensity = float(np.mean(1 / bandit.logged[:, action]))
    return float(np.sqrt((second_moment * inverse_propensity - mu**2) / n))


@cache
def bandit_for(kind: str) -> Bandit:
    return simulate(N, seed=1 if kind == "bernoulli" else 31337, rewards=kind)


@cache
def always_estimate(kind: str, estimator: str, action: int) -> Estimate:
    bandit = bandit_for(kind)
    data = LoggedData(
        bandit.rewards, bandit.chosen, bandit.logged, always(action, N), per_action_model(bandit)
    )
    return estimate(data, estimator, resamples=RESAMPLES, seed=1)


@pytest.mark.parametrize("kind", ["bernoulli", "normal"])
@pytest.mark.parametrize("action", [0, 2])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimate_of_a_deterministic_target_lands_near_the_truth(
    kind: str, estimator: str, action: int
) -> None:
    result = always_estimate(kind, estimator, action)
    truth = TRUE_MEANS[action]
    tolerance = Z * ips_standard_error(bandit_for(kind), action)
    assert abs(result.estimate - truth) < tolerance, (result, truth, tolerance)
    # The logging policy's own value is elsewhere: the estimators are not just echoing it.
    assert abs(result.logged_mean - truth) > tolerance
    assert result.n == N
    assert result.confidence == 0.95


@pytest.mark.parametrize("kind", ["bernoulli", "normal"])
@pytest.mark.parametrize("action", [0, 2])
@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_the_95_percent_interval_covers_the_truth(kind: str, estimator: str, action: int) -> None:
    result = always_estimate(kind, estimator, action)
    low, high = result.ci
    assert low <= TRUE_MEANS[action] <= high, result
    assert low <= result.estimate <= high


def test_interval_coverage_is_near_nominal_over_replications() -> None:
    replications, n, action = 60, 1_000, 0
    covered = {name: 0 for name in ("ips", "snips", "dr")}
    for seed in range(replications):
        bandit = simulate(n, seed=1_000 + seed)
        data = LoggedData(
            bandit.rewards,
            bandit.chosen,
            bandit.logged,
            always(action, n),
            per_action_model(bandit),
        )
        for name in covered:
            low, high = estimate(data, name, resamples=300, seed=seed).ci
            covered[name] += low <= TRUE_MEANS[action] <= high
    # Nominal 0.95; 0.85 is about three binomial standard errors below it for 60 replications.
    assert all(count / replications >= 0.85 for count in covered.values()), covered


def test_dr_corrects_a_biased_model_where_dm_cannot() -> None:
    """Rewards depend on context, and the leader knows it: the per-action means are biased.

    Action 0 leads in the contexts where it is good, so its logged mean overstates its value
    everywhere. DM inherits the bias whole; DR, IPS and SNIPS use the exact propensities.
    """
    rng = np.random.default_rng(5)
    n, action = N, 0
    means = np.array([[0.9, 0.4, 0.5], [0.1, 0.6, 0.5]])  # by context (rows), action (columns)
    context = rng.integers(0, 2, size=n)
    logged = np.full((n, K), EPSILON / K)
    logged[np.arange(n), means[context].argmax(axis=1)] += 1 - EPSILON
    chosen = draw(rng, logged)
    rewards = rng.binomial(1, means[context, chosen]).astype(np.float64)
    model = np.broadcast_to(action_means(rewards, chosen, K), (n, K))
    data = LoggedData(rewards, chosen, logged, always(action, n), model)
    truth = float(means[:, action].mean())
    mu = truth
    standard_error = np.sqrt((mu * np.mean(1 / logged[:, action]) - mu**2) / n)

    dm = estimate(data, "dm", resamples=50)
    assert dm.estimate - truth > 10 * standard_error
    for name in ("ips", "snips", "dr"):
        result = estimate(data, name, resamples=200)
        assert abs(result.estimate - truth) < Z * standard_error, result


def test_with_target_equal_to_logging_the_estimators_return_the_logged_mean() -> None:
    bandit = bandit_for("bernoulli")
    model = per_action_model(bandit)
    data = LoggedData(bandit.rewards, bandit.chosen, bandit.logged, bandit.logged, model)
    logged_mean = float(bandit.rewards.mean())
    for name in ("ips", "snips"):
        result = estimate(data, name, resamples=100)
        assert result.estimate == pytest.approx(logged_mean, rel=1e-12)
        assert result.logged_mean == pytest.approx(logged_mean, rel=1e-12)
    # DR adds mean_i (sum_a p_ia m_a - m_chosen): zero in expectation, each term bounded by the
    # spread of the model's values.
    dr = estimate(data, "dr", resamples=100)
    spread = float(model.max() - model.min())
    assert abs(dr.estimate - logged_mean) < Z * spread / np.sqrt(N)


def test_ess_is_n_when_target_equals_logging_and_less_otherwise() -> None:
    bandit = bandit_for("bernoulli")
    model = per_action_model(bandit)
    same = LoggedData(bandit.rewards, bandit.chosen, bandit.logged, bandit.logged, model)
    assert estimate(same, "ips", resamples=10).ess == pytest.approx(N, rel=1e-12)
    far = always_estimate("bernoulli", "dr", 0)
    assert 0 < far.ess < N / 2


def test_dm_equals_the_models_value_of_the_target() -> None:
    bandit = bandit_for("bernoulli")
    means = action_means(bandit.rewards, bandit.chosen, K)
    model = np.broadcast_to(means, (N, K))
    for action in range(K):
        data = LoggedData(bandit.rewards, bandit.chosen, bandit.logged, always(action, N), model)
        result = estimate(data, "dm", resamples=20)
        assert result.estimate == pytest.approx(means[action], rel=1e-12)
        # The model is taken as given: with a context-free model the interval has no width.
        assert result.ci == pytest.approx((means[action], means[action]), rel=1e-12)
    uniform = np.full((N, K), 1 / K)
    data = LoggedData(bandit.rewards, bandit.chosen, bandit.logged, uniform, model)
    assert estimate(data, "dm", resamples=20).estimate == pytest.approx(means.mean(), rel=1e-12)


def test_support_error_when_the_target_picks_what_logging_never_could() -> None:
    n, action = 2_000, 0
    bandit = simulate(n, seed=3, epsilon=0.0)  # pure greedy: only the leader is ever possible
    model = per_action_model(bandit)
    data = LoggedData(bandit.rewards, bandit.chosen, bandit.logged, always(action, n), model)
    unsupported = int((bandit.logged[:, action] == 0).sum())
    assert 0 < unsupported < n
    for name in ("ips", "snips", "dr"):
        with pytest.raises(SupportError) as caught:
            estimate(data, name)
        assert caught.value.decisions == unsupported
        assert caught.value.actions == (action,)
        assert f"{unsupported} of {n} decisions" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(SupportError):
        check_support(data)
    dm = estimate(data, "dm", resamples=20)
    assert dm.estimate == pytest.approx(model[0, action], rel=1e-12)


def test_support_error_names_every_unsupported_action() -> None:
    logged = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    target = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    data = LoggedData(np.zeros(3), np.array([0, 1, 2]), logged, target, np.zeros((3, 3)))
    with pytest.raises(SupportError) as caught:
        check_support(data)
    assert (caught.value.decisions, caught.value.actions) == (2, (1, 2))


def test_bootstrap_is_reproducible_for_a_fixed_seed() -> None:
    bandit = simulate(3_000, seed=11)
    data = LoggedData(
        bandit.rewards, bandit.chosen, bandit.logged, always(1, 3_000), per_action_model(bandit)
    )
    for name in ESTIMATORS:
        first = estimate(data, name, resamples=200, seed=42)
        assert estimate(data, name, resamples=200, seed=42) == first
        other = estimate(data, name, resamples=200, seed=43)
        assert other.estimate == first.estimate
        if name != "dm":  # DM's interval has no width here (context-free model)
            assert other.ci != first.ci


def test_bootstrap_chunk_size_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks draw the same int64 stream in order, so chunking only bounds memory."""
    n = 1_001
    bandit = simulate(n, seed=12)
    data = LoggedData(
        bandit.rewards, bandit.chosen, bandit.logged, always(2, n), per_action_model(bandit)
    )
    reference = {name: estimate(data, name, resamples=101, seed=9) for name in ESTIMATORS}
    for limit in (3 * n + 7, n, 1):  # uneven chunks; one resample per chunk; limit below n
        monkeypatch.setattr(estimators, "MAX_BOOTSTRAP_INDICES", limit)
        for name in ESTIMATORS:
            assert estimate(data, name, resamples=101, seed=9) == reference[name], (name, limit)


def test_bootstrap_holds_at_most_the_index_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    class CountingRng:
        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)

        def integers(self, low: int, high: int, size: tuple[int, int]) -> np.ndarray:
            drawn.append(size[0] * size[1])
            return self.rng.integers(low, high, size=size)

    monkeypatch.setattr(estimators, "MAX_BOOTSTRAP_INDICES", 100)
    columns = np.arange(30, dtype=np.float64)[np.newaxis, :]
    sums = estimators._resampled_sums(columns, 10, CountingRng())  # type: ignore[arg-type]
    assert sums.shape == (1, 10)
    assert sum(drawn) == 30 * 10 and max(drawn) <= 100
    drawn.clear()
    estimators._resampled_sums(np.zeros((2, 250)), 4, CountingRng())  # type: ignore[arg-type]
    assert drawn == [250] * 4  # n above the limit: one resample at a time


def test_snips_undefined_when_every_weight_is_zero() -> None:
    logged = np.array([[0.5, 0.5], [0.5, 0.5]])
    data = LoggedData(np.ones(2), np.array([0, 0]), logged, always(1, 2, k=2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="SNIPS is undefined"):
        estimate(data, "snips")
    assert estimate(data, "ips", resamples=10).estimate == 0.0
    assert estimate(data, "ips", resamples=10).ess == 0.0


def test_action_means_fill_unobserved_actions_with_the_prior() -> None:
    rewards = np.array([1.0, 0.0, 1.0, 0.5])
    chosen = np.array([0, 0, 2, 2])
    overall = sum(rewards) / len(rewards)
    means = action_means(rewards, chosen, 4)
    assert list(means) == [(1.0 + 0.0) / 2, overall, (1.0 + 0.5) / 2, overall]
    with_prior = action_means(rewards, chosen, 4, prior_mean=-1.0)
    assert list(with_prior[[1, 3]]) == [-1.0, -1.0]
    assert list(action_means(np.array([]), np.array([], dtype=int), 2, prior_mean=0.5)) == [
        0.5,
        0.5,
    ]
    with pytest.raises(ValueError, match="prior_mean"):
        action_means(np.array([]), np.array([], dtype=int), 2)
    with pytest.raises(ValueError, match="outside"):
        action_means(rewards, np.array([0, 0, 2, 4]), 4)


def _valid(n: int = 4) -> dict[str, Any]:
    logged = np.tile([0.5, 0.25, 0.25], (n, 1))
    return {
        "rewards": np.linspace(0, 1, n),
        "chosen": np.arange(n) % K,
        "logged": logged,
        "target": always(0, n),
        "model": np.zeros((n, K)),
    }


def _with(**changes: Any) -> dict[str, Any]:
    return {**_valid(), **changes}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (_with(rewards=np.zeros((4, 1))), "rewards must be a non-empty 1-D"),
        (_with(rewards=np.array([0.0, np.nan, 0.0, 0.0])), "rewards holds a non-finite"),
        (_with(chosen=np.array([0, 1, 2])), "chosen must have shape"),
        (_with(chosen=np.array([0.0, 1.0, 2.0, 0.0])), "integer action indices"),
        (_with(chosen=np.array([0, 1, 3, 0])), r"chosen\[2\] = 3"),
        (_with(logged=np.tile([0.5, 0.5], (4, 1))), "target must have shape"),
        (_with(logged=np.tile([0.5, 0.25, 0.2], (4, 1))), "logged row 0 sums to 0.95"),
        (_with(logged=np.tile([1.5, -0.25, -0.25], (4, 1))), r"logged probabilities .* \[0, 1\]"),
        (_with(target=np.zeros((4, K))), "target row 0 sums to 0"),
        (_with(model=np.full((4, K), np.inf)), "model holds a non-finite"),
        (_with(logged=np.tile([1.0, 0.0, 0.0], (4, 1))), "decision 1 chose action 1"),
    ],
)
def test_logged_data_refuses_inconsistent_arrays(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoggedData(**fields)


def test_logged_data_copies_and_freezes_its_arrays() -> None:
    fields = _valid()
    data = LoggedData(**fields)
    fields["rewards"][0] = 99.0
    assert data.rewards[0] == 0.0
    with pytest.raises(ValueError):
        data.rewards[0] = 1.0
    assert (data.n, data.k) == (4, K)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda data: estimate(data, "magic"), "unknown estimator"),
        (lambda data: estimate(data, resamples=0), "resamples must be between 1"),
        (lambda data: estimate(data, resamples=MAX_RESAMPLES + 1), "resamples must be between"),
        (lambda data: estimate(data, confidence=1.0), "confidence"),
        (lambda data: estimate(data, confidence=0.0), "confidence"),
    ],
)
def test_estimate_refuses_bad_arguments(
    call: Callable[[LoggedData], Estimate], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(LoggedData(**_valid()))


def test_estimate_needs_two_decisions_and_accepts_the_limits() -> None:
    with pytest.raises(ValueError, match="at least 2 decisions"):
        estimate(LoggedData(**_valid(1)))
    smallest = estimate(LoggedData(**_valid(2)), resamples=1)
    assert smallest.n == 2 and smallest.ci[0] == smallest.ci[1]


@st.composite
def logged_bandits(draw: st.DrawFn) -> LoggedData:
    n = draw(st.integers(2, 12))
    k = draw(st.integers(1, 4))
    unit = st.floats(0.0, 1.0, allow_subnormal=False)
    logged_raw = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.01, 1.0)))
    logged = logged_raw / logged_raw.sum(axis=1, keepdims=True)
    target_raw = draw(hnp.arrays(np.float64, (n, k), elements=unit))
    empty = target_raw.sum(axis=1) == 0
    target_raw[empty] = logged[empty]
    target = target_raw / target_raw.sum(axis=1, keepdims=True)
    chosen = draw(hnp.arrays(np.intp, n, elements=st.integers(0, k - 1)))
    rewards = draw(hnp.arrays(np.float64, n, elements=st.floats(-10.0, 10.0)))
    model = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-10.0, 10.0)))
    return LoggedData(rewards, chosen, logged, target, model)


@settings(max_examples=60, deadline=None)
@given(data=logged_bandits(), seed=st.integers(0, 2**32 - 1))
def test_snips_stays_within_the_rewards_and_intervals_are_ordered(
    data: LoggedData, seed: int
) -> None:
    lowest, highest = float(data.rewards.min()), float(data.rewards.max())
    slack = 1e-12 * max(1.0, abs(lowest), abs(highest))
    for name in ESTIMATORS:
        if name == "snips" and not (data.target[np.arange(data.n), data.chosen] > 0).any():
            continue  # every weight 0: SNIPS is undefined (tested above)
        result = estimate(data, name, resamples=50, seed=seed)
        low, high = result.ci
        assert low <= high
        assert 0 <= result.ess <= data.n * (1 + 1e-12)
        if name == "snips":
            assert lowest - slack <= result.estimate <= highest + slack
            assert lowest - slack <= low and high <= highest + slack
