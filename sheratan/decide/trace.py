"""Decision trace records: one decision node rendered in schemas/decision_trace_v1.json's shape.

Rendering is pure (events in, dict out); ``TraceValidator`` checks a record against the
published schema (Draft 7, with format checking) and names the violation's path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal

import msgspec

from events.decisions import DecisionMade, DecisionScored
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
    }


@dataclass(frozen=True)
class Violation:
    """Where a record breaks the schema (a JSON pointer) and how."""

    path: str
    reason: str


# The record's shape as msgspec Structs: the runtime check (decoding validates, with the path
# of the first violation, in microseconds). tests/test_trace_schema.py holds these and
# schemas/decision_trace_v1.json to the same verdicts, so the two cannot drift apart.

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# JSON Schema's "integer" is any number with no fractional part (2.0 included), which msgspec's
# int refuses: integer fields are floats here, held integral by _integral in __post_init__.
Count = Annotated[float, msgspec.Meta(ge=0)]


def _integral(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, float) and not value.is_integer():
            msg = f"{name} must be an integer, not {value}"
            raise ValueError(msg)


ActionTypeName = Literal[
    "ROUTE", "EXECUTE", "RETRY", "REWRITE", "FALLBACK", "QUARANTINE", "SKIP", "ABORT"
]


class _Constraints(msgspec.Struct):
    budget_remaining: float | msgspec.UnsetType = msgspec.UNSET
    time_remaining_ms: float | msgspec.UnsetType = msgspec.UNSET
    readonly: bool | msgspec.UnsetType = msgspec.UNSET
    risk_level: Literal["low", "medium", "high"] | msgspec.UnsetType = msgspec.UNSET


class _State(msgspec.Struct):
    context_refs: list[str]
    constraints: _Constraints


class _Action(msgspec.Struct):
    action_id: str
    type: ActionTypeName
    mode: Literal["simulate", "execute"]
    params: dict[str, Any]
    select_score: float
    risk_gate: bool
    probability: Probability | msgspec.UnsetType = msgspec.UNSET


class _Percentiles(msgspec.Struct, forbid_unknown_fields=True):
    p50: float
    p95: float


class _Baseline(msgspec.Struct, forbid_unknown_fields=True):
    latency_ms: _Percentiles
    cost: _Percentiles
    source: Literal["default", "observed", "fixed"]
    observations: Count | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        _integral(observations=self.observations)


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


class _Weights(msgspec.Struct, forbid_unknown_fields=True):
    wS: float
    wQ: float
    wR: float
    wL: float
    wC: float
    wK: float


class _Breakdown(msgspec.Struct, forbid_unknown_fields=True):
    S: float
    Q: float
    R: float
    L_norm: float
    C_norm: float
    K: float
    weights: _Weights
    baseline: _Baseline


class _Result(msgspec.Struct):
    status: Literal["success", "partial", "failed", "recovered", "skipped"]
    metrics: _Metrics
    score: float
    error: _Error | msgspec.UnsetType | None = msgspec.UNSET
    artifacts: list[str] | msgspec.UnsetType = msgspec.UNSET
    determinism: _Determinism | msgspec.UnsetType = msgspec.UNSET
    breakdown: _Breakdown | msgspec.UnsetType = msgspec.UNSET


class _Gate(msgspec.Struct, forbid_unknown_fields=True):
    gate: str
    passed: bool
    reason: str | msgspec.UnsetType | None = msgspec.UNSET


class _Candidate(msgspec.Struct, forbid_unknown_fields=True):
    action_id: str
    type: ActionTypeName
    key: str
    params: dict[str, Any]
    gates: list[_Gate]
    gated: bool
    mean: float
    visits: Count
    ucb_bonus: float
    risk_penalty: float
    select_score: float | None
    probability: Probability
    explorable: bool | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        _integral(visits=self.visits)


class _Rng(msgspec.Struct, forbid_unknown_fields=True):
    policy: str
    seed: float
    draw: float
    epsilon: float
    c: float
    explore_draw: float | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        _integral(seed=self.seed)


class TraceRecord(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: Literal["decision_trace_v1"]
    timestamp: datetime
    trace_id: str
    node_id: str
    build_id: str
    job_id: str | None
    intent: str
    depth: Count
    state: _State
    action: _Action
    result: _Result
    parent_node_id: str | msgspec.UnsetType | None = msgspec.UNSET
    candidates: (
        Annotated[list[_Candidate], msgspec.Meta(min_length=1, max_length=7)] | msgspec.UnsetType
    ) = msgspec.UNSET
    reason: str | msgspec.UnsetType = msgspec.UNSET
    decision_summary: str | msgspec.UnsetType = msgspec.UNSET
    rng: _Rng | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        _integral(depth=self.depth)


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
