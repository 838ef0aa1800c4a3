"""Shared helpers of the store's acceptance tests: real homes, real files, real processes.

Not a test module (pytest collects only ``test_*.py``); the tests import it by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import msgspec
from eventsourcing.persistence import StoredEvent

from sheratan.home import Home, read_marker
from sheratan.store.audit import Verification, verify
from sheratan.store.checkpoints import CheckpointChain, append_record, read_chain
from sheratan.store.files import file_digest
from sheratan.store.lines import GENESIS_HASH, compute_hash, line_body

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITER_NAMESPACE = uuid.UUID("0b7d6c52-51f4-4c2b-9d3e-6a1f0e4c8a27")
TOPICS = ("test.alpha", "test.beta", "test.gamma")

#: A writer process: appends saves of 1-3 events, each on its own stream, and prints one line
#: per acknowledged save (after insert_events returned, i.e. after fsync):
#: ``<tag> <i> <n> <first position> ... <last position>``. With ``--wait`` it prints ``ready``
#: and waits for a line on stdin before the first save, so several writers can start together;
#: with ``--step`` it waits for a line on stdin before every save, so a test decides the order.
WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import uuid
    from pathlib import Path

    from eventsourcing.persistence import StoredEvent

    from sheratan.store.factory import open_ledger
    from sheratan.store.recorders import JsonlApplicationRecorder

    home, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    namespace = uuid.UUID(sys.argv[4])
    topics = ("test.alpha", "test.beta", "test.gamma")
    recorder = JsonlApplicationRecorder(open_ledger(home))
    if "--wait" in sys.argv:
        print("ready", flush=True)
        sys.stdin.readline()
    i = 0
    while count == 0 or i < count:
        if "--step" in sys.argv:
            sys.stdin.readline()
        i += 1
        stream = uuid.uuid5(namespace, f"{tag}-{i}")
        n = 1 + i % 3
        states = [b'{"tag":"%s","i":%d,"v":%d}' % (tag.encode(), i, v) for v in range(1, n + 1)]
        events = [
            StoredEvent(stream, v, topics[(i + v) % 3], state)
            for v, state in enumerate(states, start=1)
        ]
        positions = recorder.insert_events(events)
        print(tag, i, n, *positions, flush=True)
    print("done", flush=True)
    """
)


def writer_script(tmp_path: Path) -> Path:
    path = tmp_path / "writer.py"
    if not path.exists():
        path.write_text(WRITER_SCRIPT)
    return path


def start_writer(
    tmp_path: Path,
    home: Path,
    tag: str,
    count: int = 0,
    *,
    wait: bool = False,
    step: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start a writer process (``count`` saves, 0 for until killed)."""
    args = [sys.executable, str(writer_script(tmp_path)), str(home), tag, str(count)]
    args.append(str(WRITER_NAMESPACE))
    if wait:
        args.append("--wait")
    if step:
        args.append("--step")
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=full_env,
    )


class Ack(msgspec.Struct, frozen=True):
    """One save a writer process saw acknowledged."""

    tag: str
    i: int
    n: int
    positions: tuple[int, ...]

    @property
    def stream(self) -> uuid.UUID:
        return writer_stream(self.tag, self.i)

    def states(self) -> list[bytes]:
        return [writer_state(self.tag, self.i, v) for v in range(1, self.n + 1)]

    def topics(self) -> list[str]:
        return [TOPICS[(self.i + v) % 3] for v in range(1, self.n + 1)]


def parse_ack(line: str) -> Ack | None:
    """An acknowledgement line, or None for anything else (``ready``, ``done``)."""
    parts = line.split()
    if len(parts) < 4:
        return None
    tag, i, n, *positions = parts
    return Ack(tag, int(i), int(n), tuple(int(p) for p in positions))


def writer_stream(tag: str, i: int) -> uuid.UUID:
    return uuid.uuid5(WRITER_NAMESPACE, f"{tag}-{i}")


def writer_state(tag: str, i: int, v: int) -> bytes:
    return b'{"tag":"%s","i":%d,"v":%d}' % (tag.encode(), i, v)


def stored(
    stream: uuid.UUID | str, version: int, i: int = 0, topic: str = "test.alpha"
) -> StoredEvent:
    """A small stored event whose state is a JSON object naming its save and version."""
    return StoredEvent(stream, version, topic, b'{"i":%d,"v":%d}' % (i, version))


def save_of(stream: uuid.UUID, n: int, i: int = 0) -> list[StoredEvent]:
    """One save of ``n`` events on a new stream (versions 1..n)."""
    return [stored(stream, v, i, TOPICS[v % 3]) for v in range(1, n + 1)]


def segments(home: Path, name: str = "events") -> list[Path]:
    return sorted((home / name).glob("*.jsonl"))


def only_segment(home: Path) -> Path:
    paths = segments(home)
    assert len(paths) == 1, paths
    return paths[0]


def all_lines(home: Path, name: str = "events") -> list[bytes]:
    """Every complete line of every segment, in order, without newlines."""
    out: list[bytes] = []
    for path in segments(home, name):
        data = path.read_bytes()
        out.extend(data[: data.rfind(b"\n") + 1].splitlines())  # a line being written: not yet
    return out


def decoded_lines(home: Path, name: str = "events") -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in all_lines(home, name)]


def live_lines(home: Path) -> list[bytes]:
    """The home's log as lines on either store: the JSONL segments' lines of an embedded
    home (``all_lines``); on a PostgreSQL home the database's notification log read as
    lines (``Home.log``: pos, ts, stream, ver, topic, data; no chain fields)."""
    if read_marker(home).postgres is None:
        return all_lines(home)
    opened = Home.open(home)
    try:
        log = opened.log
        return [line for _, line in log.lines(1, log.last_position())]
    finally:
        opened.close()


def log_lines(home: Path) -> list[dict[str, Any]]:
    """``live_lines`` decoded: what the acceptance tests that run on both stores read."""
    return [msgspec.json.decode(line) for line in live_lines(home)]


def tree_bytes(home: Path) -> dict[str, bytes]:
    """Every file under a home, by relative path: to show that nothing was rewritten."""
    return {
        str(path.relative_to(home)): path.read_bytes()
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


def verify_home(home: Path, name: str = "events") -> Verification:
    return verify(home / name, home / "checkpoints" / f"{name}.jsonl")


def truncate(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def assert_saves_whole(lines: list[dict[str, Any]]) -> None:
    """Each save is one stream's versions 1..n: adjacent lines whose ``end`` is its last."""
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_stream.setdefault(line["stream"], []).append(line)
    for save in by_stream.values():
        first = save[0]["pos"]
        assert [line["pos"] for line in save] == list(range(first, first + len(save)))
        assert [line["ver"] for line in save] == list(range(1, len(save) + 1))
        assert {line["end"] for line in save} == {save[-1]["pos"]}


def assert_log_whole(home: Path, events: int) -> list[dict[str, Any]]:
    """Positions 1..events, every save whole, and the chain verifies to the last event."""
    lines = decoded_lines(home)
    assert [line["pos"] for line in lines] == list(range(1, events + 1))
    assert_saves_whole(lines)
    result = verify_home(home)
    assert result.ok, result.problem
    assert result.verified == events
    return lines


def rechain(lines: list[bytes], first: int) -> list[bytes]:
    """What an attacker who can edit segments does: recompute ``prev`` and ``hash`` of every
    line from index ``first`` (0-based) on, so the plain hash chain holds again."""
    out = list(lines)
    prev = msgspec.json.decode(out[first - 1])["hash"] if first else GENESIS_HASH
    for i in range(first, len(out)):
        old_prev = msgspec.json.decode(out[i])["prev"].encode()
        body = line_body(out[i]).replace(b'"prev":"%b"' % old_prev, b'"prev":"%b"' % prev.encode())
        unhashed = body[:-1] + b',"hash":"' + GENESIS_HASH.encode() + b'"}'
        prev = compute_hash(prev, unhashed)
        out[i] = body[:-1] + b',"hash":"' + prev.encode() + b'"}'
    return out


def rewrite_segments(home: Path, lines: list[bytes], name: str = "events") -> None:
    """Write ``lines`` back over the segments, each keeping its number of lines."""
    rest = list(lines)
    for path in segments(home, name):
        count = len(path.read_bytes().splitlines())
        path.write_bytes(b"".join(line + b"\n" for line in rest[:count]))
        del rest[:count]
    assert not rest


def rewrite_checkpoints(home: Path, lines: list[bytes], name: str = "events") -> None:
    """Rewrite the unsigned checkpoint chain as an adversary would: every record points at the
    hash ``lines`` now hold at its position, every seal at its segment's new size and digest,
    and the chain of records is recomputed, so nothing unsigned tells of the rewrite."""
    path = home / "checkpoints" / f"{name}.jsonl"
    records = read_chain(path).records
    path.unlink()
    chain = CheckpointChain()
    for record in records:
        seal = record.seal
        if seal is not None:
            segment = home / name / seal.name
            seal = msgspec.structs.replace(
                seal, size=segment.stat().st_size, digest=file_digest(segment)
            )
        forged = msgspec.structs.replace(
            record, hash=msgspec.json.decode(lines[record.pos - 1])["hash"], seal=seal
        )
        append_record(path, chain, forged)
