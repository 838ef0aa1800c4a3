"""Line assembly in one call per save (``prepare_save``, ``encode_save``) against the per-line
path (``prepare``, ``render_line``, which the exporter and import use): byte for byte the
same lines and chain head, for any mix of JSON-object and foreign states, UUID and text
streams, and tracking."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.store.lines import (
    GENESIS_HASH,
    Trk,
    _json,
    all_json_objects,
    encode_save,
    is_json_object,
    prepare,
    prepare_save,
    render_line,
)
from sheratan.store.recorders import JsonlApplicationRecorder
from tests.test_codec_properties import JSON_OBJECTS, PROPERTY_SETTINGS, TEXT

#: States that are one JSON object, and states that are not (foreign bytes, two objects,
#: objects split so that joined with a comma they would parse as other values).
STATES = st.one_of(
    JSON_OBJECTS.map(lambda obj: json.dumps(obj).encode()),
    JSON_OBJECTS.map(lambda obj: json.dumps(obj, separators=(",", ":")).encode()),
    st.binary(max_size=40),
    st.sampled_from(
        [b'{"a":1},{"b":2}', b'{"x":[{}', b"{}]}", b"{}\n", b' {"a":1}', b"{\xff}", b"{}"]
    ),
)
STREAMS = st.one_of(st.uuids(), TEXT.filter(bool))
EVENTS = st.lists(
    st.tuples(STREAMS, st.integers(1, 2**40), TEXT.filter(bool), STATES), min_size=1, max_size=12
)


@PROPERTY_SETTINGS
@given(st.lists(STATES, max_size=12))
def test_all_json_objects_is_is_json_object_for_each(states: list[bytes]) -> None:
    assert all_json_objects(states) == [is_json_object(state) for state in states]


@PROPERTY_SETTINGS
@given(
    EVENTS,
    st.integers(0, 2**40),
    st.one_of(st.none(), st.builds(Trk, TEXT.filter(bool), st.integers(1, 2**40))),
    st.sampled_from([GENESIS_HASH.encode(), b"ab" * 32]),
)
def test_encode_save_is_the_per_line_path(
    rows: list[tuple[uuid.UUID | str, int, str, bytes]], pos: int, trk: Trk | None, prev: bytes
) -> None:
    events = [StoredEvent(stream, ver, topic, state) for stream, ver, topic, state in rows]
    one_call = prepare_save(events)
    per_line = [prepare(e.originator_id, e.originator_version, e.topic, e.state) for e in events]
    assert one_call == per_line

    ts = b"2026-12-02T10:00:00.000001Z"
    parts: list[bytes] = []
    lengths: list[int] = []
    head = encode_save(one_call, pos=pos, ts=ts, prev=prev, trk=trk, parts=parts, lengths=lengths)

    expected: list[bytes] = []
    chain = prev
    end = pos + len(events)
    for i, event in enumerate(per_line):
        last = i == len(per_line) - 1
        line, chain = render_line(
            event,
            pos=pos + i + 1,
            ts=ts,
            end=end,
            prev=chain,
            trk=_json(trk) if trk is not None and last else None,
        )
        expected.append(line)
    assert parts == expected
    assert lengths == [len(line) for line in expected]
    assert head == chain


@settings(PROPERTY_SETTINGS, max_examples=20)
@given(st.lists(EVENTS, min_size=1, max_size=4), st.integers(1, 30))
def test_notifications_decoded_per_block_are_the_per_line_ones(
    saves: list[list[tuple[uuid.UUID | str, int, str, bytes]]], limit: int
) -> None:
    """``select_notifications`` decodes a block of lines in one call; each notification is
    the one the per-line decoder gives (UUID streams as UUIDs, others as text)."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp))
        recorder = JsonlApplicationRecorder(ledger)
        for number, rows in enumerate(saves):
            # distinct versions across saves, so no save conflicts with another
            ledger.append(
                [StoredEvent(s, number * 100 + i + 1, t, d) for i, (s, _, t, d) in enumerate(rows)]
            )
        last = ledger.last_position()
        per_line = [recorder.lines.notification(line) for _, line in ledger.lines(1, last)]
        for start in range(1, last + 1, limit):
            assert recorder.select_notifications(start, limit) == per_line[start - 1 :][:limit]
        ledger.close()


def test_a_block_read_from_the_wrong_offset_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    recorder = JsonlApplicationRecorder(ledger)
    ledger.append([StoredEvent(uuid.uuid4(), 1, "t", b"{}") for _ in range(3)])
    _, _, block = next(ledger.blocks(1, 3))
    with pytest.raises(CorruptLogError, match="the line read for position 1 is at 2"):
        recorder.lines.notifications(block.split(b"\n", 1)[1], 1)
    ledger.close()
