"""Off-policy estimators: the mean reward another policy would have reached on logged decisions.

Every decision is logged with the exact probability the logging policy (epsilon-greedy UCB) gave
each candidate, the action it drew and the reward (score) it observed. That is enough to answer
"what if we had dispatched with policy B?" without running B: reweight what was observed (IPS,
SNIPS), trust a reward model (DM), or both (DR, the default). This module is the numerical core,
pure numpy and no I/O; ``replay --counterfactual`` builds the arrays from the log.

Intervals are a nonparametric percentile bootstrap over decisions: the per-decision terms are
computed once, then resampled in chunks of at most ``MAX_BOOTSTRAP_INDICES`` indices, so memory
stays bounded whatever the number of resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sheratan.replay import ESTIMATORS

Floats = NDArray[np.float64]
Indices = NDArray[np.intp]

#: Every row of the logged and target policies is a distribution: it sums to 1 within this.
ROW_SUM_TOLERANCE = 1e-6
#: A bootstrap interval from a single decision is no interval at all.
MIN_DECISIONS = 2
#: Upper bound on bootstrap resamples, so a typo cannot ask for hours of work.
MAX_RESAMPLES = 100_000
#: Resampled indices held at once: 8 MB of int64 plus as much of gathered terms. Chunks of about
#: a million indices measured faster than larger ones (they stay closer to the cache).
MAX_BOOTSTRAP_INDICES = 1_000_000


class SupportError(ValueError):
    """The target policy puts probability on actions the logging policy never could have chosen.

    Importance weighting (IPS, SNIPS, DR) can only see actions the logging policy could have
    drawn: for the others there is no observed reward to reweight, and the estimate would
    silently drop their share. Epsilon-greedy gives every open candidate a positive
    probability, so this means gated or absent candidates, or epsilon 0. DM still answers,
    on the reward model's word alone.
    """

    def __init__(self, decisions: int, n: int, actions: tuple[int, ...]) -> None:
        self.decisions = decisions
        self.n = n
        self.actions = actions
        super().__init__(
            f"target policy puts probability on actions the logging policy could never choose "
            f"in {decisions} of {n} decisions (action indices {list(actions)}); IPS, SNIPS "
            f"and DR cannot estimate it (DM can, trusting the reward model alone)"
        )


@dataclass(frozen=True)
class LoggedData:
    """Logged decisions as aligned arrays: n decisions, k actions (columns).

    The arrays are copied, validated and made read-only on construction, so a LoggedData that
    exists is a consistent one and stays so.
    """

    #: (n,) observed reward of the chosen action.
    rewards: Floats
    #: (n,) index of the chosen action (a column of the (n, k) arrays).
    chosen: Indices
    #: (n, k) logging policy's probability of each action (0 = gated or not a candidate).
    logged: Floats
    #: (n, k) target policy's probability of each action.
    target: Floats
    #: (n, k) reward model's prediction r_hat(x_i, a).
    model: Floats

    def __post_init__(self) -> None:
        rewards = _frozen_floats(self.rewards, "rewards")
        if rewards.ndim != 1 or rewards.shape[0] < 1:
            raise ValueError(f"rewards must be a non-empty 1-D array, got shape {rewards.shape}")
        n = rewards.shape[0]
        chosen = np.asarray(self.chosen)
        if chosen.shape != (n,):
            raise ValueError(f"chosen must have shape ({n},) like rewards, got {chosen.shape}")
        if not np.issubdtype(chosen.dtype, np.integer):
            raise ValueError(f"chosen must hold integer action indices, got dtype {chosen.dtype}")
        chosen = chosen.astype(np.intp)
        chosen.flags.writeable = False
        logged = _frozen_floats(self.logged, "logged")
        if logged.ndim != 2 or logged.shape[0] != n or logged.shape[1] < 1:
            raise ValueError(f"logged must have shape ({n}, k) with k >= 1, got {logged.shape}")
        k = logged.shape[1]
        target = _frozen_floats(self.target, "target")
        model = _frozen_floats(self.model, "model")
        for name, array in (("target", target), ("model", model)):
            if array.shape != (n, k):
                raise ValueError(
                    f"{name} must have shape ({n}, {k}) like logged, got {array.shape}"
                )
        _check_finite(rewards, "rewards")
        _check_finite(model, "model")
        _check_policy(logged, "logged")
        _check_policy(target, "target")
        out_of_range = (chosen < 0) | (chosen >= k)
        if out_of_range.any():
            i = _first(out_of_range)
            raise ValueError(f"chosen[{i}] = {chosen[i]} is not an action index in [0, {k})")
        zero = logged[np.arange(n), chosen] <= 0
        if zero.any():
            i = _first(zero)
            raise ValueError(
                f"decision {i} chose action {chosen[i]}, to which the logging policy gave "
                f"probability 0: a log where a gated action was taken is corrupt"
            )
        for name, value in (
            ("rewards", rewards),
            ("chosen", chosen),
            ("logged", logged),
            ("target", target),
            ("model", model),
        ):
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        """Number of decisions."""
        return int(self.rewards.shape[0])

    @property
    def k(self) -> int:
        """Number of actions (columns)."""
        return int(self.logged.shape[1])


@dataclass(frozen=True)
class Estimate:
    """One estimator's answer: the point estimate, its bootstrap interval and how to read it."""

    estimator: str
    estimate: float
    #: Percentile bootstrap interval at ``confidence``.
    ci: tuple[float, float]
    n: int
    #: Effective sample size of the importance weights, (sum w)^2 / sum w^2: how many decisions'
    #: worth of evidence the reweighting keeps. Far below n means the target strays from the
    #: logging policy and rests on a few heavy weights; read the interval with care then.
    ess: float
    #: Mean observed reward, the logging policy's own value: the baseline to compare against.
    logged_mean: float
    confidence: float


def action_means(
    rewards: NDArray[np.floating] | NDArray[np.integer],
    chosen: NDArray[np.integer],
    k: int,
    *,
    prior_mean: float | None = None,
) -> Floats:
    """Per-action mean observed reward: the simplest reward model, the direct method's.

    It ignores context, so DM built on it is biased wherever rewards depend on more than the
    action; DR corrects that bias with the importance-weighted residuals. An action never
    observed gets ``prior_mean`` (default: the overall mean reward), not 0, which would read as
    a judgement. For the (n, k) model of ``LoggedData``: ``np.broadcast_to(means, (n, k))``.
    """
    rewards_f = np.asarray(rewards, dtype=np.float64)
    chosen_i = np.asarray(chosen)
    if rewards_f.ndim != 1 or chosen_i.shape != rewards_f.shape:
        raise ValueError(
            f"rewards and chosen must be 1-D of the same length, got {rewards_f.shape} "
            f"and {chosen_i.shape}"
        )
    if chosen_i.size and not np.issubdtype(chosen_i.dtype, np.integer):
        raise ValueError(f"chosen must hold integer action indices, got dtype {chosen_i.dtype}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    _check_finite(rewards_f, "rewards")
    if chosen_i.size and (chosen_i.min() < 0 or chosen_i.max() >= k):
        raise ValueError(f"chosen holds action indices outside [0, {k})")
    if prior_mean is None:
        if rewards_f.size == 0:
            raise ValueError("no rewards to take an overall mean from: pass prior_mean")
        prior_mean = float(rewards_f.mean())
    elif not np.isfinite(prior_mean):
        raise ValueError(f"prior_mean must be finite, got {prior_mean}")
    chosen_i = chosen_i.astype(np.intp)
    counts = np.bincount(chosen_i, minlength=k)
    totals = np.bincount(chosen_i, weights=rewards_f, minlength=k)
    means = np.full(k, prior_mean, dtype=np.float64)
    seen = counts > 0
    means[seen] = totals[seen] / counts[seen]
    return means


def check_support(data: LoggedData) -> None:
    """Raise SupportError where target[i, a] > 0 but logged[i, a] == 0."""
    unsupported = (data.target > 0) & (data.logged == 0)
    if unsupported.any():
        decisions = int(unsupported.any(axis=1).sum())
        actions = tuple(int(a) for a in np.flatnonzero(unsupported.any(axis=0)))
        raise SupportError(decisions, data.n, actions)


def importance_weights(data: LoggedData) -> Floats:
    """w_i = target[i, chosen_i] / logged[i, chosen_i]; the logged probability is never 0."""
    rows = np.arange(data.n)
    return data.target[rows, data.chosen] / data.logged[rows, data.chosen]


def effective_sample_size(weights: Floats) -> float:
    """(sum w)^2 / sum w^2: n when every weight is equal, 1 when one weight carries it all."""
    squares = float(np.square(weights).sum())
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0


def estimate(
    data: LoggedData,
    estimator: str = "dr",
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Estimate the target policy's mean reward on the logged decisions, with an interval.

    - ``dm``: mean_i sum_a target[i, a] model[i, a]. Low variance, and needs no support, but
      exactly as wrong as the reward model.
    - ``ips``: mean_i w_i r_i. Unbiased when the logged propensities are right (they are
      logged exactly), but the variance grows with the weights.
    - ``snips``: sum w_i r_i / sum w_i. Self-normalised: slightly biased, lower variance, and
      always within the range of the observed rewards.
    - ``dr`` (default): mean_i [sum_a target[i, a] model[i, a] + w_i (r_i - model[i, chosen_i])].
      Unbiased if either the propensities or the model is right, and with a fair model its
      variance is lower than IPS's, since only the model's residuals are reweighted.

    IPS, SNIPS and DR first check support (``SupportError``); DM does not need to. The interval
    is a percentile bootstrap over decisions, reproducible for a given ``seed``; for SNIPS each
    resample is a ratio of resampled sums, and a resample in which every drawn decision has
    weight 0 carries no evidence and is left out. The model is taken as given: DM's interval
    shows the spread over decisions only, not the model's own error (a context-free model gives
    an interval of width 0), one more reason to prefer DR.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be between 1 and {MAX_RESAMPLES}, got {resamples}")
    n = data.n
    if n < MIN_DECISIONS:
        raise ValueError(f"a bootstrap interval needs at least {MIN_DECISIONS} decisions, got {n}")
    if estimator != "dm":
        check_support(data)
    weights = importance_weights(data)
    rng = np.random.default_rng(seed)
    if estimator == "snips":
        total = float(weights.sum())
        if total <= 0:
            raise ValueError(
                "SNIPS is undefined: the target policy gives probability 0 to every logged "
                "choice (all importance weights are 0)"
            )
        weighted = weights * data.rewards
        point = float(weighted.sum()) / total
        numerators, denominators = _resampled_sums(np.stack([weighted, weights]), resamples, rng)
        informative = denominators > 0
        if not informative.any():
            raise ValueError(
                "SNIPS bootstrap: every resample drew only weight-0 decisions; use more resamples"
            )
        statistics = numerators[informative] / denominators[informative]
    else:
        terms = _terms(data, estimator, weights)
        point = float(terms.mean())
        statistics = _resampled_sums(terms[np.newaxis, :], resamples, rng)[0] / n
    alpha = 1 - confidence
    low, high = (float(q) for q in np.quantile(statistics, [alpha / 2, 1 - alpha / 2]))
    return Estimate(
        estimator=estimator,
        estimate=point,
        ci=(low, high),
        n=n,
        ess=effective_sample_size(weights),
        logged_mean=float(data.rewards.mean()),
        confidence=confidence,
    )


def _terms(data: LoggedData, estimator: str, weights: Floats) -> Floats:
    """Per-decision terms whose mean is the estimate (every estimator but SNIPS)."""
    if estimator == "ips":
        return weights * data.rewards
    direct: Floats = (data.target * data.model).sum(axis=1)
    if estimator == "dm":
        return direct
    predicted = data.model[np.arange(data.n), data.chosen]
    return direct + weights * (data.rewards - predicted)


def _resampled_sums(columns: Floats, resamples: int, rng: np.random.Generator) -> Floats:
    """(m, resamples) sums of each of m term columns over bootstrap resamples of the n decisions.

    Every column is summed over the same resampled indices (SNIPS's numerator and denominator
    must move together). Indices are drawn ``rows`` resamples at a time, so at most
    ``MAX_BOOTSTRAP_INDICES`` (or one resample, if n is larger) are held at once.
    """
    n = columns.shape[1]
    rows = max(1, MAX_BOOTSTRAP_INDICES // n)
    sums = np.empty((columns.shape[0], resamples), dtype=np.float64)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        indices = rng.integers(0, n, size=(stop - start, n))
        for j, column in enumerate(columns):
            sums[j, start:stop] = np.take(column, indices).sum(axis=1)
    return sums


def _frozen_floats(value: object, name: str) -> Floats:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers: {error}") from None
    array.flags.writeable = False
    return array


def _first(mask: NDArray[np.bool_]) -> int:
    """Index of the first True entry (for 2-D masks: the first row holding one)."""
    rows = mask.any(axis=1) if mask.ndim == 2 else mask
    return int(np.flatnonzero(rows)[0])


def _check_finite(array: Floats, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} holds a non-finite value (first at row {_first(bad)})")


def _check_policy(probabilities: Floats, name: str) -> None:
    outside = ~((probabilities >= 0) & (probabilities <= 1))  # NaN lands here too
    if outside.any():
        raise ValueError(
            f"{name} probabilities must lie in [0, 1] (first violation at row {_first(outside)})"
        )
    sums = probabilities.sum(axis=1)
    off = np.abs(sums - 1) > ROW_SUM_TOLERANCE
    if off.any():
        i = _first(off)
        raise ValueError(
            f"{name} row {i} sums to {sums[i]:.9g}, not 1 (tolerance {ROW_SUM_TOLERANCE:g}): "
            f"each row is a distribution over the k actions"
        )
