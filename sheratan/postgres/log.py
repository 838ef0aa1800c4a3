"""The log of a PostgreSQL home, read as the embedded ledger's lines.

The views (``sheratan.views.Views``), ``job create``'s admission check and ``events tail``
read a log through three calls: ``last_position``, ``lines(first, last)`` and ``hash_at``.
``PostgresLog`` answers them from the library's notification log, so those commands run
unchanged. Positions are the library's notification ids. They increase with every commit but
may skip numbers (a save refused by the version check still takes its sequence numbers),
so a reader never assumes ``last - first + 1`` lines.

A line carries ``pos``, ``ts``, ``stream``, ``ver``, ``topic`` and ``data`` in the ledger's
key order; ``ts`` is the event's own timestamp (the library's table keeps no commit time),
and there is no hash chain here: the exporter (docs/postgres.md) writes the chained files.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import cast

import msgspec
from eventsourcing.persistence import ApplicationRecorder, Notification, ProcessRecorder

#: Notifications read per query.
BATCH = 1000


class _Stamp(msgspec.Struct):
    timestamp: str | None = None


#: An event state's own ``timestamp`` (the line's ``ts``), read without decoding the rest.
timestamp_decoder = msgspec.json.Decoder(_Stamp)
_encode = msgspec.json.encode


class PostgresLog:
    """Reads the notification log of one application recorder as ledger lines."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def lines(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        """(position, line) for every notification from ``first`` to ``last``."""
        start = max(first, 1)
        while start <= last:
            batch = self.recorder.select_notifications(start, BATCH, stop=last)
            for notification in batch:
                yield notification.id, line_of(notification)
            if len(batch) < BATCH:
                return
            start = batch[-1].id + 1

    def hash_at(self, position: int) -> str | None:
        """What identifies the event at ``position`` (its stream, version and topic), so a
        view saved from another database is not trusted; None for no event there."""
        if position < 1:
            return None
        found = self.recorder.select_notifications(position, 1, stop=position)
        if not found:
            return None
        event = found[0]
        key = f"{event.originator_id}:{event.originator_version}:{event.topic}"
        return hashlib.sha256(key.encode()).hexdigest()

    def max_tracking_id(self, application_name: str) -> int | None:
        """The last position the process ``application_name`` (``dispatcher:<name>``)
        recorded it acted on, in the same transaction as its events; None before any."""
        return cast(ProcessRecorder, self.recorder).max_tracking_id(application_name)

    def close(self) -> None:
        """Nothing to release: the application owns the connections."""


def line_of(notification: Notification) -> bytes:
    """A notification as a ledger line (no chain fields): real JSON ``data`` when the state
    is one JSON object, else ``data`` null and the bytes in base64 under ``raw``."""
    state = notification.state
    is_json, stamp = state[:1] == b"{" and b"\n" not in state, None
    if is_json:
        try:
            stamp = timestamp_decoder.decode(state).timestamp
        except msgspec.ValidationError:
            pass  # a JSON object whose "timestamp" is not a string: no ts
        except msgspec.DecodeError:
            is_json = False
    head = b'{"pos":%d,"ts":%s,"stream":%s,"ver":%d,"topic":%s,"data":' % (
        notification.id,
        _encode(stamp),
        _encode(str(notification.originator_id)),
        notification.originator_version,
        _encode(notification.topic),
    )
    if is_json:
        return head + state + b"}"
    return head + b'null,"raw":' + _encode(base64.b64encode(state).decode()) + b"}"
