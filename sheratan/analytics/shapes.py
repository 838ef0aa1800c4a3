"""The SQL shapes of the analytics tables: how ledger lines become typed rows.

Three base tables are cut from the ledger's lines, with the same SQL whether the lines come
from a sealed segment (materialized once to Parquet, see ``cache``) or from the live tail
(read into a temporary table per session):

- ``events``: every line (pos, ts, stream, ver, topic, data as JSON);
- ``made``: one row per ``decision.made``, its ``data`` parsed once with ``from_json`` into a
  typed struct (candidates as a list of structs, so SQL can ``unnest`` them);
- ``scored``: one row per ``decision.scored``, likewise.

The user-facing views (``VIEWS``) are defined over those three, so every query reads typed
columns instead of re-parsing JSON per field.
"""

from __future__ import annotations

import json
from typing import Any

from sheratan.analytics.reader import LINE_COLUMNS

_GATE = {"gate": "VARCHAR", "passed": "BOOLEAN", "reason": "VARCHAR"}
_CANDIDATE = {
    "action_id": "VARCHAR",
    "type": "VARCHAR",
    "key": "VARCHAR",
    "params": "JSON",
    "gates": [_GATE],
    "gated": "BOOLEAN",
    "mean": "DOUBLE",
    "visits": "BIGINT",
    "ucb_bonus": "DOUBLE",
    "risk_penalty": "DOUBLE",
    "select_score": "DOUBLE",
    "probability": "DOUBLE",
}
_MADE = {
    "trace_id": "VARCHAR",
    "parent_node_id": "VARCHAR",
    "intent": "VARCHAR",
    "job_id": "VARCHAR",
    "depth": "INTEGER",
    "build_id": "VARCHAR",
    "context_refs": ["VARCHAR"],
    "constraints": "JSON",
    "candidates": [_CANDIDATE],
    "chosen": "INTEGER",
    "mode": "VARCHAR",
    "reason": "VARCHAR",
    "rng": {
        "policy": "VARCHAR",
        "seed": "BIGINT",
        "draw": "DOUBLE",
        "epsilon": "DOUBLE",
        "c": "DOUBLE",
    },
    "input_hash": "VARCHAR",
    "output_hash": "VARCHAR",
    "policy_id": "VARCHAR",
}
_PERCENTILES = {"p50": "DOUBLE", "p95": "DOUBLE"}
_SCORED = {
    "status": "VARCHAR",
    "metrics": {
        "latency_ms": "DOUBLE",
        "cost": "DOUBLE",
        "retries": "BIGINT",
        "risk": "DOUBLE",
        "quality": "DOUBLE",
    },
    "score": "DOUBLE",
    "breakdown": {
        "S": "DOUBLE",
        "Q": "DOUBLE",
        "R": "DOUBLE",
        "L_norm": "DOUBLE",
        "C_norm": "DOUBLE",
        "K": "DOUBLE",
        "weights": {w: "DOUBLE" for w in ("wS", "wQ", "wR", "wL", "wC", "wK")},
        "baseline": {
            "latency_ms": _PERCENTILES,
            "cost": _PERCENTILES,
            "source": "VARCHAR",
            "observations": "BIGINT",
        },
    },
    "error": {"code": "VARCHAR", "message": "VARCHAR"},
    "artifacts": ["VARCHAR"],
}


def _structure(shape: dict[str, Any]) -> str:
    return "'" + json.dumps(shape, separators=(",", ":")) + "'"


#: SQL turning a relation of ledger lines (``{lines}``) into each base table's rows.
BASE_TABLES: dict[str, str] = {
    "events": "SELECT pos, ts, stream, ver, topic, {data} AS data FROM {lines}",
    "made": f"""
        SELECT pos, ts, stream AS node_id, d.trace_id, d.parent_node_id, d.intent, d.job_id,
               d.depth, d.build_id, d.context_refs, d.constraints, d.candidates, d.chosen,
               d.candidates[d.chosen + 1].key AS chosen_key,
               d.candidates[d.chosen + 1].type AS action_type,
               d.candidates[d.chosen + 1].probability AS probability,
               d.candidates[d.chosen + 1].select_score AS select_score,
               d.mode, d.reason, d.rng.policy AS policy, d.rng.seed AS seed,
               d.rng.draw AS draw, d.rng.epsilon AS epsilon, d.rng.c AS c,
               d.input_hash, d.output_hash, d.policy_id
        FROM (SELECT pos, ts, stream, from_json(data, {_structure(_MADE)}) AS d
              FROM {{lines}} WHERE topic = 'decision.made')
    """,
    # A scored row carries its decision.made's columns when the made is among the same lines
    # ({made}: that made table; a segment's, a chunk's or the tail's), so ``why stats`` joins
    # only the few others (``STATS_ROWS``).
    "scored": f"""
        SELECT s.*, m.pos AS made_pos, m.ts AS made_ts, m.intent AS made_intent,
               m.chosen_key AS made_chosen_key
        FROM (
            SELECT pos, ts, stream AS node_id, d.status, d.score,
                   d.metrics.latency_ms AS latency_ms, d.metrics.cost AS cost,
                   d.metrics.retries AS retries, d.metrics.risk AS risk,
                   d.metrics.quality AS quality, d.error.code AS error_code,
                   d.error.message AS error_message, d.breakdown, d.artifacts
            FROM (SELECT pos, ts, stream, from_json(data, {_structure(_SCORED)}) AS d
                  FROM {{lines}} WHERE topic = 'decision.scored')
        ) s
        LEFT JOIN (SELECT node_id, pos, ts, intent, chosen_key FROM {{made}}) m USING (node_id)
    """,
    # The few self-heal events apart, so ``self_heals`` (in every ``why stats``) does not read
    # the data of every event.
    "heals": """
        SELECT pos, ts, topic, data FROM {lines}
        WHERE topic IN ('self_heal.taken', 'self_heal.resolved')
    """,
}

#: The scored decisions (with their decision.made's intent, action and time) that ``why
#: stats`` counts: the rows of ``decisions`` with a status, without joining on the text node
#: id but for scored rows whose made was cached apart (a decision scored in a later segment).
STATS_ROWS = """
    SELECT made_ts AS ts, made_intent AS intent, made_chosen_key AS chosen_key, status, score,
           latency_ms, cost, error_code
    FROM base_scored WHERE made_pos IS NOT NULL
    UNION ALL
    SELECT m.ts, m.intent, m.chosen_key, s.status, s.score, s.latency_ms, s.cost, s.error_code
    FROM base_scored s JOIN base_made m USING (node_id) WHERE s.made_pos IS NULL
"""


def empty_lines() -> str:
    """A typed relation of no lines: the base tables' shape for an empty log or tail."""
    columns = ", ".join(f"NULL::{LINE_COLUMNS[k]} AS {k}" for k in ("pos", "ts", "stream"))
    rest = ", ".join(f"NULL::{LINE_COLUMNS[k]} AS {k}" for k in ("ver", "topic", "data"))
    return f"(SELECT {columns}, {rest} WHERE false)"


#: Job status after each job event (the jobs fold's transitions, as SQL sees them).
_JOB_STATUS = {
    "job.created": "created",
    "job.queued": "queued",
    "job.dispatched": "dispatched",
    "job.started": "running",
    "job.completed": "completed",
    "job.failed": "failed",
    "job.retry_scheduled": "retry_scheduled",
    "job.timed_out": "timed_out",
    "job.cancelled": "cancelled",
    "job.quarantined": "quarantined",
    "job.requeued": "queued",
    "job.resumed": "queued",
}
#: Only these move a job's status (a late result or a lease extension leaves it as it was).
_STATUS_TOPICS = ", ".join(f"'{topic}'" for topic in _JOB_STATUS)
_STATUS_CASE = (
    "CASE last_topic "
    + " ".join(f"WHEN '{topic}' THEN '{status}'" for topic, status in _JOB_STATUS.items())
    + " END"
)

#: The views users query (``sql --schema`` lists them), over the base tables.
VIEWS: dict[str, str] = {
    "events": "SELECT * FROM base_events",
    "decisions": """
        SELECT m.pos, m.ts, m.node_id, m.trace_id, m.parent_node_id, m.intent, m.job_id,
               m.depth, m.candidates, m.chosen, m.chosen_key, m.action_type, m.probability,
               m.select_score, m.reason, m.policy, m.epsilon, m.c, m.draw, m.seed,
               m.input_hash, m.output_hash, m.policy_id,
               s.status, s.score, s.latency_ms, s.cost, s.error_code, s.error_message,
               s.breakdown, s.artifacts, s.pos AS scored_pos
        FROM base_made m LEFT JOIN base_scored s USING (node_id)
    """,
    "scores": """
        SELECT s.node_id, s.pos, s.ts, m.intent, m.chosen_key AS action_key,
               m.action_type, s.status, s.score, s.breakdown.S AS S, s.breakdown.Q AS Q,
               s.breakdown.R AS R, s.breakdown.L_norm AS L_norm, s.breakdown.C_norm AS C_norm,
               s.breakdown.K AS K, s.breakdown.baseline.source AS baseline_source,
               s.latency_ms, s.cost, s.error_code
        FROM base_scored s JOIN base_made m USING (node_id)
    """,
    "jobs": f"""
        SELECT job_id, kind, {_STATUS_CASE} AS status, priority, worker, attempts,
               retry_count, error_code, created_at, updated_at, last_pos, namespace
        FROM (
            SELECT stream AS job_id,
                   arg_max(topic, pos) FILTER (topic IN ({_STATUS_TOPICS})) AS last_topic,
                   any_value(data->>'kind') FILTER (topic = 'job.created') AS kind,
                   any_value(data->>'priority') FILTER (topic = 'job.created') AS priority,
                   coalesce(any_value(data->>'namespace') FILTER (topic = 'job.created'), '')
                       AS namespace,
                   arg_max(data->>'worker', pos) FILTER (topic = 'job.dispatched') AS worker,
                   count(*) FILTER (topic = 'job.dispatched') AS attempts,
                   coalesce(max((data->>'retry_count')::BIGINT)
                            FILTER (topic = 'job.retry_scheduled'), 0) AS retry_count,
                   arg_max(data->>'code', pos) FILTER (topic = 'job.failed') AS error_code,
                   min(ts) AS created_at, max(ts) AS updated_at, max(pos) AS last_pos
            FROM base_events WHERE topic LIKE 'job.%'
            GROUP BY stream
        )
    """,
    "charges": """
        SELECT stream AS charge_id,
               any_value(data->>'account_id') AS account_id,
               any_value(data->>'job_id') AS job_id,
               any_value((data->>'attempt')::BIGINT) AS attempt,
               any_value(data->>'decision_id') FILTER (topic = 'account.held') AS decision_id,
               any_value(data->>'worker') FILTER (topic = 'account.held') AS worker,
               CASE arg_max(topic, pos) WHEN 'account.held' THEN 'held'
                    WHEN 'account.settled' THEN 'settled' ELSE 'released' END AS status,
               any_value((data->>'amount_micros')::BIGINT) FILTER (topic = 'account.held')
                   AS held_micros,
               coalesce(any_value((data->>'cost_micros')::BIGINT)
                        FILTER (topic = 'account.settled'), 0) AS cost_micros,
               coalesce(any_value((data->>'released_micros')::BIGINT)
                        FILTER (topic = 'account.settled'),
                        any_value((data->>'amount_micros')::BIGINT)
                        FILTER (topic = 'account.released')) AS released_micros,
               any_value(data->>'why') FILTER (topic = 'account.released') AS why,
               min(pos) AS held_pos,
               max(pos) FILTER (topic <> 'account.held') AS closed_pos,
               count(*) FILTER (topic <> 'account.held') AS closings
        FROM base_events
        WHERE topic IN ('account.held', 'account.settled', 'account.released')
        GROUP BY stream
    """,
    "self_heals": """
        WITH taken AS (
            SELECT pos, ts, data FROM base_heals WHERE topic = 'self_heal.taken'
        ), resolved AS (
            SELECT pos, ts, data FROM base_heals WHERE topic = 'self_heal.resolved'
        )
        SELECT t.data->>'heal_id' AS heal_id, t.pos, t.ts, t.data->>'namespace' AS namespace,
               t.data->>'trigger' AS trigger, t.data->>'action' AS action,
               (t.data->>'confidence')::DOUBLE AS confidence,
               t.data->>'decision_id' AS decision_id, t.data->>'job_id' AS job_id,
               t.data->>'detail' AS detail, coalesce(r.data->>'outcome', 'pending') AS outcome,
               r.data->>'detail' AS outcome_detail, r.pos AS resolved_pos
        FROM taken t LEFT JOIN resolved r ON r.data->>'heal_id' = t.data->>'heal_id'
    """,
    "priors_history": """
        WITH rows AS (
            SELECT pos, ts, topic, data->>'intent' AS intent, data->>'action_key' AS action_key,
                   (data->>'score')::DOUBLE AS score, data->>'decision_id' AS decision_id,
                   (data->>'visits')::BIGINT AS seed_visits,
                   (data->>'mean_score')::DOUBLE AS seed_mean,
                   sum((topic = 'priors.seeded')::INT) OVER key_order AS seeding
            FROM base_events WHERE topic IN ('priors.seeded', 'priors.updated')
            WINDOW key_order AS (PARTITION BY data->>'intent', data->>'action_key' ORDER BY pos)
        ), seeded AS (
            SELECT *, coalesce(first_value(seed_visits) OVER seed_order, 0) AS base_visits,
                   coalesce(first_value(seed_mean) OVER seed_order, 0.0) AS base_mean,
                   count(score) OVER seed_order AS updates,
                   coalesce(sum(score) OVER seed_order, 0.0) AS score_sum
            FROM rows
            WINDOW seed_order AS (PARTITION BY intent, action_key, seeding ORDER BY pos)
        )
        SELECT pos, ts, topic, intent, action_key, score, decision_id,
               base_visits + updates AS visits,
               CASE WHEN base_visits + updates = 0 THEN 0.0
                    ELSE (base_mean * base_visits + score_sum) / (base_visits + updates)
               END AS mean_score
        FROM seeded
    """,
}
