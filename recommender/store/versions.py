"""The schema's versions and what each one added.

Read without SQLAlchemy: opening a catalogue that is already at the latest version, or creating
a new SQLite file at it (`sqlite_schema`), needs the numbers and nothing of the migrations.
`migrations` pairs each entry with the step that applies it.
"""

from __future__ import annotations

VERSIONS: tuple[tuple[int, str], ...] = (
    (1, "catalogue: sources, models, aliases, datasets, metrics, records"),
    (2, "resumable crawls: crawl_runs, http_cache, models.hub_sha"),
    (3, "provenance: record_history, metric_scales, datasets.main_metric"),
    (4, "idempotent re-import: import_digests, sources.generation"),
    (5, "unchanged files: import_targets"),
)
LATEST_VERSION = VERSIONS[-1][0]

__all__ = ["LATEST_VERSION", "VERSIONS"]
