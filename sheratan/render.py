"""Output for the CLI: JSON for scripts, aligned tables for people. No logic beyond layout."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import click
import msgspec

_json = msgspec.json.Encoder(order="deterministic")


def to_plain(value: Any) -> Any:
    """Structs, UUIDs and datetimes as plain JSON-able values."""
    return msgspec.to_builtins(value)


def emit_json(value: Any) -> None:
    click.echo(_json.encode(to_plain(value)).decode())


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A left-aligned text table; cells are shown with str(), None as '-'."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def fields(record: dict[str, Any]) -> str:
    """One 'key: value' line per field, for show commands."""
    width = max((len(k) for k in record), default=0)
    out = []
    for key, value in record.items():
        shown = _json.encode(value).decode() if isinstance(value, dict | list | tuple) else value
        out.append(f"{key.ljust(width)}  {'-' if shown is None else shown}")
    return "\n".join(out)


def _cell(value: Any) -> Any:
    """A query value for a table or CSV cell: nested values as JSON, times as ISO text."""
    if isinstance(value, dict | list | tuple):
        return _json.encode(to_plain(value)).decode()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return to_plain(value)


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], output: str) -> str:
    """Query rows as ``table``, ``json`` (a list of objects) or ``csv``, ending in a newline."""
    if output == "json":
        objects = [dict(zip(columns, row, strict=True)) for row in rows]
        return _json.encode(to_plain(objects)).decode() + "\n"
    cells = [[_cell(v) for v in row] for row in rows]
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return buffer.getvalue()
    return table(cells, columns) + "\n"
