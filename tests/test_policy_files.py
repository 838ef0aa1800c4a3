"""Policy files: the shipped files are the one source of defaults; a partial file is merged
over them and can never remove a shipped refusal; ``policy show`` says where each value came
from (issue 8, point 3)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

from events import utc_now
from events.jobs import JobCreated, JobQueued
from events.workers import WorkerRegistered
from sheratan.app import payload_hash
from sheratan.decide.policy import EXTENDING_LISTS, load_gates
from sheratan.home import Home
from sheratan.packaged import policy_file
from sheratan.streams import worker_stream
from tests.cli_helpers import as_json, refused_unrecorded
from tests.decision_helpers import decisions

SHIPPED = json.loads(policy_file("gates.json").read_text())


def partial_gates(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "gates.json"
    path.write_text(json.dumps(values))
    return path


def test_a_partial_gates_file_keeps_every_shipped_refusal(tmp_path: Path) -> None:
    merged = load_gates(partial_gates(tmp_path, epsilon=0.2, forbidden_kinds=[]))
    assert merged.epsilon == 0.2
    for name in EXTENDING_LISTS:
        assert list(getattr(merged, name)) == SHIPPED[name], name
    assert merged.allowed_kinds == tuple(SHIPPED["allowed_kinds"])


def test_a_partial_file_adds_refusals_after_the_shipped_ones(tmp_path: Path) -> None:
    merged = load_gates(partial_gates(tmp_path, forbidden_path_prefixes=["secrets", ".env"]))
    assert list(merged.forbidden_path_prefixes) == [*SHIPPED["forbidden_path_prefixes"], "secrets"]


def _older_log_job(home: Home, kind: str) -> None:
    """A worker and a job of a forbidden kind, as a log written before kinds were checked at
    create may hold them (the CLI refuses both today)."""
    now = utc_now()
    home.app.save(
        WorkerRegistered(
            originator_id=worker_stream("legacy"),
            originator_version=1,
            timestamp=now,
            worker_id="legacy",
            kinds=(kind,),
            transport="local",
        ),
        JobCreated(
            originator_id=(job := uuid4()),
            originator_version=1,
            timestamp=now,
            kind=kind,
            payload={},
            payload_hash=payload_hash({}),
        ),
        JobQueued(originator_id=job, originator_version=2, timestamp=now),
    )


def test_a_dispatch_under_a_partial_gates_file_still_refuses_what_the_shipped_file_does(
    tmp_path: Path,
) -> None:
    home = tmp_path / "h"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "ok.txt").write_text("fine")
    gates = partial_gates(tmp_path, epsilon=0.2)
    as_json(home, "init")
    as_json(home, "worker", "register", "w", "--kinds", "noop,llm_call", "--transport", "local")
    expected = {}
    for kind, payload, gate, reason in [
        ("noop", {"path": ".env/production"}, "G3_path", "under a forbidden prefix"),
        ("noop", {"path": ".ssh/id_ed25519"}, "G3_path", "under a forbidden prefix"),
        ("llm_call", {"prompt": "now run sudo reboot"}, "G4_escalation", "sudo"),
        ("llm_call", {"prompt": "then curl | sh it"}, "G4_escalation", "curl | sh"),
    ]:
        job = as_json(home, "job", "create", kind, "--payload", json.dumps(payload))["id"]
        expected[job] = (gate, reason)
    benign = as_json(home, "job", "create", "noop", "--payload", '{"path": "ok.txt"}')["id"]
    opened = Home.open(home)
    _older_log_job(opened, "shell_exec")
    opened.close()
    report = as_json(
        home, "dispatch", "--until-idle", "--gates", str(gates), "--workspace", str(workspace)
    )
    assert (report["aborted"], report["completed"]) == (5, 1)
    opened = Home.open(home)
    made = {str(m.job_id): m for m, _ in decisions(opened) if m.intent == "dispatch_job"}
    legacy = next(job for job in made if job not in expected and job != benign)
    expected[legacy] = ("G2_kind", "kind 'shell_exec' is forbidden")
    for job, (gate, reason) in expected.items():
        refusals = [g.reason or "" for c in made[job].candidates for g in c.gates if not g.passed]
        assert any(reason in r for r in refusals), (job, gate, refusals)
        gates_hit = {g.gate for c in made[job].candidates for g in c.gates if not g.passed}
        assert gate in gates_hit
    assert as_json(home, "job", "show", benign)["status"] == "completed"
    assert all(as_json(home, "job", "show", job)["status"] != "completed" for job in expected)
    opened.close()


def test_policy_show_names_the_source_of_every_value(tmp_path: Path) -> None:
    home = tmp_path / "h"
    as_json(home, "init")
    gates = partial_gates(tmp_path, epsilon=0.2, forbidden_kinds=["teleport"])
    shown = as_json(home, "policy", "show", "--gates", str(gates))
    assert shown["gates"]["epsilon"] == 0.2
    assert shown["gates"]["forbidden_kinds"] == [*SHIPPED["forbidden_kinds"], "teleport"]
    sources = shown["sources"]["gates"]
    assert sources["epsilon"] == str(gates)
    assert sources["forbidden_kinds"] == f"policies/gates.json + {gates}"
    assert sources["escalation_markers"] == "policies/gates.json"
    assert set(shown["sources"]["scoring"].values()) == {"policies/scoring.json"}
    assert shown["scoring"]["weights"]["wS"] == 3.0
    assert isinstance(shown["priors"], list) and shown["priors"]


def test_a_policy_file_with_a_bad_field_is_refused_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "h"
    as_json(home, "init")
    as_json(home, "job", "create", "noop")
    gates = partial_gates(tmp_path, epsilon="high")
    refused_unrecorded(home, "dispatch", "--gates", str(gates), needle="$.epsilon")
    refused_unrecorded(home, "policy", "show", "--gates", str(gates), needle="$.epsilon")
    scoring = tmp_path / "scoring.json"
    scoring.write_text('{"weights": {"wX": 1}}')
    refused_unrecorded(home, "dispatch", "--scoring", str(scoring), needle="wX")
    unknown = partial_gates(tmp_path, epsilon_typo=0.3)
    refused_unrecorded(
        home, "simulate", "--jobs", "3", "--gates", str(unknown), needle="epsilon_typo"
    )
