"""Does the recommender pick good pools? Routed accuracy with the pool restricted to the
recommender's Top-K for each benchmark, to K random models, and to every model.

For each benchmark with test queries, the ranker ranks the table's models from the benchmark's
description alone (`resources/routing_benchmarks.yaml`; the benchmark name where it has none) —
the way a user describes a task, without telling the ranker the answer; the candidates carry what
the catalogue knows of each model (size, family, release date). A router (kNN by default)
is trained on the table's train queries restricted to the pool's columns and routes the
benchmark's test queries at λ = 0 among the pool members scored on each query. Random pools are
averaged over seeded draws. Also reported per pool: the accuracy of the pool's best single model
on those test queries (hindsight), so the router's share is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import yaml

from recommender import paths
from recommender.errors import UsageError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from routing.routers import decide, make_router
from routing.table import ScoreTable

POOLS = ("recommended", "random", "all")


@dataclass
class PoolRow:
    benchmark: str
    pool: str
    k: int
    accuracy: float
    best_member: float
    queries: int
    models: list[str]

    def as_json(self) -> dict:
        return {"benchmark": self.benchmark, "pool": self.pool, "k": self.k, "accuracy": round(self.accuracy, 4),
                "best_member": round(self.best_member, 4), "queries": self.queries, "models": self.models}


def benchmark_descriptions() -> dict[str, str]:
    path = paths.resources_dir() / "routing_benchmarks.yaml"
    return {str(k): str(v) for k, v in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items()}


def routed_accuracy(x: np.ndarray, table: ScoreTable, columns: list[int], test: np.ndarray, kind: str,
                    seed: int) -> tuple[float, float, int]:
    """(routed accuracy, best single member's accuracy, queries counted) on `test` rows."""
    train = (table.split == "train") & ~np.isnan(table.scores[:, columns]).all(1)
    scores = table.scores[:, columns]
    router = make_router(kind).fit(x[train], scores[train], seed=seed)
    available = ~np.isnan(scores[test])
    counted = available.any(1)  # a query none of the pool was scored on cannot be routed
    chosen = decide(router.predict(x[test][counted]), np.zeros((int(counted.sum()), len(columns))),
                    available[counted], 0.0)
    s = np.nan_to_num(scores[test][counted], nan=0.0)
    routed = float(s[np.arange(len(s)), chosen].mean()) if len(s) else float("nan")
    member_means = np.nanmean(np.where(available[counted], scores[test][counted], np.nan), axis=0)
    return routed, float(np.nanmax(member_means)) if len(s) else float("nan"), int(counted.sum())


def candidates_for(models: list[str], store=None) -> list:  # type: ignore[no-untyped-def,type-arg]
    """Ranker candidates with what the catalogue knows of each model (size, family, release date);
    a size the catalogue lacks is taken from the name when it states one (`…-7b-…`)."""
    from recommender.normalise import parameters_from_name
    from recommender.ranker import Candidate

    known: dict[str, tuple] = {}  # type: ignore[type-arg]
    if store is not None:
        import sqlalchemy as sa

        with store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, n_parameters, family, release_date FROM models WHERE name IN :names")
                                .bindparams(sa.bindparam("names", expanding=True)), {"names": models}).fetchall()
        known = {r[0]: tuple(r[1:]) for r in rows}
    out = []
    for model in models:
        params, family, released = known.get(model, (None, None, None))
        out.append(Candidate(model, float(params) if params else parameters_from_name(model), family, released))
    return out


def pool_experiment(table: ScoreTable, x: np.ndarray, ranker, k: int, *, kind: str = "knn",  # type: ignore[no-untyped-def]
                    random_draws: int = 10, seed: int = 0, store=None, progress: Progress = no_progress,
                    cancel: CancelToken = NEVER_CANCELLED) -> list[PoolRow]:
    if not 1 <= k < len(table.models):
        raise UsageError(f"k must be between 1 and {len(table.models) - 1} (the table has {len(table.models)} models)")
    descriptions = benchmark_descriptions()
    candidates = candidates_for(table.models, store)
    benchmarks = sorted({b for b in table.benchmarks[table.split == "test"].tolist()})
    rng = np.random.default_rng(seed)
    rows: list[PoolRow] = []
    for step, bench in enumerate(benchmarks):
        cancel.raise_if_cancelled()
        progress(step, len(benchmarks), bench)
        test = (table.split == "test") & (table.benchmarks == bench)
        ranking = ranker.rank(descriptions.get(bench, bench), top_k=0, candidates=candidates)
        top = [table.models.index(r.model) for r in ranking.results[:k]]
        acc, best, n = routed_accuracy(x, table, top, test, kind, seed)
        rows.append(PoolRow(bench, "recommended", k, acc, best, n, [table.models[j] for j in top]))
        draws = [sorted(rng.choice(len(table.models), size=k, replace=False).tolist()) for _ in range(random_draws)]
        measured = [routed_accuracy(x, table, d, test, kind, seed) for d in draws]
        rows.append(PoolRow(bench, "random", k, float(np.mean([m[0] for m in measured])),
                            float(np.mean([m[1] for m in measured])), measured[0][2], []))
        everyone = list(range(len(table.models)))
        acc, best, n = routed_accuracy(x, table, everyone, test, kind, seed)
        rows.append(PoolRow(bench, "all", len(everyone), acc, best, n, list(table.models)))
    progress(len(benchmarks), len(benchmarks), "done")
    for pool in POOLS:
        mine = [r for r in rows if r.pool == pool]
        total = sum(r.queries for r in mine)
        rows.append(PoolRow("all", pool, mine[0].k, sum(r.accuracy * r.queries for r in mine) / total,
                            sum(r.best_member * r.queries for r in mine) / total, total, []))
    return rows
