"""Where a PostgreSQL home's log lives: parsing the DSN, the library's environment, the
password kept beside the marker, and a reachability check with one clear line.

The marker (``sheratan.json``) keeps host, port, database and user, never the password: a
password given in the DSN goes to ``<home>/postgres-password`` (0600, like the API token);
without one, libpq's own ``PGPASSWORD`` or ``~/.pgpass`` answer (an empty password given to
libpq means "look there").
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import msgspec

from sheratan.inputs import InvalidInputError
from sheratan.store.files import write_durably

PASSWORD_FILE = "postgres-password"
#: Seconds a command waits for the server before it says it cannot reach it.
CONNECT_TIMEOUT = 5
#: The library's persistence module for a PostgreSQL home.
PERSISTENCE_MODULE = "eventsourcing.postgres"
#: The connection fields the library passes on (eventsourcing.postgres.PostgresDatastore).
_FIELDS = frozenset({"host", "port", "dbname", "user", "password"})


class PostgresMissingError(InvalidInputError):
    """The optional PostgreSQL packages are not installed."""


class StoreUnreachableError(InvalidInputError):
    """The DSN is malformed, or the server does not answer or refuses the login."""


class PostgresTarget(msgspec.Struct, frozen=True):
    """The server and database of a home's log, as the marker keeps it (no password)."""

    host: str
    port: int
    dbname: str
    user: str

    def display(self) -> str:
        """The DSN without its password, for messages."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def env(self, password: str) -> dict[str, str]:
        """The library's environment for this target (``POSTGRES_*``)."""
        return {
            "PERSISTENCE_MODULE": PERSISTENCE_MODULE,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": password,
            "POSTGRES_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        }

    def check_reachable(self, password: str) -> None:
        """Log in once, so a wrong DSN or a server that is down is one clear line, not the
        connection pool's timeout after many retries."""
        psycopg = _psycopg()
        try:
            psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.dbname,
                user=self.user,
                password=password,
                connect_timeout=CONNECT_TIMEOUT,
            ).close()
        except psycopg.OperationalError as error:
            reason = " ".join(str(error).split())
            msg = f"cannot reach PostgreSQL at {self.display()}: {reason}"
            raise StoreUnreachableError(msg) from None


def parse_dsn(dsn: str) -> tuple[PostgresTarget, str]:
    """A DSN (``postgresql://user:password@host:port/dbname`` or ``key=value`` pairs) as a
    target and its password (empty when it has none)."""
    psycopg = _psycopg()
    try:
        fields: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception as error:  # psycopg.ProgrammingError, whatever libpq's parser says
        msg = f"bad --dsn: {' '.join(str(error).split())}"
        raise InvalidInputError(msg) from None
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        msg = f"bad --dsn: only host, port, dbname, user and password are used, not {unknown[0]}"
        raise InvalidInputError(msg)
    host = str(fields.get("host") or "")
    if not host or host.startswith("/") or "," in host:
        msg = "bad --dsn: name one host (TCP), e.g. postgresql://user@127.0.0.1:5432/db"
        raise InvalidInputError(msg)
    try:
        port = int(fields.get("port") or 5432)
    except ValueError:
        raise InvalidInputError(f"bad --dsn: port {fields['port']!r} is not a number") from None
    dbname = str(fields.get("dbname") or "")
    if not dbname:
        raise InvalidInputError("bad --dsn: name the database, e.g. …:5432/sheratan")
    user = str(fields.get("user") or getpass.getuser())
    return PostgresTarget(host, port, dbname, user), str(fields.get("password") or "")


def store_target(store: str, dsn: str | None) -> tuple[PostgresTarget | None, str]:
    """``init``'s --store and --dsn as ``init_home``'s target and password: a PostgreSQL
    store needs a DSN (``--dsn`` or ``$SHERATAN_DSN``); the embedded one takes none."""
    if store != "postgres":
        if dsn is not None:
            raise InvalidInputError("--dsn is only for --store postgres")
        return None, ""
    dsn = dsn if dsn is not None else os.environ.get("SHERATAN_DSN")
    if not dsn:
        raise InvalidInputError("--store postgres needs --dsn (or $SHERATAN_DSN)")
    return parse_dsn(dsn)


def save_password(home: Path, password: str) -> None:
    """Keep the DSN's password beside the marker (0600), or nothing when it had none."""
    if password:
        write_durably(home / PASSWORD_FILE, password.encode(), mode=0o600)


def read_password(home: Path) -> str:
    try:
        return (home / PASSWORD_FILE).read_text()
    except FileNotFoundError:
        return ""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        msg = "PostgreSQL support is not installed: pip install 'sheratan[postgres]'"
        raise PostgresMissingError(msg) from None
    return psycopg
