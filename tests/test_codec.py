"""The msgspec codec: short topics, plain JSON values, upcasting of old versions on read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID, uuid4

import msgspec
import pytest

from events import Event
from events.jobs import JobDispatched
from sheratan.codec import EventCodec, MsgspecMapper, UnknownTopicError


class PriceV1(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "test.price"

    amount: Decimal


def _split_currency(fields: dict[str, Any]) -> None:
    fields["currency"] = "EUR"


def _rename_amount(fields: dict[str, Any]) -> None:
    fields["net"] = fields.pop("amount")


class PriceV3(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "test.price"
    VERSION: ClassVar[int] = 3
    UPCASTERS: ClassVar[dict[int, Any]] = {1: _split_currency, 2: _rename_amount}

    net: Decimal
    currency: str


STAMP = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_data_is_plain_json_without_stream_fields() -> None:
    job = uuid4()
    event = JobDispatched(
        originator_id=job,
        originator_version=3,
        timestamp=STAMP,
        worker="w",
        attempt=1,
        lease_until=STAMP,
        decision_id=None,
    )
    stored = MsgspecMapper().to_stored_event(event)
    assert stored.topic == "job.dispatched"
    assert (stored.originator_id, stored.originator_version) == (job, 3)
    data = msgspec.json.decode(stored.state)
    assert data == {
        "timestamp": "2026-01-02T03:04:05.678901Z",
        "worker": "w",
        "attempt": 1,
        "lease_until": "2026-01-02T03:04:05.678901Z",
        "decision_id": None,
        "deadline": None,
        "lease_term_s": None,
    }
    assert MsgspecMapper().to_domain_event(stored) == event


def test_old_versions_are_upcast_on_read_and_new_ones_carry_their_version() -> None:
    stream = uuid4()
    old_codec = EventCodec({"test.price": PriceV1})
    topic, old_data = old_codec.encode(
        PriceV1(originator_id=stream, originator_version=1, timestamp=STAMP, amount=Decimal("9.50"))
    )
    assert b'"amount":"9.50"' in old_data and b"_v" not in old_data
    new_codec = EventCodec({"test.price": PriceV3})
    upcast = new_codec.decode(topic, old_data, stream, 1)
    assert upcast == PriceV3(
        originator_id=stream,
        originator_version=1,
        timestamp=STAMP,
        net=Decimal("9.50"),
        currency="EUR",
    )
    _, new_data = new_codec.encode(upcast)
    assert new_data.startswith(b'{"_v":3,')
    assert new_codec.decode(topic, new_data, stream, 1) == upcast


def test_encoding_refuses_events_without_a_stream_or_outside_the_catalogue() -> None:
    codec = EventCodec({"test.price": PriceV1})
    with pytest.raises(ValueError, match="originator"):
        codec.encode(PriceV1(timestamp=STAMP, amount=Decimal(1)))
    with pytest.raises(TypeError, match="catalogue"):
        codec.encode(
            PriceV3(
                originator_id=uuid4(),
                originator_version=1,
                timestamp=STAMP,
                net=Decimal(1),
                currency="x",
            )
        )
    with pytest.raises(UnknownTopicError):
        codec.decode("no.such.topic", b"{}", UUID(int=1), 1)
