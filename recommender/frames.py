"""Polars frames straight from the store: the catalogue, and the ranking groups built from it.

A ranking group is (dataset, task, metric); a dataset part (an MMLU subject, a language) is its
own dataset `name [subset]`, tied to its base dataset so that splits keep the parts together.
Inside a group each model has one value: the best over its variants (edit formats, scaffolds,
precisions, revisions — the best configuration anyone reported), sign-flipped where lower is
better, then z-scored within the group. Groups with fewer than two models, or no spread, carry no
ranking signal and are dropped; metrics of unknown direction are never ranked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from recommender.errors import NoDataError
from recommender.store import Store


@dataclass
class Catalogue:
    records: pl.DataFrame
    models: pl.DataFrame
    datasets: pl.DataFrame


_RECORDS_SQL = """
SELECT r.model_id, r.dataset_id, d.name AS dataset, r.subset, r.task, me.name AS metric,
       me.higher_is_better AS higher_is_better, r.value, r.variant, s.name AS source
FROM records r
JOIN datasets d ON d.id = r.dataset_id
JOIN metrics me ON me.id = r.metric_id
JOIN sources s ON s.id = r.source_id
"""


def _frame(store: Store, sql: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(sql).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pl.DataFrame(dict(zip(schema, columns, strict=True)), schema=schema, strict=False)


def load_catalogue(store: Store) -> Catalogue:
    records = _frame(store, _RECORDS_SQL, {
        "model_id": pl.Int64, "dataset_id": pl.Int64, "dataset": pl.String, "subset": pl.String, "task": pl.String,
        "metric": pl.String, "higher_is_better": pl.Boolean, "value": pl.Float64, "variant": pl.String, "source": pl.String,
    })
    models = _frame(store, "SELECT id, name, family, n_parameters, release_date, licence, description, downloads, extra FROM models", {
        "model_id": pl.Int64, "name": pl.String, "family": pl.String, "n_parameters": pl.Int64, "release_date": pl.String,
        "licence": pl.String, "description": pl.String, "downloads": pl.Int64, "extra": pl.String,
    })
    datasets = _frame(store, "SELECT id, name, task_type, description, main_metric, extra FROM datasets", {
        "dataset_id": pl.Int64, "name": pl.String, "task_type": pl.String, "description": pl.String,
        "main_metric": pl.String, "extra": pl.String,
    })
    return Catalogue(records, models, datasets)


def dataset_key(dataset: pl.Expr, subset: pl.Expr) -> pl.Expr:
    return pl.when(subset.is_null() | (subset == "")).then(dataset).otherwise(pl.concat_str(dataset, pl.lit(" ["), subset, pl.lit("]")))


# Values are compared at this many significant digits: sources print a score to different
# precisions (MTEB has 0.7633333333333334 for thirteen models and 0.763333 for the fourteenth of
# one leaderboard), and without rounding that printing difference ranked the fourteenth last at
# z −3.6. Rounded, the 178 groups where it mattered on ../shared/data get their ties back, and
# the two made only of such a tie are dropped (no spread).
SIGNIFICANT_DIGITS = 6


def ranking_groups(catalogue: Catalogue, min_models: int = 2) -> pl.DataFrame:
    """One row per (group, model): group key parts, base dataset, signed value `y` (at
    `SIGNIFICANT_DIGITS`), z-score `z`."""
    frame = catalogue.records.filter(pl.col("higher_is_better").is_not_null())
    if frame.is_empty():
        raise NoDataError("the catalogue holds no records with a known metric direction; import some leaderboards first")
    frame = frame.with_columns(
        dataset_key(pl.col("dataset"), pl.col("subset")).alias("dataset_key"),
        pl.when(pl.col("higher_is_better")).then(pl.col("value")).otherwise(-pl.col("value"))
        .round_sig_figs(SIGNIFICANT_DIGITS).alias("y"),
        pl.col("task").replace("", "unknown").fill_null("unknown"),
    )
    best = frame.group_by("dataset_key", "dataset", "task", "metric", "model_id").agg(pl.col("y").max(), pl.col("source").min())
    best = best.sort("dataset_key", "task", "metric", "model_id")
    n_models, mean, std = _segment_stats(best)
    spread = std > 0
    z = np.divide(best["y"].to_numpy() - mean, std, out=np.zeros(len(std)), where=spread)
    groups = best.with_columns(pl.Series("n_models", n_models, pl.UInt32), pl.Series("z", z))
    groups = groups.filter((pl.col("n_models") >= min_models) & pl.Series(spread))
    if groups.is_empty():
        raise NoDataError(f"no ranking group has {min_models} or more models with different values")
    group_id = groups.select(pl.struct("dataset_key", "task", "metric").rle_id().alias("group_id"))["group_id"]
    return groups.select(
        group_id.cast(pl.Int64), "dataset_key", pl.col("dataset").alias("base_dataset"), "task", "metric",
        "model_id", "y", "z", "n_models", "source",
    )


def _segment_stats(best: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `best` (sorted by group key, not empty): its group's size, mean and population standard
    deviation of y (exactly 0 when every y of the group is equal), summed in row order.

    polars' grouped mean and std sum in a thread-dependent order, so the z-scores differed in
    their last bits from run to run, and training amplified that into different rankers
    (validation τw 0.6671 or 0.6674 after the same first epoch, measured); numpy's segment sums
    over sorted rows are the same every time."""
    y = best["y"].to_numpy().astype(np.float64)
    run = best.select(pl.struct("dataset_key", "task", "metric").rle_id())[:, 0].to_numpy()
    starts = np.flatnonzero(np.diff(run, prepend=-1))
    counts = np.diff(np.append(starts, len(y)))
    mean = np.repeat(np.add.reduceat(y, starts) / counts, counts)
    deviation = y - mean
    std = np.sqrt(np.add.reduceat(deviation * deviation, starts) / counts)
    std[np.maximum.reduceat(y, starts) == np.minimum.reduceat(y, starts)] = 0.0  # not 1e-16 of rounding
    std = np.repeat(std, counts)
    return np.repeat(counts, counts), mean, std


def parse_extra(value: str | None) -> dict:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
