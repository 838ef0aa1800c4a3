"""A DuckDB session over a home's log: the views ready, a Parquet cache, and a read-only lock.

Parsing JSON is what a query over the JSONL log costs, so each *sealed* segment (immutable
once the ledger rolls past it) is parsed once into Parquet files, one per base table, under
``<home>/analytics/``. A cache file is named by its segment, the segment's size and the chain
hash of its last line, so a file made from another history is never used; the cache is
rebuildable and never the truth. The live tail (the active segment, up to its committed
end, via ``CommittedLog``) is parsed into temporary tables when the session opens. Each
session is one consistent cut of the log.

After the views are made, the session locks itself down: file access is limited to the
cache folder, and the configuration is locked, so ad-hoc SQL can read the views and nothing
else. ``query`` accepts read statements only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from sheratan.analytics.reader import (
    Closing,
    CommittedLog,
    read_ndjson_sql,
    sql_list,
    sql_string,
)
from sheratan.analytics.shapes import BASE_TABLES, VIEWS, empty_lines

CACHE_DIR = "analytics"
CACHE_FORMAT = 1
#: Statement types a user may run: reads only.
READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


class ReadOnlyError(ValueError):
    """A statement that would write, or reach outside the views."""


class QueryError(ValueError):
    """DuckDB refused a query (syntax, unknown column, ...): the user's input."""


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class Analytics(Closing):
    """DuckDB with ``events``, ``decisions``, ``jobs``, ``priors_history`` and ``scores``."""

    def __init__(self, home: Path, *, progress: Callable[[int, int], None] | None = None) -> None:
        self.home = Path(home)
        self.cache_dir = self.home / CACHE_DIR
        self.log = CommittedLog(self.home)
        self.con = duckdb.connect(":memory:")
        try:
            self.last_position = self._load(progress)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ setup

    def _load(self, progress: Callable[[int, int], None] | None) -> int:
        cut, last_position = self.log.ledger.committed_cut()
        sealed = self._sealed_segments(cut)
        cached: dict[str, list[str]] = {table: [] for table in BASE_TABLES}
        tail_from = 0
        for done, (path, size, last_pos) in enumerate(sealed, 1):
            files = self._cached(path, size, last_pos)
            if files is None:
                break  # not cacheable (read-only home, say): read the rest as the tail
            for table, file in files.items():
                cached[table].append(file)
            tail_from = done
            if progress is not None:
                progress(done, len(sealed))
        self._remove_stale(cached)
        tail_files = self.log.files()[tail_from:]
        lines = read_ndjson_sql(tail_files) if tail_files else empty_lines()
        events_sql = BASE_TABLES["events"].replace("{lines}", lines)
        self.con.execute(f"CREATE TEMP TABLE tail_events AS {events_sql}")
        for table, sql in BASE_TABLES.items():
            tail = f"tail_{table}"
            if table != "events":  # the tail's lines are parsed once, into tail_events
                query = sql.replace("{lines}", "tail_events")
                self.con.execute(f"CREATE TEMP TABLE {tail} AS {query}")
            sources = [f"SELECT * FROM {tail}"]
            if cached[table]:
                sources.insert(0, f"SELECT * FROM read_parquet({sql_list(cached[table])})")
            self.con.execute(f"CREATE VIEW base_{table} AS {' UNION ALL '.join(sources)}")
        for name, sql in VIEWS.items():
            self.con.execute(f"CREATE VIEW {name} AS {sql}")
        self._lock_down()
        return self.log.last_position if tail_files else last_position

    def _sealed_segments(self, cut: list[tuple[Path, int]]) -> list[tuple[Path, int, int]]:
        """(path, committed size, last position) of every sealed segment, in order."""
        out = []
        for (path, size), (following, _) in itertools.pairwise(cut):
            if os.stat(path).st_size != size:
                break
            out.append((path, size, int(following.stem) - 1))
        return out

    def _cached(self, segment: Path, size: int, last_pos: int) -> dict[str, str] | None:
        """The Parquet files of a sealed segment's base tables, made now if missing."""
        head = self.log.ledger.hash_at(last_pos) or ""
        stem = f"{segment.stem}-{size}-{head[:16]}-v{CACHE_FORMAT}"
        files = {table: self.cache_dir / f"{stem}.{table}.parquet" for table in BASE_TABLES}
        if all(f.exists() for f in files.values()):
            return {t: str(f) for t, f in files.items()}
        try:
            self.cache_dir.mkdir(exist_ok=True)
            lines = read_ndjson_sql([str(segment)])
            events_sql = BASE_TABLES["events"].replace("{lines}", lines)
            self.con.execute(f"CREATE TEMP TABLE segment_events AS {events_sql}")
            for table, sql in BASE_TABLES.items():
                partial = files[table].with_suffix(f".{os.getpid()}.tmp")
                query = sql.replace("{lines}", "segment_events")
                if table == "events":
                    query = "SELECT * FROM segment_events"
                self.con.execute(
                    f"COPY ({query}) TO {sql_string(str(partial))} "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)"
                )
                os.replace(partial, files[table])
        except OSError:
            return None
        finally:
            self.con.execute("DROP TABLE IF EXISTS segment_events")
        return {t: str(f) for t, f in files.items()}

    def _remove_stale(self, cached: dict[str, list[str]]) -> None:
        """Cache files of a cached segment made from another history (or format) go."""
        keep = {Path(f).name for files in cached.values() for f in files}
        segments = {name.split("-", 1)[0] for name in keep}
        if not self.cache_dir.is_dir():
            return
        for path in self.cache_dir.glob("*.parquet"):
            if path.name.split("-", 1)[0] in segments and path.name not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _lock_down(self) -> None:
        allowed = [str(self.cache_dir)] if self.cache_dir.is_dir() else []
        self.con.execute(f"SET allowed_directories = {sql_list(allowed)}")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    # ----------------------------------------------------------------- queries

    def query(self, sql: str) -> Result:
        """Run a user's read statement(s); the last one's rows are returned."""
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
                    "(SELECT over events, decisions, jobs, priors_history, scores)"
                )
                raise ReadOnlyError(msg)
        try:
            for statement in statements[:-1]:
                self.con.execute(statement.query)
            relation = self.con.execute(statements[-1].query)
            columns = [d[0] for d in relation.description or ()]
            return Result(columns, relation.fetchall())
        except duckdb.PermissionException:
            msg = "the query reaches outside the views (files, network): `sql` is read-only"
            raise ReadOnlyError(msg) from None
        except duckdb.Error as error:
            raise QueryError(_first_line(error)) from None

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


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
