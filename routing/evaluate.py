"""`lensroute route evaluate`: routers against best-single, random and the oracle on a score table.

Routers are trained once on the table's train queries and evaluated on its test queries, per
benchmark and overall (benchmark `all`). For each router, λ is swept from 0 (quality only) to ∞
(cheapest model), giving points (mean cost, mean score) on the test queries:
  accuracy, cost  the point of highest mean score (the lower cost among ties)
  auc             area under the router's cost–quality frontier (best score reachable at or below
                  each cost), cost normalised to [0, 1] between the cheapest and the dearest single
                  model on those queries; 1.0 is a router that gets every query right at the
                  cheapest model's cost. With uniform costs the axis has no width and auc = accuracy
  gap_closed      (accuracy − best-single) / (oracle − best-single), at the highest-score points
Best-single is the model with the highest mean training score (one model for the whole table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recommender.errors import NoDataError
from recommender.progress import NEVER_CANCELLED, CancelToken, Progress, no_progress
from routing.routers import (
    BASELINES,
    ROUTERS,
    BestSingle,
    CostModel,
    RandomRouter,
    Router,
    decide,
    make_router,
)
from routing.table import ScoreTable

LAMBDA_STEPS = 48


@dataclass
class EvalRow:
    benchmark: str
    router: str
    accuracy: float
    cost: float
    auc: float
    gap_closed: float | None
    queries: int

    def as_json(self) -> dict:
        return {"benchmark": self.benchmark, "router": self.router, "accuracy": round(self.accuracy, 4),
                "cost": float(f"{self.cost:.6g}"), "auc": round(self.auc, 4),
                "gap_closed": None if self.gap_closed is None else round(self.gap_closed, 4), "queries": self.queries}


def lambdas(cost: np.ndarray) -> list[float]:
    """0, a geometric ladder around the quality-per-cost scale of this table, then ∞."""
    spread = float(np.nanmedian(np.abs(np.diff(np.sort(cost, axis=1), axis=1)))) if cost.shape[1] > 1 else 0.0
    scale = 1.0 / max(spread, float(np.nanmean(cost)) * 1e-3, 1e-12)
    return [0.0, *list(scale * np.logspace(-3, 3, LAMBDA_STEPS)), math.inf]


def curve(quality: np.ndarray, cost_pred: np.ndarray, scores: np.ndarray, costs: np.ndarray,
          available: np.ndarray, grid: list[float]) -> list[tuple[float, float]]:
    rows = np.arange(len(scores))
    points = []
    for lam in grid:
        choice = decide(quality, cost_pred, available, lam)
        points.append((float(costs[rows, choice].mean()), float(scores[rows, choice].mean())))
    return points


def best_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    top = max(score for _, score in points)
    return min((c, s) for c, s in points if s >= top - 1e-12)


def frontier_auc(points: list[tuple[float, float]], low: float, high: float) -> float:
    """Area under the best score reachable at or below each normalised cost in [0, 1]."""
    if high - low <= 1e-15:
        return best_point(points)[1]
    xs = sorted(((min(max((c - low) / (high - low), 0.0), 1.0), s) for c, s in points))
    area, best, last_x = 0.0, 0.0, 0.0
    for x, s in xs:
        area += best * (x - last_x)
        best, last_x = max(best, s), x
    return area + best * (1.0 - last_x)


def evaluate_table(table: ScoreTable, embed, routers: list[str] | None = None, *, seed: int = 0,  # type: ignore[no-untyped-def]
                   progress: Progress = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> list[EvalRow]:
    routers = list(routers or ROUTERS)
    train, test = table.split == "train", table.split == "test"
    if not train.any() or not test.any():
        raise NoDataError(f"{table.name}: needs train and test queries (has {int(train.sum())} and {int(test.sum())})")
    trained_models = ~np.isnan(table.scores[train]).all(0)
    if not trained_models.all():
        missing = [m for m, ok in zip(table.models, trained_models, strict=True) if not ok]
        raise NoDataError(f"{table.name}: model(s) {', '.join(missing)} have no training scores")
    progress(0, len(routers) + 2, "embedding queries")
    x = embed(table.prompts)
    cancel.raise_if_cancelled()
    lengths = np.array([len(p) for p in table.prompts], dtype=np.float64)
    cost_model = CostModel().fit(lengths[train], table.costs[train])
    predicted: dict[str, np.ndarray] = {}
    fitted: list[Router] = [BestSingle(), RandomRouter()] + [make_router(name) for name in routers]
    for step, router in enumerate(fitted):
        cancel.raise_if_cancelled()
        progress(1 + max(0, step - 1), len(routers) + 2, f"training {router.name}")
        router.fit(x[train], table.scores[train], seed=seed)
        predicted[router.name] = router.predict(x[test])
    scores, costs, available = table.scores[test], table.costs[test], table.available[test]
    # an unscored pair can be neither chosen nor counted: score 0 never enters because of `available`
    scores_filled = np.nan_to_num(scores, nan=0.0)
    cost_pred = cost_model.predict(lengths[test])
    benchmarks = table.benchmarks[test]
    rows: list[EvalRow] = []
    groups = [("all", np.ones(len(scores), bool))] + [(b, benchmarks == b) for b in sorted(set(benchmarks.tolist()))]
    progress(len(routers) + 1, len(routers) + 2, "sweeping the cost–quality trade-off")
    for bench, mine in groups:
        s, c, a, cp = scores_filled[mine], costs[mine], available[mine], cost_pred[mine]
        grid = lambdas(cp)
        single_costs = [float(c[a[:, j], j].mean()) for j in range(c.shape[1]) if a[:, j].any()]
        low, high = min(single_costs), max(single_costs)
        results: dict[str, tuple[float, float, float]] = {}
        for name in ["best-single", "random", *routers]:
            points = curve(predicted[name][mine], cp, s, c, a, grid)
            cost, acc = best_point(points)
            results[name] = (acc, cost, frontier_auc(points, low, high))
        oracle_points = curve(s, c, s, c, a, grid)
        cost, acc = best_point(oracle_points)
        results["oracle"] = (acc, cost, frontier_auc(oracle_points, low, high))
        base, top = results["best-single"][0], results["oracle"][0]
        for name, (acc, cost, auc) in results.items():
            gap = (acc - base) / (top - base) if top - base > 1e-9 else None
            rows.append(EvalRow(bench, name, acc, cost, auc, gap, int(mine.sum())))
    progress(len(routers) + 2, len(routers) + 2, "done")
    return rows


def order_rows(rows: list[EvalRow]) -> list[EvalRow]:
    rank = {name: i for i, name in enumerate([*ROUTERS, *BASELINES])}
    return sorted(rows, key=lambda r: (r.benchmark != "all", r.benchmark, rank.get(r.router, 99)))


__all__ = ["EvalRow", "evaluate_table", "frontier_auc", "order_rows"]
