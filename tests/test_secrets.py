"""Secrets never shown unless asked for: every command, JSON and text, and SQL over the views.

One home is made through the CLI with small segments: a job whose payload holds one secret
of each kind is created first (its events end up in a sealed segment, so in the Parquet
cache), plain jobs roll the log over, and a second such job stays in the active segment's
tail. Every job is dispatched. Then every command is read, and SQL is asked to transform
the payload every way a user could, and must still not give a secret back: the views hold
the redacted payload. ``--reveal`` shows the values and leaves an ``audit.revealed`` event
that was in the log before the raw values were read.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import sheratan.store.ledger as ledger_module
from tests.cli_helpers import as_json, invoke
from tests.store_helpers import decoded_lines, segments

ROOT = Path(__file__).resolve().parent.parent
PEM_BODY = "MIIEowIBAAKCAQEAz9Tq8Hkq0mFh3Lr5Wm2Yx7Vb"
#: One secret per pattern, each under an innocent key unless the key is the evidence.
SECRETS = {
    "aws": "AKIAZ7Q4T2M9XW3VB6PN",
    "github": "ghp_R4nd0mT0k3nAbCdEfGhIjKlMnOpQrStUv1234",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "slack": "xoxb-2741983650-8812047723-QwErTyUiOpAsDf",
    "stripe": "sk_live_51HqLmZ7c2VbN8xR4tPq",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.Zm9vYmFyYmF6cXV4",
    "pem": PEM_BODY,
    "bearer": "tok-7Hq2Lp9Xw4Zr",
    "password": "hunter2-Qv8",
    "api_key": "kq93-Pz1x-Lw7m",
}
PAYLOAD = {
    "prompt": "summarise the release notes",
    "aws_note": f"deploy as {SECRETS['aws']} today",
    "gh": SECRETS["github"],
    "gh_fine": f"clone with {SECRETS['github_pat']}",
    "chat": SECRETS["slack"],
    "billing": f"charge via {SECRETS['stripe']}",
    "session": SECRETS["jwt"],
    "cert": f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\nq3\n-----END RSA PRIVATE KEY-----\n",
    "headers": {"Authorization": f"Bearer {SECRETS['bearer']}", "Accept": "text/plain"},
    "password": SECRETS["password"],
    "api_key": SECRETS["api_key"],
    "monkey_id": "monkey-42",
}
PROFILE = json.dumps(
    {"success": 1.0, "latency_ms": {"p50": 100, "p95": 300}, "cost": 1.0, "quality": 0.9}
)
PLAIN_JOBS = 40


def _forms(secret: str) -> set[str]:
    """A secret and what SQL string functions make of it."""
    return {secret, secret[::-1], secret.upper(), secret.lower(), secret.replace("-", "")}


FORBIDDEN = {form for secret in SECRETS.values() for form in _forms(secret)}


@dataclass(frozen=True)
class SecretHome:
    path: Path
    sealed_job: str
    tail_job: str


@pytest.fixture(scope="module")
def secret_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretHome]:
    home = tmp_path_factory.mktemp("secrets") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 16 * 1024)
        invoke(home, "init")
        invoke(
            home,
            *("worker", "register", "sim-1", "--kinds", "llm_call,noop"),
            *("--transport", "simulated", "--profile", PROFILE),
        )
        payload = json.dumps(PAYLOAD)
        sealed = as_json(home, "job", "create", "llm_call", "--payload", payload)["id"]
        for _ in range(PLAIN_JOBS):
            invoke(home, "job", "create", "noop", "--payload", '{"n": 1}')
        dispatch = ("dispatch", "--until-idle", "--workspace", str(home.parent))
        assert as_json(home, *dispatch)["jobs"] == PLAIN_JOBS + 1
        patch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 64 * 1024 * 1024)  # the tail stays
        tail = as_json(home, "job", "create", "llm_call", "--payload", payload)["id"]
        assert as_json(home, *dispatch)["jobs"] == 1
    yield SecretHome(home, sealed, tail)


def assert_no_secret(text: str, what: str) -> None:
    assert text.strip(), f"{what} printed nothing"
    for form in FORBIDDEN:
        assert form not in text, f"{what} shows {form!r}"


def test_the_secrets_are_in_the_log_in_a_sealed_segment_and_in_the_tail(
    secret_home: SecretHome,
) -> None:
    """The tests below are only worth something if the secrets are there to leak."""
    files = segments(secret_home.path)
    assert len(files) >= 3
    for job, where in ((secret_home.sealed_job, files[:-1]), (secret_home.tail_job, files[-1:])):
        raw = b"".join(f.read_bytes() for f in where)
        assert job.encode() in raw
        for secret in SECRETS.values():
            assert secret.encode() in raw


def _commands(h: SecretHome) -> list[tuple[str, ...]]:
    traces = {
        trace
        for job in (h.sealed_job, h.tail_job)
        for trace in as_json(h.path, "why", "job", job, "--reveal")["traces"]
    }
    assert len(traces) == 2
    commands: list[tuple[str, ...]] = [
        ("events", "tail", "-n", "100000"),
        ("job", "list"),
        ("worker", "list"),
        ("why", "latest"),
        ("why", "stats"),
        ("audit", "report"),
        ("sql", "SELECT * FROM events"),
        ("sql", "SELECT * FROM decisions"),
    ]
    for job in (h.sealed_job, h.tail_job):
        commands += [("job", "show", job), ("why", "job", job)]
    commands += [("why", "trace", trace) for trace in sorted(traces)]
    return commands


def test_no_command_shows_a_secret(secret_home: SecretHome) -> None:
    for command in _commands(secret_home):
        for extra in ((), ("--json",)):
            result = invoke(secret_home.path, *command, *extra)
            assert_no_secret(result.stdout + result.stderr, " ".join((*command, *extra)))


def test_the_redacted_payload_keeps_what_is_not_secret(secret_home: SecretHome) -> None:
    for job in (secret_home.sealed_job, secret_home.tail_job):
        payload = as_json(secret_home.path, "job", "show", job)["payload"]
        assert payload["monkey_id"] == "monkey-42"
        assert payload["prompt"] == PAYLOAD["prompt"]
        assert payload["password"] == payload["api_key"] == "[redacted]"
        assert payload["headers"] == {"Authorization": "[redacted]", "Accept": "text/plain"}
        assert payload["aws_note"] == "deploy as [redacted] today"
        assert payload["cert"] == "[redacted]\n"
        listed = {j["id"]: j for j in as_json(secret_home.path, "job", "list")}
        assert listed[job]["payload"] == payload


#: SQL that transforms the payload every way we could think of; the views hold none of it.
ATTACKS = (
    "SELECT upper(data::VARCHAR) FROM events",
    "SELECT lower(data::VARCHAR) FROM events",
    "SELECT reverse(data::VARCHAR) FROM events",
    "SELECT replace(data::VARCHAR, '-', '') FROM events",
    "SELECT replace(data->'payload'->>'password', 'hunter', 'HUNTER') AS p FROM events",
    "SELECT substr(data->'payload'->>'gh', 2) AS s FROM events",
    "SELECT string_agg(data::VARCHAR, ',') FROM events",
    "SELECT string_agg(reverse(data->'payload'->>'api_key'), '|') AS k FROM events",
    r"SELECT regexp_extract(data::VARCHAR, '(AKIA[A-Z0-9]{16})', 1) AS a FROM events",
    r"SELECT regexp_extract(data::VARCHAR, 'xox[a-z]-[A-Za-z0-9-]+') AS s FROM events",
    r"SELECT regexp_extract(data::VARCHAR, 'ghp_\w+') AS g FROM events",
    r"SELECT regexp_extract(data::VARCHAR, 'sk_live_\w+') AS s FROM events",
    r"SELECT regexp_extract(data::VARCHAR, 'eyJ[\w.-]+') AS j FROM events",
    r"SELECT regexp_extract(data::VARCHAR, 'MIIE\w+') AS p FROM events",
    r"SELECT regexp_extract(data::VARCHAR, 'Bearer ([^\"]+)', 1) AS b FROM events",
    "SELECT reverse(reason), reverse(candidates::VARCHAR) FROM decisions",
)


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_sql_function_brings_a_secret_back(secret_home: SecretHome, attack: str) -> None:
    for extra in ((), ("--json",)):
        result = invoke(secret_home.path, "sql", attack, *extra)
        assert result.stdout.strip()
        for form in FORBIDDEN:
            assert form not in result.stdout, f"{attack} shows {form!r}"


@pytest.mark.parametrize(
    "comparison",
    [
        f"data->'payload'->>'password' = '{SECRETS['password']}'",
        f"md5(data->'payload'->>'api_key') = md5('{SECRETS['api_key']}')",
        f"contains(data::VARCHAR, '{SECRETS['aws']}')",
        f"data::VARCHAR LIKE '%{SECRETS['stripe']}%'",
        f"starts_with(data->'payload'->>'session', '{SECRETS['jwt'][:20]}')",
    ],
)
def test_comparisons_learn_nothing(secret_home: SecretHome, comparison: str) -> None:
    query = f"SELECT count(*) AS n FROM events WHERE topic = 'job.created' AND {comparison}"
    assert as_json(secret_home.path, "sql", query) == [{"n": 0}]
    # with --reveal the same comparison holds for both jobs: the test can tell
    assert as_json(secret_home.path, "sql", query, "--reveal") == [{"n": 2}]


def _reveals(home: Path) -> list[dict[str, object]]:
    return [line for line in decoded_lines(home) if line["topic"] == "audit.revealed"]


@pytest.mark.parametrize(
    "command",
    [
        ("job", "show", "{job}"),
        ("job", "list"),
        ("events", "tail", "-n", "100000"),
        ("why", "job", "{job}"),
        ("audit", "report"),
        ("sql", "SELECT data->'payload' AS payload FROM events WHERE topic = 'job.created'"),
    ],
)
def test_reveal_shows_the_values_and_is_recorded(
    secret_home: SecretHome, command: tuple[str, ...]
) -> None:
    args = [a.format(job=secret_home.tail_job) for a in command]
    before = len(_reveals(secret_home.path))
    shown = invoke(secret_home.path, *args, "--reveal", "--json").stdout
    if command[0] != "audit":  # the report shows counts, not payloads
        for secret in SECRETS.values():
            assert json.dumps(secret)[1:-1] in shown, f"{args} hides {secret!r}"
    reveals = _reveals(secret_home.path)
    assert len(reveals) == before + 1
    data = reveals[-1]["data"]
    assert isinstance(data, dict)
    assert data["user"] == getpass.getuser()
    expected = "cli sql" if command[0] == "sql" else f"cli {command[0]} {command[1]}"
    assert data["command"] == expected
    arguments = data["arguments"]
    assert isinstance(arguments, list)
    assert "--reveal=True" in arguments
    if command[0] == "sql":
        assert f"--statement={command[1]}" in arguments


def test_the_reveal_is_in_the_log_before_the_raw_values_are_read(
    secret_home: SecretHome,
) -> None:
    """The last event a revealing command reads is its own reveal."""
    last = as_json(secret_home.path, "events", "tail", "-n", "1", "--reveal")
    assert last["topic"] == "audit.revealed"
    newest = "SELECT topic, data->>'command' AS command FROM events ORDER BY pos DESC LIMIT 1"
    assert as_json(secret_home.path, "sql", newest, "--reveal") == [
        {"topic": "audit.revealed", "command": "cli sql"}
    ]


def test_events_tail_follow_redacts(secret_home: SecretHome) -> None:
    """--follow prints the same redacted lines as it goes (a real process, killed after)."""
    process = subprocess.Popen(
        [
            *(sys.executable, str(ROOT / "cli.py"), "events", "tail", "--follow", "--json"),
            *("-n", "100000", "--home", str(secret_home.path)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        seen: list[str] = []
        for line in process.stdout:
            seen.append(line)
            if secret_home.tail_job in line and '"job.created"' in line:
                break
    finally:
        process.kill()
        process.wait()
    created = json.loads(seen[-1])
    assert created["data"]["payload"]["password"] == "[redacted]"
    assert_no_secret("".join(seen), "events tail --follow --json")
