"""A fast reader that rebuilds ``projections.jobs.JobsView`` straight from a ledger's segments.

It lives here until it moves to ``sheratan/views.py``. What it does, exactly:

1. Lists ``<home>/<name>/*.jsonl`` in position order (a segment is named by its first
   position) and finds the committed end of the log: the last line of the last segment that
   closes its save (``pos == end``). An unterminated line, or the lines of a save whose closing
   line is missing (a writer mid-commit, a torn tail not yet quarantined), are not read.
   ``upto`` stops earlier: the view "as of position N".
2. Reads every segment front to back in ``CHUNK_BYTES`` preads, splits the complete lines,
   and checks per chunk that the segment starts at the expected position and that the chunk's
   first and last lines carry the positions their count implies (positions gapless across
   chunks and segments). It does not recompute the hash chain: ``Ledger`` open and
   ``audit.verify`` do that.
3. Decodes each line with one msgspec call into a line struct whose ``data`` *is* the event
   class (a tagged union on the line's ``topic`` over the catalogue's job classes at
   ``VERSION == 1``), sets ``originator_id``/``originator_version`` from ``stream``/``ver``
   exactly as ``sheratan.codec.EventCodec.decode`` does, and folds it with
   ``JobsView.apply(position, event)`` itself (jobs, queue index and position). A line the
   fast decoder refuses (another topic, a class at ``VERSION > 1``
   that needs upcasting, state kept in ``raw``) takes the library path (``TextLine`` ->
   ``StoredEvent`` -> ``MsgspecMapper.to_domain_event``); non-job events only advance the
   position, as in ``JobsView.apply``.
4. Switches the cyclic garbage collector off during the fold (the fold makes no reference
   cycles; with 200k live jobs the collector's passes cost about a third of the time) and
   restores it afterwards.
5. With ``processes > 1`` it forks workers; worker ``k`` folds with ``apply_job`` the jobs
   whose stream id's last byte is ``k`` modulo ``processes`` (all events of a job are folded
   by one worker, in log order), ships them back as msgpack ``list[JobState]``, and the
   parent makes the view with ``JobsView(position, jobs)`` (the constructor a snapshot load
   uses; it orders the queue by queued_at, then id). Every worker still reads and splits
   every line; only decoding and folding are shared. On this 2-vCPU machine it is slower
   than one process, so one process is the default.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent

from events.jobs import JOB_EVENTS
from projections.jobs import JOB_TOPICS, JobState, JobsView, apply_job
from sheratan.codec import MsgspecMapper
from sheratan.store.lines import state_of, text_line_decoder

#: Bytes per pread while scanning a segment (256 KiB measured faster than 1-4 MiB here).
CHUNK_BYTES = 256 * 1024
#: How far back from the end of the last segment to look for the last closing line first.
TAIL_BYTES = 1024 * 1024
#: The most worker processes a rebuild may use.
MAX_PROCESSES = 16

_STREAM_KEY = b'"stream":"'
_STREAM_KEY_LEN = len(_STREAM_KEY)


class _Closing(msgspec.Struct):
    pos: int
    end: int = 0


class _Position(msgspec.Struct):
    pos: int


_closing_decoder = msgspec.json.Decoder(_Closing)
_position_decoder = msgspec.json.Decoder(_Position)


def _line_struct(cls: type) -> Any:
    return msgspec.defstruct(
        f"{cls.__name__}Line",
        [("pos", int), ("stream", UUID), ("ver", int), ("data", cls)],
        tag_field="topic",
        tag=cls.TOPIC,
        kw_only=True,
    )


def job_line_decoder() -> msgspec.json.Decoder:
    """One msgspec decoder from a ledger line to (pos, stream, ver, data=<job event>).

    The line's ``topic`` picks the event class; only classes at VERSION 1 are included, since
    an older ``data`` of a later version needs the codec's upcasters.
    """
    fast = tuple(_line_struct(cls) for cls in JOB_EVENTS if cls.VERSION == 1)
    return msgspec.json.Decoder(Union[fast])  # noqa: UP007 (a runtime tuple of types)


def rebuild_jobs_view(
    home: Path,
    *,
    upto: int | None = None,
    processes: int = 1,
    name: str = "events",
) -> JobsView:
    """The jobs view folded from position 1 to the committed end (or ``upto``)."""
    if not 1 <= processes <= MAX_PROCESSES:
        msg = f"processes must be between 1 and {MAX_PROCESSES}, got {processes}"
        raise ValueError(msg)
    segments = _segments(home / name)
    last = committed_end(segments)
    if upto is not None:
        last = min(last, upto)
    if last <= 0:
        return JobsView()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if processes == 1:
            view = JobsView()
            _fold(segments, last, 0, 1, view.apply)
            view.position = last  # as JobsView.apply leaves it after a non-job event
        else:
            view = JobsView(position=last, jobs=_fold_parallel(segments, last, processes))
    finally:
        if was_enabled:
            gc.enable()
    return view


def _segments(log_dir: Path) -> list[tuple[int, Path]]:
    found = sorted((int(path.stem), path) for path in log_dir.glob("*.jsonl"))
    if not found:
        msg = f"no segments in {log_dir}"
        raise FileNotFoundError(msg)
    return found


def committed_end(segments: list[tuple[int, Path]]) -> int:
    """The position of the last line that closes a save (0 for an empty log)."""
    first, path = segments[-1]
    size = path.stat().st_size
    window = TAIL_BYTES
    with path.open("rb") as handle:
        while True:
            start = max(0, size - window)
            handle.seek(start)
            data = handle.read(size - start)
            lines = data[: data.rfind(b"\n") + 1].split(b"\n")[:-1]
            if start > 0:
                lines = lines[1:]  # the first one may be cut
            for line in reversed(lines):
                closing = _closing_decoder.decode(line)
                if closing.pos == closing.end:
                    return closing.pos
            if start == 0:
                return first - 1  # nothing of this segment is committed yet
            window *= 4


def _fold(
    segments: list[tuple[int, Path]],
    last: int,
    part: int,
    parts: int,
    apply: Callable[[int, Any], None],
) -> None:
    """Call ``apply(position, event)`` for every job event of partition ``part``, in order."""
    decode = job_line_decoder().decode
    set_field = msgspec.structs.force_setattr
    slow = _SlowPath()
    expected = 1
    for first, path in segments:
        if first > last:
            break
        if first != expected:
            msg = f"{path.name} starts at position {first}, {expected} was expected"
            raise ValueError(msg)
        for lines in segment_lines(path):
            count = len(lines)
            if expected + count - 1 > last:
                lines = lines[: last - expected + 1]
            _check_positions(path, lines, expected)
            expected += count
            for line in lines:
                if parts > 1:
                    key = line.find(_STREAM_KEY) + _STREAM_KEY_LEN
                    if line[line.find(b'"', key) - 1] % parts != part:
                        continue
                try:
                    decoded = decode(line)
                except msgspec.ValidationError:
                    position, event = slow.event(line)
                    if event is not None:
                        apply(position, event)
                    continue
                event = decoded.data
                set_field(event, "originator_id", decoded.stream)
                set_field(event, "originator_version", decoded.ver)
                apply(decoded.pos, event)
            if expected > last:
                return
    if expected <= last:
        msg = f"the log ends at position {expected - 1}, before {last}"
        raise ValueError(msg)


def _fold_jobs(
    segments: list[tuple[int, Path]], last: int, part: int, parts: int
) -> dict[UUID, JobState]:
    """One partition's jobs, folded with apply_job (what JobsView.apply does to its jobs)."""
    jobs: dict[UUID, JobState] = {}
    get = jobs.get

    def apply(_position: int, event: Any) -> None:
        job_id = event.originator_id
        jobs[job_id] = apply_job(get(job_id), event)

    _fold(segments, last, part, parts, apply)
    return jobs


def segment_lines(path: Path) -> Iterator[list[bytes]]:
    """Yield lists of complete lines (without newlines) of a segment, in order."""
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        rest = b""
        while True:
            chunk = os.pread(fd, CHUNK_BYTES, offset)
            if not chunk:
                return
            offset += len(chunk)
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                rest += chunk
                continue
            lines = (rest + chunk[:cut] if rest else chunk[:cut]).split(b"\n")
            lines.pop()
            rest = chunk[cut:]
            yield lines
    finally:
        os.close(fd)


def _check_positions(path: Path, lines: list[bytes], expected: int) -> None:
    last = expected + len(lines) - 1
    if _position_decoder.decode(lines[0]).pos != expected or (
        _position_decoder.decode(lines[-1]).pos != last
    ):
        msg = f"{path.name}: positions {expected}..{last} are not where they should be"
        raise ValueError(msg)


class _SlowPath:
    """The library path for lines the fast decoder refuses."""

    def __init__(self) -> None:
        self.mapper = MsgspecMapper()

    def event(self, raw: bytes) -> tuple[int, Any]:
        line = text_line_decoder.decode(raw)
        if line.topic not in JOB_TOPICS:
            return line.pos, None
        stored = StoredEvent(UUID(line.stream), line.ver, line.topic, state_of(line))
        return line.pos, self.mapper.to_domain_event(stored)


_result_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(list[JobState])


def _worker(
    connection: Any, segments: list[tuple[int, Path]], last: int, part: int, parts: int
) -> None:
    gc.disable()
    try:
        jobs = _fold_jobs(segments, last, part, parts)
        connection.send_bytes(b"J" + _result_encoder.encode(list(jobs.values())))
    except BaseException as error:  # the parent must hear why, not just see EOF
        connection.send_bytes(b"E" + repr(error).encode())
        raise
    finally:
        connection.close()


def _fold_parallel(segments: list[tuple[int, Path]], last: int, parts: int) -> dict[UUID, JobState]:
    context = multiprocessing.get_context("fork")
    workers = []
    for part in range(1, parts):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(sender, segments, last, part, parts))
        process.start()
        sender.close()
        workers.append((process, receiver))
    try:
        jobs = _fold_jobs(segments, last, 0, parts)
        for _, receiver in workers:
            _merge(jobs, receiver.recv_bytes())
    finally:
        for process, receiver in workers:
            receiver.close()
            process.join()
    return jobs


def _merge(jobs: dict[UUID, JobState], payload: bytes) -> None:
    if payload[:1] != b"J":
        msg = f"a rebuild worker failed: {payload[1:].decode(errors='replace')}"
        raise RuntimeError(msg)
    for job in _result_decoder.decode(payload[1:]):
        jobs[job.id] = job


def library_fold(recorder: Any, mapper: Any, last: int, page: int = 1000) -> JobsView:
    """The reference path: select_notifications pages, the mapper, JobsView.apply."""
    view = JobsView()
    apply: Callable[[int, Any], None] = view.apply
    to_domain = mapper.to_domain_event
    position = 0
    while position < last:
        notifications = recorder.select_notifications(position + 1, min(page, last - position))
        if not notifications:
            break
        for notification in notifications:
            apply(notification.id, to_domain(notification))
        position = notifications[-1].id
    return view
