"""`why latest|trace|job|stats|drift` through the CLI, checked against a Python fold of the log.

One simulated home (real files, real DuckDB) is shared by the module; nothing here writes to it.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner, Result

from cli import cli
from events.decisions import DecisionMade, DecisionScored
from sheratan.analytics.drift import PageHinkley, normalized
from sheratan.analytics.session import Analytics
from sheratan.analytics.why import Why
from sheratan.home import Home
from tests.decision_helpers import decisions, simulated_home

JOBS = 200
SEED = 3  # 200 jobs with this seed give a few failures, each recovered in the same trace
Decision = tuple[DecisionMade, DecisionScored | None]

NODE_KEYS = {"ok", "trace_id", "intent", "chosen", "alternatives", "result", "breakdown"}
CANDIDATE_KEYS = {"action_id", "type", "action_key", "select_score", "probability", "risk_gate"}
DRIFT_ROW_KEYS = {
    "intent",
    "action",
    "window_start",
    "n",
    *(
        f"{m}_{q}{r}"
        for m in ("latency_ms", "cost")
        for q in ("p50", "p95")
        for r in ("", "_ratio")
    ),
    "alarms",
    "flagged",
}


def invoke(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [*args, "--home", str(home)])
    assert result.exit_code == code, result.output + result.stderr
    return result


def why_json(home: Path, *args: str) -> Any:
    return json.loads(invoke(home, "why", *args, "--json").stdout)


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert not result.stdout.strip()
    return lines[0]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Home, list[Decision]]]:
    path = tmp_path_factory.mktemp("why") / "home"
    home, report = simulated_home(path, JOBS, seed=SEED)
    assert report["jobs"] == JOBS
    yield path, home, decisions(home)
    home.close()


def chosen_key(made: DecisionMade) -> str | None:
    return made.candidates[made.chosen].key if made.chosen >= 0 else None


def scored(decided: list[Decision]) -> list[tuple[DecisionMade, DecisionScored]]:
    return [(m, s) for m, s in decided if s is not None]


def a_recovered_trace(decided: list[Decision]) -> list[DecisionMade]:
    """The nodes (log order) of the first trace that holds a recover_failure node."""
    recovered = next(m.trace_id for m, _ in decided if m.intent == "recover_failure")
    return [m for m, _ in decided if m.trace_id == recovered]


# ------------------------------------------------------------------- latest


def test_why_latest_is_the_last_decision_in_the_why_shape(sim: Any) -> None:
    path, _, decided = sim
    made, score = decided[-1]
    answer = why_json(path, "latest")
    assert NODE_KEYS | {"artifacts"} <= set(answer)
    assert answer["ok"] is True
    assert answer["node_id"] == str(made.originator_id)
    assert answer["trace_id"] == str(made.trace_id)
    assert answer["intent"] == made.intent
    chosen = answer["chosen"]
    assert set(chosen) >= CANDIDATE_KEYS | {"gates"}
    assert chosen["action_key"] == chosen_key(made)
    assert chosen["action_id"] == made.candidates[made.chosen].action_id
    assert chosen["risk_gate"] is True  # a chosen candidate passed every gate
    assert score is not None
    assert answer["result"]["status"] == score.status
    assert answer["result"]["score"] == score.score
    assert answer["breakdown"]["S"] == score.breakdown.S  # type: ignore[union-attr]
    assert answer["artifacts"] == list(score.artifacts)
    # the chosen one and every alternative: all candidates of the node, probabilities sum to 1
    assert len(answer["alternatives"]) == len(made.candidates) - 1
    for alternative in answer["alternatives"]:
        assert CANDIDATE_KEYS | {"gates"} <= set(alternative)
        assert all({"gate", "passed", "reason"} <= set(g) for g in alternative["gates"])
    total = chosen["probability"] + sum(a["probability"] for a in answer["alternatives"])
    assert total == pytest.approx(1.0, abs=1e-9)
    keys = {chosen["action_key"], *(a["action_key"] for a in answer["alternatives"])}
    assert keys == {c.key for c in made.candidates}


def test_why_latest_of_an_intent(sim: Any) -> None:
    path, _, decided = sim
    recoveries = [m for m, _ in decided if m.intent == "recover_failure"]
    assert recoveries, "the seed should give at least one recovery"
    answer = why_json(path, "latest", "--intent", "recover_failure")
    assert answer["intent"] == "recover_failure"
    assert answer["node_id"] == str(recoveries[-1].originator_id)
    assert answer["depth"] >= 1
    assert answer["parent_node_id"] == str(recoveries[-1].parent_node_id)
    dispatches = [m for m, _ in decided if m.intent == "dispatch_job"]
    answer = why_json(path, "latest", "--intent", "dispatch_job")
    assert answer["node_id"] == str(dispatches[-1].originator_id)


def test_why_latest_without_a_match_is_one_clear_error(sim: Any, tmp_path: Path) -> None:
    path, _, _ = sim
    error = one_error_line(invoke(path, "why", "latest", "--intent", "no_such_intent", code=2))
    assert "no_such_intent" in error
    empty = tmp_path / "empty"
    invoke(empty, "init")
    assert "no decision" in one_error_line(invoke(empty, "why", "latest", "--json", code=2))


# -------------------------------------------------------------------- trace


def test_why_trace_lists_every_node_in_order(sim: Any) -> None:
    path, _, decided = sim
    nodes = a_recovered_trace(decided)
    assert len(nodes) >= 2
    trace_id = str(nodes[0].trace_id)
    answer = why_json(path, "trace", trace_id)
    assert answer["trace_id"] == trace_id
    assert answer["job_id"] == str(nodes[0].job_id)
    got = [(n["node_id"], n["depth"], n["intent"], n["parent_node_id"]) for n in answer["nodes"]]
    expected = [
        (str(m.originator_id), m.depth, m.intent, m.parent_node_id and str(m.parent_node_id))
        for m in nodes
    ]
    assert got == expected
    assert got[0][1:3] == (0, "dispatch_job")
    assert all(n["intent"] == "recover_failure" and n["depth"] >= 1 for n in answer["nodes"][1:])
    assert answer["chosen"] == answer["nodes"][0]["chosen"]
    assert answer["result"] == answer["nodes"][-1]["result"]
    assert [n["position"] for n in answer["nodes"]] == sorted(
        n["position"] for n in answer["nodes"]
    )
    # a node id of the trace finds the same trace
    by_node = why_json(path, "trace", str(nodes[-1].originator_id))
    assert by_node["nodes"] == answer["nodes"]


def test_why_trace_of_an_unknown_or_malformed_id_exits_2(sim: Any) -> None:
    path, _, _ = sim
    unknown = str(uuid4())
    assert unknown in one_error_line(invoke(path, "why", "trace", unknown, "--json", code=2))
    bad_id = one_error_line(invoke(path, "why", "trace", "not-a-uuid", "--json", code=2))
    assert "'not-a-uuid' is not an id" in bad_id
    assert unknown in one_error_line(invoke(path, "why", "job", unknown, "--json", code=2))
    assert "'12345' is not an id" in one_error_line(invoke(path, "why", "job", "12345", code=2))


# ---------------------------------------------------------------------- job


def test_why_job_has_the_job_and_exactly_its_decisions(sim: Any) -> None:
    path, home, decided = sim
    job_id = a_recovered_trace(decided)[0].job_id
    answer = why_json(path, "job", str(job_id))
    assert answer["job_id"] == str(job_id)
    state = home.app.get_job(job_id)
    assert answer["job"]["status"] == state.status
    assert answer["job"]["payload"] == state.payload
    expected = [str(m.originator_id) for m, _ in decided if m.job_id == job_id]
    assert len(expected) >= 2
    assert [d["node_id"] for d in answer["decisions"]] == expected
    assert all(d["job_id"] == str(job_id) for d in answer["decisions"])
    assert answer["traces"] == sorted({str(m.trace_id) for m, _ in decided if m.job_id == job_id})
    # a job without a recovery: one decision
    plain = next(
        m.job_id
        for m, _ in decided
        if sum(1 for other, _ in decided if other.job_id == m.job_id) == 1
    )
    answer = why_json(path, "job", str(plain))
    assert len(answer["decisions"]) == 1
    assert answer["job"]["status"] == home.app.get_job(plain).status == "completed"


# -------------------------------------------------------------------- stats


def test_why_stats_matches_a_python_fold(sim: Any) -> None:
    path, _, decided = sim
    rows = scored(decided)
    stats = why_json(path, "stats")
    assert stats["count"] == len(rows)
    success = [s.status in ("success", "recovered") for _, s in rows]
    assert abs(stats["success_rate"] - sum(success) / len(rows)) < 1e-9
    assert abs(stats["mean_score"] - statistics.fmean(s.score for _, s in rows)) < 1e-9
    assert sum(a["count"] for a in stats["per_action"]) == stats["count"]
    per_action = Counter((m.intent, chosen_key(m)) for m, _ in rows)
    assert {(a["intent"], a["action"]): a["count"] for a in stats["per_action"]} == per_action
    failures = Counter(s.error.code for _, s in rows if s.error is not None)
    assert failures, "the seed should give failures"
    assert {f["code"]: f["count"] for f in stats["failure_codes"]} == failures
    assert [a["count"] for a in stats["top_actions"]] == [
        a["count"] for a in stats["per_action"][:5]
    ]
    latencies = sorted(s.metrics.latency_ms for _, s in rows)
    assert stats["latency_p50_ms"] == pytest.approx(statistics.median(latencies), rel=1e-9)


def test_why_stats_of_one_intent(sim: Any) -> None:
    path, _, decided = sim
    rows = [(m, s) for m, s in scored(decided) if m.intent == "dispatch_job"]
    stats = why_json(path, "stats", "--intent", "dispatch_job")
    assert stats["intent"] == "dispatch_job"
    assert stats["count"] == len(rows) < len(scored(decided))
    assert {a["intent"] for a in stats["per_action"]} == {"dispatch_job"}
    assert abs(stats["mean_score"] - statistics.fmean(s.score for _, s in rows)) < 1e-9


def decision_line_times(path: Path) -> list[datetime]:
    """The ledger time (``ts``, UTC) of every decision.made line, read from the segments."""
    times = []
    for segment in sorted((path / "events").glob("*.jsonl")):
        for line in segment.read_bytes().splitlines():
            record = json.loads(line)
            if record["topic"] == "decision.made":
                times.append(datetime.fromisoformat(record["ts"].replace("Z", "+00:00")))
    return times


def test_why_stats_window(sim: Any) -> None:
    path, _, decided = sim
    total = len(scored(decided))
    times = decision_line_times(path)
    assert len(times) == len(decided)
    week = why_json(path, "stats", "--window", "7d")
    assert week["count"] == total
    assert week["window"] == str(timedelta(days=7))
    # the window counts back from a given "now" (no waiting on the wall clock): exactly the
    # decisions at or after now - window, none once every decision is older than the window
    window = timedelta(seconds=1)
    middle = min(times) + (max(times) - min(times)) / 2
    with Analytics(path) as analytics:
        for now in (middle + window, max(times), max(times) + window * 1.1):
            answer = Why(analytics).stats(window=window, now=now)
            assert answer["count"] == sum(1 for t in times if t >= now - window), now
        assert answer["count"] == 0
        assert answer["per_action"] == []
    error = one_error_line(invoke(path, "why", "stats", "--window", "7x", "--json", code=2))
    assert "7x" in error
    zero = one_error_line(invoke(path, "why", "stats", "--window", "0d", code=2))
    assert "window must be a positive number" in zero and "'0d'" in zero


# -------------------------------------------------------------------- drift


def test_page_hinkley_is_quiet_on_a_stationary_series_and_alarms_on_a_shift() -> None:
    rng = random.Random(20240601)
    detector = PageHinkley()
    alarms = [detector.add(rng.gauss(0.0, 0.25)) for _ in range(2000)]
    assert alarms.count(None) == 2000
    shifted = (detector.add(1.0 + rng.gauss(0.0, 0.25)) for _ in range(100))
    alarm = next((a for a in shifted if a is not None), None)
    assert alarm == "up", "no alarm within 100 samples of a +1.0 shift"
    assert detector.count == 0  # the detector starts afresh after an alarm
    down = PageHinkley()
    for _ in range(500):
        assert down.add(rng.gauss(0.0, 0.25)) is None
    found = [down.add(-1.0 + rng.gauss(0.0, 0.25)) for _ in range(100)]
    assert "down" in found and "up" not in found
    assert normalized(5.0, 1.0, 3.0) == 2.0


def test_why_drift_rows(sim: Any) -> None:
    path, _, decided = sim
    report = why_json(path, "drift", "--window", "1m")
    assert report["ok"] is True
    assert report["window"] == str(timedelta(minutes=1))
    assert report["page_hinkley"] == {"delta": 0.05, "lambda": 10.0}
    rows = report["rows"]
    assert rows
    for row in rows:
        assert set(row) == DRIFT_ROW_KEYS
    counted = [(m, s) for m, s in scored(decided) if m.chosen >= 0]
    assert sum(r["n"] for r in rows) == len(counted)
    per_action: Counter[tuple[str, str | None]] = Counter()
    for row in rows:
        per_action[(row["intent"], row["action"])] += row["n"]
    assert per_action == Counter((m.intent, chosen_key(m)) for m, _ in counted)
    # an action's first window is its baseline: its ratios are 1
    firsts: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        firsts.setdefault((row["intent"], row["action"]), row)
    for row in firsts.values():
        assert row["latency_ms_p50_ratio"] == row["cost_p95_ratio"] == 1.0
    assert report["flagged"] == [r for r in rows if r["flagged"]]
    assert report["alarms"] == sum(len(r["alarms"]) for r in rows)
    only = why_json(path, "drift", "--window", "1h", "--intent", "recover_failure")
    assert {r["intent"] for r in only["rows"]} == {"recover_failure"}
    year = one_error_line(invoke(path, "why", "drift", "--window", "1y", code=2))
    assert "window must be a positive number" in year and "'1y'" in year


# -------------------------------------------------------------------- text


def test_table_output_of_every_why_command(sim: Any) -> None:
    path, _, decided = sim
    made, _ = decided[-1]
    latest = invoke(path, "why", "latest").stdout
    assert str(made.originator_id) in latest
    assert chosen_key(made) in latest  # type: ignore[operator]
    nodes = a_recovered_trace(decided)
    trace = invoke(path, "why", "trace", str(nodes[0].trace_id)).stdout
    for node in nodes:
        assert str(node.originator_id) in trace
        assert f"chose {chosen_key(node)}" in trace
    job = invoke(path, "why", "job", str(nodes[0].job_id)).stdout
    assert str(nodes[0].job_id) in job
    assert all(f"chose {chosen_key(node)}" in job for node in nodes)
    stats = invoke(path, "why", "stats").stdout
    assert f"{len(scored(decided))} scored decisions" in stats
    assert all(chosen_key(m) in stats for m, _ in decided)  # type: ignore[operator]
    drift = invoke(path, "why", "drift", "--window", "1m").stdout
    assert all(chosen_key(m) in drift for m, _ in decided)  # type: ignore[operator]
    assert "flagged window(s)" in drift
