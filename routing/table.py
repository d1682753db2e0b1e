"""Per-query score tables (query text, model, score in 0..1, cost): loading, cleaning, splitting.

The schema is that of `../shared/data/routing/*.parquet`: source, benchmark, query_id, prompt,
model, score, cost_usd, split, source_ref (only benchmark, prompt, model and score are required).
Real tables are messy, and each mess is handled explicitly and reported in `ScoreTable.notes`:

* rows with a null or NaN score are dropped (counted); a score outside 0..1 is an error;
* repeated (query, model) rows are averaged (counted);
* benchmarks scored on different model sets leave (query, model) holes: they stay NaN, routers
  learn from the pairs that exist, and every decision is taken among the models scored on that
  query (see `available`);
* null costs are resolved per model by `routing.costs` (counted, with the basis used);
* splits: the table's own train/test where it has them; benchmarks without any split in a table
  that has train rows are out-of-distribution — evaluated as test only, trained on the rest;
  a table without any train rows keeps its test rows and gives every unsplit query a seeded split
  (by a hash of seed and query id: reproducible and independent of row order).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommender.errors import FormatError, NoDataError, NotFoundError

REQUIRED = ("benchmark", "prompt", "model", "score")
TEST_SHARE = 0.2


@dataclass
class ScoreTable:
    """One row per query; per-model matrices aligned with `models`."""

    name: str
    query_ids: list[str]
    prompts: list[str]
    benchmarks: np.ndarray  # [n] str
    split: np.ndarray  # [n] "train" | "test"
    models: list[str]
    scores: np.ndarray  # [n, m] float64, NaN where the model was not scored on the query
    costs: np.ndarray  # [n, m] float64 (resolved; see cost_basis)
    cost_basis: str = "uniform"
    ood_benchmarks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def available(self) -> np.ndarray:
        return ~np.isnan(self.scores)

    def __len__(self) -> int:
        return len(self.query_ids)

    def subset(self, mask: np.ndarray) -> ScoreTable:
        index = np.flatnonzero(mask)
        return ScoreTable(self.name, [self.query_ids[i] for i in index], [self.prompts[i] for i in index],
                          self.benchmarks[index], self.split[index], self.models, self.scores[index], self.costs[index],
                          self.cost_basis, self.ood_benchmarks, self.notes)

    def summary(self) -> dict:
        return {"table": self.name, "queries": len(self), "models": len(self.models),
                "train": int((self.split == "train").sum()), "test": int((self.split == "test").sum()),
                "benchmarks": sorted(set(self.benchmarks.tolist())), "cost_basis": self.cost_basis,
                "ood_benchmarks": self.ood_benchmarks, "notes": self.notes}


def read_frame(path: Path):  # type: ignore[no-untyped-def]
    import polars as pl

    if not path.is_file():
        raise NotFoundError(f"no such table: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=10000)
        if suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(path, infer_schema_length=10000)
    except Exception as exc:
        raise FormatError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from exc
    raise FormatError(f"{path}: unknown table format {suffix!r} (use .parquet, .csv or .jsonl)")


def load_table(path: str | Path, *, seed: int = 0, price_lookup=None) -> ScoreTable:  # type: ignore[no-untyped-def]
    """Read, clean and split a score table; `price_lookup(models) → {model: prices}` resolves null
    costs (defaults to the catalogue and the bundled price list)."""
    import polars as pl

    path = Path(path)
    frame = read_frame(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise FormatError(f"{path.name}: missing column(s) {', '.join(missing)}; a score table needs {', '.join(REQUIRED)}")
    notes: list[str] = []
    frame = frame.with_columns(pl.col("score").cast(pl.Float64, strict=False), pl.col("prompt").cast(pl.Utf8),
                               pl.col("model").cast(pl.Utf8), pl.col("benchmark").cast(pl.Utf8))
    for column in ("query_id", "cost_usd", "split"):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(column))
    frame = frame.with_columns(pl.col("cost_usd").cast(pl.Float64, strict=False), pl.col("split").cast(pl.Utf8),
                               pl.col("query_id").cast(pl.Utf8))
    bad_text = frame.filter(pl.col("prompt").is_null() | pl.col("model").is_null() | (pl.col("model") == ""))
    if bad_text.height:
        notes.append(f"dropped {bad_text.height} rows without a prompt or model")
        frame = frame.filter(pl.col("prompt").is_not_null() & pl.col("model").is_not_null() & (pl.col("model") != ""))
    unscored = frame.filter(pl.col("score").is_null() | pl.col("score").is_nan())
    if unscored.height:
        notes.append(f"dropped {unscored.height} rows with a missing or NaN score")
        frame = frame.filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
    outside = frame.filter((pl.col("score") < 0) | (pl.col("score") > 1))
    if outside.height:
        example = outside.row(0, named=True)
        raise FormatError(f"{path.name}: {outside.height} scores outside 0..1 (e.g. {example['score']} for "
                          f"{example['model']!r}); rescale them to 0..1 first")
    if frame.is_empty():
        raise NoDataError(f"{path.name}: no scored rows")
    frame = frame.with_columns(pl.col("benchmark").fill_null("(none)"))
    # a query is its id where the table has one, else its benchmark and text
    frame = frame.with_columns(
        pl.when(pl.col("query_id").is_null())
        .then(pl.col("benchmark") + pl.lit("\0") + pl.col("prompt"))
        .otherwise(pl.col("query_id"))
        .alias("query_id")
    )
    duplicates = frame.height - frame.select("query_id", "model").n_unique()
    if duplicates:
        notes.append(f"averaged {duplicates} repeated (query, model) rows")
    per_pair = frame.group_by("query_id", "model", maintain_order=True).agg(
        pl.col("score").mean(), pl.col("cost_usd").mean(), pl.col("prompt").first(), pl.col("benchmark").first(),
        pl.col("split").drop_nulls().first())
    queries = per_pair.group_by("query_id", maintain_order=True).agg(
        pl.col("prompt").first(), pl.col("benchmark").first(), pl.col("split").drop_nulls().first()).sort("query_id")
    models = sorted(per_pair["model"].unique().to_list())
    q_index = {q: i for i, q in enumerate(queries["query_id"].to_list())}
    m_index = {m: j for j, m in enumerate(models)}
    rows = np.array([q_index[q] for q in per_pair["query_id"].to_list()])
    cols = np.array([m_index[m] for m in per_pair["model"].to_list()])
    scores = np.full((queries.height, len(models)), np.nan)
    scores[rows, cols] = per_pair["score"].to_numpy()
    given_cost = np.full_like(scores, np.nan)
    given_cost[rows, cols] = per_pair["cost_usd"].fill_null(np.nan).to_numpy()
    holes = int(np.isnan(scores).sum())
    if holes:
        notes.append(f"{holes} (query, model) pairs are unscored (benchmarks with different model sets): "
                     "routers learn from the scored pairs and decide among the models scored on each query")
    prompts = queries["prompt"].to_list()
    from routing.costs import resolve_costs

    costs, basis, cost_notes = resolve_costs(models, prompts, given_cost, price_lookup)
    notes.extend(cost_notes)
    benchmarks = np.array(queries["benchmark"].to_list(), dtype=object)
    split, ood, split_notes = assign_splits(queries["query_id"].to_list(), benchmarks, queries["split"].to_list(), seed)
    notes.extend(split_notes)
    return ScoreTable(path.stem, queries["query_id"].to_list(), prompts, benchmarks, split, models, scores, costs,
                      basis, ood, notes)


def _seeded_test(query_ids: list[str], seed: int) -> np.ndarray:
    """A reproducible, order-independent split: a query is test when its seeded hash says so."""
    values = np.array([int.from_bytes(hashlib.sha256(f"{seed}\0{q}".encode()).digest()[:8], "big") for q in query_ids],
                      dtype=np.float64)
    return values / 2.0**64 < TEST_SHARE


def assign_splits(query_ids: list[str], benchmarks: np.ndarray, given: list[str | None],
                  seed: int) -> tuple[np.ndarray, list[str], list[str]]:
    given_arr = np.array([(g or "").strip().lower() for g in given], dtype=object)
    unknown = sorted({g for g in given_arr.tolist() if g not in ("", "train", "test", "validation", "val", "dev")})
    if unknown:
        raise FormatError(f"unknown split value(s) {', '.join(map(repr, unknown))}; use train, test or leave it empty")
    given_arr[np.isin(given_arr, ["validation", "val", "dev"])] = "train"
    notes: list[str] = []
    split = np.empty(len(query_ids), dtype=object)
    if not (given_arr == "train").any():
        # The table's own test rows stay test; every unsplit query gets a seeded split.
        seeded = np.where(_seeded_test(query_ids, seed), "test", "train")
        split[:] = np.where(given_arr == "test", "test", seeded)
        notes.append(f"the table has no train split: seeded split of its unsplit queries (seed {seed}, "
                     f"{TEST_SHARE:.0%} test)")
        test_only = [b for b in sorted(set(benchmarks.tolist())) if not (split[benchmarks == b] == "train").any()]
        if test_only:
            notes.append(f"benchmarks with test rows only, evaluated out of distribution (trained on the rest): "
                         f"{', '.join(test_only)}")
        return split, test_only, notes
    split[:] = given_arr
    ood = []
    for bench in sorted(set(benchmarks.tolist())):
        mine = benchmarks == bench
        values = set(given_arr[mine].tolist())
        if values == {""}:
            ood.append(bench)
            split[mine] = "test"
        elif "" in values:  # partly split: the unsplit queries join training
            split[mine & (given_arr == "")] = "train"
    if ood:
        notes.append(f"benchmarks without a split evaluated as test only (out of distribution, trained on the rest): "
                     f"{', '.join(ood)}")
    test_only = [b for b in sorted(set(benchmarks.tolist())) if b not in ood and not (split[benchmarks == b] == "train").any()]
    if test_only:
        notes.append(f"benchmarks with test rows only (no training data of their own): {', '.join(test_only)}")
    return split, ood, notes
