"""AutoML Benchmark result tables: `reports/old/tables/<budget>/all_results.csv` (one row per fold)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, first_line, single

SOURCE = "amlb"
_REQUIRED = {"framework", "task", "fold", "type", "acc"}
_TASK = {"binary": "binary-classification", "multiclass": "multiclass-classification", "regression": "regression"}


def _budget(path: Path) -> str | None:
    parent = path.parent.name
    return parent if parent[:-1].isdigit() and parent[-1:] in ("h", "m") else None


def _parse(path: Path, context: ImportContext) -> ParsedFile:
    try:
        folds = pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FormatError(f"cannot read CSV: {str(exc).splitlines()[0]}") from exc
    if not set(folds.columns) >= _REQUIRED:
        raise FormatError(f"not an AMLB results table (needs {', '.join(sorted(_REQUIRED))})")
    parsed = ParsedFile()
    budget = _budget(path)
    metrics = [m for m in ("acc", "auc", "logloss") if m in folds.columns]
    long = folds.with_columns(
        pl.col("task").str.to_lowercase().alias("dataset"),
        pl.col("utc").cast(pl.String).str.slice(0, 10).alias("date") if "utc" in folds.columns else pl.lit(None, pl.String).alias("date"),
    ).unpivot(index=["framework", "version", "dataset", "type", "date"], on=metrics, variable_name="metric", value_name="value")
    # auc belongs to binary tasks and logloss to multiclass ones, as in the AMLB reports.
    long = long.filter(
        (pl.col("metric") == "acc")
        | ((pl.col("metric") == "auc") & (pl.col("type") == "binary"))
        | ((pl.col("metric") == "logloss") & (pl.col("type") != "binary"))
    ).with_columns(pl.col("value").cast(pl.Float64, strict=False))
    failed = long.filter(pl.col("value").is_null() | pl.col("value").is_nan())
    parsed.rejected.add("AMLB fold without a result (failed run)", failed.height)
    means = (
        long.drop_nulls("value").filter(~pl.col("value").is_nan())
        .group_by("framework", "version", "dataset", "type", "metric", maintain_order=True)
        .agg(pl.col("value").mean(), pl.col("date").min().alias("evaluated_at"))
    )
    variant = pl.concat_str(
        pl.lit("version="), pl.col("version").cast(pl.String),
        *([pl.lit(f";budget={budget}")] if budget else []),
    )
    parsed.records = means.select(
        pl.lit(context.source or SOURCE).alias("source"),
        pl.col("framework").alias("model"),
        variant.alias("model_revision"),
        "dataset",
        pl.col("type").replace_strict(_TASK, default=pl.col("type")).alias("task"),
        "metric", "value",
        (pl.col("metric") != "logloss").alias("higher_is_better"),
        pl.lit("test").alias("split"),
        pl.lit(None, pl.String).alias("subset"),
        "evaluated_at",
        pl.lit(str(path)).alias("source_ref"),
    )
    return parsed


def _sniff(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and set(first_line(path).split(",")) >= _REQUIRED


FORMATS = (Format("amlb-csv", "AutoML Benchmark all_results.csv", _sniff, single(_parse)),)
