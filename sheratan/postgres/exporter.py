"""The exporter: a projection that follows a PostgreSQL home's notification log and writes
the embedded store's hash-chained JSONL ledger (``Home.ledger``) from it, so why, replay,
audit and sql read with DuckDB exactly what they read on an embedded home.

Each notification becomes the line the embedded ledger would write (``pos``, ``ts``,
``stream``, ``ver``, ``topic``, ``data``|``raw``, ``trk``, ``end``, ``prev``, ``hash``):

- ``pos`` is the notification id. An id that no event holds (PostgreSQL skips the ids a
  refused save drew) becomes a ``log.gap`` line (``events.audit.LogGap``, stream
  ``GAP_STREAM``, version = its position, ``data`` only the timestamp of the event after
  it), because the ledger's positions are consecutive. Every fold passes over it.
- ``ts`` is the event's own timestamp (the library's table keeps no commit time), ``end``
  the last id of the transaction it was committed in (rows of one transaction share
  ``xmin``, and the library's table lock keeps a transaction's ids together).
- A line imported from a JSONL log (``sheratan import``) keeps its ``ts``, ``end`` and
  ``trk``: the import writes them to the side table ``<app>_lines``, and the export reads
  them back, so the line and its hash come out byte for byte as they went in.

Before it appends, every pass checks the export against the database: the last exported
line is rendered again from its row and must be the same bytes, and the database must hold
exactly the events the export holds up to there. A row changed or deleted stops the export
with ``ExportMismatchError`` (exit 1). See docs/postgres.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from psycopg import sql

from events.audit import GAP_STREAM, LogGap
from sheratan.inputs import InvalidInputError
from sheratan.postgres.log import timestamp_decoder
from sheratan.store.files import FileLock
from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.store.lines import GENESIS_HASH, prepare, render_line, text_line_decoder

#: Rows read per query.
BATCH_ROWS = 2000
#: The ``ts`` of a line whose event carries no timestamp of its own (a foreign event).
NO_TS = b"1970-01-01T00:00:00.000000Z"
#: How long ``follow`` sleeps at most without a NOTIFY before it looks again.
FOLLOW_WAKE_S = 5.0

_GAP_STREAM_JSON = msgspec.json.encode(GAP_STREAM)


class ExportMismatchError(CorruptLogError):
    """The database's history no longer matches the export (a row changed or deleted)."""


class PartialImportError(InvalidInputError):
    """The database holds an import that never finished: it is not a whole log."""


@dataclass(frozen=True)
class Row:
    """One notification with what the side table keeps of its line (None: native)."""

    id: int
    stream: Any
    version: int
    topic: str
    state: bytes
    txid: str
    ts: str | None = None
    end: int | None = None
    trk: str | None = None


@dataclass(frozen=True)
class Lag:
    """How far the export is behind the database: its last position and the database's."""

    exported: int
    database: int

    @property
    def behind(self) -> int:
        return max(self.database - self.exported, 0)

    def line(self) -> str:
        return f"export: exported to {self.exported}, database at {self.database}"


class Source:
    """The notification log of a PostgreSQL home, read with the side tables of ours.

    ``<app>_lines`` keeps, per imported notification id, what the library's table cannot
    hold (``ts``, ``end_pos``, ``trk``); ``<app>_imports`` says whether an import is under
    way or finished (a database holding an unfinished one is refused)."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        schema = self.datastore.schema
        prefix = recorder.events_table_name.removesuffix("_events")
        self.events = sql.Identifier(schema, recorder.events_table_name)
        self.lines = sql.Identifier(schema, f"{prefix}_lines")
        self.imports = sql.Identifier(schema, f"{prefix}_imports")
        self.events_name = f"{schema}.{recorder.events_table_name}"
        self._ensure_tables()

    def _ensure_tables(self) -> None:
        """Create the side tables once (a look first: two hosts creating one table at once
        may collide in PostgreSQL's catalogue, and then the other one made it)."""
        import psycopg

        names = [self.lines.as_string(), self.imports.as_string()]
        found = self.query(
            sql.SQL("SELECT to_regclass(%s) AS a, to_regclass(%s) AS b"), tuple(names)
        )[0]
        if found["a"] is not None and found["b"] is not None:
            return
        statements = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (notification_id bigint PRIMARY KEY, "
                "ts text NOT NULL, end_pos bigint NOT NULL, trk text)"
            ).format(self.lines),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (source text NOT NULL, last_pos bigint NOT "
                "NULL, imported bigint NOT NULL, done boolean NOT NULL)"
            ).format(self.imports),
        ]
        try:
            with self.datastore.transaction(commit=True) as curs:
                for statement in statements:
                    curs.execute(statement)
        except psycopg.errors.UniqueViolation:
            pass  # another process created them just now

    def query(self, statement: sql.Composable, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params)
            return list(curs.fetchall())

    def last_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def check_whole(self) -> None:
        """Refuse a database whose import never finished."""
        found = self.query(sql.SQL("SELECT * FROM {} WHERE NOT done").format(self.imports))
        if found:
            row = found[0]
            msg = (
                f"the database holds an unfinished import from {row['source']} "
                f"({row['imported']} of {row['last_pos']} positions): it is not a whole log; "
                "drop and recreate the database, then import again"
            )
            raise PartialImportError(msg)

    def rows(self, after: int, limit: int, stop: int | None = None) -> list[Row]:
        """Up to ``limit`` notifications after id ``after`` (to ``stop``), in id order."""
        statement = sql.SQL(
            "SELECT e.notification_id AS id, e.originator_id, e.originator_version, e.topic, "
            "e.state, e.xmin::text AS txid, l.ts, l.end_pos, l.trk FROM {} e "
            "LEFT JOIN {} l ON l.notification_id = e.notification_id "
            "WHERE e.notification_id > %s AND e.notification_id <= %s "
            "ORDER BY e.notification_id LIMIT %s"
        ).format(self.events, self.lines)
        found = self.query(statement, (after, stop if stop is not None else 2**62, limit))
        return [
            Row(
                r["id"],
                r["originator_id"],
                r["originator_version"],
                r["topic"],
                bytes(r["state"]),
                r["txid"],
                r["ts"],
                r["end_pos"],
                r["trk"],
            )
            for r in found
        ]

    def gap_lines(self, ids: list[int]) -> dict[int, tuple[str, int]]:
        """What the side table keeps of imported ``log.gap`` lines: id -> (ts, end)."""
        if not ids:
            return {}
        statement = sql.SQL(
            "SELECT notification_id, ts, end_pos FROM {} WHERE notification_id = ANY(%s)"
        ).format(self.lines)
        return {
            r["notification_id"]: (r["ts"], r["end_pos"]) for r in self.query(statement, (ids,))
        }

    def count_to(self, position: int) -> int:
        statement = sql.SQL("SELECT count(*) AS n FROM {} WHERE notification_id <= %s")
        return int(self.query(statement.format(self.events), (position,))[0]["n"])


def event_ts(row: Row) -> bytes:
    """A line's ``ts``: kept by an import, else the event's own timestamp, else NO_TS."""
    if row.ts is not None:
        return row.ts.encode()
    state = row.state
    if state[:1] == b"{":
        try:
            stamp = timestamp_decoder.decode(state).timestamp
        except (msgspec.DecodeError, msgspec.ValidationError):
            stamp = None
        if stamp and '"' not in stamp and "\\" not in stamp:
            return stamp.encode()
    return NO_TS


def render_row(row: Row, end: int, prev: bytes) -> tuple[bytes, bytes]:
    """A row as its ledger line, chained on ``prev``: (line, hash)."""
    trk = row.trk.encode() if row.trk is not None else None
    return render_line(
        prepare(row.stream, row.version, row.topic, row.state),
        pos=row.id,
        ts=event_ts(row),
        trk=trk,
        end=row.end if row.end is not None else end,
        prev=prev,
    )


def render_gap(position: int, ts: bytes, end: int, prev: bytes) -> tuple[bytes, bytes]:
    """The ``log.gap`` line of an id no event holds."""
    state = b'{"timestamp":"' + ts + b'"}'
    event = prepare(GAP_STREAM, position, LogGap.TOPIC, state)
    return render_line(event, pos=position, ts=ts, trk=None, end=end, prev=prev)


def is_gap(line: bytes) -> bool:
    """Whether a ledger line is a ``log.gap`` line (read without decoding all of it)."""
    return b'"stream":' + _GAP_STREAM_JSON + b"," in line[:160]


def render(
    source: Source, after: int, prev: bytes, stop: int | None = None
) -> Iterator[list[bytes]]:
    """The lines after position ``after`` (chained on ``prev``) to ``stop`` (default: the
    end), in whole transactions: one list of lines per batch of rows read."""
    held: list[Row] = []  # the last transaction of a full batch may go on in the next
    position = after
    while True:
        batch = source.rows(held[-1].id if held else position, BATCH_ROWS, stop)
        rows = held + batch
        complete = len(batch) < BATCH_ROWS
        held = []
        if not complete:
            cut = len(rows)
            while cut > 0 and not _closes(rows, cut - 1):
                cut -= 1
            rows, held = rows[:cut], rows[cut:]  # all held: one save goes on
        lines, prev = _lines_of(source, rows, position, prev)
        if rows:
            position = rows[-1].id
        if lines:
            yield lines
        if complete:
            return


def _closes(rows: list[Row], at: int) -> bool:
    """Whether the row at ``at`` is the last of its save: as the import kept it, or (a
    native row) the next row belongs to another transaction."""
    row = rows[at]
    if row.end is not None:
        return row.end == row.id
    return at + 1 < len(rows) and rows[at + 1].txid != row.txid


def _lines_of(
    source: Source, rows: list[Row], position: int, prev: bytes
) -> tuple[list[bytes], bytes]:
    """Render rows (whole transactions) after ``position``, filling skipped ids."""
    ends: dict[str, int] = {}
    for row in rows:
        ends[row.txid] = row.id  # ids are in order: the last one wins
    wanted: list[int] = []
    expected = position + 1
    for row in rows:
        wanted.extend(range(expected, row.id))
        expected = row.id + 1
    kept = source.gap_lines(wanted)
    lines: list[bytes] = []
    expected = position + 1
    for row in rows:
        ts = event_ts(row)
        for gap in range(expected, row.id):
            gap_ts, gap_end = kept.get(gap, (ts.decode(), gap))
            line, prev = render_gap(gap, gap_ts.encode(), gap_end, prev)
            lines.append(line)
        line, prev = render_row(row, ends[row.txid], prev)
        lines.append(line)
        expected = row.id + 1
    return lines, prev


# ------------------------------------------------------------------------ the pass


@contextmanager
def export_lock(ledger: Ledger) -> Iterator[None]:
    """One exporter at a time per export folder (a command's pass waits for a follower's)."""
    lock = FileLock(ledger.home / "locks" / f"{ledger.name}-export.lock")
    try:
        with lock.held():
            yield
    finally:
        lock.close()


def check_export(source: Source, ledger: Ledger) -> None:
    """The export must still be the database's history: the last exported line rendered
    again from its row gives the same bytes, and the database holds as many events up to
    there as the export does (a gap line is an id no row holds)."""
    last = ledger.last_position()
    if last == 0:
        return
    line = ledger.lines_at([last])[0] + b"\n"
    where = f"the database no longer matches the export in {ledger.dir} at position {last}"
    if is_gap(line):
        if source.rows(last - 1, 1, last):
            msg = f"{where}: an event is there now where the export has a gap"
            raise ExportMismatchError(msg)
    else:
        prev = (ledger.hash_at(last - 1) or GENESIS_HASH).encode()
        found = source.rows(last - 1, 1, last)
        if not found:
            raise ExportMismatchError(f"{where}: its row was deleted")
        row = found[0]
        decoded = text_line_decoder.decode(line)
        again, _ = render_row(row, decoded.end, prev)
        if again != line:
            raise ExportMismatchError(f"{where}: its row was changed")
    gaps = ledger.stream(str(GAP_STREAM))
    held = last - (len(gaps.positions) if gaps is not None else 0)
    count = source.count_to(last)
    if count != held:
        msg = (
            f"the database no longer matches the export in {ledger.dir}: it holds {count} "
            f"events up to position {last}, the export {held} (a row was deleted or added)"
        )
        raise ExportMismatchError(msg)


def check_all(source: Source, ledger: Ledger, advance: Callable[[int], None] | None = None) -> int:
    """Render every exported position again from the database and compare it with the
    export, byte for byte (``export --check``): a row changed anywhere in the history, not
    only at the head, is named by its position. Returns the positions checked."""
    last = ledger.last_position()
    exported = ledger.lines(1, last)
    checked = 0
    where = f"the database no longer matches the export in {ledger.dir}"
    for lines in render(source, 0, GENESIS_HASH.encode(), last):
        for line in lines:
            position, held = next(exported, (checked + 1, b""))
            if held + b"\n" != line:
                raise ExportMismatchError(f"{where} at position {position}: its row differs")
            checked += 1
        if advance is not None:
            advance(checked)
    if checked != last:
        msg = f"{where}: the database holds positions 1..{checked} of the export's {last}"
        raise ExportMismatchError(msg)
    return checked


def export_pass(
    source: Source, ledger: Ledger, advance: Callable[[int], None] | None = None
) -> Lag:
    """Bring the export up to the database's last id as of now, after checking it."""
    with export_lock(ledger):
        source.check_whole()
        check_export(source, ledger)
        target = source.last_id()
        start = ledger.last_position()
        prev = (ledger.hash_at(start) or GENESIS_HASH).encode()
        for lines in render(source, start, prev, target):
            ledger.append_lines(lines)
            if advance is not None:
                advance(ledger.last_position() - start)
        return Lag(ledger.last_position(), source.last_id())


def follow(
    source: Source,
    ledger: Ledger,
    waker: Any,
    stop: Any,
    on_pass: Callable[[Lag], None],
) -> Lag:
    """Keep the export current until ``stop`` is set: a pass, then sleep on ``waker``
    (LISTEN/NOTIFY) until a commit or FOLLOW_WAKE_S; ``on_pass`` hears each pass's lag."""
    lag = export_pass(source, ledger)
    on_pass(lag)
    while not stop.is_set():
        waker.wait(FOLLOW_WAKE_S)
        if stop.is_set():
            break
        last, lag = lag, export_pass(source, ledger)
        if lag != last:  # an idle follower says nothing
            on_pass(lag)
    return lag


@contextmanager
def background_export(source: Source, ledger: Ledger, waker: Any) -> Iterator[None]:
    """``follow`` in a thread for the ``with`` block (a bench measures its lag beside a
    load): stopped and joined on exit; the waker is the caller's (``Home.waker()``)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=follow, args=(source, ledger, waker, stop, lambda _: None), daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        waker.wake()
        thread.join()


def measure_lag(
    source: Source,
    ledger: Ledger,
    duration_s: float,
    every_s: float = 0.05,
) -> list[tuple[float, int, int]]:
    """Samples of (seconds since start, exported position, database position) taken every
    ``every_s`` for ``duration_s`` while another thread (``background_export``) or process
    (``export --follow``) exports: what the ``bench scale`` exporter-lag figure is computed
    from (``lag_seconds``)."""
    samples: list[tuple[float, int, int]] = []
    began = time.monotonic()
    while (now := time.monotonic() - began) < duration_s:
        ledger.refresh()
        samples.append((now, ledger.last_position(), source.last_id()))
        time.sleep(every_s)
    return samples


def lag_seconds(samples: list[tuple[float, int, int]]) -> float:
    """The longest time the export took to reach a position the database had (samples in
    time order, both positions never falling); a position never reached counts until the
    last sample."""
    worst = 0.0
    reached = 0
    for i, (at, _, database) in enumerate(samples):
        reached = max(reached, i)
        while reached < len(samples) - 1 and samples[reached][1] < database:
            reached += 1
        worst = max(worst, samples[reached][0] - at)
    return worst


def bring_up_to_date(home: Any, progress: Any) -> Lag:
    """Before a command reads the export of a PostgreSQL home (why, replay, audit, sql):
    one checked pass, its count on ``progress`` (sheratan/progress.py)."""
    source = Source(home.app.recorder)
    with progress.counting("exporting the database's log", unit="events") as advance:
        return export_pass(source, home.ledger, advance)
