"""The msgspec mapper: Sheratan events <-> stored events, with native JSON types and upcasting.

``data`` holds the event's own fields as plain JSON: UUIDs, datetimes (UTC, ``Z``) and
decimals are strings, so DuckDB and humans read them directly. The topic is the event's
stable short name (``job.dispatched``), never a Python path. A class at ``VERSION > 1``
writes ``"_v": VERSION`` first in ``data``; reading older data runs the class's upcasters.
The library's cipher and compressor still apply when configured (the store then keeps the
bytes in ``raw``).
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)

from events import Event
from events.catalogue import EVENT_TYPES

_VERSION_KEY = b'"_v":'
#: Where the encoded ``originator_version`` starts: after ``{"originator_id":"<uuid>",``.
_VERSION_AT = len(b'{"originator_id":"') + 36 + len(b'",')


class UnknownTopicError(MapperDeserialisationError):
    """A stored event's topic names no class in the catalogue."""


class EventCodec:
    """Encodes an event's own fields as JSON bytes and decodes them back, by topic."""

    def __init__(self, event_types: dict[str, type[Event]] = EVENT_TYPES) -> None:
        self.event_types = event_types
        self._encoder = msgspec.json.Encoder()
        self._decoders = {topic: msgspec.json.Decoder(cls) for topic, cls in event_types.items()}
        #: The decode of each topic whose class is at VERSION 1 (no upcasting to consider).
        self._direct = {
            topic: self._decoders[topic].decode
            for topic, cls in event_types.items()
            if cls.VERSION == 1
        }
        #: What ``data`` starts with, per class of the catalogue (only they are encoded).
        self._openings = {
            cls: b"{" if cls.VERSION == 1 else b'{"_v":%d,' % cls.VERSION
            for cls in event_types.values()
        }

    def encode(self, event: Event) -> tuple[str, bytes]:
        """The topic and ``data`` bytes of an event (without its stream id and version).

        Every save encodes every event here (the dispatcher's rounds too), so it costs one
        msgspec call and one short scan: the stream id is always 36 characters."""
        cls = type(event)
        opening = self._openings.get(cls)
        if opening is None:
            msg = f"{cls.__name__} is not in the event catalogue"
            raise TypeError(msg)
        if not event.originator_id.int or event.originator_version < 1:
            msg = f"{cls.__name__} needs an originator_id and an originator_version >= 1"
            raise ValueError(msg)
        full = self._encoder.encode(event)
        # full is {"originator_id":"<36 characters>","originator_version":<n>,<own fields>}
        cut = full.index(b",", _VERSION_AT)
        return cls.TOPIC, opening + full[cut + 1 :]

    def decode(self, topic: str, data: bytes, stream: UUID, version: int) -> Event:
        """The event of ``topic`` whose ``data`` is given, upcast to its class's version."""
        direct = self._direct.get(topic)
        if direct is not None and _VERSION_KEY not in data[:8]:
            event = direct(data)
        else:
            cls = self.event_types.get(topic)
            if cls is None:
                msg = f"no event class for topic '{topic}'"
                raise UnknownTopicError(msg)
            event = self._upcast(cls, msgspec.json.decode(data))
        msgspec.structs.force_setattr(event, "originator_id", stream)
        msgspec.structs.force_setattr(event, "originator_version", version)
        return event

    @staticmethod
    def _upcast(cls: type[Event], fields: dict[str, Any]) -> Event:
        version = fields.pop("_v", 1)
        while version < cls.VERSION:
            cls.UPCASTERS[version](fields)
            version += 1
        return msgspec.convert(fields, cls)


class MsgspecMapper(Mapper[UUID]):
    """An eventsourcing Mapper for the event catalogue (select with MAPPER_TOPIC)."""

    def __init__(
        self,
        transcoder: Transcoder | None = None,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
    ) -> None:
        # The library's transcoder is unused: msgspec encodes our Structs natively.
        super().__init__(cast(Transcoder, transcoder), compressor=compressor, cipher=cipher)
        self.codec = EventCodec()

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        event: Event = domain_event  # type: ignore[assignment]
        topic, state = self.codec.encode(event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(event.originator_id, event.originator_version, topic, state)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state = stored_event.state
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            stream = stored_event.originator_id
            if type(stream) is not UUID:
                stream = UUID(str(stream))
            return self.codec.decode(
                stored_event.topic, state, stream, stored_event.originator_version
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
            msg = (
                f"cannot decode {stored_event.topic} of {stored_event.originator_id} "
                f"version {stored_event.originator_version}: {error}"
            )
            raise MapperDeserialisationError(msg) from error
