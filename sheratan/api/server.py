"""``sheratan serve``: the API on uvicorn, bound to loopback unless told otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import uvicorn

from sheratan.api.app import create_app
from sheratan.api.tokens import read_token
from sheratan.decide.policy import GatePolicy
from sheratan.home import Home
from sheratan.limits import Limits


def serve(
    home: Home,
    *,
    host: str,
    port: int,
    cors_origins: Sequence[str] = (),
    limits: Limits | None = None,
    gates: GatePolicy | None = None,
    workspace: Path | None = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn stops gracefully on both)."""
    read_token(home.path)  # no token, no server: refuse at once, with the way out
    uvicorn.run(
        create_app(
            home, cors_origins=cors_origins, limits=limits, gates=gates, workspace=workspace
        ),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
