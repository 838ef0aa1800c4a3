"""Sheratan Score v1 and the baseline it normalizes against.

    score = wS*S + wQ*Q + wR*R - wL*norm(L) - wC*norm(C) - wK*K

S, Q, R, K are clamped to [0, 1]; latency and cost are normalized linearly between the
intent's p50 (-> 0) and p95 (-> 1). The baseline is the intent's rolling window across all its
actions once it holds ``min_observations``, the policy's defaults before that, and always the
defaults in ``fixed`` mode (so a score does not depend on which policy ran).
"""

from __future__ import annotations

from events.decisions import BaselineUsed, Breakdown, Percentiles, Weights
from projections.baselines import BaselinesView
from sheratan.decide.policy import ScoringPolicy


def clamp01(x: float) -> float:
    return 0.0 if x <= 0.0 else (1.0 if x >= 1.0 else x)


def normalize(value: float, p50: float, p95: float) -> float:
    """0 at or below p50, 1 at or above p95, linear in between (the seed's normalize_positive)."""
    low = max(1e-9, p50)
    high = max(low + 1e-9, p95)
    return clamp01((max(0.0, value) - low) / (high - low))


def baseline_for(policy: ScoringPolicy, baselines: BaselinesView, intent: str) -> BaselineUsed:
    """The baseline a score of ``intent`` is normalized against right now."""
    defaults = policy.baselines
    window = baselines.intent(intent)
    observed = len(window) if window is not None else 0
    if defaults.mode == "fixed":
        return BaselineUsed(
            latency_ms=defaults.latency_ms,
            cost=defaults.cost,
            source="fixed",
            observations=observed,
        )
    if window is None or observed < defaults.min_observations:
        return BaselineUsed(
            latency_ms=defaults.latency_ms,
            cost=defaults.cost,
            source="default",
            observations=observed,
        )
    lat50, lat95, cost50, cost95 = window.percentiles()
    return BaselineUsed(
        latency_ms=Percentiles(lat50, lat95),
        cost=Percentiles(cost50, cost95),
        source="observed",
        observations=observed,
    )


def score_v1(
    policy: ScoringPolicy,
    baseline: BaselineUsed,
    *,
    success: float,
    quality: float,
    reliability: float,
    latency_ms: float,
    cost: float,
    risk: float,
) -> tuple[float, Breakdown]:
    """The score and its full breakdown (terms, weights, baseline)."""
    w = policy.weights
    s, q, r, k = clamp01(success), clamp01(quality), clamp01(reliability), clamp01(risk)
    l_norm = normalize(latency_ms, baseline.latency_ms.p50, baseline.latency_ms.p95)
    c_norm = normalize(cost, baseline.cost.p50, baseline.cost.p95)
    breakdown = Breakdown(
        S=s, Q=q, R=r, L_norm=l_norm, C_norm=c_norm, K=k, weights=w, baseline=baseline
    )
    return weighted_score(w, breakdown), breakdown


def score_outcome(
    policy: ScoringPolicy,
    baseline: BaselineUsed,
    *,
    ok: bool,
    quality: float,
    retries: int,
    latency_ms: float,
    cost: float,
    risk: float,
) -> tuple[float, Breakdown]:
    """Score v1 of one attempt: S is whether it succeeded, R = 1 / (1 + retries) when it did.

    The live loop scores an outcome with it and replay re-scores a recorded one, so the two
    cannot disagree on how an outcome maps to the score's terms.
    """
    return score_v1(
        policy,
        baseline,
        success=1.0 if ok else 0.0,
        quality=quality,
        reliability=1.0 / (1 + retries) if ok else 0.0,
        latency_ms=latency_ms,
        cost=cost,
        risk=risk,
    )


def weighted_score(w: Weights, b: Breakdown) -> float:
    """The score of a breakdown's terms under weights ``w`` (regression re-scores with it)."""
    return w.wS * b.S + w.wQ * b.Q + w.wR * b.R - w.wL * b.L_norm - w.wC * b.C_norm - w.wK * b.K
