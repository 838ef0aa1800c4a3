"""Round-trip properties: every catalogue event through the msgspec mapper and the store;
arbitrary state bytes and JSON objects byte-exactly through the store."""

from __future__ import annotations

import base64
import enum
import json
import types
import typing
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import NIL_ID, Event
from events.catalogue import EVENT_TYPES
from sheratan.codec import MsgspecMapper
from sheratan.store.ledger import Ledger
from sheratan.store.lines import is_json_object
from sheratan.store.recorders import JsonlApplicationRecorder

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TRICKY_CHARS = '"\\\n\r\t\x00\x1f\u2028\u2029\u00e9\u4e2d\U0001f600{}[],:'
TEXT = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY_CHARS)), max_size=40
)
UTC_DATETIMES = st.datetimes(timezones=st.just(UTC))
FINITE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), INT64, FINITE_FLOATS, TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=6)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type of an event; an unknown type fails loudly, so a new
    event whose field type is not covered here breaks this test instead of going untested."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        uuid.UUID: st.uuids(),
        datetime: UTC_DATETIMES,
        str: TEXT,
        int: INT64,
        float: FINITE_FLOATS,
        bool: st.booleans(),
        Decimal: st.decimals(allow_nan=False, allow_infinity=False),
        type(None): st.none(),
        Any: JSON_VALUES,
    }
    if tp in simple:
        return simple[tp]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):  # a nested record
        fields = {f.name: strategy_for(f.type) for f in msgspec.structs.fields(tp)}
        return st.builds(tp, **fields)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if origin is typing.Annotated:  # msgspec.Meta constraints: keep the values they accept
        return strategy_for(args[0]).filter(lambda value: _accepted(value, tp))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=4).map(tuple)
    if origin is tuple:
        return st.tuples(*(strategy_for(arg) for arg in args))
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=4)
    if origin is dict and args[0] is str:
        return st.dictionaries(TEXT, strategy_for(args[1]), max_size=6)
    raise TypeError(f"no strategy for field type {tp!r}: add one to strategy_for")


def _accepted(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError:
        return False
    return True


def events_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    """Events of ``cls``, every field drawn (defaults included), with a real stream id."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in msgspec.structs.fields(cls):
        if field.name == "originator_id":
            fields[field.name] = st.uuids().filter(lambda u: u != NIL_ID)
        elif field.name == "originator_version":
            fields[field.name] = st.integers(min_value=1, max_value=2**63 - 1)
        else:
            fields[field.name] = strategy_for(field.type)
    return st.builds(cls, **fields)


ANY_EVENT = st.one_of(*(events_of(cls) for cls in EVENT_TYPES.values()))
MAPPER = MsgspecMapper()


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> JsonlApplicationRecorder:
    """One store for the module; every example uses fresh stream ids."""
    return JsonlApplicationRecorder(Ledger(tmp_path_factory.mktemp("codec-home")))


def test_every_catalogue_field_type_has_a_strategy() -> None:
    assert EVENT_TYPES
    for cls in EVENT_TYPES.values():
        for field in msgspec.structs.fields(cls):
            strategy_for(field.type)


@pytest.mark.parametrize("topic", sorted(EVENT_TYPES))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_mapper_round_trips_every_event_type(topic: str, data: st.DataObject) -> None:
    cls = EVENT_TYPES[topic]
    event = data.draw(events_of(cls))
    stored = MAPPER.to_stored_event(event)
    assert stored.topic == topic == cls.TOPIC
    assert stored.originator_id == event.originator_id
    assert stored.originator_version == event.originator_version
    assert MAPPER.to_domain_event(stored) == event
    # data is the event's own fields as plain JSON: no stream/version, UTC times with Z
    fields = msgspec.json.decode(stored.state)
    assert "originator_id" not in fields
    assert "originator_version" not in fields
    assert fields["timestamp"].endswith("Z")
    assert is_json_object(stored.state)


def _round_trip_through_store(
    recorder: JsonlApplicationRecorder, events: list[Event]
) -> list[StoredEvent]:
    stored = [MAPPER.to_stored_event(e) for e in events]
    positions = recorder.insert_events(stored)
    assert positions is not None
    assert len(positions) == len(stored)
    assert list(positions) == list(range(positions[0], positions[0] + len(stored)))
    back = recorder.select_events(events[0].originator_id)
    assert back == stored
    assert [MAPPER.to_domain_event(s) for s in back] == events
    notifications = recorder.select_notifications(start=positions[0], limit=len(stored))
    assert [n.id for n in notifications] == list(positions)
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in notifications] == [
        (s.originator_id, s.originator_version, s.topic, s.state) for s in stored
    ]
    assert [MAPPER.to_domain_event(n) for n in notifications] == events
    # on disk, data is embedded as real JSON (never base64) so DuckDB can read its fields
    for (_, line), s in zip(
        recorder.ledger.lines(positions[0], positions[-1]), stored, strict=True
    ):
        decoded = msgspec.json.decode(line)
        assert "raw" not in decoded
        assert decoded["topic"] == s.topic
        assert decoded["data"] == msgspec.json.decode(s.state)
    return stored


@pytest.mark.parametrize("topic", sorted(EVENT_TYPES))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_store_round_trips_every_event_type(
    recorder: JsonlApplicationRecorder, topic: str, data: st.DataObject
) -> None:
    event = data.draw(events_of(EVENT_TYPES[topic]))
    event = msgspec.structs.replace(event, originator_id=uuid.uuid4())
    _round_trip_through_store(recorder, [event])


@PROPERTY_SETTINGS
@given(events=st.lists(ANY_EVENT, min_size=1, max_size=6))
def test_store_round_trips_a_multi_event_save(
    recorder: JsonlApplicationRecorder, events: list[Event]
) -> None:
    stream = uuid.uuid4()
    events = [
        msgspec.structs.replace(e, originator_id=stream, originator_version=v)
        for v, e in enumerate(events, start=1)
    ]
    _round_trip_through_store(recorder, events)


# ----------------------------------------------------------- arbitrary states, byte-exact


def _lines_on_disk(home: Path) -> list[dict[str, Any]]:
    """The home's lines, read by a plain JSON parser (one that takes 1e999 in its stride)."""
    paths = sorted((home / "events").glob("*.jsonl"))
    return [json.loads(line) for path in paths for line in path.read_bytes().splitlines()]


def _check_states_round_trip(home: Path, states: list[bytes]) -> None:
    recorder = JsonlApplicationRecorder(Ledger(home))
    streams = [uuid.uuid4() for _ in states]
    for stream, state in zip(streams, states, strict=True):
        recorder.insert_events([StoredEvent(stream, 1, "test.bytes", state)])
    # in this process, and in a fresh open that rescans the file
    for rec in (recorder, JsonlApplicationRecorder(Ledger(home))):
        for stream, state in zip(streams, states, strict=True):
            [event] = rec.select_events(stream)
            assert event.state == state
        notifications = rec.select_notifications(start=1, limit=len(states) + 1)
        assert [n.state for n in notifications] == states
    # on disk: a single-line JSON object is embedded as data; anything else is base64 raw
    decoded = _lines_on_disk(home)
    assert len(decoded) == len(states)
    for line, state in zip(decoded, states, strict=True):
        if is_json_object(state):
            assert "raw" not in line
        else:
            assert line["data"] is None
            assert base64.b64decode(line["raw"]) == state


NEAR_JSON = st.one_of(
    JSON_OBJECTS.map(msgspec.json.encode),
    JSON_OBJECTS.map(lambda o: json.dumps(o).encode()),
    JSON_OBJECTS.map(lambda o: json.dumps(o, indent=1).encode()),
    st.tuples(
        JSON_OBJECTS.map(msgspec.json.encode), st.sampled_from([b" ", b"\n", b"x", b"{}"])
    ).map(lambda t: t[0] + t[1]),
    st.sampled_from(
        [b"", b"{}", b"null", b"[1]", b'{"a":1e999}', b'{"a":"\xff"}', b'{"a":"\t"}', b"{\n}", b"{"]
    ),
)


@PROPERTY_SETTINGS
@given(states=st.lists(st.one_of(st.binary(max_size=300), NEAR_JSON), min_size=1, max_size=4))
def test_arbitrary_bytes_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory, states: list[bytes]
) -> None:
    _check_states_round_trip(tmp_path_factory.mktemp("bytes-home"), states)


@PROPERTY_SETTINGS
@given(
    objects=st.lists(JSON_OBJECTS, min_size=1, max_size=4),
    style=st.sampled_from(["msgspec", "spaced", "ascii", "indented"]),
)
def test_json_object_states_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory, objects: list[dict[str, Any]], style: str
) -> None:
    encode = {
        "msgspec": msgspec.json.encode,
        "spaced": lambda o: json.dumps(o, ensure_ascii=False).encode(),
        "ascii": lambda o: json.dumps(o).encode(),
        "indented": lambda o: json.dumps(o, indent=2).encode(),
    }[style]
    states = [encode(o) for o in objects]
    home = tmp_path_factory.mktemp("json-home")
    _check_states_round_trip(home, states)
    lines = _lines_on_disk(home)
    for line, obj, state in zip(lines, objects, states, strict=True):
        if style != "indented" or obj == {}:
            # one-line JSON objects are stored as real JSON that reads back as the object
            assert is_json_object(state)
            assert line["data"] == obj
