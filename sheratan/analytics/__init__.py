"""Analytics over a home's log: DuckDB reads committed lines only (see reader.py).

Importing this package imports neither DuckDB nor the store: the CLI reads these defaults
when it starts (``sheratan --help`` shows them)."""

#: Default time limit of a user's query, in seconds (``sql --timeout``).
QUERY_TIMEOUT_S = 10.0
#: Page-Hinkley defaults of ``why drift``: the tolerated change of the normalized mean, and
#: the alarm threshold (lambda).
PH_DELTA = 0.05
PH_LAMBDA = 10.0
