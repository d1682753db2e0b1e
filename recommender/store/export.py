"""Record frames in the unified schema, and export to parquet / CSV / JSONL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from recommender.errors import NotFoundError, UsageError
from recommender.interchange import EXPORT_FORMATS
from recommender.records import RECORD_SCHEMA
from recommender.store.driver import placeholders
from recommender.store.engine import Store

_EXPORT_SQL = """
SELECT s.name, m.name, r.variant, d.name, r.task, me.name, r.value, me.higher_is_better,
       r.split, r.subset, r.evaluated_at, sr.prefix || r.source_ref_tail
FROM records r
JOIN sources s ON s.id = r.source_id
JOIN models m ON m.id = r.model_id
JOIN datasets d ON d.id = r.dataset_id
JOIN metrics me ON me.id = r.metric_id
LEFT JOIN source_refs sr ON sr.id = r.source_ref_id
"""


def records_frame(store: Store, sources: Sequence[str] | None = None, batch: int = 200_000) -> pl.DataFrame:
    """All records (optionally of some sources) in the unified schema, '' keys mapped to null."""
    frames = []
    names = list(RECORD_SCHEMA)
    with store.reading() as conn:
        sql = _EXPORT_SQL
        params: tuple = ()
        if sources:
            sql += f" WHERE s.name IN ({placeholders(conn, len(sources))})"
            params = tuple(sources)
        sql += " ORDER BY r.id"
        result = conn.exec_driver_sql(sql, params)
        while rows := result.fetchmany(batch):
            columns = list(zip(*rows, strict=True))
            frames.append(pl.DataFrame(dict(zip(names, columns, strict=True)), schema=RECORD_SCHEMA, strict=False))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=RECORD_SCHEMA)
    return frame.with_columns(
        pl.col(c).replace("", None) for c in ("model_revision", "split", "subset", "task")
    )


def export_format_for(path: Path, explicit: str | None) -> str:
    if explicit:
        if explicit not in EXPORT_FORMATS:
            raise UsageError(f"unknown export format {explicit!r}; use one of {', '.join(EXPORT_FORMATS)}")
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("ndjson", "json"):
        suffix = "jsonl"
    if suffix not in EXPORT_FORMATS:
        raise UsageError(f"cannot tell the export format from {path.name!r}; pass --format {'|'.join(EXPORT_FORMATS)}")
    return suffix


def _check_sources(store: Store, sources: Sequence[str]) -> None:
    """A misspelt --source would otherwise export an empty file and call it a success."""
    with store.reading() as conn:
        known = sorted(row[0] for row in conn.exec_driver_sql(  # a source whose records were deleted is no source
            "SELECT name FROM sources s WHERE EXISTS (SELECT 1 FROM records r WHERE r.source_id = s.id)"))
    unknown = [name for name in sources if name not in known]
    if unknown:
        raise NotFoundError(f"no source named {', '.join(map(repr, unknown))} in the catalogue "
                            f"(it has: {', '.join(known) or 'none'})")


def export_records(store: Store, path: Path, fmt: str | None = None, sources: Sequence[str] | None = None) -> int:
    """Write the catalogue's records to `path`; returns the row count. Written to a temporary
    file first and renamed, so an interrupted export never leaves a truncated file behind."""
    chosen = export_format_for(path, fmt)
    if sources:
        _check_sources(store, sources)
    frame = records_frame(store, sources)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if chosen == "parquet":
        frame.write_parquet(partial, compression="zstd")
    elif chosen == "csv":
        frame.write_csv(partial)
    else:
        frame.write_ndjson(partial)
    partial.replace(path)
    return frame.height
