"""Who looked at raw values: every ``--reveal`` is a fact in the log, recorded before it shows.

Outputs redact secrets by default; ``--reveal`` shows the log's values as they are, and an
auditor must be able to see afterwards who asked for that, with which command and when.
Beside them, the facts about the log itself: a rotated API token, and a position that no
event holds (``log.gap``, in a log exported from PostgreSQL).
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from events import Event

#: The stream of every ``log.gap`` line (no aggregate has it); each gap's version is its
#: position, so the (stream, version) pairs stay unique.
GAP_STREAM = UUID("ffffffff-ffff-ffff-ffff-ffffffffffff")


class Revealed(Event, frozen=True, kw_only=True):
    """``user`` (the OS user) ran ``command`` with ``arguments`` and saw raw values."""

    TOPIC: ClassVar[str] = "audit.revealed"

    user: str
    command: str
    arguments: tuple[str, ...] = ()


class ApiTokenRotated(Event, frozen=True, kw_only=True):
    """The home's API token was replaced (``token rotate``). The log keeps who did it and the
    new token's fingerprint (the first 16 hex digits of its sha256), never the token."""

    TOPIC: ClassVar[str] = "api.token_rotated"

    user: str
    fingerprint: str


class LogGap(Event, frozen=True, kw_only=True):
    """No event holds this position. PostgreSQL's notification ids may skip numbers (a save
    refused by the version check has drawn its ids); the JSONL ledger's positions may not,
    so the exporter fills each skipped id with one of these (sheratan/postgres/exporter.py).
    Every fold passes over it; an import into PostgreSQL turns it back into a skipped id."""

    TOPIC: ClassVar[str] = "log.gap"


AUDIT_EVENTS = (Revealed, ApiTokenRotated, LogGap)
