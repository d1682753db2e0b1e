"""Versioned schema migrations.

Each migration freezes the DDL of its own version (it never reads `schema.py`), so a database
created by any released version upgrades by replaying the steps it lacks. `schema_migrations`
records what was applied; every step runs in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from recommender.errors import StoreError
from recommender.store.schema import metadata
from recommender.store.versions import LATEST_VERSION, VERSIONS


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _v1_tables(md: sa.MetaData) -> None:
    """The first schema: the catalogue itself."""
    sa.Table(
        "schema_migrations", md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", sa.Text, nullable=False),
    )
    sa.Table(
        "sources", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False, server_default="import"),
        sa.Column("url", sa.Text),
        sa.Column("licence", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    sa.Table(
        "source_refs", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prefix", sa.Text, nullable=False, unique=True),
    )
    sa.Table(
        "models", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("family", sa.Text),
        sa.Column("n_parameters", sa.BigInteger),
        sa.Column("release_date", sa.Text),
        sa.Column("licence", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("downloads", sa.BigInteger),
        sa.Column("extra", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    sa.Table(
        "model_aliases", md,
        sa.Column("alias", sa.Text, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
    )
    sa.Table(
        "datasets", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("task_type", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("extra", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    sa.Table(
        "metrics", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("higher_is_better", sa.Boolean),
        sa.Column("direction_from", sa.Text, nullable=False, server_default="unknown"),
    )
    records = sa.Table(
        "records", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("metric_id", sa.Integer, sa.ForeignKey("metrics.id"), nullable=False),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
        sa.Column("variant", sa.Text, nullable=False, server_default=""),
        sa.Column("split", sa.Text, nullable=False, server_default=""),
        sa.Column("subset", sa.Text, nullable=False, server_default=""),
        sa.Column("task", sa.Text, nullable=False, server_default=""),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("evaluated_at", sa.Text),
        sa.Column("source_ref_id", sa.Integer, sa.ForeignKey("source_refs.id")),
        sa.Column("source_ref_tail", sa.Text),
        sa.Column("crawled_at", sa.Text, nullable=False),
        sa.UniqueConstraint(
            "source_id", "model_id", "dataset_id", "metric_id", "split", "subset", "variant",
            name="uq_records_key",
        ),
    )
    sa.Index("ix_records_dataset_metric", records.c.dataset_id, records.c.metric_id)


def _v1(conn: sa.Connection) -> None:
    md = sa.MetaData()
    _v1_tables(md)
    md.create_all(conn)


def _v2(conn: sa.Connection) -> None:
    """Resumable crawls: run state with cursors, the conditional-request cache, Hub shas."""
    md = sa.MetaData()
    crawl_runs = sa.Table(
        "crawl_runs", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cursor", sa.Text),
        sa.Column("counts", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
    )
    sa.Index("ix_crawl_runs_source", crawl_runs.c.source, crawl_runs.c.id)
    sa.Table(
        "http_cache", md,
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("body_sha256", sa.Text),
        sa.Column("fetched_at", sa.Text, nullable=False),
    )
    md.create_all(conn)
    conn.execute(sa.text("ALTER TABLE models ADD COLUMN hub_sha TEXT"))


def _v3(conn: sa.Connection) -> None:
    """Provenance and scales: superseded values are kept, per-source value scales recorded."""
    md = sa.MetaData()
    sa.Table("sources", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("metrics", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("records", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "metric_scales", md,
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), primary_key=True),
        sa.Column("metric_id", sa.Integer, sa.ForeignKey("metrics.id"), primary_key=True),
        sa.Column("scale", sa.Text, nullable=False),
        sa.Column("min_value", sa.Float, nullable=False),
        sa.Column("max_value", sa.Float, nullable=False),
        sa.Column("n_values", sa.Integer, nullable=False),
    )
    sa.Table(
        "record_history", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("evaluated_at", sa.Text),
        sa.Column("source_ref", sa.Text),
        sa.Column("crawled_at", sa.Text, nullable=False),
        sa.Column("replaced_at", sa.Text, nullable=False),
    )
    for name in ("metric_scales", "record_history"):
        md.tables[name].create(conn)
    conn.execute(sa.text("ALTER TABLE datasets ADD COLUMN main_metric TEXT"))


def _v4(conn: sa.Connection) -> None:
    """Fast idempotent re-imports: a digest per import unit, valid while its sources are untouched."""
    md = sa.MetaData()
    sa.Table(
        "import_digests", md,
        sa.Column("unit", sa.Text, primary_key=True),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("generations", sa.Text, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("imported_at", sa.Text, nullable=False),
    )
    md.create_all(conn)
    conn.execute(sa.text("ALTER TABLE sources ADD COLUMN generation INTEGER NOT NULL DEFAULT 0"))


def _v5(conn: sa.Connection) -> None:
    """Re-imports of unchanged files answered without parsing: targets and the bytes they read."""
    md = sa.MetaData()
    sa.Table(
        "import_targets", md,
        sa.Column("target", sa.Text, primary_key=True),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("units", sa.Text, nullable=False),
        sa.Column("skipped", sa.Text, nullable=False),
        sa.Column("imported_at", sa.Text, nullable=False),
    )
    md.create_all(conn)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(version, description, step)
    for (version, description), step in zip(VERSIONS, (_v1, _v2, _v3, _v4, _v5), strict=True)
)


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table("schema_migrations"):
        return 0
    value = conn.execute(sa.text("SELECT MAX(version) FROM schema_migrations")).scalar()
    return int(value or 0)


def _refuse_a_foreign_database(conn: sa.Connection) -> None:
    """A database without our version table is new to lensroute: adding the catalogue's tables
    to another program's SQLite file (a mistyped --db), or over same-named tables in a shared
    PostgreSQL database, would change data that is not ours. Refuse, naming what is there."""
    names = set(sa.inspect(conn).get_table_names())
    if "schema_migrations" in names:  # another lensroute has just created it (see `upgrade`)
        return
    ours = {table.name for table in metadata.sorted_tables}
    foreign = sorted(names & ours if conn.dialect.name != "sqlite" else names)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        where = conn.engine.url.render_as_string(hide_password=True)
        raise StoreError(f"{where} holds tables lensroute did not create ({shown}); lensroute keeps its catalogue in "
                         "a database of its own: choose a new file or an empty database")


def upgrade(engine: sa.Engine, target: int = LATEST_VERSION) -> list[int]:
    """Apply every missing migration up to `target`; returns the versions applied.

    Two programs may open a new catalogue at the same moment (the GUI importing while a crawl
    starts): each migration therefore runs under the write lock and re-reads the version inside
    it, so the second opener waits and then finds the work done, instead of failing with
    "database is locked" or "table already exists".
    """
    with engine.connect() as conn:
        have = current_version(conn)
        if have == 0:
            _refuse_a_foreign_database(conn)
    if have > LATEST_VERSION:
        raise StoreError(
            f"the database has schema version {have}, newer than this lensroute ({LATEST_VERSION}); "
            "upgrade lensroute"
        )
    applied = []
    for migration in MIGRATIONS:
        if have < migration.version <= target:
            with engine.connect().execution_options(lensroute_write=True) as conn, conn.begin():
                _hold_migration_lock(conn)
                if current_version(conn) >= migration.version:
                    continue
                migration.apply(conn)
                conn.execute(
                    sa.text(
                        "INSERT INTO schema_migrations (version, description, applied_at) "
                        "VALUES (:v, :d, :t)"
                    ),
                    {"v": migration.version, "d": migration.description, "t": _now()},
                )
            applied.append(migration.version)
    return applied


_MIGRATION_LOCK = 0x6C656E73  # "lens": PostgreSQL advisory lock key for schema migrations


def _hold_migration_lock(conn: sa.Connection) -> None:
    """SQLite's write transaction (BEGIN IMMEDIATE, see engine) already excludes other writers;
    PostgreSQL needs an explicit lock, released with the transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
