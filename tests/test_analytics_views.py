"""The DuckDB views agree with Python folds over the same log; `sql` is read-only.

The log is made by a real simulation with small segments, so the views read sealed
segments from the Parquet cache and the active one from the committed tail, both at once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import sheratan.store.ledger as ledger_module
from cli import cli
from events.decisions import DecisionMade, DecisionScored, PriorsSeeded, PriorsUpdated
from projections.jobs import JobsView
from projections.priors import PriorsView
from sheratan.analytics.session import Analytics, ReadOnlyError
from sheratan.analytics.shapes import STATS_ROWS
from tests.decision_helpers import decisions, events, simulated_home

JOBS = 400


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("views") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 256 * 1024)
        opened, _ = simulated_home(path, JOBS, epsilon=0.2, seed=3)
    yield opened
    opened.close()


def test_the_log_spans_sealed_segments_and_a_tail(home) -> None:  # type: ignore[no-untyped-def]
    segments = sorted((home.path / "events").glob("*.jsonl"))
    assert len(segments) >= 3
    with Analytics(home.path):
        pass
    cached = list((home.path / "analytics").glob("*.parquet"))
    # events, made, scored, heals per sealed segment
    assert len(cached) == 4 * (len(segments) - 1)


def test_views_count_what_a_python_fold_counts(home) -> None:  # type: ignore[no-untyped-def]
    folded = events(home)
    topics = Counter(type(event).TOPIC for _, event in folded)
    jobs = JobsView()
    priors = PriorsView()
    for position, event in folded:
        jobs.apply(position, event)
        priors.apply(position, event)
    nodes = decisions(home)
    with Analytics(home.path) as analytics:
        by_topic = dict(analytics.query("SELECT topic, count(*) FROM events GROUP BY 1").rows)
        assert by_topic == dict(topics)
        assert analytics.query("SELECT max(pos) FROM events").rows[0][0] == len(folded)
        assert analytics.query("SELECT count(*) FROM decisions").rows[0][0] == len(nodes)
        statuses = dict(analytics.query("SELECT status, count(*) FROM jobs GROUP BY 1").rows)
        assert statuses == dict(Counter(job.status for job in jobs.jobs.values()))
        scored = [s for _, s in nodes if s is not None]
        score_sum = analytics.query("SELECT count(*), sum(score) FROM scores").rows[0]
        assert score_sum[0] == len(scored)
        assert score_sum[1] == pytest.approx(sum(s.score for s in scored), abs=1e-9)
        chosen = Counter(m.candidates[m.chosen].key for m, _ in nodes if m.chosen >= 0)
        by_key = analytics.query("SELECT chosen_key, count(*) FROM decisions GROUP BY 1").rows
        assert dict(by_key) == dict(chosen)
        latest = analytics.rows(
            "SELECT intent, action_key, visits, mean_score FROM priors_history "
            "QUALIFY row_number() OVER (PARTITION BY intent, action_key ORDER BY pos DESC) = 1"
        )
    assert len(latest) == len(priors.priors)
    for row in latest:
        prior = priors.get(row["intent"], row["action_key"])
        assert row["visits"] == prior.visits
        assert row["mean_score"] == pytest.approx(prior.mean_score, abs=1e-9)
    assert topics[PriorsSeeded.TOPIC] + topics[PriorsUpdated.TOPIC] > 0
    assert topics[DecisionMade.TOPIC] == len(nodes) >= topics[DecisionScored.TOPIC]


def test_a_decision_row_carries_its_candidates_and_result(home) -> None:  # type: ignore[no-untyped-def]
    made, scored = decisions(home)[-1]
    assert scored is not None
    with Analytics(home.path) as analytics:
        row = analytics.rows(
            "SELECT * FROM decisions WHERE node_id = ?", [str(made.originator_id)]
        )[0]
    assert row["intent"] == made.intent
    assert row["job_id"] == str(made.job_id)
    assert [c["key"] for c in row["candidates"]] == [c.key for c in made.candidates]
    assert row["chosen_key"] == made.candidates[made.chosen].key
    assert row["probability"] == made.candidates[made.chosen].probability
    assert row["score"] == scored.score
    assert row["breakdown"]["S"] == scored.breakdown.S  # type: ignore[union-attr]


def test_new_events_show_up_in_the_next_session(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with Analytics(home.path) as before:
        count = before.query("SELECT count(*) FROM events").rows[0][0]
    mission = home.app.create_mission("after the cache was made")
    with Analytics(home.path) as after:
        assert after.query("SELECT count(*) FROM events").rows[0][0] == count + 1
        rows = after.query(f"SELECT topic FROM events WHERE stream = '{mission}'").rows
    assert rows == [("mission.created",)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO events VALUES (1)",
        "CREATE TABLE t AS SELECT 1",
        "COPY (SELECT * FROM events) TO '/tmp/sheratan-leak.csv'",
        "ATTACH '/tmp/sheratan-other.db'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT 1; DELETE FROM events",
    ],
)
def test_sql_refuses_statements_that_write_or_reach_outside(
    home,  # type: ignore[no-untyped-def]
    statement: str,
) -> None:
    with Analytics(home.path) as analytics, pytest.raises(ReadOnlyError):
        analytics.query(statement)
    result = CliRunner().invoke(cli, ["sql", "--home", str(home.path), statement])
    assert result.exit_code == 2
    assert "read-only" in result.output
    assert not Path("/tmp/sheratan-leak.csv").exists()


def test_sql_cli_formats_and_schema(home) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    base = ["sql", "--home", str(home.path)]
    query = "SELECT topic, count(*) AS n FROM events GROUP BY topic ORDER BY topic"
    as_json = json.loads(runner.invoke(cli, [*base, query, "--json"]).output)
    as_csv = runner.invoke(cli, [*base, query, "--format", "csv"]).output.splitlines()
    as_table = runner.invoke(cli, [*base, query]).output.splitlines()
    assert as_csv[0] == "topic,n"
    assert [f"{r['topic']},{r['n']}" for r in as_json] == as_csv[1:]
    assert as_table[0].split() == ["topic", "n"]
    assert len(as_table) == len(as_json) + 1
    schema = json.loads(runner.invoke(cli, [*base, "--schema", "--json"]).output)
    assert set(schema) == {
        "events",
        "decisions",
        "jobs",
        "priors_history",
        "scores",
        "charges",
        "self_heals",
    }
    assert {"pos", "ts", "stream", "ver", "topic", "data"} <= {c["name"] for c in schema["events"]}
    bad = runner.invoke(cli, [*base, "SELECT nope FROM events"])
    assert bad.exit_code == 2
    assert "nope" in bad.output


def test_why_stats_rows_are_the_scored_decisions_with_or_without_the_join(home) -> None:  # type: ignore[no-untyped-def]
    """``STATS_ROWS`` (a scored row cached with its made's columns when both are in one file,
    joined otherwise) holds exactly the scored rows of ``decisions`` (the join), decisions
    made in one segment and scored in a later one included."""
    columns = "ts, intent, chosen_key, status, score, latency_ms, cost, error_code"
    with Analytics(home.path) as analytics:
        joined = analytics.rows(f"SELECT {columns} FROM decisions WHERE status IS NOT NULL")
        fast = analytics.rows(f"SELECT {columns} FROM ({STATS_ROWS})")
        apart = analytics.rows("SELECT count(*) AS n FROM base_scored WHERE made_pos IS NULL")
    assert sorted(map(repr, fast)) == sorted(map(repr, joined))
    assert len(fast) > 0 and apart[0]["n"] > 0  # both ways of finding the made were taken
