"""The catalogue's tables, as SQLAlchemy Core metadata (current version).

Design notes:
* `records` is keyed by model · dataset · metric · split · subset · source · variant. The data's
  convention is "keep every revision", so the variant (MTEB revision, Aider edit format, HAL
  scaffold…) is part of the key instead of being collapsed on import.
* Optional key parts are stored as '' rather than NULL: NULLs are distinct in UNIQUE constraints
  on both SQLite and PostgreSQL, which would let duplicates in. Export maps '' back to null.
* Text columns are `Text` everywhere so the same schema runs unchanged on PostgreSQL.
* `source_ref` is stored as an interned prefix (up to the last '/') plus a tail: most records of
  a file share the prefix, and the long repeated strings were two thirds of the database (86 MB
  vs 30 MB for the shared records, measured), which also made every bulk insert slower.

The migrations in `migrations.py` build exactly these tables step by step; a test checks that a
fresh database and an upgraded one end with the same columns.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Text, nullable=False),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False, server_default="import"),
    sa.Column("url", sa.Text),
    sa.Column("licence", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),  # bumped on every write
)

source_refs = sa.Table(
    "source_refs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("family", sa.Text),
    sa.Column("n_parameters", sa.BigInteger),
    sa.Column("release_date", sa.Text),
    sa.Column("licence", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("downloads", sa.BigInteger),
    sa.Column("extra", sa.Text),  # JSON: every other metadata field a source gave
    sa.Column("hub_sha", sa.Text),  # last seen Hugging Face commit, to refetch cards only on change
    sa.Column("updated_at", sa.Text, nullable=False),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("alias", sa.Text, primary_key=True),  # normalised key (see normalise.model_key)
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # exact | case | revision | org | manual
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("task_type", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("main_metric", sa.Text),
    sa.Column("extra", sa.Text),  # JSON: languages, domains, descriptive statistics…
    sa.Column("updated_at", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("higher_is_better", sa.Boolean),  # NULL = unknown; never guessed silently
    sa.Column("direction_from", sa.Text, nullable=False, server_default="unknown"),
)

records = sa.Table(
    "records",
    metadata,
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

crawl_runs = sa.Table(
    "crawl_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # running | done | failed | cancelled
    sa.Column("cursor", sa.Text),  # JSON; where the next run continues
    sa.Column("counts", sa.Text),  # JSON: added / updated / unchanged / rejected / requests
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("finished_at", sa.Text),
)
sa.Index("ix_crawl_runs_source", crawl_runs.c.source, crawl_runs.c.id)

http_cache = sa.Table(
    "http_cache",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("body_sha256", sa.Text),
    sa.Column("fetched_at", sa.Text, nullable=False),
)

metric_scales = sa.Table(
    "metric_scales",
    metadata,
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), primary_key=True),
    sa.Column("metric_id", sa.Integer, sa.ForeignKey("metrics.id"), primary_key=True),
    sa.Column("scale", sa.Text, nullable=False),  # fraction | percent | unbounded
    sa.Column("min_value", sa.Float, nullable=False),
    sa.Column("max_value", sa.Float, nullable=False),
    sa.Column("n_values", sa.Integer, nullable=False),
)

record_history = sa.Table(
    "record_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("evaluated_at", sa.Text),
    sa.Column("source_ref", sa.Text),
    sa.Column("crawled_at", sa.Text, nullable=False),
    sa.Column("replaced_at", sa.Text, nullable=False),
)

import_digests = sa.Table(
    "import_digests",
    metadata,
    sa.Column("unit", sa.Text, primary_key=True),  # format + path of an import unit
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("generations", sa.Text, nullable=False),  # JSON {source_id: generation} after the write
    sa.Column("counts", sa.Text, nullable=False),  # JSON of what the write found
    sa.Column("imported_at", sa.Text, nullable=False),
)

import_targets = sa.Table(
    "import_targets",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),  # JSON [resolved path, --format, --source]
    sa.Column("files", sa.Text, nullable=False),  # JSON {relative path: sha256} read by that import
    sa.Column("units", sa.Text, nullable=False),  # JSON list: label, format, unit key, rows, rejected
    sa.Column("skipped", sa.Text, nullable=False),  # JSON list of files of no known format
    sa.Column("imported_at", sa.Text, nullable=False),
)
