"""DuckDB over the ledger, reading complete, committed lines only.

While a writer appends, the active segment may end at any instant in a partial line, or in the
first lines of a save whose last line is not written yet. DuckDB's JSON reader has no option
to leave such a tail out: without ``ignore_errors`` the partial line fails the whole query, and
with it the partial line becomes a row of NULLs while an incomplete save's lines still count
(and real damage would be hidden too). So DuckDB is handed only what the ledger has indexed as
committed: a segment whose file holds exactly its committed bytes is read in place (sealed
segments), and the active segment (or any segment with bytes past its committed end) is read
from an immutable snapshot file of exactly its committed prefix.

    with CommittedLog(home) as log:
        con.sql(f"SELECT topic, count(*) FROM {read_ndjson_sql(log.files())} GROUP BY topic")

Each ``files()`` call is one consistent cut of the log at ``last_position``. Opening uses the
process's shared ledger (``open_ledger``), which, like any open, first repairs a torn tail left
by a crashed writer.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from sheratan.store.factory import open_ledger
from sheratan.store.files import own_temp
from sheratan.store.ledger import CorruptLogError
from sheratan.store.limits import MAX_LINE_BYTES

#: The columns of a ledger line for ``read_ndjson(..., columns=...)``: explicit types, so no
#: sampling, and keys a line lacks (``raw``, ``trk``) read as NULL. ``ts`` is UTC.
LINE_COLUMNS: dict[str, str] = {
    "pos": "BIGINT",
    "ts": "TIMESTAMP",
    "stream": "VARCHAR",
    "ver": "BIGINT",
    "topic": "VARCHAR",
    "data": "JSON",
    "raw": "VARCHAR",
    "trk": "STRUCT(app VARCHAR, id BIGINT)",
    "end": "BIGINT",
    "prev": "VARCHAR",
    "hash": "VARCHAR",
}

_COPY_CHUNK_BYTES = 8 * 1024 * 1024


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_list(items: Sequence[str]) -> str:
    """``items`` as a SQL list of string literals."""
    return "[" + ", ".join(sql_string(i) for i in items) + "]"


def read_ndjson_sql(files: Sequence[str], columns: dict[str, str] = LINE_COLUMNS) -> str:
    """A ``read_ndjson(...)`` table expression over ``files`` with the ledger's columns.

    Errors are never ignored: every byte handed over is a complete, committed line.
    """
    paths = ", ".join(sql_string(f) for f in files)
    cols = ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in columns.items())
    return (
        f"read_ndjson([{paths}], columns={{{cols}}}, format='newline_delimited', "
        f"ignore_errors=false, maximum_object_size={2 * MAX_LINE_BYTES})"
    )


class Closing:
    """``with`` support for an object with ``close()``: ``__enter__`` returns it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CommittedLog(Closing):
    """Hands DuckDB the committed lines of a home's log, as of each ``files()`` call.

    Not for use by several threads at once; give each thread its own (snapshots of the two
    most recent cuts are kept, so a query on the previous cut can still finish).
    """

    def __init__(self, home: Path, name: str = "events", workdir: Path | None = None) -> None:
        self.ledger = open_ledger(Path(home), name)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sheratan-duckdb-")
            workdir = Path(self._tmp.name)
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        #: The last position of the most recent cut (0 for an empty log).
        self.last_position = 0
        self._previous: set[Path] = set()
        self._current: set[Path] = set()

    def files(self) -> list[str]:
        """Paths holding exactly the log's committed lines, in order, as of now."""
        cut, last_position = self.ledger.committed_cut()
        self._previous, self._current = self._current, set()
        out: list[str] = []
        if not cut:  # a log nothing was written to yet has no segment file
            empty = self.workdir / "empty.jsonl"
            empty.touch()
            self._current.add(empty)
            out.append(str(empty))
        for i, (path, size) in enumerate(cut):
            active = i == len(cut) - 1
            if not active and os.stat(path).st_size == size:
                out.append(str(path))  # sealed and complete: read in place
                continue
            out.append(str(self.snapshot(path, size)))
        self._remove_stale()
        self.last_position = last_position
        return out

    def snapshot(self, path: Path, end: int, start: int = 0) -> Path:
        """An immutable copy of bytes ``start``..``end`` of ``path`` (shared while unchanged).

        The copy is kept until two later ``files()`` cuts no longer use it."""
        name = f"{path.stem}-{end}.jsonl" if start == 0 else f"{path.stem}-{start}-{end}.jsonl"
        target = self.workdir / name
        self._current.add(target)
        if target.exists():
            return target
        partial = own_temp(target)
        with path.open("rb") as src, partial.open("wb") as dst:
            copied = start
            while copied < end:
                n = _copy_range(src.fileno(), dst.fileno(), copied, end - copied)
                if n == 0:
                    msg = f"{path} is shorter than its committed {end} bytes"
                    raise CorruptLogError(msg)
                copied += n
        os.replace(partial, target)
        return target

    def _remove_stale(self) -> None:
        keep = self._previous | self._current
        for path in self.workdir.glob("*.jsonl"):
            if path not in keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _copy_range(src: int, dst: int, offset: int, count: int) -> int:
    """Copy up to ``count`` bytes of ``src`` from ``offset`` to the end of ``dst``."""
    count = min(count, _COPY_CHUNK_BYTES)
    try:
        return os.copy_file_range(src, dst, count, offset_src=offset)
    except (AttributeError, OSError):  # not Linux, or a file system without it
        return os.write(dst, os.pread(src, count, offset))
