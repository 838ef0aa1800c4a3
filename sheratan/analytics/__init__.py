"""Analytics over a home's log: DuckDB reads committed lines only (see reader.py)."""

from sheratan.analytics.reader import LINE_COLUMNS, CommittedLog, read_ndjson_sql

__all__ = ["LINE_COLUMNS", "CommittedLog", "read_ndjson_sql"]
