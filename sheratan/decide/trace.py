"""Decision trace records: one decision node rendered in schemas/decision_trace_v1.json's shape.

Rendering is pure (events in, dict out). ``TraceRecord`` is the record's one definition: the
runtime ``check`` decodes with it, and the published schema is generated from it
(``published_schema``). ``violations`` checks a record against the published file with
jsonschema (Draft 7, with format checking), the reference for exports and tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal

import msgspec

from events.decisions import (
    ActionType,
    BaselineUsed,
    Breakdown,
    Candidate,
    DecisionMade,
    DecisionScored,
    Evidence,
    GateResult,
    Observed,
    PathCheck,
    Percentiles,
    ResultStatus,
    Rng,
    Weights,
    WorkerHealth,
)
from sheratan.packaged import schema_file

SCHEMA_PATH = schema_file("decision_trace_v1.json")
SCHEMA_VERSION = "decision_trace_v1"


def iso_utc(value: Any) -> str:
    """A UTC time as the log and the trace records write it (``...%fZ``)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def trace_record(made: DecisionMade, scored: DecisionScored) -> dict[str, Any]:
    """The decision node as a decision_trace_v1 record."""
    node = str(made.originator_id)
    if made.chosen >= 0:
        chosen = made.candidates[made.chosen]
        action = {
            "action_id": chosen.action_id,
            "type": chosen.type,
            "mode": made.mode,
            "params": chosen.params,
            "select_score": chosen.select_score,
            "risk_gate": True,
            "probability": chosen.probability,
        }
        summary_choice = f"chose {chosen.key} (p={chosen.probability:.2f})"
    else:
        action = {
            "action_id": f"{node}:abort",
            "type": "ABORT",
            "mode": made.mode,
            "params": {},
            "select_score": 0.0,
            "risk_gate": True,
            "probability": 1.0,
        }
        summary_choice = "every candidate gated: ABORT"
    metrics: dict[str, Any] = msgspec.to_builtins(scored.metrics)
    result: dict[str, Any] = {
        "status": scored.status,
        "metrics": metrics,
        "score": scored.score,
        "error": msgspec.to_builtins(scored.error),
        "artifacts": list(scored.artifacts),
        "determinism": {"input_hash": made.input_hash, "output_hash": made.output_hash},
    }
    if scored.breakdown is not None:
        result["breakdown"] = msgspec.to_builtins(scored.breakdown)
        metrics["baselines"] = result["breakdown"]["baseline"]
    inputs = {} if made.observed is None else {"observed": msgspec.to_builtins(made.observed)}
    return {
        "schema_version": SCHEMA_VERSION,
        "timestamp": iso_utc(made.timestamp),
        "trace_id": str(made.trace_id),
        "node_id": node,
        "parent_node_id": str(made.parent_node_id) if made.parent_node_id else None,
        "build_id": made.build_id,
        "job_id": str(made.job_id) if made.job_id else None,
        "intent": made.intent,
        "depth": made.depth,
        "state": {"context_refs": list(made.context_refs), "constraints": dict(made.constraints)},
        "action": action,
        "result": result,
        "candidates": msgspec.to_builtins(made.candidates),
        "reason": made.reason,
        "decision_summary": (
            f"{made.intent} for job {made.job_id}: {summary_choice} -> {scored.status}, "
            f"score {scored.score:.3f}"
        ),
        "rng": msgspec.to_builtins(made.rng),
        **inputs,
    }


@dataclass(frozen=True)
class Violation:
    """Where a record breaks the schema (a JSON pointer) and how."""

    path: str
    reason: str


# The record's one definition: msgspec Structs. ``check`` decodes a rendered record with them
# and the published schema (schemas/decision_trace_v1.json) is generated from them
# (``published_schema``, written by scripts/gen_trace_schema.py; a test keeps it current).
# The seed's own parts (state, action, result) are declared here in the seed's order; the parts
# Sheratan adds are the event's own Structs (events/decisions.py), each derived here only to
# refuse unknown fields and to add the bounds a trace record promises.


def _doc(text: str, **bounds: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **bounds)


Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
#: A time with its offset: JSON Schema's ``date-time`` format (a bare datetime would let msgspec
#: take times without an offset, and the generated schema would not say "date-time").
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class _Gate(GateResult, frozen=True, forbid_unknown_fields=True):
    pass


Explorable = Annotated[
    bool,
    _doc(
        "Whether exploration (the epsilon step, the UCB bonus) could pick this candidate: a "
        "reversible action (ROUTE, RETRY, FALLBACK) that is not gated. Others have probability "
        "0 unless they are the greedy choice (Sheratan extension)."
    ),
]


class _Candidate(Candidate, frozen=True, forbid_unknown_fields=True):
    gates: tuple[_Gate, ...]
    visits: Count
    probability: Probability
    explorable: Explorable | None = None


class _Rng(Rng, frozen=True, forbid_unknown_fields=True):
    pass


class _Percentiles(Percentiles, frozen=True, forbid_unknown_fields=True):
    pass


class _Baseline(BaselineUsed, frozen=True, forbid_unknown_fields=True):
    """The p50/p95 a score's latency and cost were normalized against (Sheratan extension)."""

    latency_ms: _Percentiles
    cost: _Percentiles
    observations: Count = 0


class _Weights(Weights, frozen=True, forbid_unknown_fields=True):
    pass


class _Breakdown(Breakdown, frozen=True, forbid_unknown_fields=True):
    """Score v1 terms, weights and the baseline used (Sheratan extension)."""

    weights: _Weights
    baseline: _Baseline


class _PathCheck(PathCheck, frozen=True, forbid_unknown_fields=True):
    pass


class _WorkerHealth(WorkerHealth, frozen=True, forbid_unknown_fields=True):
    quarantined_until: Timestamp | None = None
    last_seen: Timestamp | None = None


class _Evidence(Evidence, frozen=True, forbid_unknown_fields=True):
    pass


class _Observed(Observed, frozen=True, forbid_unknown_fields=True):
    """What the decision read outside its own arguments: each path the path gate resolved
    (symlinks followed), each candidate worker's health as the quarantine barrier read it,
    a worker's recent record as the evidence gate read it. Replay re-runs the decision on it
    (Sheratan extension)."""

    paths: tuple[_PathCheck, ...] = ()
    workers: tuple[_WorkerHealth, ...] = ()
    evidence: tuple[_Evidence, ...] = ()


class _Constraints(msgspec.Struct):
    budget_remaining: float | msgspec.UnsetType = msgspec.UNSET
    time_remaining_ms: float | msgspec.UnsetType = msgspec.UNSET
    readonly: bool | msgspec.UnsetType = msgspec.UNSET
    risk_level: Literal["low", "medium", "high"] | msgspec.UnsetType = msgspec.UNSET


class _State(msgspec.Struct):
    context_refs: Annotated[list[str], _doc("Pointers to ChainContext, files, logs, etc.")]
    constraints: _Constraints


ChosenProbability = Annotated[
    float,
    _doc(
        "The exact probability with which this action was chosen (Sheratan extension).",
        ge=0.0,
        le=1.0,
    ),
]


class _Action(msgspec.Struct):
    action_id: str
    type: ActionType
    mode: Literal["simulate", "execute"]
    params: Annotated[dict[str, Any], _doc("Lightweight, referential parameters")]
    select_score: Annotated[float, _doc("UCB-Light score used for selection")]
    risk_gate: Annotated[bool, _doc("True = action was allowed to execute")]
    probability: ChosenProbability | msgspec.UnsetType = msgspec.UNSET


class _Metrics(msgspec.Struct):
    latency_ms: float | msgspec.UnsetType = msgspec.UNSET
    cost: float | msgspec.UnsetType = msgspec.UNSET
    tokens: float | msgspec.UnsetType = msgspec.UNSET
    retries: float | msgspec.UnsetType = msgspec.UNSET
    risk: float | msgspec.UnsetType = msgspec.UNSET
    quality: float | msgspec.UnsetType = msgspec.UNSET
    baselines: _Baseline | msgspec.UnsetType = msgspec.UNSET


class _Error(msgspec.Struct):
    code: str | msgspec.UnsetType = msgspec.UNSET
    message: str | msgspec.UnsetType = msgspec.UNSET


class _Determinism(msgspec.Struct):
    input_hash: str | msgspec.UnsetType = msgspec.UNSET
    output_hash: str | msgspec.UnsetType = msgspec.UNSET
    drift: Literal["none", "minor", "major"] | msgspec.UnsetType = msgspec.UNSET


class _Result(msgspec.Struct):
    status: ResultStatus
    metrics: _Metrics
    score: Annotated[float, _doc("Final Sheratan Score v1")]
    error: _Error | msgspec.UnsetType | None = msgspec.UNSET
    artifacts: list[str] | msgspec.UnsetType = msgspec.UNSET
    determinism: _Determinism | msgspec.UnsetType = msgspec.UNSET
    breakdown: _Breakdown | msgspec.UnsetType = msgspec.UNSET


Intent = Annotated[
    str,
    _doc(
        "High-level goal of this decision",
        examples=["dispatch_job", "route_llm_call", "recover_failure", "rewrite_prompt"],
    ),
]
Candidates = Annotated[
    tuple[_Candidate, ...],
    _doc(
        "Every candidate action with its gates, UCB terms and probability (Sheratan extension).",
        min_length=1,
        max_length=7,
    ),
]
Reason = Annotated[
    str, _doc("Why the chosen action was chosen, or why the decision aborted (Sheratan extension).")
]
Summary = Annotated[str, _doc("One line for people (Sheratan extension).")]
Draw = Annotated[
    _Rng, _doc("The randomized step, recorded so replay can re-run it (Sheratan extension).")
]


class TraceRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One decision node. The seed's schema with its required fields unchanged; every field
    Sheratan adds is optional and declared here (no blanket additionalProperties)."""

    schema_version: Literal["decision_trace_v1"]
    timestamp: Timestamp
    trace_id: Annotated[str, _doc("UUID for the whole decision episode")]
    node_id: Annotated[str, _doc("UUID for this decision node")]
    parent_node_id: str | msgspec.UnsetType | None = msgspec.UNSET
    intent: Intent
    build_id: Annotated[str, _doc("build_state.json reference")]
    job_id: str | None
    depth: Count
    state: _State
    action: _Action
    result: _Result
    candidates: Candidates | msgspec.UnsetType = msgspec.UNSET
    reason: Reason | msgspec.UnsetType = msgspec.UNSET
    decision_summary: Summary | msgspec.UnsetType = msgspec.UNSET
    rng: Draw | msgspec.UnsetType = msgspec.UNSET
    observed: _Observed | msgspec.UnsetType = msgspec.UNSET


SCHEMA_HEAD = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": "https://sheratan.dev/schemas/decision_trace_v1.json",
    "title": "Sheratan Decision Trace v1",
}


def published_schema() -> dict[str, Any]:
    """schemas/decision_trace_v1.json as ``TraceRecord`` defines it: msgspec's JSON Schema
    with every ``$ref`` written out in place (the seed's nested, Draft 7 shape) and each
    description (a docstring, for a Struct) on one line."""
    generated = msgspec.json.schema(TraceRecord)
    defs = generated["$defs"]

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                node = defs[ref.rsplit("/", 1)[1]]
            dropped = ("title", "required") if node.get("required") == [] else ("title",)
            return {k: inline(v) for k, v in node.items() if k not in dropped}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return " ".join(node.split()) if isinstance(node, str) and "\n" in node else node

    return {**SCHEMA_HEAD, **inline(generated)}


_record_decoder = msgspec.json.Decoder(TraceRecord)
_PATH = re.compile(r"at `\$(.*)`$")


def check(record_json: bytes) -> Violation | None:
    """The first way a rendered record breaks decision_trace_v1, or None (fast, msgspec)."""
    try:
        _record_decoder.decode(record_json)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        message = str(error)
        match = _PATH.search(message)
        path = match.group(1) if match else ""
        pointer = "/" + "/".join(p for p in re.split(r"[.\[\]]+", path) if p)
        return Violation(pointer, _PATH.sub("", message).strip(" -"))
    return None


def encode(record: dict[str, Any]) -> bytes:
    """A record as JSON bytes (non-finite numbers become null, so the check catches them)."""
    return msgspec.json.encode(record)


@cache
def _validator() -> Any:
    import jsonschema  # only exports and tests need the reference check; it is slow to import

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def violations(record: dict[str, Any]) -> list[Violation]:
    """Every way a (JSON-decoded) record breaks the published schema, by jsonschema: the
    reference check, for exports and tests (slower than ``check``)."""
    out = []
    for error in _validator().iter_errors(record):
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        out.append(Violation(pointer, error.message))
    return sorted(out, key=lambda v: v.path)
