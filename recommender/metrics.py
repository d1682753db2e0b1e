"""Ranking metrics, per group; macro-averaged over groups by the evaluation.

Weighted Kendall τ follows Vigna's hyperbolic weighting with the *true* ranks deciding the
weights (`scipy.stats.weightedtau(x, y, rank=<true order>)` in spirit): a pair's weight is
1/(1+r_i) + 1/(1+r_j) with r the true rank from 0 = best, so disagreements about the truly best
models cost most — which is what a practitioner choosing among the top cares about.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

KS = (1, 5, 10, 30)


def _true_ranks(truth: np.ndarray) -> np.ndarray:
    """0 = best. Ties share the order of a stable sort (deterministic)."""
    order = np.argsort(-truth, kind="stable")
    ranks = np.empty(len(truth), dtype=np.int64)
    ranks[order] = np.arange(len(truth))
    return ranks


def weighted_kendall_tau(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Top-weighted Kendall τ in [-1, 1]; NaN with fewer than two items."""
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    n = len(truth)
    if n < 2:
        return float("nan")
    weight = 1.0 / (1.0 + _true_ranks(truth))
    i, j = np.triu_indices(n, k=1)
    w = weight[i] + weight[j]
    concord = np.sign(truth[i] - truth[j]) * np.sign(predicted[i] - predicted[j])
    compared = np.sign(truth[i] - truth[j]) != 0
    total = w[compared].sum()
    return float((w[compared] * concord[compared]).sum() / total) if total > 0 else float("nan")


def ndcg_at_k(truth: np.ndarray, predicted: np.ndarray, k: int) -> float:
    """Gains are the true values min-max scaled to [0, 1] within the group."""
    truth = np.asarray(truth, dtype=np.float64)
    if len(truth) < k:
        return float("nan")
    spread = truth.max() - truth.min()
    gains = (truth - truth.min()) / spread if spread > 0 else np.zeros_like(truth)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = np.argsort(-np.asarray(predicted), kind="stable")[:k]
    ideal = np.sort(gains)[::-1][:k]
    best = float((ideal * discounts).sum())
    return float((gains[top] * discounts).sum()) / best if best > 0 else float("nan")


def hit_at_k(truth: np.ndarray, predicted: np.ndarray, k: int) -> float:
    """1 if the truly best model is among the predicted top k."""
    if len(truth) < k:
        return float("nan")
    best = int(np.argmax(truth))
    return float(best in set(np.argsort(-np.asarray(predicted), kind="stable")[:k].tolist()))


def recall_at_k(truth: np.ndarray, predicted: np.ndarray, k: int) -> float:
    """Share of the true top k found in the predicted top k."""
    if len(truth) < k:
        return float("nan")
    true_top = set(np.argsort(-np.asarray(truth), kind="stable")[:k].tolist())
    pred_top = set(np.argsort(-np.asarray(predicted), kind="stable")[:k].tolist())
    return len(true_top & pred_top) / k


def group_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    out = {"tau_w": weighted_kendall_tau(truth, predicted)}
    for k in KS:
        out[f"ndcg@{k}"] = ndcg_at_k(truth, predicted, k)
        out[f"hit@{k}"] = hit_at_k(truth, predicted, k)
        out[f"recall@{k}"] = recall_at_k(truth, predicted, k)
    return out


def macro_average(per_group: list[dict[str, float]]) -> dict[str, float]:
    """Mean over groups where the metric is defined (a group counts at K only with ≥ K models)."""
    if not per_group:
        return {}
    keys = per_group[0].keys()
    out = {}
    for key in keys:
        values = [g[key] for g in per_group if not math.isnan(g[key])]
        out[key] = float(np.mean(values)) if values else float("nan")
        out[f"n_groups_{key}"] = len(values)
    return out


def best_grid_weight(grid: Sequence[float], truth: Sequence[np.ndarray],
                     predict: Callable[[float], Iterable[np.ndarray]]) -> tuple[float, dict[float, float]]:
    """The grid weight whose predictions (`predict(weight)`, one array per group of `truth`) have
    the best mean τ_w (ties: the smaller weight; none finite: 0), and the τ_w of every weight."""
    tried: dict[float, float] = {}
    for weight in grid:
        taus = [weighted_kendall_tau(t, p) for t, p in zip(truth, predict(weight), strict=True)]
        tried[weight] = float(np.nanmean(taus)) if taus else float("nan")
    finite = {w: t for w, t in tried.items() if np.isfinite(t)}
    if not finite:
        return 0.0, tried
    best = max(finite.values())
    return min(w for w, t in finite.items() if t == best), tried
