"""Redaction at the source of the SQL views: the ``data`` DuckDB holds is already redacted.

Redacting query results cannot work: ``reverse(data->>'password')`` or
``data->>'password' = 'hunter2'`` carries a secret past any pattern. So the ``events`` base
table (and through it every view and the Parquet cache) holds ``redact_source``'s form of
each line's ``data``, and the raw values exist only in the log.

Redacting every line in Python would cost a Python call per event (about 140 us, minutes
for a large log). DuckDB first asks, in RE2 over the JSON text, whether a line could hold
anything the redactor would change (``patterns.source_hint``, a superset, with our digests
and action keys cut out first), and only such lines go to Python. Plain decision and job
lines never do.
"""

from __future__ import annotations

import duckdb
from duckdb.sqltypes import VARCHAR

from sheratan.analytics.patterns import source_hint, structure_sql_pattern
from sheratan.analytics.reader import sql_string
from sheratan.analytics.redact import redact_source

#: The Python function DuckDB calls for lines the hint flags.
UDF = "sheratan_redact_source"


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Make ``UDF`` known to ``con`` (before its configuration is locked). DuckDB imports
    numpy for a Python function (0.1-0.3 s), so a session registers it only when some line
    needs it (``flagged_sql``)."""
    con.create_function(UDF, redact_source, [VARCHAR], VARCHAR, side_effects=False)


def flagged_sql(column: str = "data") -> str:
    """A SQL condition: ``column`` may hold something the redactor changes (a superset)."""
    structure = sql_string(structure_sql_pattern())
    hint = sql_string(source_hint())
    return f"regexp_matches(regexp_replace({column}, {structure}, '', 'g'), {hint})"


def redacted_data_sql(column: str = "data") -> str:
    """A SQL expression: ``column`` (JSON text of an event's data) with its secrets hidden."""
    return f"CASE WHEN {flagged_sql(column)} THEN {UDF}({column})::JSON ELSE {column} END"
