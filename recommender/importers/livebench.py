"""LiveBench leaderboard tables as livebench.ai publishes them.

`table_<release>.csv`: one row per model, a `model` column and one column per task with scores
in percent; `categories_<release>.json`: {category: [task, …]}. The release date in the file
name becomes `evaluated_at`. When the categories file sits beside the table it names each
task's category (stored as the record's task type).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, first_line, single

SOURCE = "livebench"
_TABLE = re.compile(r"^table_(\d{4}_\d{2}_\d{2}|\d{4}-\d{2}-\d{2})\.csv$")


def _release(path: Path) -> str | None:
    match = _TABLE.match(path.name)
    return match.group(1).replace("_", "-") if match else None


def _categories(path: Path) -> dict[str, str]:
    release = _TABLE.match(path.name)
    if not release:
        return {}
    sidecar = path.with_name(f"categories_{release.group(1)}.json")
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise FormatError(f"invalid {sidecar.name}: {exc}") from exc
    return {task: category for category, tasks in data.items() for task in tasks}


def _parse(path: Path, context: ImportContext) -> ParsedFile:
    try:
        table = pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FormatError(f"cannot read CSV: {str(exc).splitlines()[0]}") from exc
    if "model" not in table.columns or len(table.columns) < 2:
        raise FormatError("a LiveBench table has a 'model' column and one column per task")
    categories = _categories(path)
    tasks = [c for c in table.columns if c != "model"]
    long = table.unpivot(index=["model"], on=tasks, variable_name="livebench_task", value_name="value").with_columns(
        pl.col("value").cast(pl.Float64, strict=False)
    )
    parsed = ParsedFile()
    parsed.rejected.add("LiveBench cell without a score", long.filter(pl.col("value").is_null()).height)
    long = long.drop_nulls("value")
    parsed.records = long.select(
        pl.lit(context.source or SOURCE).alias("source"),
        pl.col("model").cast(pl.String).str.strip_chars(),
        pl.lit(None, pl.String).alias("model_revision"),
        pl.concat_str(pl.lit("livebench/"), "livebench_task").alias("dataset"),
        pl.col("livebench_task").replace_strict(categories, default="text-generation").alias("task"),
        pl.lit("score").alias("metric"),
        "value",
        pl.lit(True).alias("higher_is_better"),
        pl.lit(None, pl.String).alias("split"),
        pl.lit(None, pl.String).alias("subset"),
        pl.lit(_release(path)).alias("evaluated_at"),
        pl.lit(str(path)).alias("source_ref"),
    )
    return parsed


def _sniff(path: Path) -> bool:
    return bool(_TABLE.match(path.name)) and first_line(path).split(",")[0].strip('"') == "model"


FORMATS = (Format("livebench-csv", "LiveBench table_<release>.csv (+ categories_<release>.json)", _sniff, single(_parse)),)
