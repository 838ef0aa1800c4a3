"""Showing values: redacted by default, raw only through a recorded ``--reveal``.

Every command that prints payloads or results passes them through ``shown``; with
``--reveal`` the command first calls ``record_reveal``, which appends an ``audit.revealed``
event (the OS user, the command and its arguments, the time) and only then lets raw values
out. A reveal that cannot be recorded raises, so nothing raw is printed.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from sheratan.analytics.redact import redact
from sheratan.app import Sheratan


def os_user() -> str:
    """Who runs this process, as the OS knows them (the uid when no name is known)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def record_reveal(app: Sheratan, command: str, params: Mapping[str, Any]) -> None:
    """Record that the current OS user reveals raw values with ``command`` and ``params``."""
    arguments = tuple(
        f"--{name.replace('_', '-')}={value}"
        for name, value in params.items()
        if value not in (None, False, ())
    )
    app.record_reveal(os_user(), command, arguments)


def shown(value: Any, *, reveal: bool, workspace: Path | None = None) -> Any:
    """``value`` as plain JSON: redacted, or as it is when the reveal was recorded."""
    if reveal:
        return msgspec.to_builtins(value)
    return redact(value, workspace=workspace)


def redacted_line(raw: bytes) -> dict[str, Any]:
    """A log line with its ``data`` (and ``raw`` state) redacted, every other key as stored.

    ``events tail --json`` and the API's event stream show the same redacted view."""
    line = msgspec.json.decode(raw)
    for key in ("data", "raw"):
        if key in line:
            line[key] = redact(line[key])
    return line
