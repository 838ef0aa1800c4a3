"""Chains: the follow-ups a result asks for become jobs of their chain, within its limits
(issue 11, item 2). The worker's side is the code the daemons use (``sheratan.workers.report``);
the dispatcher that settles the completed attempt makes the follow-ups."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cli_helpers import as_json, invoke
from process_helpers import events_of
from round_helpers import DONE
from round_helpers import run_round as dispatch_round

from events.chains import followup_stream

WORKER = "w"


def limits(tmp_path: Path, **chains: int) -> str:
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"chains": chains}))
    return str(path)


def run_round(home: Path, results: dict[str, dict[str, Any]], limits_file: str) -> None:
    """A round whose attempts complete with ``results[payload note]`` (or an empty result)."""
    outcomes = {note: replace(DONE, result=result) for note, result in results.items()}
    dispatch_round(home, outcomes, "--limits", limits_file)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    invoke(path, "init")
    invoke(
        path, "worker", "register", WORKER, "--kinds", "noop,file_write", "--transport", "process"
    )
    return path


def asks(*notes: str, kind: str = "noop") -> dict[str, Any]:
    return {"followups": [{"kind": kind, "payload": {"note": note}} for note in notes]}


def test_followups_become_jobs_of_the_chain_and_job_show_lists_it(
    home: Path, tmp_path: Path
) -> None:
    generous = limits(tmp_path, max_depth=5, max_jobs=50)
    root = as_json(home, "job", "create", "noop", "--payload", json.dumps({"note": "root"}))["id"]
    run_round(home, {"root": asks("a", "b")}, generous)
    run_round(home, {"a": asks("a1")}, generous)
    run_round(home, {}, generous)

    jobs = as_json(home, "job", "list")
    assert len(jobs) == 4 and all(job["status"] == "completed" for job in jobs)
    shown = as_json(home, "job", "show", root)
    assert shown["chain"] is None  # the first job: no follow-up made it
    members = shown["chain_jobs"]
    assert members[0] == {"id": root, "kind": "noop", "status": "completed", "depth": 0}
    assert sorted(m["depth"] for m in members) == [0, 1, 1, 2]
    a1 = next(j for j in jobs if j["payload"] == {"note": "a1"})
    a1_shown = as_json(home, "job", "show", a1["id"])
    assert a1_shown["chain"]["chain_id"] == root and a1_shown["chain"]["depth"] == 2
    a = next(j for j in jobs if j["payload"] == {"note": "a"})
    assert a1_shown["chain"]["parent"] == a["id"]
    assert a1_shown["chain_jobs"] == members
    assert not events_of(home, "job.followup_refused")


def test_each_limit_refuses_the_rest_with_an_event_and_duplicates_fold(
    home: Path, tmp_path: Path
) -> None:
    tight = limits(tmp_path, max_depth=1, max_jobs=3, max_files=1, max_bytes=200_000)
    as_json(home, "job", "create", "noop", "--payload", json.dumps({"note": "root"}))
    asked = asks("x", "x", "y", "z")  # x twice: the second is a duplicate; z: past max_jobs
    asked["followups"] += [
        {"kind": "file_write", "payload": {"path": "f", "content": "c"}},
        {"kind": "nope", "payload": {}},
        "not a request",
    ]
    run_round(home, {"root": asked}, tight)
    refusals = {
        line["data"]["index"]: line["data"] for line in events_of(home, "job.followup_refused")
    }
    made = [j for j in as_json(home, "job", "list") if j["payload"].get("note") != "root"]
    assert sorted(j["payload"].get("note") for j in made) == ["x", "y"]
    assert refusals[1]["duplicate_of"] == next(j["id"] for j in made if j["payload"]["note"] == "x")
    assert "duplicate" in refusals[1]["reason"]
    assert refusals[3]["reason"] == "the chain holds 3 jobs (chains.max_jobs is 3)"
    assert refusals[4]["reason"] == "the chain holds 3 jobs (chains.max_jobs is 3)"
    assert "nope" in refusals[5]["reason"]
    assert refusals[6]["reason"].startswith("a follow-up must be")
    assert set(refusals) == {1, 3, 4, 5, 6}

    # Depth: the follow-ups of a depth-1 job are past max_depth 1.
    run_round(home, {"x": asks("deeper")}, tight)
    deeper = [r for r in events_of(home, "job.followup_refused") if r["data"]["depth"] == 2]
    assert [r["data"]["reason"] for r in deeper] == ["depth 2 is past chains.max_depth 1"]

    replay = as_json(home, "replay", "--exact", "--all")
    assert replay["ok"] and replay["drift"]["major"] == replay["drift"]["minor"] == 0


def test_files_and_bytes_are_limited_per_chain(home: Path, tmp_path: Path) -> None:
    tight = limits(tmp_path, max_depth=5, max_jobs=50, max_files=1, max_bytes=300)
    as_json(home, "job", "create", "noop", "--payload", json.dumps({"note": "root"}))
    writes = {
        "followups": [
            {"kind": "file_write", "payload": {"path": "one", "content": "1"}},
            {"kind": "file_write", "payload": {"path": "two", "content": "2"}},
            {"kind": "noop", "payload": {"blob": "b" * 400}},
        ]
    }
    run_round(home, {"root": writes}, tight)
    reasons = [r["data"]["reason"] for r in events_of(home, "job.followup_refused")]
    assert reasons[0] == "the chain writes 1 files (chains.max_files is 1)"
    assert reasons[1].startswith("the chain's follow-ups would hold") and "300" in reasons[1]


def test_followup_ids_are_one_per_request(home: Path, tmp_path: Path) -> None:
    """The follow-up's id is its request's stream, so no two dispatchers make it twice."""
    generous = limits(tmp_path, max_depth=5, max_jobs=50)
    root = as_json(home, "job", "create", "noop", "--payload", json.dumps({"note": "root"}))["id"]
    run_round(home, {"root": asks("a")}, generous)
    (made,) = [j for j in as_json(home, "job", "list") if j["id"] != root]
    assert made["id"] == str(followup_stream(UUID(root), 1, 0))
