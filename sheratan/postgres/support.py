"""Which commands run on a PostgreSQL home now, and the one line for those that do not yet.

The commands below read and write through the application and the views folded from the
database (``sheratan.postgres.log``), or read the exporter's JSONL copy of the log
(``READ_EXPORT``: why, replay, audit, sql), which is brought up to date before they run.
Dispatchers, workers and servers follow the database on LISTEN/NOTIFY and take turns under
advisory locks (``sheratan.postgres.locks``). The others wait; each joins ``SUPPORTED``
with a test on a PostgreSQL home.
"""

from __future__ import annotations

from pathlib import Path

from sheratan.home import MARKER, read_marker
from sheratan.inputs import InvalidInputError

#: Commands that read ``Home.ledger``: on a PostgreSQL home, the export, brought up to date
#: (one checked pass) before they run, and how far behind the database it is said on stderr.
READ_EXPORT = frozenset(
    {
        "audit verify",
        "audit checkpoint",
        "audit prove",
        "audit consistency",
        "audit report",
        "sql",
        "why latest",
        "why trace",
        "why job",
        "why stats",
        "why drift",
        "replay",
    }
)


#: Command paths (after ``sheratan``) that work on a PostgreSQL home, each with a test.
SUPPORTED = READ_EXPORT | frozenset(
    {
        "init",
        "serve",
        "token",
        "token rotate",
        "mission create",
        "mission list",
        "mission show",
        "mission activate",
        "task create",
        "task list",
        "job create",
        "job show",
        "job list",
        "policy show",
        "policy diff",
        "rebuild",
        "job cancel",
        "job requeue",
        "job retry-dependents",
        "account open",
        "account credit",
        "account show",
        "account list",
        "account history",
        "events tail",
        "worker register",
        "worker run",
        "worker list",
        "worker quarantine",
        "worker release",
        "dispatch",
        "simulate",
        "system state",
        "system transition",
        "system history",
        "export",
        "import",
        "audit keygen",
        "audit verify-proof",
    }
)


class NotOnPostgresError(InvalidInputError):
    """A command that needs the embedded store's files, asked of a PostgreSQL home."""


def refuse_unsupported(home: Path, command_path: str) -> bool:
    """Before a command runs: on a PostgreSQL home, refuse it unless it runs there; True
    when it reads the export (bring it up to date first). ``command_path`` is click's
    (``sheratan job list``); a folder that is no home yet is left to the command (``init``
    makes one, the others say there is none)."""
    if not (home / MARKER).exists() or read_marker(home).postgres is None:
        return False
    command = command_path.split(" ", 1)[1] if " " in command_path else command_path
    check_supported(command)
    return command in READ_EXPORT


def check_supported(command: str) -> None:
    """Refuse ``command`` (its path after ``sheratan``) on a PostgreSQL home unless it runs
    there; the message names what it waits for."""
    if command in SUPPORTED or command.startswith("bench "):
        return  # a bench builds homes of its own and never opens this one
    msg = (
        f"`sheratan {command}` does not run on a PostgreSQL home yet "
        "(issue 13; docs/postgres.md lists what runs now)"
    )
    raise NotOnPostgresError(msg)
