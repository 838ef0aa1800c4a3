"""No read path shows a secret: why (every command, JSON and text) and the audit report.

One home is built through the CLI: a simulated worker, a second worker quarantined with a
credential pasted into its reason (so the secret reaches every gate result), a job whose
payload carries an API key, an Authorization header and a 40-hex token, a job whose path
climbs out of the workspace through a directory named by that token, and a job with an
absolute path inside the workspace. Everything is dispatched, then every output is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_helpers import as_json, invoke

SECRET_API_KEY = "sk-Xq7Lm2Pw9Rt4Vb8Nzz"
SECRET_BEARER = "s3cr3t-b3ar3r-t0k3n-Q9"
SECRET_HEX = "0123456789abcdef0123456789abcdef01234567"
SECRETS = (SECRET_API_KEY, SECRET_BEARER, SECRET_HEX)
REDACTED = "[redacted]"
PROFILE = json.dumps(
    {"success": 1.0, "latency_ms": {"p50": 100, "p95": 300}, "cost": 1.0, "quality": 0.9}
)


@dataclass(frozen=True)
class SecretHome:
    path: Path
    workspace: Path
    secret_job: str
    escaping_job: str
    path_job: str


@pytest.fixture(scope="module")
def secret_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretHome]:
    root = tmp_path_factory.mktemp("redaction")
    home, workspace = root / "home", root / "workspace"
    (workspace / "sub").mkdir(parents=True)
    invoke(home, "init")
    for worker in ("sim-1", "sim-2"):
        invoke(
            home,
            *("worker", "register", worker, "--kinds", "llm_call,noop,file_read"),
            *("--transport", "simulated", "--profile", PROFILE),
        )
    invoke(
        home,
        *("worker", "quarantine", "sim-2"),
        *("--reason", f"pasted a header by mistake: Authorization: Bearer {SECRET_BEARER}"),
    )
    payload = {
        "prompt": "summarise the release notes",
        "api_key": SECRET_API_KEY,
        "headers": {"Authorization": f"Bearer {SECRET_BEARER}", "Accept": "text/plain"},
        "note": f"deploy with token {SECRET_HEX}",
        "monkey_id": "monkey-42",
        "constraints": {},
    }
    secret_job = as_json(home, "job", "create", "llm_call", "--payload", json.dumps(payload))["id"]
    escaping = {"path": f"../keys/{SECRET_HEX}.pem"}
    escaping_job = as_json(home, "job", "create", "file_read", "--payload", json.dumps(escaping))[
        "id"
    ]
    inside = {"target": str(workspace / "sub" / "a.txt"), "monkey_id": "monkey-43"}
    path_job = as_json(home, "job", "create", "noop", "--payload", json.dumps(inside))["id"]
    report = as_json(home, "dispatch", "--until-idle", "--workspace", str(workspace))
    assert report["jobs"] == 3
    assert report["completed"] == 1 and report["aborted"] == 2
    yield SecretHome(home, workspace, secret_job, escaping_job, path_job)


def assert_no_secret(text: str, what: str) -> None:
    assert text.strip(), f"{what} printed nothing"
    for secret in SECRETS:
        assert secret not in text, f"{what} shows {secret!r}"


def read_paths(h: SecretHome) -> list[tuple[str, ...]]:
    """Every why and audit command over the home (trace ids read from the jobs' answers)."""
    traces = {
        trace
        for job in (h.secret_job, h.escaping_job, h.path_job)
        for trace in as_json(h.path, "why", "job", job)["traces"]
    }
    assert len(traces) == 3
    commands: list[tuple[str, ...]] = [
        ("why", "job", job) for job in (h.secret_job, h.escaping_job, h.path_job)
    ]
    commands += [("why", "trace", trace) for trace in sorted(traces)]
    commands += [
        ("why", "latest"),
        ("why", "latest", "--intent", "dispatch_job"),
        ("why", "stats"),
        ("why", "drift"),
        ("why", "drift", "--window", "1m"),
        ("audit", "report"),
    ]
    return commands


def test_no_output_shows_a_secret(secret_home: SecretHome) -> None:
    for command in read_paths(secret_home):
        for extra in ((), ("--json",)):
            result = invoke(secret_home.path, *command, *extra)
            assert_no_secret(result.stdout + result.stderr, " ".join((*command, *extra)))


def test_the_secrets_are_in_the_log_and_reach_the_decisions(secret_home: SecretHome) -> None:
    """The test above is only worth something if the secrets are there to be leaked."""
    raw = b"".join(p.read_bytes() for p in (secret_home.path / "events").glob("*.jsonl"))
    for secret in SECRETS:
        assert secret.encode() in raw
    made = [json.loads(line) for line in raw.splitlines() if b'"decision.made"' in line]
    reasons = json.dumps([m["data"]["reason"] for m in made])
    gates = json.dumps([m["data"]["candidates"] for m in made])
    assert SECRET_BEARER in gates  # sim-2's quarantine reason, in its G0 gate result
    assert SECRET_HEX in reasons  # the escaping path, in the ABORT reason


def test_why_job_hides_the_secrets_and_keeps_the_rest(secret_home: SecretHome) -> None:
    answer = as_json(secret_home.path, "why", "job", secret_home.secret_job)
    assert answer["job_id"] == secret_home.secret_job
    assert answer["job"]["job_id"] == secret_home.secret_job
    assert answer["job"]["status"] == "completed"
    payload = answer["job"]["payload"]
    assert payload["monkey_id"] == "monkey-42"
    assert payload["prompt"] == "summarise the release notes"
    assert payload["constraints"] == {}
    assert payload["api_key"] == REDACTED
    assert payload["headers"] == {"Authorization": REDACTED, "Accept": "text/plain"}
    assert payload["note"] == f"deploy with token {REDACTED}"
    decision = answer["decisions"][0]
    assert decision["chosen"]["action_key"] == "ROUTE:sim-1"
    g0 = {
        g["gate"]: g["reason"]
        for alternative in decision["alternatives"]
        for g in alternative["gates"]
        if alternative["action_key"] == "ROUTE:sim-2"
    }["G0_barrier"]
    assert g0.startswith("worker sim-2 is quarantined: pasted a header by mistake")
    assert REDACTED in g0
    text = invoke(secret_home.path, "why", "job", secret_home.secret_job).stdout
    assert secret_home.secret_job in text
    assert "monkey-42" in text
    assert REDACTED in text


def test_the_escaping_path_shows_without_its_token(secret_home: SecretHome) -> None:
    answer = as_json(secret_home.path, "why", "job", secret_home.escaping_job)
    assert answer["job"]["payload"] == {"path": f"../keys/{REDACTED}.pem"}
    node = answer["decisions"][0]
    assert node["chosen"]["type"] == "ABORT"
    assert node["result"]["error"]["code"] == "all_gated"
    assert f"../keys/{REDACTED}.pem" in node["reason"]


@pytest.mark.parametrize("workspace_given", [True, False])
def test_paths_inside_the_workspace_show_relative(
    secret_home: SecretHome, workspace_given: bool
) -> None:
    """With --workspace, or the workspace the engine recorded when it dispatched."""
    option = ("--workspace", str(secret_home.workspace)) if workspace_given else ()
    result = invoke(secret_home.path, "why", "job", secret_home.path_job, *option, "--json")
    assert str(secret_home.workspace) not in result.stdout
    answer = json.loads(result.stdout)
    assert answer["job"]["payload"] == {"target": "sub/a.txt", "monkey_id": "monkey-43"}
    node = answer["decisions"][0]
    g3 = [g for c in node["alternatives"] for g in c["gates"] if g["gate"] == "G3_path"]
    assert {g["reason"] for g in g3} == {"target: absolute path 'sub/a.txt'"}
    text = invoke(secret_home.path, "why", "trace", node["trace_id"], *option).stdout
    assert "absolute path 'sub/a.txt'" in text
    assert str(secret_home.workspace) not in text


def test_a_path_outside_the_given_workspace_keeps_only_its_name(
    secret_home: SecretHome, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = invoke(
        secret_home.path,
        "why",
        "job",
        secret_home.path_job,
        "--workspace",
        str(elsewhere),
        "--json",
    )
    assert str(secret_home.workspace) not in result.stdout
    payload = json.loads(result.stdout)["job"]["payload"]
    assert payload["target"] == "[outside workspace]/a.txt"


def test_the_audit_report_hides_the_quarantine_credential(secret_home: SecretHome) -> None:
    report = as_json(secret_home.path, "audit", "report")
    reasons = [q["reason"] for q in report["quarantines"] if q["topic"] == "worker.quarantined"]
    assert len(reasons) == 1
    assert reasons[0].startswith("pasted a header by mistake")
    assert REDACTED in reasons[0]
    blocked = {(g["gate"], g["reason"]) for g in report["gates_blocked"]}
    assert any(gate == "G0_barrier" and REDACTED in reason for gate, reason in blocked)
    assert any(gate == "G3_path" and f"{REDACTED}.pem" in reason for gate, reason in blocked)


def test_the_audit_report_shows_workspace_paths_relative(secret_home: SecretHome) -> None:
    for extra in ((), ("--json",)):
        output = invoke(secret_home.path, "audit", "report", *extra).stdout
        assert "absolute path 'sub/a.txt'" in output
        assert str(secret_home.workspace) not in output


@pytest.mark.parametrize("output", ["table", "json", "csv"])
def test_sql_and_job_show_hide_the_secrets(secret_home: SecretHome, output: str) -> None:
    """DESIGN: secrets are redacted in every read path, ad-hoc SQL and `job show` included."""
    queries = (
        "SELECT data FROM events WHERE topic = 'job.created'",
        "SELECT data->'payload'->>'api_key', data->>'kind' FROM events",
        "SELECT reason, candidates FROM decisions",
    )
    for query in queries:
        shown = invoke(secret_home.path, "sql", query, "--format", output).stdout
        assert_no_secret(shown, f"sql {query!r} as {output}")
        assert REDACTED in shown
    shown = invoke(secret_home.path, "job", "show", secret_home.secret_job, "--json").stdout
    assert_no_secret(shown, "job show")
    assert json.loads(shown)["payload"]["monkey_id"]
