"""Counterfactual replay: what mean score would another policy have reached on this history?

The logged decisions (one intent, ``dispatch_job`` by default) are read from the analytics
views with their candidates' exact logged probabilities; the target policy's probabilities
are computed per decision by the same ``selection.probabilities`` the live engine uses, on
the recorded select scores (re-weighted for another ``c``); the reward model for DM and DR is
the mean observed score per action. ``estimators.estimate`` does the rest. Each estimate
carries its caveats (``caveats``): the decisions where the target's action was gated, and
the quarantines of the logged policy that shaped the states it averages over.

``--at NODE --action ACTION`` asks about one decision. One logged outcome says nothing about
an action not taken, so the answer is model-based and labelled so: the action's mean
observed score over the intent's decisions, with the evidence it rests on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from sheratan.analytics.session import Analytics
from sheratan.decide.selection import REVERSIBLE, PolicyParseError, SelectionPolicy, probabilities
from sheratan.replay.caveats import TargetGated, logged_quarantines, preferred
from sheratan.replay.estimators import LoggedData, SupportError, action_means, estimate

DEFAULT_INTENT = "dispatch_job"
_UCB = re.compile(r"^ucb(?::(.*))?$")


class CounterfactualError(ValueError):
    """Nothing to estimate on (no scored decisions), or a bad question."""


def parse_target(text: str) -> SelectionPolicy:
    """``always:<worker>``, ``random`` or ``ucb:c=<c>,epsilon=<e>`` (either part optional)."""
    match = _UCB.match(text)
    if match is None:
        return SelectionPolicy.parse(text)
    options: dict[str, float] = {}
    for part in filter(None, (match.group(1) or "").split(",")):
        name, _, value = part.partition("=")
        if name not in ("c", "epsilon"):
            raise PolicyParseError(f"ucb takes c=<c> and epsilon=<e>, not {part!r}")
        try:
            options[name] = float(value)
        except ValueError:
            raise PolicyParseError(f"{name} must be a number, not {value!r}") from None
    return SelectionPolicy("ucb", options.get("c", 0.5), options.get("epsilon", 0.1))


@dataclass(frozen=True)
class _Candidates:
    """The logged decisions, flattened to one row per candidate (numpy columns)."""

    decision: np.ndarray
    pos: np.ndarray
    ts: np.ndarray
    key: np.ndarray
    type: np.ndarray
    failed_gates: np.ndarray
    worker: np.ndarray
    probability: np.ndarray
    select: np.ndarray
    mean: np.ndarray
    bonus: np.ndarray
    risk: np.ndarray
    c: np.ndarray
    chosen: np.ndarray
    score: np.ndarray


def candidate_rows(
    con: duckdb.DuckDBPyConnection, source: str, intent: str, last: int | None
) -> dict[str, Any]:
    """The scored decisions of ``intent`` in ``source`` (the ``last`` N, or all) as numpy
    columns, one row per candidate.

    The cut is found first with a narrow query (positions only), so the wide candidates
    column is read for the chosen decisions alone.
    """
    wanted = "intent = ? AND status IS NOT NULL AND chosen >= 0"
    cut = 0
    if last is not None:
        found = con.execute(
            f"SELECT pos FROM {source} WHERE {wanted} ORDER BY pos DESC LIMIT 1 OFFSET ?",
            [intent, max(0, last - 1)],
        ).fetchone()
        cut = 0 if found is None else int(found[0])
    return con.execute(  # type: ignore[no-any-return]
        f"""WITH cf AS (
               SELECT row_number() OVER (ORDER BY pos) - 1 AS decision, pos, ts, candidates,
                      chosen, c AS logged_c, score
               FROM {source} WHERE {wanted} AND pos >= ?)
           SELECT decision, pos, epoch_us(ts) AS ts, i - 1 AS position, cand.key AS key,
                  cand.type AS type,
                  list_transform(list_filter(cand.gates, lambda g: NOT g.passed), lambda g: g.gate)
                      AS failed_gates,
                  coalesce(cand.params->>'worker', '') AS worker,
                  cand.probability AS probability,
                  coalesce(cand.select_score, 'NaN'::DOUBLE) AS select, cand.mean AS mean,
                  cand.ucb_bonus AS bonus, cand.risk_penalty AS risk, logged_c,
                  (i - 1 = chosen) AS chosen, score
           FROM (SELECT decision, pos, ts, chosen, logged_c, score,
                        unnest(candidates) AS cand, generate_subscripts(candidates, 1) AS i
                 FROM cf)
           ORDER BY decision, position""",
        [intent, cut],
    ).fetchnumpy()


def _load(analytics: Analytics, intent: str, last: int | None) -> _Candidates:
    columns = candidate_rows(analytics.con, "decisions", intent, last)
    return _Candidates(
        decision=np.asarray(columns["decision"], dtype=np.int64),
        pos=np.asarray(columns["pos"], dtype=np.int64),
        ts=np.asarray(columns["ts"], dtype=np.int64),
        key=np.asarray(columns["key"], dtype=object),
        type=np.asarray(columns["type"], dtype=object),
        failed_gates=np.asarray(columns["failed_gates"], dtype=object),
        worker=np.asarray(columns["worker"], dtype=object),
        probability=np.asarray(columns["probability"], dtype=float),
        select=np.asarray(columns["select"], dtype=float),
        mean=np.asarray(columns["mean"], dtype=float),
        bonus=np.asarray(columns["bonus"], dtype=float),
        risk=np.asarray(columns["risk"], dtype=float),
        c=np.asarray(columns["logged_c"], dtype=float),
        chosen=np.asarray(columns["chosen"], dtype=bool),
        score=np.asarray(columns["score"], dtype=float),
    )


def logged_data(
    analytics: Analytics, target: SelectionPolicy, intent: str, last: int | None = None
) -> tuple[LoggedData, list[str], dict[str, Any]]:
    """The logged decisions of ``intent`` (the ``last`` N, or all), the target's
    probabilities on each, the action keys the columns stand for, and the estimate's
    caveats: where the target's action was gated, and the logged policy's quarantines."""
    rows = _load(analytics, intent, last)
    if rows.decision.size == 0:
        raise CounterfactualError(f"no scored {intent} decisions in the log")
    n = int(rows.decision.max()) + 1
    keys, key_index = np.unique(rows.key, return_inverse=True)
    k = len(keys)
    logged = np.zeros((n, k))
    target_p = np.zeros((n, k))
    logged[rows.decision, key_index] = rows.probability
    chosen = np.zeros(n, dtype=np.int64)
    chosen[rows.decision[rows.chosen]] = key_index[rows.chosen]
    rewards = np.zeros(n)
    rewards[rows.decision[rows.chosen]] = rows.score[rows.chosen]
    unconstrained = _target_select(rows, target)
    select = np.where(np.isnan(rows.select), np.nan, unconstrained)
    explorable = np.isin(rows.type, list(REVERSIBLE))
    gated = TargetGated()
    states = []
    bounds = np.searchsorted(rows.decision, np.arange(n + 1))
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        scores = [None if math.isnan(s) else float(s) for s in select[lo:hi]]
        workers = list(rows.worker[lo:hi])
        flags = list(explorable[lo:hi])
        target_p[i, key_index[lo:hi]] = probabilities(target, scores, workers, flags)
        failed = [list(f) for f in rows.failed_gates[lo:hi]]
        gated.note(failed, preferred(target, list(unconstrained[lo:hi]), workers, flags))
        states.append((int(rows.ts[lo]), list(zip(workers, failed, strict=True))))
    model = np.broadcast_to(action_means(rewards, chosen, k), (n, k))
    data = LoggedData(rewards=rewards, chosen=chosen, logged=logged, target=target_p, model=model)
    caveats = {
        "target_gated": gated.summary(n),
        "logged_quarantines": logged_quarantines(
            analytics.con, int(rows.ts[0]), int(rows.pos[-1]), states
        ),
    }
    return data, [str(key) for key in keys], caveats


def _target_select(rows: _Candidates, target: SelectionPolicy) -> np.ndarray:
    """Select scores under the target's ``c`` (the recorded bonus scaled by c'/c), for every
    candidate, gated or not (the caller blanks the gated ones)."""
    if target.name != "ucb":
        return np.where(np.isnan(rows.select), rows.mean - rows.risk, rows.select)
    scale = np.divide(target.c, rows.c, out=np.ones_like(rows.c), where=rows.c > 0)
    return rows.mean + scale * rows.bonus - rows.risk


def counterfactual(
    analytics: Analytics,
    policy: str,
    *,
    estimator: str = "dr",
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    intent: str = DEFAULT_INTENT,
    last: int | None = None,
) -> dict[str, Any]:
    """The off-policy estimate of ``policy``'s mean score, with its interval, over the
    ``last`` N scored decisions of ``intent`` (default: all)."""
    target = parse_target(policy)
    data, keys, caveats = logged_data(analytics, target, intent, last)
    try:
        result = estimate(data, estimator, confidence=confidence, resamples=resamples, seed=seed)
    except SupportError as error:
        never = ", ".join(keys[a] for a in error.actions)
        msg = (
            f"{estimator} cannot estimate {policy}: in {error.decisions} of {error.n} decisions "
            f"it would choose an action the logged policy gave probability 0 ({never}); use "
            "--estimator dm (model-based), or logs with exploration (epsilon > 0)"
        )
        raise CounterfactualError(msg) from None
    except ValueError as error:
        raise CounterfactualError(str(error)) from None
    return {
        "mode": "counterfactual",
        "policy": policy,
        "intent": intent,
        "estimator": result.estimator,
        "estimate": result.estimate,
        "ci": [result.ci[0], result.ci[1]],
        "confidence": result.confidence,
        "n": result.n,
        "ess": result.ess,
        "logged_mean": result.logged_mean,
        "resamples": resamples,
        "last": last,
        **caveats,
    }


def at_node(analytics: Analytics, node_id: str, action: str) -> dict[str, Any]:
    """A model-based estimate of one decision's outcome had ``action`` been chosen."""
    nodes = analytics.rows(
        "SELECT intent, candidates, chosen, chosen_key, score, status, pos FROM decisions "
        "WHERE node_id = ?",
        [node_id],
    )
    if not nodes:
        raise CounterfactualError(f"no decision node {node_id}")
    node = nodes[0]
    candidate = next(
        (
            c
            for c in node["candidates"]
            if action in (c["key"], c["action_id"], c["key"].split(":", 1)[-1])
        ),
        None,
    )
    if candidate is None:
        keys = ", ".join(c["key"] for c in node["candidates"])
        raise CounterfactualError(f"{action!r} is not a candidate of {node_id} ({keys})")
    evidence = analytics.rows(
        """SELECT count(*) AS n, avg(score) AS mean, stddev_samp(score) AS sd,
                  min(ts) AS first, max(ts) AS last
           FROM decisions WHERE intent = ? AND chosen_key = ? AND status IS NOT NULL""",
        [node["intent"], candidate["key"]],
    )[0]
    n, mean, sd = evidence["n"], evidence["mean"], evidence["sd"]
    half = 1.96 * sd / math.sqrt(n) if n and n > 1 and sd is not None else None
    return {
        "mode": "counterfactual_at",
        "node_id": node_id,
        "intent": node["intent"],
        "action": candidate["key"],
        "estimate_kind": (
            "model-based: the mean observed score of this action over the intent's scored "
            "decisions; not an observation of this node"
        ),
        "estimate": mean,
        "ci": None if half is None else [mean - half, mean + half],
        "evidence": {
            "observations": n,
            "score_sd": sd,
            "prior_at_node": {"mean": candidate["mean"], "visits": candidate["visits"]},
            "gated": candidate["gated"],
            "failed_gates": [g["gate"] for g in candidate["gates"] if not g["passed"]],
            "logged_probability": candidate["probability"],
        },
        "actual": {
            "action": node["chosen_key"],
            "status": node["status"],
            "score": node["score"],
        },
    }
