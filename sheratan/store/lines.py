"""The ledger's line format: one JSON object per line, keys in a fixed order, hash-chained.

A line reads::

    {"pos":7,"ts":"2026-11-21T10:00:00.000001Z","stream":"<id>","ver":3,
     "topic":"job.dispatched","data":{...},"end":9,"prev":"<hex>","hash":"<hex>"}

- ``data`` is the event's state as real JSON when the state bytes are one JSON object
  (the common case, so DuckDB can read ``data.worker_id``); otherwise ``data`` is null and
  ``raw`` holds the state bytes in base64 (ciphered or compressed state, foreign bytes).
- ``end`` is the position of the last line of the save this line belongs to: a save whose
  last line is missing was torn by a crash and is quarantined as a whole on open.
- ``trk`` (optional) records a process application's tracking position, on the last line of
  the save it was committed with, so events and tracking are atomic.
- ``hash = sha256(prev || body)`` where ``prev`` is the previous line's hash in ASCII hex
  (64 zeros for the first line) and ``body`` is the line's bytes up to and excluding
  ``,"hash":"…"`` with the closing brace kept. Anyone can recompute the chain.
"""

from __future__ import annotations

import binascii
import hashlib
import uuid
from binascii import hexlify
from collections.abc import Sequence
from hashlib import sha256
from typing import Any, NamedTuple

import msgspec

GENESIS_HASH = "0" * 64
HASH_SUFFIX_BYTES = len(b',"hash":"') + 64 + len(b'"}')


class Trk(msgspec.Struct, frozen=True):
    """A tracking record: the upstream application's notification a save processed."""

    app: str
    id: int


def _line_type(name: str, stream_type: type) -> Any:
    return msgspec.defstruct(
        name,
        [
            ("pos", int),
            ("ts", str),
            ("stream", stream_type),
            ("ver", int),
            ("topic", str),
            ("data", msgspec.Raw),
            ("raw", bytes | None, None),
            ("trk", Trk | None, None),
            ("end", int, 0),
            ("prev", str, GENESIS_HASH),
            ("hash", str, ""),
        ],
        kw_only=True,
    )


#: A decoded line whose stream is kept as text.
TextLine = _line_type("TextLine", str)
#: A decoded line whose stream is decoded as a UUID (the library's default id type).
UUIDLine = _line_type("UUIDLine", uuid.UUID)


class LinePointer(msgspec.Struct, kw_only=True):
    """The few fields needed to index and chain-check a line without touching its data."""

    pos: int
    stream: str
    ver: int
    end: int = 0
    trk: Trk | None = None
    prev: str = GENESIS_HASH
    hash: str = ""


pointer_decoder = msgspec.json.Decoder(LinePointer)
text_line_decoder = msgspec.json.Decoder(TextLine)
uuid_line_decoder = msgspec.json.Decoder(UUIDLine)
_raw_validator = msgspec.json.Decoder(msgspec.Raw)
_raw_list_validator = msgspec.json.Decoder(list[msgspec.Raw])


def is_json_object(state: bytes) -> bool:
    """True when the state can be embedded verbatim as the line's ``data`` value.

    It must be exactly one JSON object, valid UTF-8 and free of line breaks (a JSONL line
    may not contain one); anything else is kept losslessly in ``raw``.
    """
    if state[:1] != b"{" or state[-1:] != b"}" or b"\n" in state or b"\r" in state:
        return False
    try:
        _raw_validator.decode(state)
        if not state.isascii():
            state.decode("utf-8")
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return True


class Prepared(NamedTuple):
    """The parts of an event's line that do not depend on its position or the chain.

    Computed in the saving thread before the commit lock is taken, so the leader's critical
    section only numbers, hashes and writes.
    """

    key: str  # the stream id as the index knows it
    stream_json: bytes
    ver: int
    topic_json: bytes
    state_field: bytes  # what follows "data": -- the state itself, or null and its base64


def prepare(originator_id: Any, version: int, topic: str, state: bytes) -> Prepared:
    stream_json = _json(originator_id)
    # A UUID's JSON form is its canonical text, which is also str(uuid), only cheaper.
    key = originator_id if isinstance(originator_id, str) else stream_json[1:-1].decode()
    if is_json_object(state):
        state_field = state
    else:
        state_field = b'null,"raw":"' + binascii.b2a_base64(state, newline=False) + b'"'
    return Prepared(key, stream_json, version, _topic_json(topic), state_field)


def prepare_save(events: Sequence[Any]) -> list[Prepared]:
    """``prepare`` for every event of a save (``StoredEvent``-like), with their states
    validated together in one msgspec pass (``all_json_objects``) and each stream's JSON
    form made once per run of events of the same stream (a save is usually one stream's)."""
    objects = all_json_objects([event.state for event in events])
    out: list[Prepared] = []
    last_id: Any = None
    key = ""
    stream_json = b""
    for event, is_object in zip(events, objects, strict=True):
        originator_id = event.originator_id
        if originator_id is not last_id or not out:
            last_id = originator_id
            stream_json = _json(originator_id)
            key = originator_id if isinstance(originator_id, str) else stream_json[1:-1].decode()
        state = event.state
        if not is_object:
            state = b'null,"raw":"' + binascii.b2a_base64(state, newline=False) + b'"'
        out.append(
            Prepared(key, stream_json, event.originator_version, _topic_json(event.topic), state)
        )
    return out


def all_json_objects(states: list[bytes]) -> list[bool]:
    """``is_json_object`` for each state, in one msgspec pass when every state passes.

    The states are decoded as one JSON array (``[s1,s2,...]``); when it holds exactly one
    value per state and each value spans its state's bytes (each starts at its state's
    ``{``, so equal lengths mean equal spans), each state is one JSON object on its own. A
    state that fails sends every state through ``is_json_object`` alone.
    """
    joined = b",".join(states)
    if (
        states
        and joined.isascii()
        and b"\n" not in joined
        and b"\r" not in joined
        and all(state[:1] == b"{" and state[-1:] == b"}" for state in states)
    ):
        try:
            values = _raw_list_validator.decode(b"[" + joined + b"]")
        except msgspec.DecodeError:
            values = []
        if len(values) == len(states) and all(
            len(value) == len(state) for value, state in zip(values, states, strict=True)
        ):
            return [True] * len(states)
    return [is_json_object(state) for state in states]


_BODY = b'{"pos":%d,"ts":"%b","stream":%b,"ver":%d,"topic":%b,"data":%b%b,"end":%d,"prev":"%b"}'


def encode_save(
    events: Sequence[Prepared],
    *,
    pos: int,
    ts: bytes,
    prev: bytes,
    trk: Trk | None,
    parts: list[bytes],
    lengths: list[int],
) -> bytes:
    """Append the lines of one save (positions ``pos + 1`` on) to ``parts`` and their lengths
    to ``lengths``; return the chain head after them.

    Byte for byte what ``render_line`` gives line by line (``trk`` on the save's last line),
    in one call per save: the per-line work is one ``%`` format, one sha256 and one concat
    (tests/test_store_lines.py checks the two agree).
    """
    end = pos + len(events)
    body_format = _BODY
    digest = prev
    last = len(events) - 1
    for i, event in enumerate(events):
        pos += 1
        trk_field = b',"trk":' + _json(trk) if trk is not None and i == last else b""
        body = body_format % (
            pos,
            ts,
            event.stream_json,
            event.ver,
            event.topic_json,
            event.state_field,
            trk_field,
            end,
            digest,
        )
        digest = hexlify(sha256(digest + body).digest())
        line = body[:-1] + b',"hash":"' + digest + b'"}\n'
        parts.append(line)
        lengths.append(len(line))
    return digest


def render_line(
    event: Prepared, *, pos: int, ts: bytes, trk: bytes | None, end: int, prev: bytes
) -> tuple[bytes, bytes]:
    """One line on its own (with its newline) and its hash: what ``encode_save`` writes for
    a line, for lines whose ``ts``, ``trk`` (its JSON) and ``end`` come from elsewhere (the
    exporter renders a PostgreSQL row, an import re-renders a line to check it)."""
    trk_field = b',"trk":' + trk if trk is not None else b""
    body = _BODY % (
        pos,
        ts,
        event.stream_json,
        event.ver,
        event.topic_json,
        event.state_field,
        trk_field,
        end,
        prev,
    )
    digest = hexlify(sha256(prev + body).digest())
    return body[:-1] + b',"hash":"' + digest + b'"}\n', digest


_json = msgspec.json.Encoder().encode
_topics: dict[str, bytes] = {}


def _topic_json(topic: str) -> bytes:
    """Topics are few: their JSON form is cached (bounded, for foreign apps' topics)."""
    out = _topics.get(topic)
    if out is None:
        if len(_topics) >= 4096:
            _topics.clear()
        out = _topics[topic] = _json(topic)
    return out


def line_body(line: bytes) -> bytes:
    """The hashed part of a line (without trailing newline): everything but the hash key."""
    return line[:-HASH_SUFFIX_BYTES] + b"}"


def compute_hash(prev: str, line: bytes) -> str:
    """Recompute the hash a line should carry, given the previous line's hash."""
    return hashlib.sha256(prev.encode() + line_body(line)).hexdigest()


def state_of(line: Any) -> bytes:
    """The stored state bytes of a decoded line, exactly as they were saved."""
    raw = line.raw
    return raw if raw is not None else bytes(line.data)


def check_line(line: bytes, expected: int, head: str) -> tuple[str, Any]:
    """Why a complete line cannot follow (position ``expected - 1``, ``head``), or ''."""
    try:
        pointer = pointer_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        return f"not a valid ledger line ({error})", None
    if pointer.pos != expected:
        return f"position {pointer.pos} where {expected} was expected", None
    if pointer.prev != head:
        return "its prev does not match the previous line's hash", None
    if compute_hash(head, line) != pointer.hash:
        return "its hash does not match its content", None
    if pointer.end < pointer.pos:
        return f"its save ends at {pointer.end}, before the line itself", None
    return "", pointer
