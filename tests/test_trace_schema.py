"""decision_trace_v1: the seed's required fields unchanged, the published schema generated from
the record's one definition (``TraceRecord``), the runtime check (msgspec) and the published
schema (jsonschema, Draft 7 with formats) agreeing, and breaches kept apart."""

from __future__ import annotations

import copy
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.decisions import DecisionScored, Metrics, PriorsUpdated
from events.jobs import JobFailed
from projections.jobs import JobState
from projections.workers import WorkerState
from scripts.gen_trace_schema import render
from sheratan.decide.trace import SCHEMA_PATH, check, encode, trace_record, violations
from sheratan.dispatch.breaches import BreachLog
from sheratan.dispatch.runner import Runner
from sheratan.dispatch.service import EngineConfig, build_dispatcher
from sheratan.home import Home, init_home
from sheratan.recording import Ids, WallClock
from sheratan.store.factory import open_ledger
from sheratan.workers.outcome import Outcome
from tests.decision_helpers import decisions, events, simulated_home

SEED_REQUIRED = [
    "schema_version",
    "timestamp",
    "trace_id",
    "node_id",
    "intent",
    "build_id",
    "job_id",
    "depth",
    "state",
    "action",
    "result",
]


def test_the_seeds_required_fields_are_unchanged_and_additions_declared() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["required"] == SEED_REQUIRED
    assert schema["properties"]["state"]["required"] == ["context_refs", "constraints"]
    assert schema["properties"]["action"]["required"] == [
        "action_id",
        "type",
        "mode",
        "params",
        "select_score",
        "risk_gate",
    ]
    assert schema["properties"]["result"]["required"] == ["status", "metrics", "score"]
    assert schema["additionalProperties"] is False  # additions are declared, not waved through
    for added in ("candidates", "reason", "decision_summary", "rng", "observed"):
        assert added in schema["properties"] and added not in schema["required"]


def test_the_published_schema_is_what_the_record_struct_generates() -> None:
    """One definition: TraceRecord (built from the event's Structs) generates the file."""
    assert SCHEMA_PATH.read_text() == render(), (
        "schemas/decision_trace_v1.json is stale: run python scripts/gen_trace_schema.py"
    )
    jsonschema.Draft7Validator.check_schema(json.loads(render()))


def test_every_seed_property_keeps_its_type() -> None:
    """Extended with optional fields only: each property the seed declares keeps its type."""
    properties = json.loads(SCHEMA_PATH.read_text())["properties"]
    kinds = {
        name: sorted(
            {p["type"] for p in spec.get("anyOf", [spec]) if "type" in p}
            | ({"enum"} if "enum" in spec else set())
        )
        for name, spec in properties.items()
    }
    assert kinds["depth"] == ["integer"] and properties["depth"]["minimum"] == 0
    assert kinds["timestamp"] == ["string"] and properties["timestamp"]["format"] == "date-time"
    assert kinds["job_id"] == kinds["parent_node_id"] == ["null", "string"]
    for name in ("trace_id", "node_id", "build_id", "intent"):
        assert kinds[name] == ["string"], name
    for name in ("state", "action", "result"):
        assert kinds[name] == ["object"], name
    metrics = properties["result"]["properties"]["metrics"]["properties"]
    for name in ("latency_ms", "cost", "tokens", "retries", "risk", "quality"):
        assert metrics[name] == {"type": "number"}, name


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    home, _ = simulated_home(tmp_path_factory.mktemp("trace") / "h", 60, seed=2)
    out = [msgspec.json.decode(encode(trace_record(m, s))) for m, s in decisions(home) if s]
    assert out
    return out


# Not 2.0: JSON Schema counts it an integer, msgspec's int refuses it. Rendered records never
# hold one (their integers come from the events' int fields), so the two differ only there.
BAD_VALUES = [None, math.nan, "text", -1, 2.5, {}, [], True, "2026-13-45T99:00:00Z"]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=int(os.environ.get("SHERATAN_SCHEMA_EXAMPLES", "300")), deadline=None)
@given(data=st.data())
def test_runtime_check_and_published_schema_agree(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    record = copy.deepcopy(data.draw(st.sampled_from(records)))
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(_paths(record)))
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["set", "delete", "extra"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "extra" and isinstance(parent, dict):
            parent["unexpected_field"] = 1
        else:
            parent[path[-1]] = data.draw(st.sampled_from(BAD_VALUES))
    as_json = encode(record)
    runtime_ok = check(as_json) is None
    schema_ok = violations(msgspec.json.decode(as_json)) == []
    assert runtime_ok == schema_ok, (
        as_json,
        check(as_json),
        violations(msgspec.json.decode(as_json)),
    )


class NanTransport:
    """A worker whose result carries a non-finite latency: JSON cannot hold it."""

    def execute(self, job: JobState, worker: WorkerState) -> Outcome:
        return Outcome(True, math.nan, result={})


def test_a_non_finite_outcome_is_a_failed_attempt_and_the_log_stays_readable(
    tmp_path: Path,
) -> None:
    init_home(tmp_path / "h")
    home = Home.open(tmp_path / "h")
    home.app.register_worker("w", ("noop",), "local")
    job_id = home.app.create_job("noop", {}, max_retries=0)
    dispatcher = build_dispatcher(
        home,
        EngineConfig.load(workspace=tmp_path),
        clock=WallClock(),
        ids=Ids(),
        outcomes_rng=random.Random(0),
    )
    dispatcher.transports["local"] = NanTransport()
    Runner(dispatcher).drain()
    failed = [e for _, e in events(home) if isinstance(e, JobFailed)]
    assert [(e.originator_id, e.code) for e in failed] == [(job_id, "invalid_outcome")]
    assert "non-finite latency_ms" in failed[0].error
    assert home.verify().ok


def test_an_invalid_record_lands_in_breaches_only_and_the_decision_is_closed(
    tmp_path: Path,
) -> None:
    init_home(tmp_path / "h")
    home = Home.open(tmp_path / "h")
    home.app.register_worker("w", ("noop",), "process")
    home.app.heartbeat("w")
    home.app.create_job("noop", {})
    dispatcher = build_dispatcher(
        home,
        EngineConfig.load(workspace=tmp_path),
        clock=WallClock(),
        ids=Ids(),
        outcomes_rng=random.Random(0),
    )
    Runner(dispatcher).drain()  # a daemon's worker: leased, not run here
    [(made, _)] = decisions(home)
    broken = DecisionScored(
        originator_id=made.originator_id,
        originator_version=2,
        timestamp=made.timestamp,
        status="success",
        metrics=Metrics(),
        score=math.inf,
    )
    assert dispatcher.settler.record_scored(made, broken) is False
    dispatcher.recorder.flush()
    assert dispatcher.stats.breaches == 1
    logged = [e for _, e in events(home)]
    [closed] = [e for e in logged if isinstance(e, DecisionScored)]
    assert (closed.status, closed.error.code) == ("skipped", "not_scored")  # type: ignore[union-attr]
    assert "kept in breaches" in closed.error.message  # type: ignore[union-attr]
    assert not any(isinstance(e, PriorsUpdated) for e in logged)
    [breach] = BreachLog(open_ledger(home.path, "breaches")).all()
    assert breach["path"].startswith("/result/")
    assert breach["record"]["node_id"] == str(made.originator_id)
    assert violations(breach["record"])  # the published schema refuses it too
    assert home.verify().ok


def test_format_checking_is_real_for_timestamps(records: list[dict[str, Any]]) -> None:
    record = copy.deepcopy(records[0])
    record["timestamp"] = "2026-13-45T99:00:00Z"
    assert check(encode(record)) is not None
    assert [v.path for v in violations(record)] == ["/timestamp"]
