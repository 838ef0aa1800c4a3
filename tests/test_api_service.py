"""``sheratan serve``: a real server on 127.0.0.1; health without auth, everything else with
the home's bearer token; problem details; OpenAPI 3.1; token rotation (issue 10, 1-2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import Server, serving
from cli_helpers import as_json, invoke

from sheratan.api.tokens import fingerprint, token_path
from sheratan.home import init_home


@pytest.fixture
def server(tmp_path: Path) -> Server:
    home = tmp_path / "home"
    init_home(home)
    with serving(home) as running:
        yield running  # type: ignore[misc]


def test_health_needs_no_token_and_everything_else_does(server: Server) -> None:
    assert server.client("").get("/health").json()["status"] == "ok"
    for token in ("", "not-the-token"):
        refused = server.client(token).get("/schema/openapi.json")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json() == {
            "status": 401,
            "title": "Unauthorized",
            "detail": "a valid bearer token is required",
        }
    schema = server.client().get("/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


def test_the_token_is_random_private_and_rotates_at_once(server: Server) -> None:
    home = server.home
    assert token_path(home).stat().st_mode & 0o777 == 0o600
    old = invoke(home, "token").stdout.strip()
    assert old == server.token and len(old) >= 40
    rotated = as_json(home, "token", "rotate")
    new = server.token
    assert new != old and rotated["fingerprint"] == fingerprint(new)
    assert server.client(old).get("/schema/openapi.json").status_code == 401
    assert server.client(new).get("/schema/openapi.json").status_code == 200
    lines = invoke(home, "events", "tail", "-n", "5", "--json").stdout.splitlines()
    logged = [json.loads(line) for line in lines if "api.token_rotated" in line]
    assert logged and new not in str(logged)
    assert logged[-1]["data"]["fingerprint"] == fingerprint(new)


def test_other_homes_tokens_are_not_defaults(tmp_path: Path) -> None:
    for name in ("a", "b"):
        init_home(tmp_path / name)
    tokens = {invoke(tmp_path / name, "token").stdout.strip() for name in ("a", "b")}
    assert len(tokens) == 2
