"""Why answers: a decision node in the seed's WHY shape, a trace, a job, and statistics.

Every answer is read from the analytics views (never from the live engine: the WHY path
imports reader logic only and cannot change priors, scores or baselines) and passes through
``redact`` before it leaves, so secrets in job payloads or worker results never show.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from sheratan.analytics import PH_DELTA, PH_LAMBDA
from sheratan.analytics.drift import drift_report
from sheratan.analytics.session import Analytics
from sheratan.analytics.shapes import STATS_ROWS
from sheratan.decide.trace import iso_utc
from sheratan.reveal import shown

#: The columns every node answer needs, from the ``decisions`` view.
NODE_COLUMNS = """
    pos, ts, node_id, trace_id, parent_node_id, intent, job_id, depth, candidates, chosen,
    reason, policy, epsilon, c, draw, seed, input_hash, output_hash, status, score, latency_ms,
    cost, error_code, error_message, breakdown, artifacts
"""
#: What ``why stats`` measures over a set of scored decisions (SQL select items).
STATS_MEASURES = """
    count(*) AS count,
    avg((status IN ('success', 'recovered'))::INT) AS success_rate,
    avg(score) AS mean_score,
    quantile_cont(latency_ms, 0.5) AS latency_p50_ms,
    quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
    quantile_cont(cost, 0.5) AS cost_p50,
    quantile_cont(cost, 0.95) AS cost_p95
"""
_WINDOW = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TOP_ACTIONS = 5


class WhyNotFoundError(LookupError):
    """No decision matches (an unknown trace or job, or an empty log)."""


def parse_window(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` as a timedelta; anything else is a clear error."""
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        msg = f"window must be a positive number with s, m, h, d or w (like 7d), not {text!r}"
        raise ValueError(msg)
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def node_answer(row: dict[str, Any]) -> dict[str, Any]:
    """One decision node in the WHY shape: chosen, alternatives, result, breakdown."""
    candidates = row["candidates"] or []
    chosen_index = row["chosen"]
    described = [_candidate(c) for c in candidates]
    chosen = described[chosen_index] if 0 <= chosen_index < len(described) else None
    alternatives = [c for i, c in enumerate(described) if i != chosen_index]
    error = None
    if row["error_code"] is not None:
        error = {"code": row["error_code"], "message": row["error_message"]}
    scored = row["status"] is not None
    return {
        "ok": True,
        "trace_id": row["trace_id"],
        "node_id": row["node_id"],
        "parent_node_id": row["parent_node_id"],
        "job_id": row["job_id"],
        "intent": row["intent"],
        "depth": row["depth"],
        "timestamp": _iso(row["ts"]),
        "position": row["pos"],
        "chosen": chosen or {"type": "ABORT", "action_id": f"{row['node_id']}:abort"},
        "alternatives": alternatives,
        "reason": row["reason"],
        "rng": {
            "policy": row["policy"],
            "epsilon": row["epsilon"],
            "c": row["c"],
            "draw": row["draw"],
            "seed": row["seed"],
        },
        "result": {
            "status": row["status"] if scored else "pending",
            "score": row["score"],
            "latency_ms": row["latency_ms"],
            "cost": row["cost"],
            "error": error,
        },
        "breakdown": row["breakdown"],
        "artifacts": list(row["artifacts"] or []),
        "determinism": {"input_hash": row["input_hash"], "output_hash": row["output_hash"]},
    }


def _candidate(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "action_id": c["action_id"],
        "type": c["type"],
        "action_key": c["key"],
        "params": msgspec.json.decode(c["params"]) if c["params"] else {},
        "select_score": c["select_score"],
        "probability": c["probability"],
        "risk_gate": not c["gated"],
        "mean": c["mean"],
        "visits": c["visits"],
        "ucb_bonus": c["ucb_bonus"],
        "risk_penalty": c["risk_penalty"],
        "gates": [
            {"gate": g["gate"], "passed": g["passed"], "reason": g["reason"]}
            for g in c["gates"] or []
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


class Why:
    """The why questions over one analytics session; every answer redacted.

    Over a raw session (``--reveal``, recorded by the caller) answers are shown as they are."""

    def __init__(self, analytics: Analytics, workspace: Path | None = None) -> None:
        self.an = analytics
        self.workspace = workspace or analytics.recorded_workspace() or Path.cwd()

    def _clean(self, value: Any) -> Any:
        return shown(value, reveal=self.an.raw, workspace=self.workspace)

    def latest(self, intent: str | None = None) -> dict[str, Any]:
        where, params = ("WHERE intent = ?", [intent]) if intent else ("", [])
        rows = self.an.rows(
            f"SELECT {NODE_COLUMNS} FROM decisions {where} ORDER BY pos DESC LIMIT 1", params
        )
        if not rows:
            what = f" for intent {intent!r}" if intent else ""
            raise WhyNotFoundError(f"no decision{what} in the log yet")
        return self._clean(node_answer(rows[0]))

    def trace(self, trace_id: str) -> dict[str, Any]:
        """Every node of a trace (the dispatch and its recoveries), in order."""
        rows = self.an.rows(
            f"SELECT {NODE_COLUMNS} FROM decisions WHERE trace_id = ? ORDER BY pos", [trace_id]
        )
        if not rows:
            rows = self.an.rows(
                f"SELECT {NODE_COLUMNS} FROM decisions WHERE trace_id = "
                "(SELECT trace_id FROM decisions WHERE node_id = ?) ORDER BY pos",
                [trace_id],
            )
        if not rows:
            raise WhyNotFoundError(f"no trace or decision node {trace_id}")
        nodes = self._linked([node_answer(r) for r in rows])
        root = nodes[0]
        return self._clean(
            {
                "ok": True,
                "trace_id": root["trace_id"],
                "job_id": root["job_id"],
                "intent": root["intent"],
                "chosen": root["chosen"],
                "result": nodes[-1]["result"],
                "nodes": nodes,
            }
        )

    def _linked(self, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The nodes, with what each decision set going beyond its job:

        - ``charge``: a node that leased a paid attempt: the account, the amount held and how
          the hold ended (settled with its cost, released with why, or still held); amounts
          in micro-units (SQL view ``charges``);
        - ``self_heal``: a node that was an automatic recovery: its trigger, action,
          confidence and outcome (``pending`` until known; SQL view ``self_heals``).
        """
        ids = [str(node["node_id"]) for node in nodes]
        self._attach(
            nodes,
            "charge",
            "SELECT decision_id, account_id, attempt, worker, status, held_micros, cost_micros,"
            " released_micros, why, held_pos, closed_pos FROM charges"
            " WHERE decision_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY held_pos",
            ids,
        )
        self._attach(
            nodes,
            "self_heal",
            "SELECT decision_id, heal_id, trigger, action, confidence, detail, outcome,"
            " outcome_detail FROM self_heals"
            " WHERE decision_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY pos",
            ids,
        )
        return nodes

    def _attach(self, nodes: list[dict[str, Any]], key: str, sql: str, ids: list[str]) -> None:
        """Set ``node[key]`` to the row of ``sql`` whose ``decision_id`` is the node's."""
        by_node = {row.pop("decision_id"): row for row in self.an.rows(sql, [ids])}
        for node in nodes:
            row = by_node.get(str(node["node_id"]))
            if row is not None:
                node[key] = row

    def traces(
        self,
        *,
        intent: str | None = None,
        worker: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """The most recent traces, newest first: one row per trace (its root decision's
        intent, job and worker, its last node's status), filtered; what DecisionView lists.

        ``intent`` and ``worker`` match any node of the trace; ``worker`` matches a chosen
        action's key or the part after its ``TYPE:`` prefix."""
        having: list[str] = []
        params: list[Any] = []
        if intent:
            having.append("bool_or(intent = ?)")
            params.append(intent)
        if worker:
            having.append(
                "bool_or(? IN (chosen_key, substr(chosen_key, strpos(chosen_key, ':') + 1)))"
            )
            params.append(worker)
        if status:
            having.append("arg_max(coalesce(status, 'pending'), pos) = ?")
            params.append(status)
        for bound, op in ((since, ">="), (until, "<=")):
            if bound is not None:
                having.append(f"min(ts) {op} ?")
                params.append(bound.astimezone(UTC).replace(tzinfo=None))
        where = f"HAVING {' AND '.join(having)}" if having else ""
        rows = self.an.rows(
            "SELECT trace_id, min(pos) AS position, min(ts) AS ts, arg_min(job_id, pos) AS job_id,"
            " arg_min(intent, pos) AS intent, arg_min(chosen_key, pos) AS chosen,"
            " arg_max(coalesce(status, 'pending'), pos) AS status, count(*) AS nodes"
            f" FROM decisions GROUP BY trace_id {where} ORDER BY position DESC LIMIT ?",
            [*params, limit],
        )
        traces = [{**r, "ts": _iso(r["ts"])} for r in rows]
        return self._clean({"ok": True, "traces": traces, "last_position": self.an.last_position})

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as the log has it (payload included, redacted) and every decision on it."""
        jobs = self.an.rows("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        if not jobs:
            raise WhyNotFoundError(f"no job {job_id}")
        created = self.an.rows(
            "SELECT data FROM events WHERE stream = ? AND topic = 'job.created'", [job_id]
        )
        job = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in jobs[0].items()}
        if created:
            data = msgspec.json.decode(created[0]["data"])
            job["payload"] = data.get("payload", {})
            job["max_retries"] = data.get("max_retries")
        rows = self.an.rows(
            f"SELECT {NODE_COLUMNS} FROM decisions WHERE job_id = ? ORDER BY pos", [job_id]
        )
        return self._clean(
            {
                "ok": True,
                "job_id": job_id,
                "job": job,
                "traces": sorted({r["trace_id"] for r in rows}),
                "decisions": self._linked([node_answer(r) for r in rows]),
            }
        )

    def stats(
        self,
        intent: str | None = None,
        window: timedelta | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Count, success rate, mean score, p50/p95 latency and cost, top actions, failures.

        ``window`` counts back from ``now`` (the wall clock unless given, as tests do)."""
        filters: list[str] = ["status IS NOT NULL"]
        params: list[Any] = []
        if intent:
            filters.append("intent = ?")
            params.append(intent)
        since = None
        if window is not None:
            since = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None) - window
            filters.append("ts >= ?")
            params.append(since)
        where = " AND ".join(filters)
        measures = STATS_MEASURES
        self.an.con.execute(
            f"CREATE OR REPLACE TEMP TABLE stats_rows AS SELECT intent, chosen_key, status, "
            f"score, latency_ms, cost, error_code FROM ({STATS_ROWS}) WHERE {where}",
            params,
        )
        total = self.an.rows(f"SELECT {measures} FROM stats_rows")[0]
        per_action = self.an.rows(
            f"SELECT intent, chosen_key AS action, {measures} FROM stats_rows "
            "GROUP BY ALL ORDER BY count DESC, intent, action"
        )
        failures = self.an.rows(
            "SELECT error_code AS code, count(*) AS count FROM stats_rows "
            "WHERE error_code IS NOT NULL GROUP BY ALL ORDER BY count DESC, code"
        )
        self.an.con.execute("DROP TABLE stats_rows")
        heals = self.an.rows(
            "SELECT trigger, action, outcome, count(*) AS count FROM self_heals "
            + ("WHERE ts >= ? " if since is not None else "")
            + "GROUP BY ALL ORDER BY count DESC, trigger, action, outcome",
            [since] if since is not None else [],
        )
        return self._clean(
            {
                "ok": True,
                "intent": intent,
                "window": None if window is None else str(window),
                "since": _iso(since),
                **total,
                "top_actions": [
                    {"intent": a["intent"], "action": a["action"], "count": a["count"]}
                    for a in per_action[:TOP_ACTIONS]
                ],
                "failure_codes": failures,
                "per_action": per_action,
                "self_heal": heals,
            }
        )

    def drift(
        self,
        window: timedelta,
        *,
        intent: str | None = None,
        delta: float = PH_DELTA,
        threshold: float = PH_LAMBDA,
    ) -> dict[str, Any]:
        """Latency and cost per (intent, action) per window against the baseline."""
        report = drift_report(self.an, window, intent=intent, delta=delta, threshold=threshold)
        return self._clean(report)
