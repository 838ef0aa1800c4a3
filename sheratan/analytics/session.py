"""A DuckDB session over a home's log: the views ready, a Parquet cache, and a read-only lock.

The views hold each event's data *redacted at the source* (``sheratan.analytics.source``):
no SQL function can bring a secret back, since the session never holds it. Only a ``raw``
session (``--reveal``, recorded first by the caller) reads the log's values as they are, and
it never reads or writes the cache.

Parsing JSON is what a query over the JSONL log costs, so each *sealed* segment (immutable
once the ledger rolls past it) is parsed once into Parquet files, one per base table, under
``<home>/analytics/``. The cache is checked, never trusted: each file records (Parquet
key-value metadata) the cache format and the sha256 digest of the segment it was built from,
which must equal the digest the ledger recorded when it sealed the segment, and its events
must number and span exactly the segment's positions. A file that does not parse or does
not match is rebuilt, and the session says so once on stderr.

The active segment, up to its committed end (via ``CommittedLog``), is cached the same way
in chunks of at least ``CHUNK_MIN_BYTES`` (each recording the digest of its bytes, which are
re-hashed on use, since the segment has no seal yet); what came after the last chunk is
parsed into temporary tables when the session opens. So a session parses and redacts at
most a few MB of JSON. Each session is one consistent cut of the log.

After the views are made, the session locks itself down: file access is limited to the
cache folder (an absolute path, so nothing is read relative to the working directory),
memory to ``MEMORY_LIMIT`` with no spilling to disk, and the configuration is locked, so
ad-hoc SQL can read the views and nothing else. ``query`` accepts read statements only, and
interrupts one that runs past its time limit.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from sheratan.analytics import QUERY_TIMEOUT_S
from sheratan.analytics.reader import (
    Closing,
    CommittedLog,
    read_ndjson_sql,
    sql_list,
    sql_string,
)
from sheratan.analytics.shapes import BASE_TABLES, VIEWS, empty_lines
from sheratan.analytics.source import flagged_sql, redacted_data_sql, register
from sheratan.store.files import file_digest, own_temp
from sheratan.store.ledger import Ledger

CACHE_DIR = "analytics"
#: 2: data redacted at the source, and the source digest recorded; 3: scored rows carry
#: their decision.made's columns (``shapes.STATS_ROWS``), self-heal events in a file apart.
#: Files of another format are never served (an unredacted format-1 cache included).
CACHE_FORMAT = 3
#: Parquet key-value metadata of a cache file.
META_FORMAT = "sheratan_cache_format"
META_SOURCE = "sheratan_source_sha256"
#: The memory a session may use (DuckDB's ``memory_limit``); queries needing more fail.
MEMORY_LIMIT = "1GB"
#: The active segment is cached in chunks of at least this many bytes (the rest is parsed
#: per session, so this bounds what a session parses and redacts of the tail).
CHUNK_MIN_BYTES = 4 * 1024 * 1024
#: The ledger line fields the ``events`` base table reads.
LINE_FIELDS = "pos, ts, stream, ver, topic, data"
#: Statement types a user may run: reads only.
READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


class ReadOnlyError(ValueError):
    """A statement that would write, or reach outside the views."""


class QueryError(ValueError):
    """DuckDB refused a query (syntax, unknown column, ...): the user's input."""


class QueryTimeoutError(QueryError):
    """A query ran past its time limit and was interrupted."""


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class Analytics(Closing):
    """DuckDB with ``events``, ``decisions``, ``jobs``, ``priors_history``, ``scores`` and
    ``self_heals``."""

    def __init__(
        self,
        home: Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        raw: bool = False,
    ) -> None:
        self.home = Path(home).absolute()
        self.cache_dir = self.home / CACHE_DIR
        self.raw = raw
        self.log = CommittedLog(self.home)
        self.con = duckdb.connect(":memory:")
        self._rebuilt: list[str] = []
        self._redactor = False
        #: What ``_read_facts`` read of cache files, by path.
        self._meta: dict[str, dict[str, str]] = {}
        self._positions: dict[str, tuple[int, int | None, int | None]] = {}
        try:
            self.last_position = self._load(progress)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ setup

    def _load(self, progress: Callable[[int, int], None] | None) -> int:
        cut, last_position = self.log.ledger.committed_cut()
        sealed = [] if self.raw else self._sealed_segments(cut)
        cached: dict[str, list[str]] = {table: [] for table in BASE_TABLES}
        if sealed and self.cache_dir.is_dir():
            with contextlib.suppress(duckdb.Error):  # a file not ours: each is read alone
                self._read_facts(
                    sorted(map(str, self.cache_dir.glob(f"*-v{CACHE_FORMAT}.*.parquet")))
                )
        done = 0
        for path, _, last_pos in sealed:
            files = self._cached(path, last_pos)
            if files is None:
                break  # not cacheable (read-only home, say): read the rest as the tail
            _extend(cached, [files])
            done += 1
            if progress is not None:
                progress(done, len(sealed))
        live: list[str] = []
        for i, (path, size) in enumerate(cut[done:], done):
            start = 0
            if i == len(cut) - 1:  # the active segment: its committed prefix, partly cached
                if done == len(sealed) == i and not self.raw:
                    chunks, start = self._cached_chunks(path, size)
                    _extend(cached, chunks)
                if start < size:
                    live.append(str(self.log.snapshot(path, size, start)))
            elif os.stat(path).st_size == size:
                live.append(str(path))
            else:
                live.append(str(self.log.snapshot(path, size)))
        if self._rebuilt:
            print(
                f"note: rebuilt the analytics cache of {', '.join(self._rebuilt)} "
                "(unreadable, or not made from the segment it names)",
                file=sys.stderr,
            )
        if not self.raw:
            self._remove_stale(cached)
        lines = read_ndjson_sql(live) if live else empty_lines()
        self.con.execute(f"CREATE TEMP TABLE tail_lines AS SELECT {LINE_FIELDS} FROM {lines}")
        self.con.execute(f"CREATE TEMP TABLE tail_events AS {self._events_sql('tail_lines')}")
        self.con.execute("DROP TABLE tail_lines")
        for table, sql in BASE_TABLES.items():
            tail = f"tail_{table}"
            if table != "events":  # the tail's lines are parsed once, into tail_events
                query = sql.replace("{lines}", "tail_events").replace("{made}", "tail_made")
                self.con.execute(f"CREATE TEMP TABLE {tail} AS {query}")
            sources = [f"SELECT * FROM {tail}"]
            if cached[table]:
                sources.insert(0, f"SELECT * FROM read_parquet({sql_list(cached[table])})")
            self.con.execute(f"CREATE VIEW base_{table} AS {' UNION ALL '.join(sources)}")
        for name, sql in VIEWS.items():
            self.con.execute(f"CREATE VIEW {name} AS {sql}")
        self._lock_down()
        return last_position

    def _events_sql(self, lines: str) -> str:
        """The ``events`` base table over ``lines``: data redacted, unless the session is raw
        (or no line of ``lines`` may hold anything to redact: then ``data`` is the same)."""
        data = "data" if self.raw or not self._needs_redactor(lines) else redacted_data_sql()
        return BASE_TABLES["events"].replace("{data}", data).replace("{lines}", lines)

    def _needs_redactor(self, lines: str) -> bool:
        """Whether a line of ``lines`` may need the redactor, which is registered if so: a
        warm session whose tail holds no such line never loads it (nor numpy with it)."""
        if not self._redactor:
            query = f"SELECT bool_or({flagged_sql()}) FROM {lines}"
            if not self.con.execute(query).fetchall()[0][0]:
                return False
            self._register_redactor()
        return True

    def _register_redactor(self) -> None:
        if not self._redactor:
            register(self.con)
            self._redactor = True

    def _sealed_segments(self, cut: list[tuple[Path, int]]) -> list[tuple[Path, int, int]]:
        """(path, committed size, last position) of every sealed segment, in order."""
        out = []
        for (path, size), (following, _) in itertools.pairwise(cut):
            if os.stat(path).st_size != size:
                break
            out.append((path, size, int(following.stem) - 1))
        return out

    def _files(self, stem: str) -> dict[str, Path]:
        return {
            table: self.cache_dir / f"{stem}-v{CACHE_FORMAT}.{table}.parquet"
            for table in BASE_TABLES
        }

    def _cached(self, segment: Path, last_pos: int) -> dict[str, str] | None:
        """The Parquet files of a sealed segment's base tables, checked, or made now."""
        digest = _sealed_digest(self.log.ledger, segment)
        files = self._files(segment.stem)
        first = int(segment.stem)
        if all(f.exists() for f in files.values()):
            if self._span(files, digest, first) == last_pos:
                return {t: str(f) for t, f in files.items()}
            self._rebuilt.append(segment.name)
        try:
            self.cache_dir.mkdir(exist_ok=True)
            self._build(segment, digest, files)
        except OSError:
            return None
        return {t: str(f) for t, f in files.items()}

    def _cached_chunks(self, segment: Path, size: int) -> tuple[list[dict[str, str]], int]:
        """Cached chunks of the active segment's first bytes, and where the uncached rest starts.

        The active segment grows, so it is cached in chunks of at least ``CHUNK_MIN_BYTES``
        (byte ranges ending at a committed end): a session parses only what came after the
        last chunk. Each chunk records the digest of its bytes, re-hashed from the segment
        when it is used (the segment has no seal yet)."""
        ends: dict[int, int] = {}
        for file in self.cache_dir.glob(f"{segment.stem}-*-*-v{CACHE_FORMAT}.events.parquet"):
            _, low, high = file.name.split("-v", 1)[0].split("-")
            ends[int(low)] = int(high)
        chunks: list[dict[str, str]] = []
        start, first = 0, int(segment.stem)
        while (end := ends.get(start)) is not None and end <= size:
            files = self._files(f"{segment.stem}-{start}-{end}")
            last = self._span(files, file_digest(segment, start, end), first)
            if last is None:
                self._rebuilt.append(f"{segment.name} (bytes {start}..{end})")
                for file in files.values():
                    with contextlib.suppress(OSError):
                        file.unlink()
                break
            chunks.append({t: str(f) for t, f in files.items()})
            start, first = end, last + 1
        if size - start >= CHUNK_MIN_BYTES:
            files = self._files(f"{segment.stem}-{start}-{size}")
            source = self.log.snapshot(segment, size, start)
            try:
                self.cache_dir.mkdir(exist_ok=True)
                self._build(source, file_digest(source, 0, size - start), files)
            except OSError:
                return chunks, start
            chunks.append({t: str(f) for t, f in files.items()})
            start = size
        return chunks, start

    def _span(self, files: dict[str, Path], digest: str, first: int) -> int | None:
        """The last position cache files hold, if made in this format from bytes of ``digest``.

        Their metadata must name the format and the digest, and the events file must hold
        gapless positions from ``first`` on (which a file of made-up rows does not)."""
        names = [str(file) for file in files.values()]
        events = str(files["events"])
        if events not in self._positions or not all(n in self._meta for n in names):
            try:
                self._read_facts(names)
            except duckdb.Error:
                return None  # garbage: not a Parquet file, or not ours
        for name in names:
            meta = self._meta.get(name, {})
            if meta.get(META_FORMAT) != str(CACHE_FORMAT) or meta.get(META_SOURCE) != digest:
                return None
        count, low, high = self._positions.get(events, (0, None, None))
        if low != first or high is None or count != high - first + 1:
            return None
        return int(high)

    def _read_facts(self, files: list[str]) -> None:
        """The key-value metadata of ``files`` and the positions their events files hold
        (count, first, last), into ``_meta`` and ``_positions``: two queries for any number
        of files, so a warm session checks every cached segment at once (``_load``)."""
        rows = self.con.execute(
            "SELECT file_name, decode(key), decode(value) FROM parquet_kv_metadata(?)", [files]
        ).fetchall()
        events = [f for f in files if f.endswith(".events.parquet")]
        spans = self.con.execute(
            "SELECT filename, count(*), min(pos), max(pos) "
            "FROM read_parquet(?, filename = true) GROUP BY filename",
            [events],
        ).fetchall()
        for name, key, value in rows:
            self._meta.setdefault(name, {})[key] = value
        for name, count, low, high in spans:
            self._positions[name] = (count, low, high)

    def _build(self, source: Path, digest: str, files: dict[str, Path]) -> None:
        """Parse a JSONL file once (data redacted) into one Parquet file per base table."""
        metadata = f"KV_METADATA {{{META_FORMAT}: '{CACHE_FORMAT}', {META_SOURCE}: '{digest}'}}"
        self._register_redactor()  # a whole segment: not worth a scan to find it needs none
        try:
            events_sql = self._events_sql(read_ndjson_sql([str(source)]))
            self.con.execute(f"CREATE TEMP TABLE segment_events AS {events_sql}")
            for table, sql in BASE_TABLES.items():
                partial = own_temp(files[table])
                query = sql.replace("{lines}", "segment_events").replace("{made}", "segment_made")
                if table == "events":
                    query = "SELECT * FROM segment_events"
                elif table == "made":  # kept: the scored rows take their made's columns from it
                    self.con.execute(f"CREATE TEMP TABLE segment_made AS {query}")
                    query = "SELECT * FROM segment_made"
                self.con.execute(
                    f"COPY ({query}) TO {sql_string(str(partial))} "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000, {metadata})"
                )
                os.replace(partial, files[table])
        finally:
            self.con.execute("DROP TABLE IF EXISTS segment_events")
            self.con.execute("DROP TABLE IF EXISTS segment_made")

    def _remove_stale(self, cached: dict[str, list[str]]) -> None:
        """Other files of a sealed and cached segment go: its chunks from when it was active,
        files of another format. The active segment's chunks stay (another session may be
        reading one that this session did not choose)."""
        keep = {Path(f).name for files in cached.values() for f in files}
        segments = {name.split("-", 1)[0] for name in keep if name.count("-") == 1}
        if not self.cache_dir.is_dir():
            return
        for path in self.cache_dir.glob("*.parquet"):
            if path.name.split("-", 1)[0] in segments and path.name not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _lock_down(self) -> None:
        allowed = [f"{self.cache_dir}{os.sep}"] if self.cache_dir.is_dir() else []
        self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        self.con.execute("SET temp_directory = ''")  # no spilling: the limit is the limit
        self.con.execute(f"SET allowed_directories = {sql_list(allowed)}")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    # ----------------------------------------------------------------- queries

    def query(self, sql: str, timeout_s: float = QUERY_TIMEOUT_S) -> Result:
        """Run a user's read statement(s); the last one's rows are returned.

        A timer interrupts the statements still running after ``timeout_s`` seconds."""
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as error:
            raise QueryError(_first_line(error)) from None
        if not statements:
            raise QueryError("no SQL statement given")
        for statement in statements:
            kind = statement.type.name
            if kind not in READ_STATEMENTS:
                msg = (
                    f"{kind} statements are refused: `sql` is read-only "
                    "(SELECT over events, decisions, jobs, priors_history, scores, charges,"
                    " self_heals)"
                )
                raise ReadOnlyError(msg)
        timer = threading.Timer(timeout_s, self.con.interrupt)
        timer.start()
        try:
            for statement in statements[:-1]:
                self.con.execute(statement.query)
            relation = self.con.execute(statements[-1].query)
            columns = [d[0] for d in relation.description or ()]
            return Result(columns, relation.fetchall())
        except duckdb.InterruptException:
            msg = f"the query ran past its time limit of {timeout_s:g} s (see --timeout)"
            raise QueryTimeoutError(msg) from None
        except duckdb.PermissionException:
            msg = "the query reaches outside the views (files, network): `sql` is read-only"
            raise ReadOnlyError(msg) from None
        except duckdb.Error as error:
            raise QueryError(_first_line(error)) from None
        finally:
            timer.cancel()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Our own queries (why, audit): rows as dicts."""
        relation = self.con.execute(sql, params or [])
        columns = [d[0] for d in relation.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]

    def recorded_workspace(self) -> Path | None:
        """The workspace of the newest recorded policy: where job paths were confined."""
        rows = self.rows(
            "SELECT data->>'workspace' AS w FROM events "
            "WHERE topic = 'policy.recorded' ORDER BY pos DESC LIMIT 1"
        )
        return Path(rows[0]["w"]) if rows and rows[0]["w"] else None

    def schema(self) -> dict[str, list[tuple[str, str]]]:
        """Every view with its columns and types."""
        out = {}
        for name in VIEWS:
            described = self.con.execute(f"DESCRIBE {name}").fetchall()
            out[name] = [(row[0], row[1]) for row in described]
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()
        self.log.close()


def _sealed_digest(ledger: Ledger, path: Path) -> str:
    """The sha256 (hex) of a sealed segment, as its seal recorded it.

    A segment sealed before seal records existed (the next writer seals it) has only its
    chain, which opening the ledger checked: its bytes as they are now are that history."""
    seal = ledger.seal_for(path)
    return seal.digest if seal is not None else file_digest(path)


def _extend(cached: dict[str, list[str]], files: list[dict[str, str]]) -> None:
    for by_table in files:
        for table, file in by_table.items():
            cached[table].append(file)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
