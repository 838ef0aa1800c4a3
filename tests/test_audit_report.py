"""`audit report`: its sections against a Python count of the log, replay runs, --since,
the Markdown layout, and a tampered segment."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from events import Event
from events.decisions import DecisionMade, DecisionScored
from sheratan.home import Home
from tests.cli_helpers import as_json, invoke, refused
from tests.decision_helpers import EXAMPLE_WORKERS, decisions, events, simulated_home

SECTIONS = {
    "chain",
    "events_by_topic",
    "decisions_by_reason",
    "gates_blocked",
    "breaches",
    "quarantines",
    "self_heals",
    "anomalies",
    "replay_runs",
}
HEADINGS = (
    "## Chain",
    "## Events by topic",
    "## Decisions by reason",
    "## Gates that blocked",
    "## Breaches",
    "## Quarantines",
    "## Self-heals",
    "## Anomalies",
    "## Replay runs",
)
QUARANTINE_REASON = "too many timeouts"


def topics(home: Home, since: int = 1) -> Counter[str]:
    return Counter(type(e).TOPIC for pos, e in events(home) if pos >= since)


def by_topic(report: dict[str, Any]) -> dict[str, int]:
    return {row["topic"]: row["count"] for row in report["events_by_topic"]}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Home]]:
    path = tmp_path_factory.mktemp("audit") / "home"
    home, _ = simulated_home(path, 200, seed=3)
    yield path, home
    home.close()


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Home, int]]:
    """The example workers, one of them quarantined (so G0 gates it), a simulation, then an
    exact replay. Yields the home and the position of the replay.run event.

    A one-job simulation registers the simulated workers (in the simulation's namespace, so an
    operator registering them in the real home would not do), then the quarantine.
    """
    path = tmp_path_factory.mktemp("audit-busy") / "home"
    invoke(path, "init")
    run = ("simulate", "--workers", str(EXAMPLE_WORKERS), "--seed", "5", "--jobs")
    invoke(path, *run, "1")
    invoke(path, "worker", "quarantine", "fast-cheap", "--reason", QUARANTINE_REASON)
    invoke(path, *run, "60")
    replayed = as_json(path, "replay", "--exact")
    assert replayed["ok"] is True
    home = Home.open(path)
    yield path, home, home.ledger.last_position()
    home.close()


def test_the_report_matches_a_count_of_the_log(sim: tuple[Path, Home]) -> None:
    path, home = sim
    report = as_json(path, "audit", "report")
    assert set(report) >= SECTIONS
    counted = topics(home)
    assert by_topic(report) == counted
    last = home.ledger.last_position()
    assert sum(counted.values()) == last == report["last_position"]
    assert report["since"] == 1
    chain = report["chain"]
    assert chain["ok"] is True
    assert chain["verified"] == chain["events"] == last
    assert chain["first_bad_position"] is None
    assert report["anomalies"]
    assert all(count == 0 for count in report["anomalies"].values()), report["anomalies"]
    assert report["breaches"] == {"count": 0, "recent": []}
    assert report["quarantines"] == []
    assert report["replay_runs"] == []


def test_decisions_by_reason_match_the_decisions(sim: tuple[Path, Home]) -> None:
    path, home = sim
    report = as_json(path, "audit", "report")
    decided = decisions(home)
    expected: dict[tuple[str, str], list[float]] = {}
    for made, score in decided:
        reason = f"chose {made.candidates[made.chosen].key}"
        assert score is not None
        expected.setdefault((made.intent, reason), []).append(score.score)
    rows = report["decisions_by_reason"]
    assert {(r["intent"], r["reason"]): r["count"] for r in rows} == {
        k: len(v) for k, v in expected.items()
    }
    for row in rows:
        mean = statistics.fmean(expected[(row["intent"], row["reason"])])
        assert abs(row["mean_score"] - mean) < 1e-9
    assert [r["count"] for r in rows] == sorted((r["count"] for r in rows), reverse=True)
    # in a plain simulation only the recovery's routine gates block: QUARANTINE without
    # evidence, ABORT while a reversible action is open
    assert {r["gate"] for r in report["gates_blocked"]} <= {"G5_evidence", "last_resort"}


def test_gates_quarantines_and_replay_runs(busy: tuple[Path, Home, int]) -> None:
    path, home, replay_pos = busy
    report = as_json(path, "audit", "report")
    assert by_topic(report) == topics(home)
    assert report["chain"]["ok"] is True
    assert report["chain"]["verified"] == replay_pos
    # G0 blocked the quarantined worker in every decision after the quarantine
    blocked = Counter(
        (g.gate, g.reason or "")
        for made, _ in decisions(home)
        for candidate in made.candidates
        for g in candidate.gates
        if not g.passed
    )
    assert blocked
    assert {(g["gate"], g["reason"]): g["count"] for g in report["gates_blocked"]} == blocked
    g0 = f"worker fast-cheap is quarantined: {QUARANTINE_REASON}"
    assert ("G0_barrier", g0) in blocked
    assert all(count == 0 for count in report["anomalies"].values()), report["anomalies"]
    quarantines = report["quarantines"]
    assert [(q["topic"], q["reason"]) for q in quarantines] == [
        ("worker.quarantined", QUARANTINE_REASON)
    ]
    assert [q["pos"] for q in quarantines] == [
        pos for pos, e in events(home) if type(e).TOPIC == "worker.quarantined"
    ]
    runs = report["replay_runs"]
    assert len(runs) == 1
    assert runs[0]["pos"] == replay_pos
    assert runs[0]["mode"] == "exact"
    scored = sum(1 for e in decision_events(home) if isinstance(e, DecisionScored))
    assert runs[0]["summary"]["decisions"] == scored
    assert runs[0]["summary"]["drift"] == {"none": scored, "minor": 0, "major": 0}
    markdown = invoke(path, "audit", "report").stdout
    assert f"| {replay_pos} |" in markdown
    assert f"none {scored}, minor 0, major 0" in markdown
    assert QUARANTINE_REASON in markdown


def decision_events(home: Home) -> list[Event]:
    return [e for _, e in events(home) if isinstance(e, DecisionMade | DecisionScored)]


def test_since_restricts_every_count(busy: tuple[Path, Home, int]) -> None:
    path, home, replay_pos = busy
    quarantine_pos = next(pos for pos, e in events(home) if type(e).TOPIC == "worker.quarantined")
    since = quarantine_pos + 1
    report = as_json(path, "audit", "report", "--since", str(since))
    assert report["since"] == since
    assert by_topic(report) == topics(home, since)
    assert sum(by_topic(report).values()) == replay_pos - since + 1
    later = [(pos, e) for pos, e in events(home) if pos >= since and isinstance(e, DecisionMade)]
    assert sum(r["count"] for r in report["decisions_by_reason"]) == len(later)
    assert report["quarantines"] == []  # the quarantine came before `since`
    assert [r["pos"] for r in report["replay_runs"]] == [replay_pos]
    after = as_json(path, "audit", "report", "--since", str(replay_pos + 1))
    assert after["events_by_topic"] == []
    assert after["decisions_by_reason"] == []
    assert after["replay_runs"] == []
    assert after["chain"]["ok"] is True  # the chain is always verified whole
    refused(path, "audit", "report", "--since", "0", needle="'--since': 0 is not in the range")


def test_markdown_has_every_section(sim: tuple[Path, Home]) -> None:
    path, home = sim
    markdown = invoke(path, "audit", "report").stdout
    last = home.ledger.last_position()
    assert markdown.startswith(f"# Audit report (positions 1..{last})\n")
    positions = [markdown.index(f"\n{heading}\n") for heading in HEADINGS]
    assert positions == sorted(positions)
    assert f"- {last}/{last} events verified: intact" in markdown
    for topic, count in topics(home).items():
        assert f"| {topic} | {count} |" in markdown
    assert "- decisions never scored: 0" in markdown
    assert "0 decision record(s) refused" in markdown


def tamper_one_byte(home: Path, position: int) -> None:
    """Change one digit inside the data of the line at ``position`` (same length, valid JSON)."""
    (segment,) = sorted((home / "events").glob("*.jsonl"))
    lines = segment.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(b'{"pos":%d,' % position))
    line = bytearray(lines[index])
    data = line.index(b'"data":')
    at = next(i for i in range(data, len(line)) if chr(line[i]).isdigit())
    line[at] = ord("7") if line[at] != ord("7") else ord("3")
    lines[index] = bytes(line)
    segment.write_bytes(b"\n".join(lines))


def test_a_tampered_segment_breaks_the_reported_chain(tmp_path: Path) -> None:
    path = tmp_path / "home"
    home, _ = simulated_home(path, 20, seed=1)
    last = home.ledger.last_position()
    home.close()
    assert as_json(path, "audit", "report")["chain"]["ok"] is True
    bad = last // 2
    tamper_one_byte(path, bad)
    invoke(path, "audit", "verify", code=1)
    result = CliRunner().invoke(cli, ["audit", "report", "--home", str(path), "--json"])
    assert result.exit_code == 1, result.output + result.stderr  # a failed check
    chain = json.loads(result.stdout)["chain"]
    assert chain["ok"] is False
    assert chain["first_bad_position"] == bad
    assert chain["verified"] == bad - 1
    assert f"position {bad}" in chain["problem"]
    result = CliRunner().invoke(cli, ["audit", "report", "--home", str(path)])
    assert f"**BROKEN** at {bad}" in result.stdout
    assert "intact" not in result.stdout


def test_the_report_shows_the_chain_head(sim: tuple[Path, Home]) -> None:
    path, _ = sim
    head = as_json(path, "audit", "verify")["head"]
    assert as_json(path, "audit", "report")["chain"]["head"] == head
