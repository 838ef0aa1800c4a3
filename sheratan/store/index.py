"""The in-memory index of a log and its sidecar file: a rebuildable cache, never the truth.

It answers, without scanning the log: which segment and byte offset hold position N, which
positions hold the versions of a stream, the last position and chain head, and each tracked
application's highest processed notification. The sidecar persists it so that opening a
large log reads only the tail written since; a sidecar that disagrees with the log is ignored
and rebuilt.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from sheratan.store.files import write_durably
from sheratan.store.limits import SEGMENT_NAME_DIGITS
from sheratan.store.lines import GENESIS_HASH, Trk

SIDECAR_FORMAT = 2
_CHECKSUM_BYTES = 4


@dataclass
class Segment:
    """One segment file: its first position and the bytes of it that are indexed."""

    first_pos: int
    path: Path
    size: int = 0


@dataclass
class StreamVersions:
    """A stream's versions (sorted) and the positions that hold them."""

    versions: array = field(default_factory=lambda: array("q"))
    positions: array = field(default_factory=lambda: array("q"))

    def add(self, version: int, position: int) -> None:
        if not self.versions or version > self.versions[-1]:
            self.versions.append(version)
            self.positions.append(position)
        else:
            at = bisect.bisect_left(self.versions, version)
            self.versions.insert(at, version)
            self.positions.insert(at, position)

    def has(self, version: int) -> bool:
        versions = self.versions
        if not versions or version > versions[-1]:  # the common case: a new, higher version
            return False
        at = bisect.bisect_left(versions, version)
        return at < len(versions) and versions[at] == version


class Streams:
    """stream id -> StreamVersions, each made on first use from the sidecar's flat arrays.

    A log of a million streams would otherwise make a million objects (and two million array
    slices) every time it is opened, seconds before any command can start, while most
    commands look up a handful of streams or none.
    """

    def __init__(self) -> None:
        self._made: dict[str, StreamVersions] = {}
        self._rows: dict[str, int] = {}
        self._starts = array("q")
        self._counts = array("q")
        self._versions = array("q")
        self._positions = array("q")

    @classmethod
    def from_flat(cls, ids: list[str], counts: array, versions: array, positions: array) -> Streams:
        if (
            len(ids) != len(counts)
            or sum(counts) != len(versions)
            or len(versions) != len(positions)
        ):
            msg = "stream index arrays disagree in length"
            raise ValueError(msg)
        streams = cls()
        streams._rows = dict(zip(ids, range(len(ids)), strict=True))
        streams._starts = array("q", itertools.accumulate(counts, initial=0))
        streams._counts, streams._versions, streams._positions = counts, versions, positions
        return streams

    def get(self, stream: str) -> StreamVersions | None:
        made = self._made.get(stream)
        if made is not None:
            return made
        row = self._rows.pop(stream, None)
        if row is None:
            return None
        start, end = self._starts[row], self._starts[row] + self._counts[row]
        made = StreamVersions(self._versions[start:end], self._positions[start:end])
        self._made[stream] = made
        return made

    def __getitem__(self, stream: str) -> StreamVersions:
        made = self.get(stream)
        if made is None:
            raise KeyError(stream)
        return made

    def __setitem__(self, stream: str, versions: StreamVersions) -> None:
        self._rows.pop(stream, None)
        self._made[stream] = versions

    def __contains__(self, stream: object) -> bool:
        return stream in self._made or stream in self._rows

    def __len__(self) -> int:
        return len(self._made) + len(self._rows)

    def __iter__(self) -> Iterator[str]:
        yield from self._made
        yield from self._rows

    def flat(self) -> tuple[list[str], array, array, array]:
        """(ids, counts, versions, positions): the sidecar's layout, without making objects."""
        ids = list(self._made)
        counts = array("q", (len(v.versions) for v in self._made.values()))
        versions, positions = array("q"), array("q")
        for made in self._made.values():
            versions.extend(made.versions)
            positions.extend(made.positions)
        for stream, row in self._rows.items():
            start, end = self._starts[row], self._starts[row] + self._counts[row]
            ids.append(stream)
            counts.append(end - start)
            versions.extend(self._versions[start:end])
            positions.extend(self._positions[start:end])
        return ids, counts, versions, positions


class _Sidecar(msgspec.Struct):
    format: int
    last_pos: int
    head: str
    segments: list[tuple[int, int]]
    offsets: bytes
    stream_ids: list[str]
    stream_counts: bytes
    versions: bytes
    positions: bytes
    tracking: dict[str, int]
    tracking_size: int
    verified: dict[int, tuple[int, int, int, int]]
    active_crc: int


@dataclass
class LogIndex:
    """Positions -> (segment, offset); streams -> versions/positions; chain head; tracking."""

    segments: list[Segment] = field(default_factory=list)
    offsets: array = field(default_factory=lambda: array("q"))
    streams: Streams = field(default_factory=Streams)
    tracking: dict[str, int] = field(default_factory=dict)
    tracking_size: int = 0
    last_pos: int = 0
    head: str = GENESIS_HASH
    #: Segment files known to be intact, by first position: the stamp (size, inode, ctime,
    #: mtime) each had when it was verified, so an unchanged file is not read again on open.
    verified: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    #: crc32 of the active (last) segment's indexed bytes: an open whose file stamp changed
    #: re-checks that prefix at memory speed instead of re-hashing every line.
    active_crc: int = 0

    def segment_index_of(self, position: int) -> int:
        return bisect.bisect_right(self.segments, position, key=lambda s: s.first_pos) - 1

    def span(self, first: int, last: int) -> tuple[Segment, int, int, int]:
        """Where positions first..last lie: (segment, start byte, end byte, last position).

        The range is clipped to the segment holding ``first``; the caller continues from the
        returned last position + 1.
        """
        seg_at = self.segment_index_of(first)
        segment = self.segments[seg_at]
        seg_last = (
            self.segments[seg_at + 1].first_pos - 1
            if seg_at + 1 < len(self.segments)
            else self.last_pos
        )
        last = min(last, seg_last)
        end = self.offsets[last] if last < seg_last else segment.size
        return segment, self.offsets[first - 1], end, last

    def add(self, position: int, offset: int, stream: str, version: int) -> None:
        assert position == self.last_pos + 1, (position, self.last_pos)
        self.offsets.append(offset)
        versions = self.streams.get(stream)
        if versions is None:
            versions = self.streams[stream] = StreamVersions()
        versions.add(version, position)
        self.last_pos = position

    def track(self, trk: Trk) -> None:
        """Note that application ``trk.app`` has processed notification ``trk.id``."""
        current = self.tracking.get(trk.app)
        if current is None or trk.id > current:
            self.tracking[trk.app] = trk.id

    def save(self, path: Path) -> None:
        ids, counts, versions, positions = self.streams.flat()
        sidecar = _Sidecar(
            format=SIDECAR_FORMAT,
            last_pos=self.last_pos,
            head=self.head,
            segments=[(s.first_pos, s.size) for s in self.segments],
            offsets=self.offsets.tobytes(),
            stream_ids=ids,
            stream_counts=counts.tobytes(),
            versions=versions.tobytes(),
            positions=positions.tobytes(),
            tracking=dict(self.tracking),
            tracking_size=self.tracking_size,
            verified=dict(self.verified),
            active_crc=self.active_crc,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = msgspec.msgpack.encode(sidecar)
        write_durably(path, payload + zlib.crc32(payload).to_bytes(_CHECKSUM_BYTES, "big"))

    @classmethod
    def load(cls, path: Path, segment_dir: Path) -> LogIndex | None:
        """The index saved at ``path``, or None when it is missing, unreadable or altered.

        A checksum over the saved bytes catches a damaged or hand-edited sidecar; it is then
        rebuilt from the log, like a missing one.
        """
        try:
            data = path.read_bytes()
            payload, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
            if zlib.crc32(payload).to_bytes(_CHECKSUM_BYTES, "big") != checksum:
                return None
            sidecar = msgspec.msgpack.decode(payload, type=_Sidecar)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        if sidecar.format != SIDECAR_FORMAT:
            return None
        index = cls(last_pos=sidecar.last_pos, head=sidecar.head)
        index.segments = [
            Segment(first, segment_dir / segment_name(first), size)
            for first, size in sidecar.segments
        ]
        index.offsets.frombytes(sidecar.offsets)
        counts = array("q")
        counts.frombytes(sidecar.stream_counts)
        versions = array("q")
        versions.frombytes(sidecar.versions)
        positions = array("q")
        positions.frombytes(sidecar.positions)
        try:
            index.streams = Streams.from_flat(sidecar.stream_ids, counts, versions, positions)
        except ValueError:
            return None
        index.tracking = dict(sidecar.tracking)
        index.tracking_size = sidecar.tracking_size
        index.verified = dict(sidecar.verified)
        index.active_crc = sidecar.active_crc
        if len(index.offsets) != index.last_pos:
            return None
        return index


def segment_name(first_pos: int) -> str:
    """Segment files are named by their first position, zero-padded so they sort."""
    return f"{first_pos:0{SEGMENT_NAME_DIGITS}d}.jsonl"
