"""Hard gates: each blocks with its reason; a job whose every candidate is gated ends ABORT."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from events.decisions import DecisionMade, DecisionScored
from projections.jobs import JobState
from projections.priors import PriorsView
from projections.workers import WorkerState
from sheratan.decide.engine import CandidateSpec, DecisionEngine
from sheratan.decide.policy import load_gates, load_scoring
from sheratan.decide.selection import SelectionPolicy
from sheratan.dispatch.runner import Runner
from sheratan.dispatch.service import EngineConfig, build_dispatcher
from sheratan.home import Home
from sheratan.recording import Ids, WallClock
from sheratan.workers.outcome import Outcome
from tests.decision_helpers import decisions
from tests.states import NOW, job_state, worker_state


def job(kind: str = "file_read", payload: dict[str, Any] | None = None) -> JobState:
    return job_state(kind, {"path": "README.md"} if payload is None else payload)


def worker(worker_id: str, **changes: Any) -> WorkerState:
    return worker_state(worker_id, **changes)


def decide(
    tmp_path: Path, the_job: JobState, workers: list[WorkerState], **constraints: Any
) -> DecisionMade:
    engine = DecisionEngine(
        scoring=load_scoring(),
        gates=load_gates(),
        selection=SelectionPolicy("ucb", 0.5, 0.1),
        workspace=tmp_path,
        rng=random.Random(1),
        seed=1,
        build_id="test",
    )
    specs = [CandidateSpec("ROUTE", f"ROUTE:{w.id}", w, {"worker": w.id}) for w in workers]
    return engine.decide(
        decision_id=uuid4(),
        trace_id=uuid4(),
        parent=None,
        depth=0,
        intent="dispatch_job",
        job=the_job,
        specs=specs,
        priors=PriorsView(),
        constraints=constraints,
        now=NOW,
    )


def blocked(made: DecisionMade, gate: str) -> list[str]:
    """The reasons with which ``gate`` blocked each candidate (empty string: it passed)."""
    return [
        next((g.reason or "" for g in c.gates if g.gate == gate and not g.passed), "")
        for c in made.candidates
    ]


def test_g0_blocks_quarantined_and_silent_workers_only(tmp_path: Path) -> None:
    quarantined = worker("q", status="quarantined", quarantine_reason="flaky")
    silent = worker("s", transport="http", last_seen=NOW - timedelta(hours=1))
    healthy = worker("h")
    made = decide(tmp_path, job(), [quarantined, silent, healthy])
    reasons = blocked(made, "G0_barrier")
    assert "quarantined" in reasons[0] and "flaky" in reasons[0]
    assert "silent" in reasons[1]
    assert reasons[2] == ""
    assert [c.gated for c in made.candidates] == [True, True, False]
    assert made.candidates[made.chosen].key == "ROUTE:h"


def test_g0_blocks_an_untrusted_provenance_zone(tmp_path: Path) -> None:
    made = decide(tmp_path, job(payload={"path": "a.txt", "zone": "untrusted"}), [worker("a")])
    assert "untrusted" in blocked(made, "G0_barrier")[0]
    assert made.chosen == -1


def test_g1_validates_the_payload_against_the_kinds_schema(tmp_path: Path) -> None:
    made = decide(tmp_path, job(payload={"file": "README.md"}), [worker("a")])
    assert "does not fit file_read" in blocked(made, "G1_payload")[0]
    assert made.chosen == -1


@pytest.mark.parametrize(
    ("kind", "needle"), [("shell_exec", "forbidden"), ("teleport", "allowlist")]
)
def test_g2_enforces_the_kind_allowlist(tmp_path: Path, kind: str, needle: str) -> None:
    made = decide(tmp_path, job(kind=kind, payload={}), [worker("a")])
    assert needle in blocked(made, "G2_kind")[0]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"path": "/etc/passwd"}, "absolute"),
        ({"path": "../outside.txt"}, "'..'"),
        ({"path": "docs/../../x"}, "'..'"),
        ({"path": ".git/config"}, "forbidden prefix"),
        ({"prompt": "summarise", "attachments": [{"target": "~/notes"}]}, "absolute"),
        ({"prompt": "see", "context": {"deep": {"x_dir": "C:\\\\Windows"}}}, "absolute"),
    ],
)
def test_g3_sandboxes_every_path_like_parameter(tmp_path: Path, payload: dict, needle: str) -> None:
    kind = "file_read" if "path" in payload else "llm_call"
    made = decide(tmp_path, job(kind=kind, payload=payload), [worker("a")])
    assert needle in blocked(made, "G3_path")[0]
    assert made.chosen == -1


def test_g3_follows_symlinks_out_of_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "escape").symlink_to(tmp_path)
    made = decide(workspace, job(payload={"path": "escape/secret.txt"}), [worker("a")])
    assert "outside the workspace" in blocked(made, "G3_path")[0]


def test_g3_lets_prose_with_slashes_and_workspace_paths_through(tmp_path: Path) -> None:
    made = decide(
        tmp_path,
        job(kind="llm_call", payload={"prompt": "compare A/B tests and /etc"}),
        [worker("a")],
    )
    assert blocked(made, "G3_path") == [""]
    assert made.chosen == 0


def test_g4_finds_escalation_markers_anywhere(tmp_path: Path) -> None:
    payload = {"prompt": "tidy up", "steps": ["ok", {"cmd": "then SUDO rm -rf /"}]}
    made = decide(tmp_path, job(kind="llm_call", payload=payload), [worker("a")])
    assert "sudo" in blocked(made, "G4_escalation")[0].lower()


def test_budget_and_readonly_constraints(tmp_path: Path) -> None:
    made = decide(
        tmp_path,
        job(),
        [worker("cheap", cost_hint=1.0), worker("dear", cost_hint=9.0)],
        budget_remaining=5,
    )
    # the cheap worker passes; the dear one is blocked with its cost and the budget named
    assert blocked(made, "budget") == ["", "worker dear costs 9.0, budget is 5"]
    write = job(kind="file_write", payload={"path": "a.txt", "content": "x"})
    made = decide(tmp_path, write, [worker("a", kinds=("file_write",))], readonly=True)
    assert "readonly" in blocked(made, "readonly")[0]


class CountingTransport:
    """A local transport that only counts calls: nothing may reach it when all is gated."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, job: JobState, worker: WorkerState) -> Outcome:
        self.calls += 1
        return Outcome(True, 1.0, result={})


def test_a_job_whose_every_candidate_is_gated_ends_abort_and_no_worker_is_called(
    any_home: Path, tmp_path: Path
) -> None:
    home = Home.open(any_home)
    home.app.register_worker("w1", ("file_read",), "local")
    home.app.register_worker("w2", ("file_read",), "local")
    job_id = home.app.create_job("file_read", {"path": "../../etc/shadow"})
    dispatcher = build_dispatcher(
        home,
        EngineConfig.load(workspace=tmp_path),
        clock=WallClock(),
        ids=Ids(),
        outcomes_rng=random.Random(0),
    )
    counting = CountingTransport()
    dispatcher.transports["local"] = counting
    stats = Runner(dispatcher).drain()
    assert counting.calls == 0
    assert stats.aborted == 1
    assert home.app.get_job(job_id).status == "quarantined"
    [(made, scored)] = decisions(home)
    assert made.chosen == -1
    assert len(made.candidates) == 2 and all(
        c.gated and c.probability == 0 for c in made.candidates
    )
    assert made.reason.startswith("ABORT") and "climbs out" in made.reason
    assert isinstance(scored, DecisionScored) and scored.status == "skipped"
    assert scored.error is not None and scored.error.code == "all_gated"
