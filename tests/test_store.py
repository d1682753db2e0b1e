"""The store: schema, migrations, engine settings, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from recommender.errors import StoreError
from recommender.store import LATEST_VERSION, Store, create_engine, current_version, schema, upgrade


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def test_fresh_store_is_at_latest_version_with_the_schema_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        assert current_version(conn) == LATEST_VERSION
    expected = {name: {c.name for c in table.columns} for name, table in schema.metadata.tables.items()}
    assert _columns(store.engine) == expected


def test_database_created_by_the_first_version_upgrades_and_keeps_its_data(db_url: str) -> None:
    engine = create_engine(db_url)
    assert upgrade(engine, target=1) == [1]
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO sources (name, kind, created_at) VALUES ('old', 'import', 't0')")
        conn.exec_driver_sql("INSERT INTO models (name, updated_at) VALUES ('org/m', 't0')")
        conn.exec_driver_sql("INSERT INTO datasets (name, updated_at) VALUES ('d', 't0')")
        conn.exec_driver_sql("INSERT INTO metrics (name) VALUES ('acc')")
        conn.exec_driver_sql(
            "INSERT INTO records (model_id, dataset_id, metric_id, source_id, value, crawled_at) VALUES (1, 1, 1, 1, 0.5, 't0')"
        )
    engine.dispose()

    store = Store(db_url)  # opening migrates
    with store.engine.connect() as conn:
        assert current_version(conn) == LATEST_VERSION
        assert conn.exec_driver_sql("SELECT value FROM records").scalar() == 0.5
        assert conn.exec_driver_sql("SELECT generation FROM sources WHERE name = 'old'").scalar() == 0
        applied = [v for (v,) in conn.exec_driver_sql("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == list(range(1, LATEST_VERSION + 1))
    expected = {name: {c.name for c in table.columns} for name, table in schema.metadata.tables.items()}
    assert _columns(store.engine) == expected
    store.close()


def test_a_newer_schema_than_this_program_is_refused(db_url: str) -> None:
    Store(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO schema_migrations (version, description, applied_at) VALUES ({LATEST_VERSION + 1}, 'future', 't')"
        )
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this lensroute"):
        Store(db_url)


def test_a_database_of_another_program_is_refused_and_left_as_it_was(db_url: str) -> None:
    """A mistyped --db used to get the catalogue's tables added to someone else's database."""
    engine = create_engine(db_url)
    with engine.begin() as conn:  # SQLite: any table is another program's; PostgreSQL: a clash of names
        conn.exec_driver_sql("CREATE TABLE models (name TEXT)")
        conn.exec_driver_sql("INSERT INTO models VALUES ('theirs')")
    with pytest.raises(StoreError, match=r"holds tables lensroute did not create \(models\); .* a database of its own"):
        Store(db_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["models"]
        assert conn.exec_driver_sql("SELECT name FROM models").scalars().all() == ["theirs"]
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Both kinds of connection: the writers' (sqlite3) and SQLAlchemy's (readers that build SQL)."""
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    for opened in (store.reading(), store.engine.connect()):
        with opened as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), store.writing() as conn:
        conn.exec_driver_sql(
            "INSERT INTO records (model_id, dataset_id, metric_id, source_id, value, crawled_at) VALUES (9, 9, 9, 9, 1.0, 't')"
        )
    store.close()


def test_write_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.writing() as conn:
        conn.exec_driver_sql("INSERT INTO sources (name, kind, created_at) VALUES ('x', 'import', 't')")
        raise RuntimeError("boom")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM sources").scalar() == 0


def test_unreachable_database_is_a_one_line_store_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError) as caught:
        Store("postgresql://nobody@127.0.0.1:1/none")
    assert "\n" not in str(caught.value)
    with pytest.raises(StoreError):
        Store("not a url at all ::")



def test_a_migration_another_program_finished_meanwhile_is_skipped_not_repeated(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two programs open a new catalogue at once and both read version 0; the first migrates. The
    second must find the work done once it holds the lock, not fail on tables that now exist."""
    from recommender.store import migrations

    Store(db_url).close()  # the other program has migrated everything
    real, calls = migrations.current_version, []

    def stale_first_read(conn: sa.Connection) -> int:
        calls.append(1)
        return 0 if len(calls) == 1 else real(conn)

    monkeypatch.setattr(migrations, "current_version", stale_first_read)
    engine = create_engine(db_url)
    assert migrations.upgrade(engine) == []
    assert len(calls) == 1 + len(migrations.MIGRATIONS)  # re-read under the lock before each one
    engine.dispose()


def test_opening_a_new_sqlite_catalogue_waits_for_another_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Another lensroute holds the lock on a new file while it creates the catalogue: opening
    waits for it (busy_timeout) instead of failing with "database is locked", then finds the
    work done."""
    import threading

    from recommender.store import sqlite_schema
    from recommender.store.versions import VERSIONS

    path = tmp_path / "c.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    for statement in sqlite_schema.statements():
        holder.execute(statement)
    holder.executemany("INSERT INTO schema_migrations VALUES (?, ?, 't')", VERSIONS)
    outcome: list[object] = []
    opener = threading.Thread(target=lambda: outcome.append(_open_or_error(f"sqlite:///{path}")))
    opener.start()
    opener.join(timeout=1.0)
    assert opener.is_alive() and not outcome  # still waiting while the other writer holds the lock
    holder.execute("COMMIT")
    holder.close()
    opener.join(timeout=60)
    assert outcome == ["opened"]


def _open_or_error(url: str) -> str:
    try:
        Store(url).close()
    except StoreError as exc:
        return str(exc)
    return "opened"


def test_the_frozen_sqlite_schema_is_what_the_migrations_create(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A new SQLite file is created from `sqlite_schema_ddl.py`, not by replaying the migrations: the
    file must stay what they produce (after a new migration: `python -m recommender.store.sqlite_schema`)."""
    from recommender.store import migrations, sqlite_schema

    assert sqlite_schema.SCHEMA_FILE.read_text(encoding="utf-8") == sqlite_schema.generate()

    Store(f"sqlite:///{tmp_path / 'fast.db'}").close()  # the frozen schema
    engine = create_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    migrations.upgrade(engine)  # every migration, one by one
    engine.dispose()

    def layout(name: str) -> tuple[list, list]:
        raw = sqlite3.connect(tmp_path / name)
        try:
            master = raw.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
            versions = raw.execute("SELECT version, description FROM schema_migrations ORDER BY version").fetchall()
        finally:
            raw.close()
        return master, versions

    fast, replayed = layout("fast.db"), layout("replayed.db")
    assert fast == replayed
    assert [v for v, _ in fast[1]] == list(range(1, LATEST_VERSION + 1))


def test_importing_and_counting_an_sqlite_catalogue_never_loads_sqlalchemy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLAlchemy's import is 0.15–0.2 s, an eighth of a whole first import: the commands that only
    write or count an SQLite file go through sqlite3 (a new file, an import, a re-import, stats)."""
    import subprocess
    import sys

    from tests.conftest import RAW, REPO

    code = (
        "import sys\n"
        "from app.cli.main import main\n"
        f"db = {str(tmp_path / 'c.db')!r}\n"
        f"for argv in (['import', {str(RAW / 'aider')!r}], ['import', {str(RAW / 'aider')!r}], ['stats', '--json']):\n"
        "    assert main(['-q', '--db', db, *argv]) == 0, argv\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert '"records": ' in done.stdout


def test_a_file_that_is_not_a_database_is_a_one_line_error_and_is_left_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        Store(f"sqlite:///{path}")
    assert "not a database" in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == before


def test_a_catalogue_whose_folder_cannot_be_made_is_a_one_line_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file where the folder should be (a mistyped --db) used to end in "unexpected error"."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    with pytest.raises(StoreError, match=r"cannot open database .*: Not a directory: .*notes\.txt") as caught:
        Store(f"sqlite:///{blocker / 'sub' / 'c.db'}")
    assert "\n" not in str(caught.value)
    assert blocker.read_text() == "mine\n"


def _open_handles(path) -> int:  # type: ignore[no-untyped-def]
    """File descriptors of this process open on `path` (one per SQLite connection)."""
    import os
    from pathlib import Path

    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd to count open files")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:
            continue
    return count


def test_a_thread_per_job_leaves_no_sqlite_connection_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The GUI runs each job on a thread of its own and serve a thread per request: connections
    are pooled per block, not kept per thread, so forty jobs do not leave forty open files."""
    import threading

    path = tmp_path / "c.db"
    store = Store(f"sqlite:///{path}")

    def job(i: int) -> None:
        with store.writing() as conn:
            conn.exec_driver_sql("INSERT INTO sources (name, kind, created_at) VALUES (?, 'import', 't')", (f"s{i}",))
        with store.reading() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM sources WHERE name = ?", (f"s{i}",)).scalar() == 1

    for start in range(0, 40, 8):  # eight at a time, like overlapping jobs
        threads = [threading.Thread(target=job, args=(i,)) for i in range(start, start + 8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with store.reading() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM sources").scalar() == 40
    assert 1 <= _open_handles(path) <= 4
    store.close()
    assert _open_handles(path) == 0
    with store.reading() as conn:  # closed as SQLAlchemy's dispose() is: still usable,
        store.close()  # and a connection in use when it is closed goes when its block ends
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM sources").scalar() == 40
    assert _open_handles(path) == 0
    job(40)
    assert _open_handles(path) == 1
    store.close()
    assert _open_handles(path) == 0


@pytest.mark.parametrize("name", ["plain.db", "with space.db", "100%.db", "hash#mark.db", "é.db"])
def test_both_kinds_of_connection_open_the_same_sqlite_file(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    """The writers' sqlite3 connection and SQLAlchemy's engine must read a URL alike, or a write
    and a read of one store would go to two files."""
    from urllib.parse import quote

    from recommender.store.driver import sqlite_file

    for url in (f"sqlite:///{tmp_path / name}", f"sqlite:///{quote(str(tmp_path / name))}"):
        assert sqlite_file(url) == Path(sa.engine.make_url(url).database)
        store = Store(url)
        with store.writing() as conn:
            conn.exec_driver_sql("INSERT INTO sources (name, kind, created_at) VALUES ('mine', 'import', 't')")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT name FROM sources").scalars().all() == ["mine"]
        store.close()
        (tmp_path / name).unlink()
