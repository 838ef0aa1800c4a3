"""The event catalogue: immutable facts with stable short topics and versions. No I/O.

Every event is a frozen msgspec Struct. ``originator_id`` (the stream) and
``originator_version`` (its version) are stored in the ledger line's ``stream`` and ``ver``
keys, not in ``data``; their defaults exist only so a codec can decode ``data`` and then set
them, and the codec refuses to encode an event that still carries them.

A class names its topic in ``TOPIC`` and its schema version in ``VERSION``; when a class's
fields change, ``VERSION`` goes up and ``UPCASTERS[v]`` turns a version-``v`` ``data`` dict
into version ``v + 1`` on read. Nothing on disk is ever rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import msgspec

NIL_ID = UUID(int=0)

Upcaster = Callable[[dict[str, Any]], None]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every Sheratan event."""

    TOPIC: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {}

    originator_id: UUID = NIL_ID
    originator_version: int = 0
    timestamp: datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def catalogue(*classes: type[Event]) -> dict[str, type[Event]]:
    """Index event classes by topic, refusing a missing or duplicate topic."""
    by_topic: dict[str, type[Event]] = {}
    for cls in classes:
        if not cls.TOPIC:
            msg = f"{cls.__name__} has no TOPIC"
            raise TypeError(msg)
        if cls.TOPIC in by_topic:
            msg = f"topic {cls.TOPIC} is used by {by_topic[cls.TOPIC].__name__} and {cls.__name__}"
            raise TypeError(msg)
        by_topic[cls.TOPIC] = cls
    return by_topic
