"""The damage matrix: each kind of damage, and what every reader and writer does about it.

One home is built through the CLI with small segments (several sealed ones and an active
one); each test damages a copy the way a disk, a careless hand or an adversary would, then
runs the commands a user runs in fresh processes. Every one must name the first bad position:
`audit verify` exits 1, a write refuses, `sql`, `why stats` and `job list` refuse to answer
(exit 1) unless asked for the intact prefix, and no read-only command changes a byte under
``events/`` or ``checkpoints/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from store_helpers import (
    REPO_ROOT,
    all_lines,
    rechain,
    rewrite_checkpoints,
    rewrite_segments,
)

from sheratan.store.index import segment_name

CLI = str(REPO_ROOT / "cli.py")
SEGMENT_BYTES = "40000"
ENV = {**os.environ, "SHERATAN_SEGMENT_BYTES": SEGMENT_BYTES, "PYTHONPATH": str(REPO_ROOT)}


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, CLI, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=home.parent,
        timeout=120,
    )


def evidence(home: Path) -> dict[str, str]:
    """sha256 of every file under events/ and checkpoints/: what no reader may change."""
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("events", "checkpoints")
        for path in sorted((home / folder).rglob("*"))
        if path.is_file()
    }


def segments(home: Path) -> list[Path]:
    return sorted((home / "events").glob("*.jsonl"))


def positions_of(path: Path) -> list[int]:
    return [json.loads(line)["pos"] for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pristine") / "home"
    assert run(home, "init").returncode == 0
    workers = str(REPO_ROOT / "policies" / "workers.example.json")
    for seed in range(1, 6):  # a simulation is one save, and a save never spans segments
        made = run(home, "simulate", "--workers", workers, "--jobs", "25", "--seed", str(seed))
        assert made.returncode == 0, made.stderr
    assert len(segments(home)) >= 4, "the matrix needs several sealed segments"
    keys = home.parent / "keys"
    assert run(home, "audit", "keygen", "--out", str(keys)).returncode == 0
    signed = run(
        home,
        "audit",
        "checkpoint",
        "--sign",
        str(keys / "sheratan-signing.key"),
        "--export",
        str(home.parent / "exported.json"),
    )
    assert signed.returncode == 0, signed.stderr
    return home


@pytest.fixture
def home(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(pristine, copy)
    return copy


def against_the_signature(pristine: Path) -> tuple[str, ...]:
    """``audit verify`` options that hold a home to the checkpoint signed and exported."""
    keys = pristine.parent / "keys"
    return (
        "--pubkey",
        str(keys / "sheratan-signing.pub"),
        "--checkpoint",
        str(pristine.parent / "exported.json"),
    )


@dataclass(frozen=True)
class Harm:
    """Damage done to a home: the first bad position it leaves and the file that shows it."""

    position: int
    file: str


def _edit_line(path: Path, index: int, edit: Callable[[bytes], bytes]) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    position = json.loads(lines[index])["pos"]
    lines[index] = edit(lines[index])
    path.write_bytes(b"".join(lines))
    return position


def _flip_ts_digit(line: bytes) -> bytes:
    at = line.index(b'Z","stream"') - 1
    return line[:at] + (b"1" if line[at : at + 1] != b"1" else b"2") + line[at + 1 :]


def changed_byte_sealed(home: Path) -> Harm:
    sealed = segments(home)[1]
    middle = len(positions_of(sealed)) // 2
    return Harm(_edit_line(sealed, middle, _flip_ts_digit), sealed.name)


def changed_byte_active(home: Path) -> Harm:
    active = segments(home)[-1]
    middle = len(positions_of(active)) // 2
    return Harm(_edit_line(active, middle, _flip_ts_digit), active.name)


def swapped_lines(home: Path) -> Harm:
    sealed = segments(home)[1]
    lines = sealed.read_bytes().splitlines(keepends=True)
    k = len(lines) // 2
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    sealed.write_bytes(b"".join(lines))
    return Harm(json.loads(lines[k + 1])["pos"], sealed.name)


def deleted_line(home: Path) -> Harm:
    active = segments(home)[-1]
    lines = active.read_bytes().splitlines(keepends=True)
    k = len(lines) // 3
    gone = json.loads(lines.pop(k))["pos"]
    active.write_bytes(b"".join(lines))
    return Harm(gone, active.name)


def extra_empty_segment(home: Path) -> Harm:
    _, second, third = segments(home)[:3]
    extra = segment_name((int(second.stem) + int(third.stem)) // 2)
    (home / "events" / extra).touch()
    return Harm(int(third.stem), extra)


def garbage_after_the_end(home: Path) -> Harm:
    last = positions_of(segments(home)[-1])[-1]
    name = segment_name(last + 1000)
    (home / "events" / name).write_bytes(b"\x00garbage, not a ledger line\n" * 10)
    return Harm(last + 1, name)


def shortened_sealed(home: Path) -> Harm:
    sealed = segments(home)[2]
    data = sealed.read_bytes()
    cut = data.rindex(b"\n", 0, len(data) - 1) + 30  # into the last line
    sealed.write_bytes(data[:cut])
    return Harm(positions_of(segments(home)[3])[0] - 1, sealed.name)


def missing_sealed(home: Path) -> Harm:
    gone = segments(home)[2]
    first = int(gone.stem)
    gone.unlink()
    return Harm(first, gone.name)


DAMAGES = [
    changed_byte_sealed,
    changed_byte_active,
    swapped_lines,
    deleted_line,
    extra_empty_segment,
    garbage_after_the_end,
    shortened_sealed,
    missing_sealed,
]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_every_reader_and_writer_stops_at_the_first_bad_position(
    home: Path, pristine: Path, damage: Callable[[Path], Harm]
) -> None:
    harm = damage(home)
    before = evidence(home)
    named = f"position {harm.position}"

    verified = run(home, "audit", "verify", "--json")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["first_bad_position"] == harm.position
    signed = run(home, "audit", "verify", *against_the_signature(pristine))
    assert signed.returncode == 1, signed.stdout + signed.stderr
    assert named in signed.stdout
    assert evidence(home) == before

    for command in (
        ("sql", "SELECT count(*) AS n FROM events"),
        ("why", "stats"),
        ("job", "list"),
        ("events", "tail"),
        ("rebuild", "--at", "5"),
        ("policy", "show"),
    ):
        refused = run(home, *command)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        assert refused.stdout == ""
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert named in refused.stderr and harm.file in refused.stderr, refused.stderr
        assert evidence(home) == before, command

    prefix = run(home, "sql", "SELECT count(*) AS n FROM events", "--json", "--up-to-damage")
    assert prefix.returncode == 0, prefix.stderr
    assert f"answering from positions 1..{harm.position - 1}" in prefix.stderr or (
        "answering from positions 1.." in prefix.stderr
    )
    answered = json.loads(prefix.stdout)[0]["n"]
    assert 0 < answered <= harm.position - 1
    assert evidence(home) == before

    for write in (("mission", "create", "after the damage"), ("audit", "checkpoint")):
        refused = run(home, *write)
        assert refused.returncode == 1, (write, refused.stdout, refused.stderr)
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert named in refused.stderr and harm.file in refused.stderr
    assert evidence(home) == before  # nothing written on top of the damage


def test_a_log_rechained_after_an_edit_is_caught_only_by_the_signature(
    home: Path, pristine: Path
) -> None:
    """An adversary edits one line, recomputes every hash after it and rewrites the unsigned
    checkpoints (seals included) and deletes the signed ones: the plain chain holds, and only
    the exported signed checkpoint shows that this is not the log that was signed."""
    lines = all_lines(home)
    k = len(lines) // 2
    lines[k] = lines[k].replace(b'"ver":', b'"ver": ', 1)
    lines = rechain(lines, k)
    rewrite_segments(home, lines)
    rewrite_checkpoints(home, lines)
    (home / "checkpoints" / "signed.jsonl").unlink()
    shutil.rmtree(home / "index")
    before = evidence(home)
    plain = run(home, "audit", "verify", "--json")
    assert plain.returncode == 0 and json.loads(plain.stdout)["ok"], plain.stdout
    assert run(home, "job", "list").returncode == 0  # nothing unsigned can tell
    signed = run(home, "audit", "verify", *against_the_signature(pristine))
    assert signed.returncode == 1, signed.stdout
    assert "FAILED: signed checkpoint" in signed.stdout
    assert evidence(home) == before


def test_a_forged_index_is_rebuilt_not_trusted(home: Path, pristine: Path) -> None:
    truth = run(pristine, "job", "list", "--json").stdout
    sidecar = home / "index" / "events.idx"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    listed = run(home, "job", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == truth
    assert run(home, "audit", "verify").returncode == 0
    assert run(home, "audit", "verify", *against_the_signature(pristine)).returncode == 0
    assert run(home, "mission", "create", "still writable").returncode == 0


def test_an_untouched_home_passes_everything(home: Path) -> None:
    before = evidence(home)
    for command in (("audit", "verify"), ("why", "stats"), ("job", "list"), ("events", "tail")):
        done = run(home, *command)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stderr == ""
    assert evidence(home) == before


def _rounded(answer: str) -> object:
    """A JSON answer with floats to 9 places: DuckDB sums in no fixed order."""
    return json.loads(answer, parse_float=lambda text: round(float(text), 9))


@pytest.mark.parametrize("forgery", ["garbage", "forged"])
def test_a_damaged_analytics_cache_is_rebuilt_never_served(
    home: Path, pristine: Path, forgery: str
) -> None:
    """The Parquet cache is not the log: a garbage or forged file is rebuilt (one note on
    stderr), every answer stays the log's, and neither verify nor writes are affected."""
    counts = "SELECT topic, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    truth = run(home, "sql", counts, "--json")
    stats = _rounded(run(home, "why", "stats", "--json").stdout)
    jobs = run(home, "job", "list", "--json").stdout
    assert truth.returncode == 0, truth.stderr
    cached = sorted((home / "analytics").glob("*.events.parquet"))
    assert cached, "the first query caches the sealed segments"
    victim = cached[0]
    if forgery == "garbage":
        victim.write_bytes(b"PAR1 not really a parquet file PAR1")
    else:
        made_up = victim.with_name("made-up.parquet")
        con = duckdb.connect()
        con.execute(f"COPY (SELECT * REPLACE ('made.up' AS topic) FROM '{victim}') TO '{made_up}'")
        con.close()
        made_up.replace(victim)
    before = evidence(home)
    answered = run(home, "sql", counts, "--json")
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout == truth.stdout
    assert "made.up" not in answered.stdout
    assert answered.stderr.count("note: rebuilt") == 1, answered.stderr
    assert _rounded(run(home, "why", "stats", "--json").stdout) == stats
    assert run(home, "job", "list", "--json").stdout == jobs
    assert run(home, "audit", "verify").returncode == 0
    assert evidence(home) == before
    assert run(home, "mission", "create", "still writable").returncode == 0
