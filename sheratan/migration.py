"""Moving a whole log between homes: ``sheratan export --to DIR`` and ``import --from DIR``,
between the embedded store and PostgreSQL, with the same positions, hashes and verification.

- Export from an embedded home copies its committed segments byte for byte and the
  checkpoint records that vouch for them; from a PostgreSQL home it is the exporter's
  rendering (sheratan/postgres/exporter.py). Either way DIR becomes an embedded home of its
  own, its marker written last (a folder without one is not a home).
- Import reads a DIR that verifies (``audit verify``'s check, before anything is written)
  into a home that holds no events yet. Into an embedded home the lines are appended as
  they are (``Ledger.append_lines``). Into PostgreSQL each line becomes a row with its
  notification id (``log.gap`` lines become skipped ids again) and a row of the side table
  (``ts``, ``end``, ``trk``), in one transaction per batch; the sequence is set past the
  last position first, so new events continue after them. Every line is first rendered
  back from what the database will hold and must give the same bytes, so the export of
  the imported log is the log itself. An import that stops half way leaves its row in
  ``<app>_imports`` unfinished: exports and imports then refuse the database, and the home
  has no marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from psycopg import sql

from events.audit import LogGap
from sheratan.api.tokens import new_token
from sheratan.home import HOME_FORMAT, MARKER, Home, HomeMarker, read_marker
from sheratan.inputs import InvalidInputError
from sheratan.postgres.exporter import Row, Source, export_pass, render_gap, render_row
from sheratan.postgres.target import PostgresTarget, save_password
from sheratan.store.audit import verify
from sheratan.store.checkpoints import read_chain
from sheratan.store.factory import open_ledger
from sheratan.store.files import fsync_dir, write_durably
from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.store.lines import GENESIS_HASH, text_line_decoder

#: Lines per batch of an import (one transaction each on PostgreSQL).
IMPORT_BATCH = 5000

Advance = Callable[[int], None]
_trk_json = msgspec.json.Encoder().encode


class NotALogError(InvalidInputError):
    """DIR is missing, is not a home with an embedded log, or does not verify."""


# ---------------------------------------------------------------------------- export


def export_to(home: Home, target: Path, advance: Advance | None = None) -> dict[str, Any]:
    """Write the whole log of ``home`` into the new folder ``target`` as an embedded home."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        msg = f"{target} is not empty: export --to needs a new or empty folder"
        raise InvalidInputError(msg)
    target.mkdir(parents=True, exist_ok=True)
    if home.marker.postgres is not None:
        ledger = open_ledger(target, "events")
        export_pass(Source(home.app.recorder), ledger, advance)
    else:
        _copy_embedded(home.ledger, target, advance)
        ledger = open_ledger(target, "events")
    if ledger.damage is not None:  # the copy must open as the log it was
        raise CorruptLogError(ledger.damage.message())
    last = ledger.last_position()
    ledger.close()
    new_token(target)
    write_durably(target / MARKER, msgspec.json.encode(HomeMarker(HOME_FORMAT)))
    return {"to": str(target), "events": last, "head": ledger.hash_at(last) or GENESIS_HASH}


def _copy_embedded(ledger: Ledger, target: Path, advance: Advance | None) -> None:
    """The committed bytes of every segment, and the checkpoint records up to the last
    position (a prefix of the file: records are appended as the log grows)."""
    segments, last = ledger.committed_cut()
    events = target / "events"
    events.mkdir()
    copied = 0
    for path, size in segments:
        with path.open("rb") as source:
            data = source.read(size)
        write_durably(events / path.name, data)
        copied += data.count(b"\n")
        if advance is not None:
            advance(copied)
    fsync_dir(events)
    chain = read_chain(ledger.checkpoints_path)
    if chain.problem is not None:
        raise CorruptLogError(f"{ledger.checkpoints_path}: {chain.problem}")
    kept = sum(1 for record in chain.records if record.pos <= last)
    if kept:
        lines = ledger.checkpoints_path.read_bytes().splitlines(keepends=True)[:kept]
        (target / "checkpoints").mkdir()
        write_durably(target / "checkpoints" / "events.jsonl", b"".join(lines))


# ---------------------------------------------------------------------------- import


def check_source(source: Path) -> Ledger:
    """The log of ``source``, once it is known to be an embedded home whose chain verifies."""
    if not source.is_dir():
        raise NotALogError(f"no folder {source}")
    try:
        marker = read_marker(source)
    except FileNotFoundError:
        raise NotALogError(f"{source} is not a Sheratan log (no {MARKER})") from None
    if marker.postgres is not None or not (source / "events").is_dir():
        raise NotALogError(f"{source} is not an embedded Sheratan log (export one with --to)")
    checked = verify(source / "events", source / "checkpoints" / "events.jsonl")
    if not checked.ok:
        msg = f"{source} does not verify: {checked.problem}; nothing was imported"
        raise NotALogError(msg)
    ledger = open_ledger(source, "events")
    if ledger.damage is not None:
        raise NotALogError(f"{source}: {ledger.damage.message()}; nothing was imported")
    return ledger


def import_from(
    source: Path,
    home_path: Path,
    postgres: PostgresTarget | None,
    password: str,
    advance: Advance | None = None,
) -> dict[str, Any]:
    """Import the log of ``source`` into the empty home at ``home_path`` (made here when it
    is no home yet: embedded, or on ``postgres``)."""
    log = check_source(source)
    home = _empty_home(home_path, postgres, password)
    last = log.last_position()
    if home.marker.postgres is not None:
        _into_postgres(log, Source(home.app.recorder), str(source), advance)
    else:
        _into_embedded(log, home.ledger, advance)
    if not (home_path / MARKER).exists():
        new_token(home_path)
        write_durably(home_path / MARKER, msgspec.json.encode(home.marker))
    home.close()
    return {"from": str(source), "home": str(home_path), "events": last}


def _empty_home(path: Path, postgres: PostgresTarget | None, password: str) -> Home:
    """The home to import into: an existing one with no events, or a new one (its marker
    comes last, so an import that stops half way leaves no home behind)."""
    if (path / MARKER).exists():
        if postgres is not None:
            raise InvalidInputError(f"{path} is already a home: --store and --dsn make a new one")
        home = Home.open(path)
    else:
        if (path / "events").exists() and any((path / "events").iterdir()):
            msg = f"{path} holds a partial import (events but no {MARKER}): remove it first"
            raise InvalidInputError(msg)
        if postgres is not None:
            postgres.check_reachable(password)
            marker = HomeMarker(HOME_FORMAT, store="postgres", postgres=postgres)
        else:
            marker = HomeMarker(HOME_FORMAT)
        path.mkdir(parents=True, exist_ok=True)
        if postgres is not None:
            save_password(path, password)
        home = Home(path, marker)
    if home.marker.postgres is not None:
        held = Source(home.app.recorder)
        held.check_whole()
        count = held.last_id()
    else:
        count = home.ledger.last_position()
    if count:
        msg = f"{path} already holds a log ({count} positions): import needs an empty home"
        raise InvalidInputError(msg)
    return home


def whole_saves(log: Ledger, size: int) -> Iterator[list[bytes]]:
    """The lines of ``log`` (with newlines) in lists of about ``size``, each ending a save."""
    batch: list[bytes] = []
    for _, line in log.lines(1, log.last_position()):
        batch.append(line + b"\n")
        if len(batch) >= size and b',"end":%d,' % _pos(line) in line:
            yield batch
            batch = []
    if batch:
        yield batch


def _pos(line: bytes) -> int:
    return int(line[7 : line.index(b",", 7)])


def _into_embedded(log: Ledger, ledger: Ledger, advance: Advance | None) -> None:
    done = 0
    for batch in whole_saves(log, IMPORT_BATCH):
        ledger.append_lines(batch)
        done += len(batch)
        if advance is not None:
            advance(done)


def _row_of(line: bytes) -> tuple[Row | None, tuple[int, str, int, str | None]]:
    """A line as the row it becomes (None for a gap) and its side-table row."""
    decoded = text_line_decoder.decode(line)
    trk = _trk_json(decoded.trk).decode() if decoded.trk is not None else None
    side = (decoded.pos, decoded.ts, decoded.end, trk)
    if decoded.topic == LogGap.TOPIC:
        return None, side
    state = decoded.raw if decoded.raw is not None else bytes(decoded.data)
    try:
        stream = UUID(decoded.stream)
    except ValueError:
        msg = f"position {decoded.pos}: stream {decoded.stream!r} is not a UUID (PostgreSQL's is)"
        raise NotALogError(msg) from None
    row = Row(decoded.pos, stream, decoded.ver, decoded.topic, state, "", *side[1:])
    return row, side


def _rendered_again(line: bytes, row: Row | None, side: tuple[Any, ...], prev: bytes) -> bytes:
    """What the exporter will write for this line; it must be the line itself."""
    if row is None:
        again, digest = render_gap(side[0], side[1].encode(), side[2], prev)
    else:
        again, digest = render_row(row, side[2], prev)
    if again != line:
        msg = f"the line at position {side[0]} would not export as the same bytes from PostgreSQL"
        raise NotALogError(msg)
    return digest


def _into_postgres(log: Ledger, target: Source, source: str, advance: Advance | None) -> None:
    last = log.last_position()
    prev = GENESIS_HASH.encode()
    for batch in whole_saves(log, IMPORT_BATCH):  # all of it is checked before any write
        for line in batch:
            prev = _rendered_again(line, *_row_of(line), prev)
    sequence = target.query(
        sql.SQL("SELECT pg_get_serial_sequence(%s, 'notification_id') AS seq"),
        (target.events_name,),
    )[0]["seq"]
    with target.datastore.transaction(commit=True) as curs:
        curs.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(target.events))
        curs.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(target.events))
        if curs.fetchone()["n"]:
            msg = "the database received events while the import began: nothing was imported"
            raise InvalidInputError(msg)
        curs.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, 0, false)").format(target.imports),
            (source, last),
        )
        if last:  # the next id the library draws is last + 1
            curs.execute(sql.SQL("SELECT setval(%s, %s)"), (sequence, last))
    done = 0
    insert_row = sql.SQL(
        "INSERT INTO {} (originator_id, originator_version, topic, state, notification_id) "
        "VALUES (%s, %s, %s, %s, %s)"
    ).format(target.events)
    insert_side = sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(target.lines)
    for batch in whole_saves(log, IMPORT_BATCH):
        rows, sides = [], []
        for line in batch:
            row, side = _row_of(line)
            sides.append(side)
            if row is not None:
                rows.append((row.stream, row.version, row.topic, row.state, row.id))
        done += len(batch)
        with target.datastore.transaction(commit=True) as curs:
            curs.executemany(insert_row, rows)
            curs.executemany(insert_side, sides)
            curs.execute(
                sql.SQL("UPDATE {} SET imported = %s, done = %s").format(target.imports),
                (done, done == last),
            )
        if advance is not None:
            advance(done)
    if last == 0:
        with target.datastore.transaction(commit=True) as curs:
            curs.execute(sql.SQL("UPDATE {} SET done = true").format(target.imports))
