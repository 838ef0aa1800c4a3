"""The ledger: one append-only, hash-chained JSONL log in a home, safe for threads and processes.

One obvious path for a commit (``append``): a save joins a queue; the first thread to find no
commit under way leads, takes every queued save, and under the home's exclusive file lock
catches up on lines other processes wrote, checks versions and tracking, writes all lines with
one ``write`` and one ``fsync``, and only then acknowledges every save in the group. A save
that conflicts raises ``IntegrityError`` and writes nothing; the others in its group proceed.

Opening checks the tail: a torn final line, or a save whose last line never made it, is moved
to ``quarantine/`` and reported; a corrupt line anywhere else makes the log refuse appends
with the position and how to repair, because committed events are never dropped silently.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from sheratan.store.checkpoints import (
    Checkpoint,
    CheckpointChain,
    Seal,
    append_record,
    read_chain,
)
from sheratan.store.files import FileLock, UtcClock, append_durably, file_digest, fsync_dir
from sheratan.store.index import LogIndex, Segment, StreamVersions, segment_name
from sheratan.store.integrity import (
    Damage,
    Layout,
    check_layout,
    first_bad_line,
    stamp,
    stamp_if_exists,
)
from sheratan.store.limits import (
    MAX_EVENTS_PER_SAVE,
    MAX_LINE_BYTES,
    MAX_LINES_PER_COMMIT,
    MAX_NAME_CHARS,
    MAX_STATE_BYTES,
    READ_CHUNK_BYTES,
    SEGMENT_MAX_BYTES,
    SIDECAR_EVERY_EVENTS,
)
from sheratan.store.lines import (
    Prepared,
    Trk,
    check_line,
    encode_save,
    pointer_decoder,
    prepare_save,
)
from sheratan.store.notify import WAKE_DIR, Notifier

log = logging.getLogger(__name__)

_tracking_encoder = msgspec.json.Encoder()
_tracking_decoder = msgspec.json.Decoder(Trk)


class CorruptLogError(OperationalError):
    """A committed line failed its checks; the log refuses appends until it is repaired."""


class LineRefusedError(CorruptLogError):
    """A line given to ``append_lines`` cannot follow the log (position, chain, hash)."""


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Save:
    """One caller's save, waiting in the group-commit queue.

    ``wake`` starts held; whoever finishes the save (or hands its thread the lead) releases
    it, so each waiter is woken exactly once and only when there is something for it to do.
    """

    events: list[Prepared]
    sizes: list[int]
    trk: Trk | None
    positions: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    wake: threading.Lock = field(default_factory=_held_lock)

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.positions


@dataclass
class _Pending:
    """Lines scanned during catch-up that belong to a save whose last line is not yet seen."""

    offset: int
    entries: list[tuple[int, int, str, int, Trk | None]] = field(default_factory=list)


class Ledger:
    """One named log (``events``, ``snapshots``) of a home directory."""

    def __init__(self, home: Path, name: str = "events") -> None:
        self.home = home
        self.name = name
        self.dir = home / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sidecar_path = home / "index" / f"{name}.idx"
        self.checkpoints_path = home / "checkpoints" / f"{name}.jsonl"
        self.tracking_path = home / "tracking" / f"{name}.jsonl"
        self.quarantine_dir = home / "quarantine"
        self._flock = FileLock(home / "locks" / f"{name}.lock")
        self._state = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Save] = []
        self._leading = False
        self._last_batch = 1
        self._write_fds: list[int] = []  # at most one; a list so the finalizer can close it
        self._read_fds: dict[Path, int] = {}
        self._clock = UtcClock()
        self._listeners: set[threading.Event] = set()
        self._notifier = Notifier(home / WAKE_DIR / name)  # followers in other processes
        self._events_since_sidecar = 0
        self.reports: list[str] = []
        #: The first damage found (on open, or in lines another process wrote since): the
        #: log then refuses appends, and reads unless ``serve_intact_prefix`` was asked for.
        self.damage: Damage | None = None
        self._serving_prefix = False
        self._limit: int | None = None  # with a damaged log: index no position from here on
        self._chain = CheckpointChain()
        self._unsealed: list[tuple[int, Path]] = []
        self._sidecar_stale = False  # checks learned something the sidecar should remember
        with self._state, self._flock.held():
            self._open()
        self._finalizer = weakref.finalize(
            self, _close_fds, self._read_fds, self._write_fds, self._flock, self._notifier
        )

    # ------------------------------------------------------------------ opening

    def _open(self) -> None:
        """Check the files against the checkpoint chain, then index the log; never repair.

        Opening is read-only: a torn tail stays where it is (invisible, like a save still
        being written) until a writer quarantines it, and damage is only described.
        """
        self._chain = chain = read_chain(self.checkpoints_path)
        if chain.problem is not None:
            last = chain.last
            self._set_damage(
                Damage(last.pos + 1 if last else 1, self.checkpoints_path, chain.problem)
            )
        sidecar = self._load_sidecar()
        layout = check_layout(self.dir, chain, sidecar.verified if sidecar else {})
        if layout.damage is not None:
            self._set_damage(layout.damage)
        if self.damage is not None:
            self.index = LogIndex(segments=[Segment(1, self.dir / segment_name(1), 0)])
            return
        self._unsealed = [
            (first, path) for first, path in layout.segments[:-1] if path.name not in chain.seals
        ]
        self.index = self._trusted(sidecar, layout) or LogIndex(
            segments=[Segment(layout.segments[0][0], layout.segments[0][1], 0)]
        )
        if layout.verified or self.index is not sidecar:
            self.index.verified.update(layout.verified)
            self._sidecar_stale = True
        self._catch_up(repair=False)
        if self.damage is None:
            self._check_all_indexed(layout)
        if self.damage is None:
            self._check_checkpoints_reached()

    def _trusted(self, sidecar: LogIndex | None, layout: Layout) -> LogIndex | None:
        """The sidecar, if its segments are the layout's and the active prefix is unchanged.

        An active segment whose file stamp differs from the one remembered is re-checked by
        the crc32 of its indexed bytes; a mismatch there is damage, named by a chain scan.
        """
        if sidecar is None:
            return None
        indexed = [(s.first_pos, s.path) for s in sidecar.segments]
        if indexed != layout.segments[: len(indexed)]:
            return None
        active = sidecar.segments[-1]
        if sidecar.verified.get(active.first_pos) == stamp_if_exists(active.path):
            return sidecar
        if self._crc(active.path, active.size) == sidecar.active_crc:
            self._sidecar_stale = True
            return sidecar
        prev = layout.active_prev if len(indexed) == len(layout.segments) else None
        bad = first_bad_line(active.path, active.first_pos, prev, active.size) if prev else None
        self._set_damage(
            bad
            or Damage(
                active.first_pos,
                active.path,
                "its bytes differ from the ones indexed before (changed in place)",
            )
        )
        return None

    def _crc(self, path: Path, size: int) -> int:
        crc, offset = 0, 0
        while offset < size:
            chunk = self._pread(path, offset, min(READ_CHUNK_BYTES, size - offset))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            offset += len(chunk)
        return crc

    def _check_all_indexed(self, layout: Layout) -> None:
        """Every segment file must have been reached by following the chain from position 1."""
        index = self.index
        reached = {s.first_pos for s in index.segments}
        for first, path in layout.segments:
            if first not in reached:
                last = index.segments[-1]
                self._set_damage(
                    Damage(
                        index.last_pos + 1,
                        path,
                        f"the log ends at position {index.last_pos} in {last.path.name}, yet "
                        f"this segment follows (named for position {first})",
                    )
                )
                return

    def _check_checkpoints_reached(self) -> None:
        """The log must still hold every position a checkpoint vouches for, with its hash."""
        index = self.index
        active_first = index.segments[-1].first_pos
        for record in self._chain.records:
            if record.pos > index.last_pos:
                self._set_damage(
                    Damage(
                        index.last_pos + 1,
                        self.checkpoints_path,
                        f"the log ends at position {index.last_pos}, but a checkpoint vouches "
                        f"for position {record.pos}: it was truncated",
                    )
                )
                return
            if record.pos >= active_first and record.pos and record.seal is None:
                segment, start, end, _ = index.span(record.pos, record.pos)
                line = self._pread(segment.path, start, end - start).rstrip(b"\n")
                if pointer_decoder.decode(line).hash != record.hash:
                    self._set_damage(
                        Damage(
                            record.pos,
                            segment.path,
                            "the line's hash differs from the checkpoint's",
                            start,
                        )
                    )
                    return

    def _set_damage(self, damage: Damage) -> None:
        if self.damage is None or damage.position < self.damage.position:
            self.damage = damage  # raised to whoever reads or writes next, not logged twice

    def _load_sidecar(self) -> LogIndex | None:
        """The saved index, if it parses and its last line still carries its head hash.

        A segment shorter than the index knows is not the sidecar's fault: ``_trusted``
        names that damage.
        """
        index = LogIndex.load(self.sidecar_path, self.dir)
        if index is None or not index.segments:
            return None
        if any(_size_of(s.path) < s.size for s in index.segments):
            return index
        if index.last_pos:
            segment, start, end, _ = index.span(index.last_pos, index.last_pos)
            line = self._pread(segment.path, start, end - start).rstrip(b"\n")
            try:
                if pointer_decoder.decode(line).hash != index.head:
                    return None
            except msgspec.DecodeError:
                return None
        return index

    def serve_intact_prefix(self) -> int:
        """Let reads answer from the positions before the first damage; returns the last one.

        The index is rebuilt from position 1 and stops before the damaged position (at a
        save boundary); appends stay refused. Without damage this changes nothing.
        """
        with self._state:
            if self.damage is None:
                return self.index.last_pos
            self._serving_prefix = True
            self._limit = self.damage.position
            first = sorted(self.dir.glob("*.jsonl"))
            start = int(first[0].stem) if first and first[0].stem.isdigit() else 1
            self.index = LogIndex(segments=[Segment(start, self.dir / segment_name(start), 0)])
            damage, self.damage = self.damage, None
            try:
                self._catch_up(repair=False)
            finally:
                if self.damage is None or damage.position <= self.damage.position:
                    self.damage = damage
            return self.index.last_pos

    def _readable(self) -> None:
        if self.damage is not None and not self._serving_prefix:
            raise CorruptLogError(self.damage.message())

    def _caught_up(self) -> None:
        """Index what other processes wrote; raise on damage known before or found now."""
        self._readable()
        self._catch_up(repair=False)
        self._readable()

    # ----------------------------------------------------------------- catch-up

    def refresh(self) -> None:
        """Index lines that other processes appended since we last looked."""
        with self._state:
            self._catch_up(repair=False)

    def _catch_up(self, *, repair: bool) -> None:
        """Scan and index complete saves past the indexed end of the log.

        With ``repair`` (writers only, holding the file lock, so no writer is mid-write) a
        torn tail of the last segment is quarantined; without it, an incomplete tail is simply
        not visible yet. Bytes left over in a segment that another one follows are damage.
        """
        if self.damage is not None:
            return
        index = self.index
        while True:
            segment = index.segments[-1]
            size = _size_of(segment.path)
            if size > segment.size:
                self._scan(segment, size)
                if self.damage is not None:
                    return
            following = self.dir / segment_name(index.last_pos + 1)
            if index.last_pos + 1 != segment.first_pos and os.path.exists(following):
                if segment.size < size:
                    self._set_damage(
                        Damage(
                            index.last_pos + 1,
                            segment.path,
                            "an incomplete line or save in a segment that another one follows",
                            segment.size,
                        )
                    )
                    return
                index.segments.append(Segment(index.last_pos + 1, following, 0))
                index.active_crc = 0
                self._close_write_fd()
                continue
            if segment.size < size and repair:
                self._quarantine_tail(segment, size)
            break
        self._catch_up_tracking()

    def _scan(self, segment: Segment, size: int) -> None:
        """Chain-check and index the complete saves of ``segment`` past its indexed size."""
        index = self.index
        offset = segment.size
        head = index.head
        expected = index.last_pos + 1
        pending = _Pending(offset)
        want = READ_CHUNK_BYTES
        crc = index.active_crc  # over the bytes consumed; the index keeps it at the last save's end
        while offset < size:
            chunk = self._pread(segment.path, offset, min(want, size - offset))
            consumed = folded = 0
            while True:
                nl = chunk.find(b"\n", consumed)
                if nl < 0 or expected == self._limit:
                    break
                line = chunk[consumed:nl]
                line_offset = offset + consumed
                consumed = nl + 1
                problem, pointer = check_line(line, expected, head)
                if problem:
                    self._set_damage(Damage(expected, segment.path, problem, line_offset))
                    return
                assert pointer is not None
                if not pending.entries:
                    pending.offset = line_offset
                pending.entries.append(
                    (pointer.pos, line_offset, pointer.stream, pointer.ver, pointer.trk)
                )
                head = pointer.hash
                expected += 1
                if pointer.pos == pointer.end:
                    self._index_save(pending, head)
                    segment.size = offset + consumed
                    crc = index.active_crc = zlib.crc32(chunk[folded:consumed], crc)
                    folded = consumed
                    pending = _Pending(segment.size)
            crc = zlib.crc32(chunk[folded:consumed], crc)  # a save that goes on in the next read
            if expected == self._limit:
                break
            if consumed == 0:
                if len(chunk) < want:
                    break  # an unterminated line at the end
                if want >= MAX_LINE_BYTES:
                    msg = f"a line longer than {MAX_LINE_BYTES} bytes"
                    self._set_damage(Damage(expected, segment.path, msg, offset))
                    return
                want = min(2 * want, MAX_LINE_BYTES)  # a long line: read it whole
                continue
            offset += consumed

    def _index_save(self, pending: _Pending, head: str) -> None:
        index = self.index
        for pos, line_offset, stream, ver, trk in pending.entries:
            index.add(pos, line_offset, stream, ver)
            if trk is not None:
                index.track(trk)
        index.head = head
        self._events_since_sidecar += len(pending.entries)  # close() saves what we scanned

    def _quarantine_tail(self, segment: Segment, size: int) -> None:
        """Move the bytes after the last complete save aside and cut the segment there.

        Only a writer calls this, holding the file lock, and only for the last segment: no
        save is being written, so these bytes belong to a save that was never acknowledged.
        """
        torn = self._pread(segment.path, segment.size, size - segment.size)
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = self._clock.now().replace(":", "").replace("-", "")
        target = (
            self.quarantine_dir / f"{self.name}-{segment.size}-{segment.path.stem}-{stamp}.torn"
        )
        append_durably(target, torn)
        fd = os.open(segment.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, segment.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        message = (
            f"torn tail of {len(torn)} bytes after position {self.index.last_pos} in "
            f"{segment.path.name} moved to {target}"
        )
        self.reports.append(message)
        log.warning(message)

    def _catch_up_tracking(self) -> None:
        try:
            size = os.stat(self.tracking_path).st_size
        except FileNotFoundError:
            return
        index = self.index
        if size <= index.tracking_size:
            return
        data = self._pread(self.tracking_path, index.tracking_size, size - index.tracking_size)
        complete = data.rfind(b"\n") + 1
        for line in data[:complete].splitlines():
            index.track(_tracking_decoder.decode(line))
        index.tracking_size += complete

    # ------------------------------------------------------------------ commits

    def append(self, events: Sequence[StoredEvent], trk: Trk | None = None) -> list[int]:
        """Durably append one save; return its positions once fsynced (group-committed).

        The first thread to find no commit under way leads: it commits everything queued,
        wakes the savers it acknowledged, and hands the lead to the next queued saver. While a
        commit is under way, newcomers only queue, so one fsync serves many saves.
        """
        if len(events) > MAX_EVENTS_PER_SAVE:
            msg = f"a save holds at most {MAX_EVENTS_PER_SAVE} events, got {len(events)}"
            raise IntegrityError(msg)
        # Everything that does not depend on the position is done here, outside every lock.
        save = _Save(prepare_save(events), [len(e.state) for e in events], trk)
        problem = _limit_problem(save.events, save.sizes)
        if problem:
            raise IntegrityError(problem)
        with self._queue_lock:
            self._queue.append(save)
            lead = not self._leading
            self._leading = True
        if not lead:
            save.wake.acquire()
            if save.done:
                return save.result()
        try:
            while not save.done:
                if len(self._queue) < self._last_batch:
                    time.sleep(0)  # let the savers just acknowledged queue their next save
                with self._queue_lock:
                    batch = self._take_batch()
                self._last_batch = len(batch)
                try:
                    self._commit(batch)
                finally:
                    for other in batch:
                        if other is not save:
                            other.wake.release()
        finally:
            with self._queue_lock:
                if self._queue:
                    self._queue[0].wake.release()  # its thread leads the next commit
                else:
                    self._leading = False
        return save.result()

    def append_lines(self, lines: Sequence[bytes]) -> int:
        """Durably append lines rendered elsewhere (an export, an import): each must be the
        next position, chain on the head and carry its own hash (``check_line``), its
        (stream, version) must be new, and the last must close its save. Returns the last
        position once the lines are fsynced and indexed. A line that cannot follow refuses
        them all before any is written (``LineRefusedError`` names the first).
        """
        with self._writing():
            pointers = self._check_lines(lines)
            first = 0
            for at, pointer in enumerate(pointers):
                closes = pointer.pos == pointer.end
                if closes and (at + 1 - first >= MAX_LINES_PER_COMMIT or at == len(lines) - 1):
                    self._write_lines(lines[first : at + 1], pointers[first : at + 1])
                    first = at + 1
        if lines:
            self._wake_followers()
        return self.index.last_pos

    def _check_lines(self, lines: Sequence[bytes]) -> list[Any]:
        """The pointers of lines that may follow the log, in order; else LineRefusedError."""
        index = self.index
        head = index.head
        claimed: set[tuple[str, int]] = set()
        pointers = []
        for offset, line in enumerate(lines):
            expected = index.last_pos + 1 + offset
            pointer: Any = None
            problem = "it does not end with a newline"
            if line[-1:] == b"\n":
                problem, pointer = check_line(line[:-1], expected, head)
            if not problem and len(line) > MAX_LINE_BYTES:
                problem = f"it is over {MAX_LINE_BYTES} bytes"
            if not problem:
                key = (pointer.stream, pointer.ver)
                versions = index.streams.get(pointer.stream)
                if key in claimed or (versions is not None and versions.has(pointer.ver)):
                    problem = f"stream {key[0]} already has version {key[1]}"
                claimed.add(key)
            if problem:
                raise LineRefusedError(f"line for position {expected}: {problem}")
            pointers.append(pointer)
            head = pointer.hash
        if pointers and pointers[-1].end != pointers[-1].pos:
            last = pointers[-1]
            msg = f"line for position {last.pos}: its save ends at {last.end}, not with it"
            raise LineRefusedError(msg)
        return pointers

    def _write_lines(self, lines: Sequence[bytes], pointers: Sequence[Any]) -> None:
        """Write checked lines (whole saves) with one fsync, then index them."""
        segment = self._active_segment()
        data = b"".join(lines)
        _write_all(self._write_fd_for(segment), data)
        offsets = itertools.accumulate((len(line) for line in lines), initial=segment.size)
        pending = _Pending(segment.size)
        pending.entries = [
            (p.pos, offset, p.stream, p.ver, p.trk)
            for p, offset in zip(pointers, offsets, strict=False)
        ]
        self._index_save(pending, pointers[-1].hash)
        segment.size += len(data)
        self.index.active_crc = zlib.crc32(data, self.index.active_crc)
        if self._events_since_sidecar >= SIDECAR_EVERY_EVENTS:
            self._save_sidecar()

    def _take_batch(self) -> list[_Save]:
        batch: list[_Save] = []
        lines = 0
        queue = self._queue
        while queue and (not batch or lines + len(queue[0].events) <= MAX_LINES_PER_COMMIT):
            save = queue.pop(0)
            batch.append(save)
            lines += len(save.events)
        return batch

    def _commit(self, batch: list[_Save]) -> None:
        """Commit a group; once it is durable and the file lock is free, wake the followers
        (in-process listeners, and every process's ``Waker`` of this log)."""
        wrote = False
        try:
            with self._writing():
                wrote = self._write(batch)
        except BaseException as error:  # every waiter must hear of a failed commit
            for save in batch:
                if not save.done:
                    save.error = error
                    save.done = True
            if not isinstance(error, Exception):
                raise
        if wrote:
            self._wake_followers()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A writer's hold on the log: both locks, the tail caught up (a torn save
        quarantined), no damage, every full segment sealed; then write."""
        with self._state:
            self._flock.acquire()
            try:
                self._catch_up(repair=True)
                if self.damage is not None:
                    raise CorruptLogError(self.damage.message())
                self._seal_unsealed()
                yield
            finally:
                self._flock.release()

    def _wake_followers(self) -> None:
        """After a durable write with the file lock free: in-process listeners, and every
        process's ``Waker`` of this log."""
        self._notifier.notify()
        for listener in list(self._listeners):
            listener.set()

    def _write(self, batch: list[_Save]) -> bool:
        """Write the saves that pass their checks; False if none did (nothing written)."""
        index = self.index
        accepted = self._check(batch)
        if not accepted:
            return False
        segment = self._active_segment()
        ts = self._clock.now().encode()
        head = index.head.encode()
        pos = index.last_pos
        offset = segment.size
        parts: list[bytes] = []
        lengths: list[int] = []
        tracking_lines: list[bytes] = []
        for save in accepted:
            if save.events:
                head = encode_save(
                    save.events,
                    pos=pos,
                    ts=ts,
                    prev=head,
                    trk=save.trk,
                    parts=parts,
                    lengths=lengths,
                )
                pos += len(save.events)
            elif save.trk is not None:
                tracking_lines.append(_tracking_encoder.encode(save.trk) + b"\n")
        offsets = list(itertools.accumulate(lengths, initial=offset))
        offset = offsets.pop()
        if parts:
            data = b"".join(parts)
            _write_all(self._write_fd_for(segment), data)
            index.active_crc = zlib.crc32(data, index.active_crc)
        if tracking_lines:
            append_durably(self.tracking_path, b"".join(tracking_lines))
            index.tracking_size = os.stat(self.tracking_path).st_size
        # Acknowledged on disk: now the index learns the new lines.
        index.offsets.extend(offsets)
        streams = index.streams
        position = index.last_pos
        for save in accepted:
            for event in save.events:
                position += 1
                versions = streams.get(event.key)
                if versions is None:
                    versions = streams[event.key] = StreamVersions()
                versions.add(event.ver, position)
            if save.trk is not None:
                index.track(save.trk)
            save.done = True
        index.last_pos = position
        index.head = head.decode()
        segment.size = offset
        self._events_since_sidecar += len(offsets)
        if self._events_since_sidecar >= SIDECAR_EVERY_EVENTS:
            self._save_sidecar()
        return True

    def _check(self, batch: list[_Save]) -> list[_Save]:
        """Accept the saves that keep (stream, version) and tracking unique; fail the rest."""
        index = self.index
        accepted: list[_Save] = []
        next_pos = index.last_pos + 1
        claimed: set[tuple[str, int]] = set()
        tracked: dict[str, int] = {}
        for save in batch:
            problem = _save_problem(save, index, claimed, tracked)
            if problem:
                save.error = IntegrityError(problem)
                save.done = True
                continue
            if save.trk is not None:
                tracked[save.trk.app] = save.trk.id
            save.positions = list(range(next_pos, next_pos + len(save.events)))
            next_pos += len(save.events)
            accepted.append(save)
        return accepted

    def _active_segment(self) -> Segment:
        """The segment to append to; a full one is sealed first and a new one started."""
        segment = self.index.segments[-1]
        if segment.size < SEGMENT_MAX_BYTES:
            return segment
        self._seal(segment.first_pos, segment.path, self.index.last_pos, self.index.head)
        first = self.index.last_pos + 1
        path = self.dir / segment_name(first)
        path.touch()
        fsync_dir(self.dir)
        self._close_write_fd()
        new = Segment(first, path, 0)
        self.index.segments.append(new)
        self.index.active_crc = 0
        self._save_sidecar()
        return new

    def _seal(self, first: int, path: Path, last: int, head: str) -> None:
        """Record what a segment is as the ledger rolls past it (or adopts an old one)."""
        size = os.stat(path).st_size
        seal = Seal(path.name, first, last, size, file_digest(path))
        record = Checkpoint(pos=last, hash=head, ts=self._clock.now(), reason="seal", seal=seal)
        self._append_checkpoint(record)
        self.index.verified[first] = stamp(path)

    def _seal_unsealed(self) -> None:
        """Seal the segments that a Sheratan before seal records rolled past (once, on the
        first write), so later opens check them by digest instead of re-reading their chain."""
        while self._unsealed:
            first, path = self._unsealed.pop(0)
            at = self.index.segment_index_of(first)
            last = self.index.segments[at + 1].first_pos - 1
            self._seal(first, path, last, self._hash_of(last))

    def _hash_of(self, position: int) -> str:
        segment, start, end, _ = self.index.span(position, position)
        return pointer_decoder.decode(self._pread(segment.path, start, end - start)).hash

    def _write_fd_for(self, segment: Segment) -> int:
        if not self._write_fds:
            created = not segment.path.exists()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            self._write_fds.append(os.open(segment.path, flags, 0o644))
            if created:
                fsync_dir(self.dir)
        return self._write_fds[0]

    def _close_write_fd(self) -> None:
        while self._write_fds:
            os.close(self._write_fds.pop())

    # ------------------------------------------------------------- checkpoints

    def checkpoint(self, reason: str = "manual") -> dict[str, Any]:
        """Record (position, chain head, time) durably; every open holds the log to it."""
        with self._state, self._flock.held():
            self._catch_up(repair=False)
            if self.damage is not None:
                raise CorruptLogError(self.damage.message())
            record = Checkpoint(
                pos=self.index.last_pos, hash=self.index.head, ts=self._clock.now(), reason=reason
            )
            chained = self._append_checkpoint(record)
            self._save_sidecar()
            return msgspec.to_builtins(chained)

    def _append_checkpoint(self, record: Checkpoint) -> Checkpoint:
        """Chain ``record`` after the records on disk now (other processes add some too)."""
        self._chain = read_chain(self.checkpoints_path)
        if self._chain.problem is not None:
            damage = Damage(record.pos + 1, self.checkpoints_path, self._chain.problem)
            self._set_damage(damage)
            raise CorruptLogError(damage.message())
        return append_record(self.checkpoints_path, self._chain, record)

    def _save_sidecar(self) -> None:
        """Persist the index, remembering the active segment's stamp if we indexed all of it."""
        index = self.index
        active = index.segments[-1]
        now = stamp_if_exists(active.path)
        if now is not None and now[0] == active.size:
            index.verified[active.first_pos] = now
        else:
            index.verified.pop(active.first_pos, None)
        index.save(self.sidecar_path)
        self._events_since_sidecar = 0
        self._sidecar_stale = False

    # -------------------------------------------------------------------- reads

    def lines(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        """Yield (position, line) for positions first..last that exist, in order.

        Each line must start with its own position: a line read from anywhere else (an index
        that disagrees with the file) raises instead of passing as another event.
        """
        for path, pos, block in self.blocks(first, last):
            lines = block.splitlines()
            _expect_span(lines, pos, path)
            for line in lines:
                yield pos, line
                pos += 1

    def blocks(self, first: int, last: int) -> Iterator[tuple[Path, int, bytes]]:
        """Yield (segment, position of its first line, block) for positions first..last:
        each block is complete lines (newline-terminated) as read, up to a read chunk.

        The caller checks that the block's lines are the positions it expects (``lines``
        checks both ends; a caller decoding a block whole checks every position).
        """
        with self._state:
            self._caught_up()
            last = min(last, self.index.last_pos)
            spans = []
            while first <= last:
                segment, start, end, span_last = self.index.span(first, last)
                spans.append((segment.path, start, end, first))
                first = span_last + 1
        for path, start, end, pos in spans:
            offset = start
            want = READ_CHUNK_BYTES
            while offset < end:
                chunk = self._pread(path, offset, min(want, end - offset))
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:  # a line longer than the chunk: read it whole
                    if want >= end - offset:
                        msg = f"{path} changed under the ledger: no complete line at byte {offset}"
                        raise CorruptLogError(msg)
                    want *= 2
                    continue
                block = chunk[:cut] if cut < len(chunk) else chunk
                yield path, pos, block
                pos += block.count(b"\n")
                offset += cut

    def lines_at(self, positions: Sequence[int]) -> list[bytes]:
        """The lines at the given (indexed, ascending) positions; adjacent ones read together."""
        out: list[bytes] = []
        with self._state:
            self._readable()
            for first, last in _runs(positions):
                while first <= last:
                    segment, start, end, span_last = self.index.span(first, last)
                    lines = self._pread(segment.path, start, end - start).splitlines()
                    _expect_span(lines, first, segment.path)
                    out.extend(lines)
                    first = span_last + 1
        return out

    def last_position(self) -> int:
        """The last committed position (0 for an empty log), including other processes' saves."""
        with self._state:
            self._caught_up()
            return self.index.last_pos

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._state:
            self._caught_up()
            return self.index.tracking.get(application_name)

    def committed_cut(self) -> tuple[list[tuple[Path, int]], int]:
        """One consistent cut: each segment with its committed size, and the last position.

        Bytes of a segment past its committed size belong to a save still being written (or
        torn); readers that bypass the ledger (DuckDB) must stop there.
        """
        with self._state:
            self._caught_up()
            segments = [(s.path, s.size) for s in self.index.segments if s.path.exists()]
            return segments, self.index.last_pos

    def seal_for(self, path: Path) -> Seal | None:
        """The seal recorded for segment ``path`` of this log (None while it is active).

        Caches built from a sealed segment (the Parquet files of the analytics) name its
        digest, so a cache made from other bytes is never served.
        """
        if Path(path).parent != self.dir:
            return None
        with self._state:
            seal = self._chain.seals.get(Path(path).name)
            if seal is None:  # sealed by another process since we read the chain?
                chain = read_chain(self.checkpoints_path)
                if chain.problem is None:
                    self._chain = chain
                    seal = chain.seals.get(Path(path).name)
            return seal

    def hash_at(self, position: int) -> str | None:
        """The chain hash of the line at ``position`` (None past the end): names a history."""
        if position < 1 or position > self.last_position():
            return None
        return pointer_decoder.decode(self.lines_at([position])[0]).hash

    def stream(self, stream_id: str) -> Any:
        with self._state:
            self._caught_up()
            return self.index.streams.get(stream_id)

    def _pread(self, path: Path, offset: int, size: int) -> bytes:
        fd = self._read_fds.get(path)
        if fd is None:
            fd = self._read_fds[path] = os.open(path, os.O_RDONLY)
        data = os.pread(fd, size, offset)
        while len(data) < size:
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    # ---------------------------------------------------------------- listeners

    def listen(self, event: threading.Event) -> None:
        self._listeners.add(event)

    def unlisten(self, event: threading.Event) -> None:
        self._listeners.discard(event)

    def close(self) -> None:
        """Persist the sidecar index and release the write handle; the ledger stays usable.

        Read handles and the lock file close when the last recorder drops the ledger.
        """
        with self._state:
            dirty = self._events_since_sidecar or self._sidecar_stale
            if dirty and self.damage is None:
                with contextlib.suppress(OSError):
                    self._save_sidecar()
            self._close_write_fd()


def _runs(positions: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Group ascending positions into runs of consecutive ones: [1,2,3,7] -> (1,3), (7,7)."""
    if not positions:
        return
    first = last = positions[0]
    for pos in positions[1:]:
        if pos != last + 1:
            yield first, last
            first = pos
        last = pos
    yield first, last


def _limit_problem(events: Sequence[Prepared], sizes: Sequence[int]) -> str:
    """Why a save is over a limit (names, state size), or ''; checked before it queues."""
    if any(len(e.key) > MAX_NAME_CHARS or len(e.topic_json) > MAX_NAME_CHARS for e in events):
        return f"a stream id or topic is over {MAX_NAME_CHARS} characters"
    if sizes and max(sizes) > MAX_STATE_BYTES:
        return f"an event's state is {max(sizes)} bytes, over {MAX_STATE_BYTES}"
    return ""


def _save_problem(
    save: _Save, index: LogIndex, claimed: set[tuple[str, int]], tracked: dict[str, int]
) -> str:
    """Why a save may not be committed (duplicate versions, tracking), or ''.

    On success the save's (stream, version) pairs are added to ``claimed`` for the rest of
    the group.
    """
    keys = [(event.key, event.ver) for event in save.events]
    seen = set(keys)
    if len(seen) < len(keys) or not seen.isdisjoint(claimed):
        twice = next(k for i, k in enumerate(keys) if k in claimed or k in keys[:i])
        return f"stream {twice[0]} version {twice[1]} appears twice"
    streams = index.streams
    for key, ver in keys:
        versions = streams.get(key)
        if versions is not None and versions.has(ver):
            return f"stream {key} already has version {ver}"
    if save.trk is not None:
        app = save.trk.app
        if len(app) > MAX_NAME_CHARS:
            return f"an application name is over {MAX_NAME_CHARS} characters"
        current = tracked.get(app, index.tracking.get(app))
        if current is not None and save.trk.id <= current:
            return f"tracking {app} {save.trk.id} is not after {current}"
    claimed.update(seen)
    return ""


def _expect_span(lines: list[bytes], first: int, path: Path) -> None:
    """The lines read for positions ``first``.. must start and end where the index says.

    Lines are contiguous, so checking both ends of each read catches an index whose offsets
    disagree with the file (a wrong line would otherwise pass as another event) at the cost
    of two comparisons per read, not one per line.
    """
    if not lines:
        return
    for pos, line in ((first, lines[0]), (first + len(lines) - 1, lines[-1])):
        if not line.startswith(b'{"pos":%d,' % pos):
            msg = f"{path} changed under the ledger: the line read for position {pos} is not it"
            raise CorruptLogError(msg)


def _size_of(path: Path) -> int:
    """A segment's size; a segment not created yet (a new, empty log) holds nothing."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _close_fds(
    read_fds: dict[Path, int], write_fds: list[int], flock: FileLock, notifier: Notifier
) -> None:
    for fd in [*read_fds.values(), *write_fds]:
        with contextlib.suppress(OSError):
            os.close(fd)
    read_fds.clear()
    write_fds.clear()
    flock.close()
    notifier.close()
