"""Opening the catalogue: engine options per backend, migrations, one writer at a time.

An SQLite file is opened and written through the standard library (`driver`), and a new file
is created from the frozen schema (`sqlite_schema`), so importing, counting and crawling never
load SQLAlchemy; its engine is made on first use, by the readers that build SQL with it (and for
every other backend, for everything).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from recommender import paths
from recommender.errors import StoreError
from recommender.store import driver
from recommender.store.versions import LATEST_VERSION

if TYPE_CHECKING:
    import sqlalchemy as sa

    from recommender.store.driver import DriverConnection


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """The driver's own implicit transactions are switched off (`isolation_level = None`) so that
    SQLAlchemy's BEGIN, emitted in `_sqlite_begin`, is the only one: the documented recipe for
    correct SAVEPOINT and BEGIN IMMEDIATE behaviour with pysqlite.
    """
    dbapi_connection.isolation_level = None
    driver.apply_pragmas(dbapi_connection)


def _sqlite_begin(conn: sa.Connection) -> None:
    """Writers take the database lock up front, so a second writer waits (busy_timeout) instead
    of failing half-way through its transaction with "database is locked"."""
    immediate = conn.get_execution_options().get("lensroute_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (None for another backend, an in-memory database or a bad URL)."""
    plain = driver.sqlite_file(url)
    if plain is not None or not url.startswith("sqlite"):
        return plain
    from sqlalchemy.engine import make_url  # a driver name or options: let SQLAlchemy read it
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(url: str) -> sa.Engine:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # psycopg 3 is what we depend on; a bare postgresql:// URL would ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(f"no database driver for {parsed.drivername} ({exc})") from exc


_IDLE_CONNECTIONS = 4  # pooled SQLite connections kept open between blocks


class Store:
    """The catalogue database: its schema brought up to date, connections, and the write lock.

    Writes go through `writing()` so that only one thread writes at a time (SQLite allows one
    writer; serialising in-process avoids busy-waits). Readers use `reading()` (driver-level
    SQL, as the writers) or `engine` (SQLAlchemy, made on first use) freely. On an SQLite file
    both take a `sqlite3` connection from a small pool for the length of the block, as
    SQLAlchemy's pool does: a thread per job (the GUI) or per request (serve) never leaves one
    open behind it.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._file = driver.sqlite_file(url)
        self._write_lock = threading.Lock()
        self._guard = threading.Lock()  # the lazily made engine and the list of connections
        self._engine: sa.Engine | None = None
        self._idle: list[sqlite3.Connection] = []  # pooled connections to the SQLite file
        self._generation = 0  # bumped by close(): a connection from before it is closed on return
        try:
            if self._file is None or not self._open_file():
                self._upgrade()
        except (sqlite3.DatabaseError, OSError) as exc:  # not a database; a folder that cannot be made
            self.close()
            raise StoreError(f"cannot open database {self.display_url}: {_first_line(exc)}") from exc

    def _open_file(self) -> bool:
        """True when the file is at the latest version, or was empty and now is; False sends
        everything else (older, newer, another program's) through the migrations."""
        from recommender.store import sqlite_schema

        assert self._file is not None
        self._file.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as raw:
            version = sqlite_schema.stored_version(raw)
            if version == LATEST_VERSION:
                return True
            return version == 0 and sqlite_schema.create_latest(raw)

    def _upgrade(self) -> None:
        from sqlalchemy.exc import DBAPIError

        from recommender.store import migrations

        try:
            migrations.upgrade(self.engine)
        except DBAPIError as exc:
            self.close()
            raise StoreError(f"cannot open database {self.display_url}: {_first_line(exc)}") from exc

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        return cls(paths.database_url(url))

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            with self._guard:
                if self._engine is None:
                    self._engine = create_engine(self.url)
        return self._engine

    @property
    def display_url(self) -> str:
        if self._file is not None:
            return self.url
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.url.split(":", 1)[0].split("+", 1)[0] == "sqlite"

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection to the SQLite file for the length of the block, then back to the pool
        (closed instead when the pool is full or `close()` was called meanwhile)."""
        assert self._file is not None
        with self._guard:
            raw = self._idle.pop() if self._idle else None
            generation = self._generation
        if raw is None:
            raw = driver.connect(self._file)
        keep = False
        try:
            yield raw
        finally:
            try:
                if raw.in_transaction:  # a block left by an error: nothing half-done goes back
                    raw.execute("ROLLBACK")
                with self._guard:
                    keep = generation == self._generation and len(self._idle) < _IDLE_CONNECTIONS
                    if keep:
                        self._idle.append(raw)
            finally:
                if not keep:
                    raw.close()

    @contextmanager
    def reading(self) -> Iterator[DriverConnection]:
        """A connection for driver-level SQL reads, in one read transaction (one snapshot)."""
        if self._file is None:
            with self.engine.connect() as conn:
                yield conn
            return
        with self._connection() as raw:
            raw.execute("BEGIN")
            yield driver.SqliteConnection(raw)
            raw.execute("COMMIT")

    @contextmanager
    def writing(self) -> Iterator[DriverConnection]:
        """A transaction holding the write lock; commits on success, rolls back on any error.
        Writers send driver-level SQL (`exec_driver_sql`, `writer._mark` for the placeholder)."""
        with self._write_lock:
            if self._file is None:
                with self.engine.connect().execution_options(lensroute_write=True) as conn, conn.begin():
                    yield conn
                return
            with self._connection() as raw:
                raw.execute("BEGIN IMMEDIATE")
                yield driver.SqliteConnection(raw)
                raw.execute("COMMIT")  # on an error `_connection` rolls back instead

    def close(self) -> None:
        """Close every connection (one in use, when its block ends); like SQLAlchemy's dispose(),
        the store stays usable and opens new ones when asked."""
        with self._guard:
            self._generation += 1
            idle, self._idle = self._idle, []
            engine, self._engine = self._engine, None
        for raw in idle:
            raw.close()
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(getattr(exc, "orig", exc)) or exc.__class__.__name__
    return text.strip().splitlines()[0]
