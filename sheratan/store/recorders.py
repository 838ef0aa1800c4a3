"""eventsourcing recorders over a Ledger: aggregate, application, tracking and process."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ListenNotifySubscription,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.store.lines import Trk, state_of, text_line_decoder, uuid_line_decoder
from sheratan.store.wake import Waker


class _UUIDNote(msgspec.Struct):
    """Only what a Notification needs: ts, end, prev and hash are skipped, not decoded."""

    pos: int
    stream: UUID
    ver: int
    topic: str
    data: msgspec.Raw
    raw: bytes | None = None


class _TextNote(msgspec.Struct):
    pos: int
    stream: str
    ver: int
    topic: str
    data: msgspec.Raw
    raw: bytes | None = None


_uuid_note = msgspec.json.Decoder(_UUIDNote)
_text_note = msgspec.json.Decoder(_TextNote)
_uuid_notes = msgspec.json.Decoder(list[_UUIDNote])
_text_notes = msgspec.json.Decoder(list[_TextNote])
_new = object.__new__


def _notification(note: Any) -> Notification:
    # Notification is a frozen dataclass; filling its __dict__ at once costs a third of
    # its __init__, and reading every notification of a log is a hot path.
    notification = _new(Notification)
    notification.__dict__.update(
        originator_id=note.stream,
        originator_version=note.ver,
        topic=note.topic,
        state=bytes(note.data) if note.raw is None else note.raw,
        id=note.pos,
    )
    return notification


class LineDecoder:
    """Decodes ledger lines, giving stream ids back as UUIDs or as text."""

    def __init__(self, uuid_ids: bool) -> None:
        self.uuid_ids = uuid_ids

    def notification(self, line: bytes) -> Notification:
        """A Notification straight from a line, decoding only the fields it carries."""
        note: Any = None
        if self.uuid_ids:
            # A stream whose id is not a UUID comes back as text.
            with contextlib.suppress(msgspec.ValidationError):
                note = _uuid_note.decode(line)
        if note is None:
            note = _text_note.decode(line)
        return _notification(note)

    def notifications(self, block: bytes, first: int) -> list[Notification]:
        """The Notifications of a block of complete lines (``Ledger.blocks``) whose first
        line is at position ``first``, decoded in one msgspec call (the lines joined as one
        JSON array: a line never holds a newline). Every line must be at its position."""
        array = b"[" + block[:-1].replace(b"\n", b",") + b"]"
        notes: list[Any] | None = None
        if self.uuid_ids:
            # A stream whose id is not a UUID: line by line, each as UUID or text.
            with contextlib.suppress(msgspec.ValidationError):
                notes = _uuid_notes.decode(array)
            if notes is None:
                return self._checked(
                    [self.notification(line) for line in block.splitlines()], first
                )
        else:
            notes = _text_notes.decode(array)
        return self._checked([_notification(note) for note in notes], first)

    @staticmethod
    def _checked(found: list[Notification], first: int) -> list[Notification]:
        for offset, notification in enumerate(found):
            if notification.id != first + offset:
                msg = (
                    f"the ledger changed under the reader: the line read for position "
                    f"{first + offset} is at {notification.id}"
                )
                raise CorruptLogError(msg)
        return found

    def decode(self, line: bytes) -> Any:
        if self.uuid_ids:
            try:
                return uuid_line_decoder.decode(line)
            except msgspec.ValidationError:
                pass  # a stream whose id is not a UUID: give it back as text
        return text_line_decoder.decode(line)


class JsonlRecorder:
    """Shared state of every recorder: the ledger and how ids come back."""

    def __init__(self, ledger: Ledger, *, uuid_ids: bool = True) -> None:
        self.ledger = ledger
        self.lines = LineDecoder(uuid_ids)


class JsonlAggregateRecorder(JsonlRecorder, AggregateRecorder):
    """Stores and selects stored events by stream; notification ids are not returned."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._insert(stored_events, **kwargs)
        return None

    def _insert(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        tracking: Tracking | None = kwargs.get("tracking")
        if not stored_events and tracking is None:
            return []
        trk = Trk(tracking.application_name, tracking.notification_id) if tracking else None
        return self.ledger.append(stored_events, trk)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        versions = self.ledger.stream(str(originator_id))
        if versions is None:
            return []
        lo = 0 if gt is None else bisect.bisect_right(versions.versions, gt)
        hi = len(versions.versions) if lte is None else bisect.bisect_right(versions.versions, lte)
        positions = list(versions.positions[lo:hi])
        if desc:
            positions.reverse()
        if limit is not None:
            positions = positions[:limit]
        ordered = sorted(positions)
        by_position = dict(zip(ordered, self.ledger.lines_at(ordered), strict=True))
        events = []
        for position in positions:
            line = self.lines.decode(by_position[position])
            events.append(StoredEvent(line.stream, line.ver, line.topic, state_of(line)))
        return events


class JsonlApplicationRecorder(JsonlAggregateRecorder, ApplicationRecorder):
    """Adds the application sequence: gapless notification ids, reads from a position."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert(stored_events, **kwargs)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        first = 1 if start is None else (start if inclusive_of_start else start + 1)
        first = max(first, 1)
        last = self.ledger.last_position() if stop is None else stop
        if not topics:
            last = min(last, first + limit - 1)
        markers = [f'"topic":{msgspec.json.encode(t).decode()},'.encode() for t in topics]
        wanted = set(topics)
        results: list[Notification] = []
        if not topics:
            for _, position, block in self.ledger.blocks(first, last):
                results.extend(self.lines.notifications(block, position))
            return results[:limit]
        decode = self.lines.notification
        for _, raw in self.ledger.lines(first, last):
            if markers and not any(m in raw for m in markers):
                continue
            notification = decode(raw)
            if wanted and notification.topic not in wanted:
                continue
            results.append(notification)
            if len(results) >= limit:
                break
        return results

    def max_notification_id(self) -> int | None:
        return self.ledger.last_position() or None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return JsonlSubscription(self, gt=gt, topics=topics)


class JsonlSubscription(ListenNotifySubscription[JsonlApplicationRecorder]):
    """Follows the log: its pull thread sleeps in a ``Waker`` until any process commits."""

    def __init__(
        self, recorder: JsonlApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        # Registered before the pull thread starts (in the base class) and reads the log, so
        # no commit after that first read goes unnoticed.
        self._waker = Waker(recorder.ledger)
        super().__init__(recorder=recorder, gt=gt, topics=topics)

    def stop(self) -> None:
        super().stop()
        self._waker.wake()

    def _loop_on_pull(self) -> None:
        try:
            self._pull()
            while not self._has_been_stopped:
                self._waker.wait()
                self._pull()
        except BaseException as error:
            if self._thread_error is None:
                self._thread_error = error
            self.stop()
        finally:
            self._waker.close()


class JsonlTrackingRecorder(JsonlRecorder, TrackingRecorder):
    """Records which notification each upstream application has processed, durably."""

    def insert_tracking(self, tracking: Tracking) -> None:
        self.ledger.append([], Trk(tracking.application_name, tracking.notification_id))

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.ledger.max_tracking_id(application_name)


class JsonlProcessRecorder(JsonlTrackingRecorder, JsonlApplicationRecorder, ProcessRecorder):
    """Events and the tracking position they were derived from, committed atomically."""
