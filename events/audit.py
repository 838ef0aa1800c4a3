"""Who looked at raw values: every ``--reveal`` is a fact in the log, recorded before it shows.

Outputs redact secrets by default; ``--reveal`` shows the log's values as they are, and an
auditor must be able to see afterwards who asked for that, with which command and when.
"""

from __future__ import annotations

from typing import ClassVar

from events import Event


class Revealed(Event, frozen=True, kw_only=True):
    """``user`` (the OS user) ran ``command`` with ``arguments`` and saw raw values."""

    TOPIC: ClassVar[str] = "audit.revealed"

    user: str
    command: str
    arguments: tuple[str, ...] = ()


AUDIT_EVENTS = (Revealed,)
