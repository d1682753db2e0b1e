"""Opening the catalogue: engine options per backend, migrations, one writer at a time."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from recommender import paths
from recommender.errors import StoreError
from recommender.store import migrations


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """WAL lets readers run beside the writer; foreign keys are off by default in SQLite.

    The driver's own implicit transactions are switched off (`isolation_level = None`) so that
    SQLAlchemy's BEGIN, emitted in `_sqlite_begin`, is the only one: the documented recipe for
    correct SAVEPOINT and BEGIN IMMEDIATE behaviour with pysqlite.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching a new file to WAL may wait for a lock
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    """Writers take the database lock up front, so a second writer waits (busy_timeout) instead
    of failing half-way through its transaction with "database is locked"."""
    immediate = conn.get_execution_options().get("lensroute_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (None for another backend, an in-memory database or a bad URL)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def create_engine(url: str) -> sa.Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
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


class Store:
    """The catalogue database: an engine, its schema brought up to date, and the write lock.

    Writes go through `writing()` so that only one thread writes at a time (SQLite allows one
    writer; serialising in-process avoids busy-waits), while readers use `engine` freely.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._write_lock = threading.Lock()
        try:
            migrations.upgrade(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open database {self.display_url}: {_first_line(exc)}") from exc

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        return cls(paths.database_url(url))

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def writing(self) -> _WriteTransaction:
        """A transaction holding the write lock; commits on success, rolls back on any error."""
        return _WriteTransaction(self)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _WriteTransaction:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None

    def __enter__(self) -> sa.Connection:
        self._store._write_lock.acquire()
        try:
            self._conn = self._store.engine.connect().execution_options(lensroute_write=True)
            self._transaction = self._conn.begin()
        except BaseException:
            if self._conn is not None:
                self._conn.close()
            self._store._write_lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        assert self._conn is not None and self._transaction is not None
        try:
            if exc_type is None:
                self._transaction.commit()
            else:
                self._transaction.rollback()
        finally:
            self._conn.close()
            self._store._write_lock.release()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc)) or exc.__class__.__name__
    return text.strip().splitlines()[0]
