"""schemathesis against a real server's /schema/openapi.json, with the token and every check
(issue 10, acceptance): no server error, no response that breaks the schema, no undocumented
status code. Bounded: 20 examples an operation, deterministic generation (~40 s).

Scope: every route in the document. tests/data/schemathesis.toml bounds the two that would
hold a response open (the event stream gets ``until``, a worker's claim ``wait=0``) and
names the inputs that fit the document but that only the service can check (400)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from api_helpers import serving
from process_helpers import WAIT_S

from sheratan.home import init_home

CONFIG = Path(__file__).parent / "data" / "schemathesis.toml"
#: Examples per operation and phase: enough to reach every route's errors, quick to run.
MAX_EXAMPLES = 20
#: The routes this test holds to the document (see the module's docstring).
SCOPE = r"^/"


def test_the_openapi_document_holds_for_every_route(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    roomy = tmp_path / "limits.json"  # the limiter is tested on its own; here it would only
    roomy.write_text(json.dumps({"writes": {"per_second": 1e6, "burst": 1_000_000}}))  # slow
    with serving(home, "--limits", str(roomy)) as server:
        run = subprocess.run(
            [
                sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
                "--config-file", str(CONFIG), "run", f"{server.url}/schema/openapi.json",
                "--header", f"Authorization: Bearer {server.token}",
                "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
                "--include-path-regex", SCOPE,
                "--generation-deterministic", "--no-color",
            ],
            capture_output=True, text=True, timeout=WAIT_S * 5, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"Selected: \d+/\d+", run.stdout), run.stdout[-3000:]
