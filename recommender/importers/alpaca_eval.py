"""AlpacaEval leaderboards: `leaderboards/data_AlpacaEval{,_2}/<annotator>_leaderboard.csv`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recommender.errors import FormatError
from recommender.importers.base import Format, ImportContext, ParsedFile, first_line, single

SOURCE = "alpaca_eval"
METRICS = ("win_rate", "length_controlled_winrate", "discrete_win_rate")


def _dataset(path: Path) -> str:
    version = "alpaca_eval_2" if path.parent.name.endswith("_2") else "alpaca_eval_1"
    return f"{version}/{path.name.removesuffix('.csv').removesuffix('_leaderboard')}"


def _parse(path: Path, context: ImportContext) -> ParsedFile:
    try:
        board = pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FormatError(f"cannot read CSV: {str(exc).splitlines()[0]}") from exc
    model_column = board.columns[0]
    metrics = [m for m in METRICS if m in board.columns]
    if not metrics:
        raise FormatError("not an AlpacaEval leaderboard (no win_rate column)")
    parsed = ParsedFile()
    long = board.unpivot(index=[model_column], on=metrics, variable_name="metric", value_name="value").with_columns(
        pl.col("value").cast(pl.Float64, strict=False)
    )
    parsed.rejected.add("AlpacaEval cell without a value", long.filter(pl.col("value").is_null()).height)
    long = long.drop_nulls("value")
    parsed.records = long.select(
        pl.lit(context.source or SOURCE).alias("source"),
        pl.col(model_column).cast(pl.String).str.strip_chars().alias("model"),
        pl.lit(None, pl.String).alias("model_revision"),
        pl.lit(_dataset(path)).alias("dataset"),
        pl.lit("instruction-following").alias("task"),
        "metric", "value",
        pl.lit(True).alias("higher_is_better"),
        pl.lit(None, pl.String).alias("split"),
        pl.lit(None, pl.String).alias("subset"),
        pl.lit(None, pl.String).alias("evaluated_at"),
        pl.lit(str(path)).alias("source_ref"),
    )
    if "mode" in board.columns:
        parsed.models = [
            {"model": str(name).strip(), "extra": {"alpaca_eval": {"mode": mode}}}
            for name, mode in board.select(model_column, "mode").iter_rows() if name and mode
        ]
    return parsed


def _sniff(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    header = first_line(path).split(",")
    return "win_rate" in header and ("n_wins" in header or "avg_length" in header)


FORMATS = (Format("alpaca-eval-csv", "AlpacaEval leaderboard CSV", _sniff, single(_parse)),)
