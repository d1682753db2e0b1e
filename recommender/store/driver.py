"""SQLite files through the standard library's `sqlite3`: the connection every write goes through.

The catalogue's writers (the record writer, import and crawl bookkeeping, removal) send SQL text
with positional parameters (`exec_driver_sql`) and read `dialect.paramstyle`; nothing else of
SQLAlchemy. For an SQLite file those two members are served here, straight from `sqlite3`,
so a command that only imports or counts never loads SQLAlchemy: its import alone is 0.15–0.2 s,
an eighth of a whole first import of ../shared/data (measured). Other backends (PostgreSQL) get
SQLAlchemy's own connection, which has the same two members.

Kept free of SQLAlchemy and polars on purpose.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote

# Applied to every connection, SQLAlchemy's included (`engine._sqlite_pragmas`), by
# `apply_pragmas`: busy_timeout first, then WAL (readers run beside the writer; `enable_wal`),
# then these.
BUSY_TIMEOUT_MS = 30_000
SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys=ON",  # off by default in SQLite
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
)


class Dialect(NamedTuple):
    name: str
    paramstyle: str


SQLITE = Dialect("sqlite", "qmark")


class DriverConnection(Protocol):
    """What the writers use of a connection: SQLAlchemy's `Connection` and `SqliteConnection` both."""

    @property
    def dialect(self) -> Any: ...
    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any: ...


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///PATH` URL, read as SQLAlchemy reads it (percent-escapes
    decoded, `~` not expanded), so both kinds of connection open the same file; None for anything
    else (another backend, a driver name, an in-memory database, query options), which SQLAlchemy
    then handles alone. (`--db` and `LENSROUTE_DB` given as a bare path are expanded before they
    become URLs: `paths.database_url`.)"""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    database = unquote(url[len(prefix):])
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE for
    writers), as SQLAlchemy's side does, so both behave alike."""
    raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        apply_pragmas(raw)
    except BaseException:
        raw.close()
        raise
    return raw


def apply_pragmas(raw: sqlite3.Connection) -> None:
    raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    enable_wal(raw)
    for pragma in SQLITE_PRAGMAS:
        raw.execute(pragma)


def enable_wal(raw: sqlite3.Connection, wait_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Switch the file to WAL, waiting for other programs that switch it at the same moment.

    Two connections switching a new file at once each hold a shared lock and each want the
    exclusive one; SQLite answers one of them "database is locked" at once instead of calling the
    busy handler (waiting would deadlock them), so busy_timeout does not help there. Seen as two
    torchrun ranks opening a new embedding cache together: one failed at start (4 processes
    opening a new file together: 6 of 80 refused, measured). That answer is retried here, with a
    short growing pause, until the other has finished or `wait_s` has passed.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.005
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


class Result:
    """The few result methods the writers use, over a `sqlite3` cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def fetchmany(self, size: int) -> list[Any]:
        return self._cursor.fetchmany(size)

    def first(self) -> Any:
        row = self._cursor.fetchone()
        self._cursor.close()
        return row

    def one(self) -> Any:
        rows = self._cursor.fetchall()
        if len(rows) != 1:
            raise sqlite3.ProgrammingError(f"expected one row, got {len(rows)}")
        return rows[0]

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class SqliteConnection:
    """`exec_driver_sql` and `dialect` over one `sqlite3` connection. As in SQLAlchemy, a list of
    parameter tuples runs the statement once per tuple (executemany)."""

    dialect = SQLITE

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Result:
        if isinstance(parameters, list) and parameters and isinstance(parameters[0], tuple | list):
            return Result(self.raw.executemany(statement, parameters))
        return Result(self.raw.execute(statement, parameters or ()))


# --- SQL text for either kind of connection --------------------------------------------------------

IN_LIST_CHUNK = 900  # bound parameters per IN (...) list, below SQLite's historic 999 limit


def mark(conn: DriverConnection) -> str:
    """The driver's positional parameter marker (sqlite3: ?, psycopg: %s)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def placeholders(conn: DriverConnection, n: int) -> str:
    return ", ".join([mark(conn)] * n)


def select_in(conn: DriverConnection, sql: str, values: Sequence[Any], extra: tuple = ()) -> list[Any]:
    """Run `sql` (containing one `{in}` slot) for each chunk of `values`; all rows together."""
    values = list(values)
    out: list[Any] = []
    for start in range(0, len(values), IN_LIST_CHUNK):
        chunk = values[start : start + IN_LIST_CHUNK]
        statement = sql.format(**{"in": placeholders(conn, len(chunk))})
        out.extend(conn.exec_driver_sql(statement, (*extra, *chunk)).fetchall())
    return out


__all__ = [
    "SQLITE",
    "SQLITE_PRAGMAS",
    "DriverConnection",
    "Result",
    "SqliteConnection",
    "apply_pragmas",
    "connect",
    "enable_wal",
    "mark",
    "placeholders",
    "select_in",
    "sqlite_file",
]
