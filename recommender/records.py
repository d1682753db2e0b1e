"""The unified long record schema: the one frame shape every importer produces.

It is the schema of `../shared/data/records/*.parquet` (see that folder's README): one row per
(model, variant, dataset, subset, split, metric) value, values as the source gives them. Importers
may add `dataset_description`; the writer reads it when present.
"""

from __future__ import annotations

import polars as pl

from recommender.errors import FormatError
from recommender.import_report import Rejected

RECORD_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "model": pl.String(),
    "model_revision": pl.String(),
    "dataset": pl.String(),
    "task": pl.String(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "higher_is_better": pl.Boolean(),
    "split": pl.String(),
    "subset": pl.String(),
    "evaluated_at": pl.String(),
    "source_ref": pl.String(),
}
RECORD_COLUMNS = tuple(RECORD_SCHEMA)
REQUIRED_COLUMNS = ("model", "dataset", "metric", "value")
OPTIONAL_EXTRA = {"dataset_description": pl.String()}

__all__ = ["OPTIONAL_EXTRA", "RECORD_COLUMNS", "RECORD_SCHEMA", "REQUIRED_COLUMNS", "Rejected", "conform",
           "empty_records", "records_frame"]


def empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_SCHEMA)


def records_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Build a record frame from row dicts (missing keys become null)."""
    if not rows:
        return empty_records()
    extra = {name: dtype for name, dtype in OPTIONAL_EXTRA.items() if any(name in r for r in rows)}
    return pl.DataFrame(rows, schema={**RECORD_SCHEMA, **extra}, strict=False)


def _example(out: pl.DataFrame, raw_values: pl.Series, mask: pl.Series) -> str | None:
    """The first masked row as `model · dataset · metric = value`, the value as the file wrote it."""
    rows = mask.arg_true()
    if rows.is_empty():
        return None
    row = out.row(int(rows[0]), named=True)
    names = " · ".join(str(row[c]) if row[c] else "(none)" for c in ("model", "dataset", "metric"))
    return f"{names} = {raw_values[int(rows[0])]!r}"


def conform(frame: pl.DataFrame, *, default_source: str, rejected: Rejected) -> pl.DataFrame:
    """Cast a frame to the unified schema, fill defaults, and drop unusable rows (counted).

    Raises `FormatError` when a required column is missing altogether: that is a wrong file,
    not a bad row.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise FormatError(f"missing required column(s): {', '.join(missing)}")
    columns = []
    for name, dtype in {**RECORD_SCHEMA, **OPTIONAL_EXTRA}.items():
        if name in frame.columns:
            column = pl.col(name)
            if name == "higher_is_better" and frame.schema[name] == pl.String:
                column = column.str.to_lowercase().replace_strict(
                    {"true": True, "false": False, "1": True, "0": False}, default=None
                )
            columns.append(column.cast(dtype, strict=False).alias(name))
        elif name in RECORD_SCHEMA:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    out = frame.select(columns)
    # A value that was given but does not read as a number is a different mistake from a missing
    # one (a unit suffix, a stray word), and the report names it so the user can fix the file.
    unreadable = frame["value"].is_not_null() & out["value"].is_null()
    out = out.with_columns(
        pl.col("source").fill_null(default_source),
        *(pl.col(c).str.strip_chars() for c in ("model", "dataset", "metric")),
    )
    bad_value = pl.col("value").is_null() | ~pl.col("value").is_finite()
    missing_key = pl.any_horizontal(
        pl.col(c).is_null() | (pl.col(c) == "") for c in ("model", "dataset", "metric")
    )
    flags = out.select(missing_key.alias("key"), bad_value.alias("value"))
    no_key, no_value = flags["key"], flags["value"] & ~flags["key"]
    for reason, mask in (("missing model, dataset or metric", no_key),
                         ("value not a number", no_value & unreadable),
                         ("value missing, NaN or infinite", no_value & ~unreadable)):
        rejected.add(reason, int(mask.sum()), _example(out, frame["value"], mask))
    return out.filter(~flags["key"] & ~flags["value"])
