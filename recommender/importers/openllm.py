"""Open LLM Leaderboard v2 `contents` parquet (open-llm-leaderboard/contents, data/train-*.parquet).

Only the raw 0..1 scores (`<Benchmark> Raw`) are imported, never the normalised 0–100 columns, and
they are named as Every Eval Ever names the same board (`hfopenllm_v2/<eval>`, precision as the
variant), so both sources land in the same ranking groups.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, single

SOURCE = "open_llm_leaderboard"
# contents column -> (dataset, metric)
BENCHMARKS = {
    "IFEval Raw": ("hfopenllm_v2/IFEval", "Accuracy"),
    "BBH Raw": ("hfopenllm_v2/BBH", "Accuracy"),
    "MATH Lvl 5 Raw": ("hfopenllm_v2/MATH Level 5", "Exact Match"),
    "GPQA Raw": ("hfopenllm_v2/GPQA", "Accuracy"),
    "MUSR Raw": ("hfopenllm_v2/MUSR", "Accuracy"),
    "MMLU-PRO Raw": ("hfopenllm_v2/MMLU-PRO", "Accuracy"),
}


def parse_frame(board: pl.DataFrame, source_ref: str, context: ImportContext) -> ParsedFile:
    name_column = "fullname" if "fullname" in board.columns else "eval_name"
    present = [c for c in BENCHMARKS if c in board.columns]
    if name_column not in board.columns or not present:
        raise FormatError("not an Open LLM Leaderboard contents table (needs fullname and '<Benchmark> Raw' columns)")
    parsed = ParsedFile()
    precision = pl.col("Precision").cast(pl.String) if "Precision" in board.columns else pl.lit(None, pl.String)
    long = board.select(
        pl.col(name_column).cast(pl.String).str.strip_chars().alias("model"),
        precision.alias("precision"),
        *(pl.col(c).cast(pl.Float64, strict=False) for c in present),
    ).unpivot(index=["model", "precision"], on=present, variable_name="column", value_name="value")
    parsed.rejected.add("leaderboard cell without a value", long.filter(pl.col("value").is_null()).height)
    long = long.drop_nulls("value")
    parsed.records = long.select(
        pl.lit(context.source or SOURCE).alias("source"),
        "model",
        pl.when(pl.col("precision").is_not_null()).then(pl.concat_str(pl.lit("precision="), "precision")).alias("model_revision"),
        pl.col("column").replace_strict({k: v[0] for k, v in BENCHMARKS.items()}).alias("dataset"),
        pl.lit("text-generation").alias("task"),
        pl.col("column").replace_strict({k: v[1] for k, v in BENCHMARKS.items()}).alias("metric"),
        "value",
        pl.lit(True).alias("higher_is_better"),
        pl.lit(None, pl.String).alias("split"),
        pl.lit(None, pl.String).alias("subset"),
        pl.lit(None, pl.String).alias("evaluated_at"),
        pl.lit(source_ref).alias("source_ref"),
    )
    meta_columns = {"#Params (B)": "params", "Hub License": "licence", "Architecture": "architecture",
                    "Model sha": "sha", "Base Model": "base_model", "Upload To Hub Date": "uploaded"}
    available = {k: v for k, v in meta_columns.items() if k in board.columns}
    for row in board.select(pl.col(name_column).alias("model"), *(pl.col(k).alias(v) for k, v in available.items())).iter_rows(named=True):
        meta: dict[str, object] = {"model": str(row["model"]).strip()}
        if isinstance(row.get("params"), int | float) and row["params"] and row["params"] > 0:
            meta["n_parameters"] = round(float(row["params"]) * 1e9)
        if row.get("licence"):
            meta["licence"] = str(row["licence"])
        extra = {k: row[k] for k in ("architecture", "sha", "base_model", "uploaded") if row.get(k)}
        if extra:
            meta["extra"] = {"open_llm_leaderboard": extra}
        parsed.models.append(meta)
    return parsed


def _parse(path: Path, context: ImportContext) -> ParsedFile:
    try:
        board = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FormatError(f"cannot read parquet: {str(exc).splitlines()[0]}") from exc
    return parse_frame(board, str(path), context)


def _sniff(path: Path) -> bool:
    if path.suffix.lower() != ".parquet":
        return False
    try:
        columns = set(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError):
        return False
    return ("fullname" in columns or "eval_name" in columns) and bool(columns & set(BENCHMARKS))


FORMATS = (Format("openllm-contents", "Open LLM Leaderboard contents parquet", _sniff, single(_parse)),)
