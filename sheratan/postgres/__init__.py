"""A home whose log lives in PostgreSQL, through the eventsourcing library's own module.

``sheratan init --store postgres --dsn …`` records the server in the home's marker
(``target``); opening the home then gives the application the library's PostgreSQL recorders
(``eventsourcing.postgres``) instead of the JSONL store, and reads the log for the views and
``events tail`` straight from the database (``log``). Commands that still need the embedded
JSONL files (why, replay, audit, sql) say so (``support``): they come with the exporter.
See docs/postgres.md.
"""
