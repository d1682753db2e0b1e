"""Head-to-head: reorder the scorer's best candidates by how often each beat the others.

The scorer and the evidence view judge a model by its own results (its z-scores on datasets like
the query's), which mixes up "strong model" with "evaluated among weak competition". Comparing
the candidates *with each other*, on the training groups where both were measured, asks the
user's actual question — which of these models does best here — and is blind to who else was
in each group. Each training group's vote is weighted by how close its dataset is to the query
(description similarity, sharpened by `BETA`), by `SAME_TASK` when it has the query's task type
and by `SAME_LANGUAGE` when its dataset shares a language with the query
(`recommender.languages`); a candidate's win rate is its weighted wins over weighted meetings,
averaged over every other candidate, with a half-win prior so that two models that never met tie.

Measured with `lensroute evaluate --split new-dataset` (seed 0, all of ../shared/data, 245 test
groups; the blend weight chosen on the split's validation datasets, never the test ones):

    ModelLens scorer alone                                       τ_w 0.637
    head-to-head alone, text similarity + task type              τ_w 0.640   (β 5: 0.631, β 20: 0.615)
    head-to-head alone, + shared language ×30                    τ_w 0.655
    scorer ⊕ head-to-head without languages (weight 2.0)         τ_w 0.656
    scorer ⊕ head-to-head with languages (weight 2.0)            τ_w 0.661
    type-aware mean-z heuristic                                  τ_w 0.571

(Figures from before the ranking groups compared values at six significant digits, which changed
the split to 247 test groups; on it ModelLens reports 0.686, head-to-head alone 0.674, type-aware
mean-z 0.586.)

β, the task and language factors were picked on the validation datasets from small grids
(β 5/10/20, task ×3/5/10, language ×1/3/10/30/100); re-ranking the top 30 instead of 100 was
worse (0.655), the top 300 no better (0.661), and averaging several β no better (0.659).
On the random-mask split validation chooses a small weight (0.5; with agreement, γ 4: τ_w 0.672
against matrix factorisation's 0.619).

Votes are then sharpened by *agreement* (`agreeing_weights`): a training group whose results
order the candidates as the scorer orders them for the query counts exp(γ · r) times more, r its
(shrunk) correlation with the scorer there. With γ chosen on validation beside the weight (γ 4 on
all three seeds), the new-dataset τ_w of one fixed scorer per split goes 0.661 → 0.666 (seed 0),
0.712 → 0.718 (seed 1) and 0.637 → 0.643 (seed 2); `lensroute evaluate` (which also retrains)
reports 0.666 / 0.717 / 0.648 for seeds 0 / 1 / 2, against 0.661 / 0.708 / 0.634 before. Tried and
no better: γ 1 or 8, shrinking by n / (n + 5) or n / (n + 20), rank (Spearman) instead of Pearson
correlation, agreement over every member instead of the top 100, a second pass against the
blended order, a weight that grows with the vote mass, votes spread to datasets whose results
correlate with the similar ones', and a third blend term (the candidates' vote-weighted mean z).

The blend is z(scorer) + weight · z(win rate) over the `RERANK_TOP` best candidates of the scorer
(pairwise work grows with the square of the candidates, and the top is what a user reads); the
rest keep the scorer's order below them. The weight and γ are chosen on validation datasets by
`choose`, at training and evaluation time alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.evidence import EvidenceIndex, base_index, dataset_similarity
from recommender.languages import LanguageIndex
from recommender.metrics import best_grid_weight

if TYPE_CHECKING:  # the ranker imports this module and must stay free of polars
    from recommender.space import GroupSet, LensSpace

BETA = 10.0
SAME_TASK = 10.0
SAME_LANGUAGE = 30.0
PRIOR = 1.0  # half a win and half a loss that every pair starts with
RERANK_TOP = 100
WEIGHT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
AGREEMENT_GRID = (0.0, 2.0, 4.0)  # γ: votes × exp(γ · agreement), chosen on validation with the weight
AGREEMENT_SHRINK = 10.0  # an agreement over n shared candidates counts n / (n + this)
# for a ranker trained without held-out datasets to choose on (`torchrun … recommender.distributed`):
# the median of the validation choices measured on all of ../shared/data with agreement (evaluate
# seeds 0 / 1 / 2: weight 2.0 / 3.0 / 0.5, γ 4 / 4 / 4; `lensroute train`: weight 5, γ 4)
DEFAULT_WEIGHT = 2.5
# γ for agreement with results the user measured on the query's dataset (`measured_weights`): the
# best of 0 / 16 / 32 / 64 / 128 on the validation datasets of the new-dataset split with 3, 5 and 8
# of each group's results revealed (`tests/bench/bench_measured.py`)
MEASURED_AGREEMENT = 32.0
MIN_MEASURED = 3  # a correlation with the training datasets needs three measured models
DEFAULT_AGREEMENT = 4.0
_CELLS = 4_000_000  # bound on the [groups × chunk × candidates] comparison buffer


@dataclass
class Results:
    """Training results as flat rows sorted by model (rows of model m: starts[m]:starts[m+1]):
    the group each was measured in and its z there."""

    model: np.ndarray
    group: np.ndarray
    z: np.ndarray
    starts: np.ndarray
    group_dataset: np.ndarray  # per group: dataset index (into the similarity rows)
    group_task: np.ndarray
    group_base: np.ndarray

    @classmethod
    def from_rows(cls, model: np.ndarray, group_key: np.ndarray, z: np.ndarray, dataset: np.ndarray,
                  task: np.ndarray, base: np.ndarray) -> Results:
        """Rows with any group key (an index, or a packed (dataset, metric) pair): renumbered."""
        _, first, group = np.unique(group_key, return_index=True, return_inverse=True)
        model = np.asarray(model, np.int64)
        order = np.argsort(model, kind="stable")
        starts = np.searchsorted(model[order], np.arange(int(model.max(initial=0)) + 2))
        return cls(model[order], group.astype(np.int64)[order], np.asarray(z, np.float32)[order], starts,
                   np.asarray(dataset)[first].astype(np.int64), np.asarray(task)[first].astype(np.int64),
                   np.asarray(base)[first].astype(np.int64))

    def weights(self, sims_to_datasets: np.ndarray, task: int, exclude_base: int | None,
                shares_language: np.ndarray | None = None) -> np.ndarray:
        """Per group: its vote for a query with these similarities to every dataset, of this task
        type, in a language of the query where `shares_language` (per dataset) says so; the
        query's own dataset (any part or metric of it) has no vote."""
        sims = sims_to_datasets[self.group_dataset].astype(np.float64)
        w = np.exp(BETA * (sims - 1.0)) * np.where(self.group_task == task, SAME_TASK, 1.0)
        if shares_language is not None:
            w *= np.where(shares_language[self.group_dataset], SAME_LANGUAGE, 1.0)
        if exclude_base is not None:
            w[self.group_base == exclude_base] = 0.0
        return w

    def _rows_of(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, candidate position per row) of every candidate with results; a model
        listed twice has its results under its last position."""
        last = {int(m): i for i, m in enumerate(candidates.tolist()) if 0 < m < len(self.starts) - 1}
        if not last:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        models = np.fromiter(last, np.int64, len(last))
        positions = np.fromiter(last.values(), np.int64, len(last))
        lo, hi = self.starts[models], self.starts[models + 1]
        lengths = hi - lo
        rows = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        return rows, np.repeat(positions, lengths)

    def _voting_rows(self, candidates: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_rows_of` the candidates, restricted to groups with a vote."""
        rows, column = self._rows_of(np.asarray(candidates, np.int64))
        keep = weights[self.group[rows]] > 0
        return rows[keep], column[keep]

    def win_rates(self, candidates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per candidate (model index; repeats and unknowns allowed), its weighted win rate against
        the other candidates; 0.5 where it met none of them."""
        if len(candidates) < 2:
            return np.full(len(candidates), 0.5)
        return np.nanmean(self.pairwise(candidates, weights)[0], 1)

    def pairwise(self, candidates: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rate, met, wins): rate[i, j] is i's weighted win rate against j, shrunk by the
        half-win prior (0.5 where they never met; NaN on the diagonal); met[i, j] the vote weight
        of the groups where both were measured, wins[i, j] the part of it that i won (a tie is
        half a win each)."""
        n = len(candidates)
        rate, met, wins = np.full((n, n), 0.5), np.zeros((n, n)), np.zeros((n, n))
        np.fill_diagonal(rate, np.nan)
        if n < 2:
            return rate, met, wins
        rows, column = self._voting_rows(candidates, weights)
        groups, inverse, counts = np.unique(self.group[rows], return_inverse=True, return_counts=True)
        shared = counts[inverse] >= 2
        if not shared.any():
            return rate, met, wins
        row_of = np.cumsum(counts >= 2) - 1
        table = np.full((int((counts >= 2).sum()), n), np.nan, np.float32)
        table[row_of[inverse[shared]], column[shared]] = self.z[rows[shared]]
        w = weights[groups[counts >= 2]].astype(np.float32)
        present = (~np.isnan(table)).astype(np.float32)
        met = (present.T * w) @ present  # Σ_g w_g · [both measured in g]
        beat = np.zeros((n, n))  # Σ_g w_g · [z_gi > z_gj]; a comparison with a missing value (NaN) is False
        rows_per_chunk = max(1, _CELLS // max(table.size, 1))
        for start in range(0, n, rows_per_chunk):
            stop = min(n, start + rows_per_chunk)
            above = (table[:, start:stop, None] > table[:, None, :]).astype(np.float32)
            beat[start:stop] = (w @ above.reshape(len(w), -1)).reshape(stop - start, n)  # one BLAS product
        # where both were measured, i beat j, j beat i or they tied, and a tie is half a win each:
        # wins_ij = beat_ij + (met_ij − beat_ij − beat_ji) / 2
        wins = 0.5 * (met + beat - beat.T)
        rate = (wins + 0.5 * PRIOR) / (met + PRIOR)
        np.fill_diagonal(rate, np.nan)
        return rate, met, wins

    def agreement(self, candidates: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per group: how well its results agree with the order predicted for the query — the
        correlation between `predicted` (per candidate) and the candidates' z there, over at least
        three candidates measured in it, shrunk towards 0 when they are few; 0 for groups without a
        vote or too few candidates."""
        out = np.zeros(len(weights))
        rows, column = self._voting_rows(candidates, weights)
        if not len(rows):
            return out
        groups, inverse, n = np.unique(self.group[rows], return_inverse=True, return_counts=True)
        x = np.asarray(predicted, np.float64)[column]
        z = self.z[rows].astype(np.float64)
        dx = x - (np.bincount(inverse, x) / n)[inverse]
        dz = z - (np.bincount(inverse, z) / n)[inverse]
        var_x, var_z = np.bincount(inverse, dx * dx), np.bincount(inverse, dz * dz)
        usable = (n >= 3) & (var_x > 1e-12) & (var_z > 1e-12)
        r = np.bincount(inverse, dx * dz) / np.sqrt(np.where(usable, var_x * var_z, 1.0))
        out[groups] = np.where(usable, r * n / (n + AGREEMENT_SHRINK), 0.0)
        return out


def agreeing_weights(results: Results, candidates: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                     agreement: float) -> np.ndarray:
    """Votes sharpened by agreement with the scorer: `weights × exp(agreement · r_g)`, r_g the
    group's (shrunk) correlation with the scorer's scores of these candidates.

    Description similarity is a proxy for "datasets where models fare as they will here"; the
    scorer's prediction is a second, independent proxy, and a training dataset whose results
    order the candidates as the scorer does for the query is likely one of those (the idea of
    neighbourhood collaborative filtering, with the predicted profile standing in for the unseen
    one). Measured on the new-dataset split with the scorer held fixed, seeds 0 / 1 / 2, weight
    and γ chosen on validation: τ_w +0.006 on each over unsharpened votes.
    """
    if not agreement:
        return weights
    return weights * np.exp(agreement * results.agreement(candidates, _standardise(scores), weights))


def measured_weights(results: Results, measured: np.ndarray, measured_z: np.ndarray, weights: np.ndarray,
                     strength: float = MEASURED_AGREEMENT) -> np.ndarray:
    """Votes sharpened by agreement with results the user measured on the query's dataset:
    `weights × exp(strength · r_g)`, r_g the (shrunk) correlation of group g's results with
    `measured_z` over the measured models (catalogue rows) it has results for.

    A few real results are the one direct clue to "which training datasets order models as this
    one does", which descriptions leave open (an oracle that knows every test result reaches τ_w
    0.73 from the same votes). They sharpen the votes like the scorer's predicted order does,
    but they are the truth: validated with `tests/bench/bench_measured.py`. Fewer than three
    measured models give no correlation: the votes stay as they were."""
    if len(measured) < MIN_MEASURED or not strength:
        return weights
    return weights * np.exp(strength * results.agreement(measured, _standardise(measured_z), weights))


def _standardise(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    sd = values.std()
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


def top_positions(scores: np.ndarray, eligible: np.ndarray, limit: int = RERANK_TOP) -> np.ndarray:
    """Indices of the `limit` best-scored eligible candidates (the ones head-to-head reorders), in
    score order; a partial sort, since 50,000 candidates may stand behind them."""
    at = np.flatnonzero(eligible)
    if len(at) > limit:
        at = at[np.argpartition(-np.asarray(scores, np.float64)[at], limit - 1)[:limit]]
    return at[np.lexsort((at, -np.asarray(scores, np.float64)[at]))]


def rerank(scores: np.ndarray, rates: np.ndarray, weight: float) -> np.ndarray:
    """`scores` with the candidates that have a rate (not NaN) reordered by z(score) + weight ·
    z(rate). The reordered candidates take the same set of score values, so every other candidate
    keeps its place and the output is still "higher is better" on the scorer's scale."""
    at = np.flatnonzero(~np.isnan(rates))
    if weight == 0 or len(at) < 2:
        return np.array(scores, copy=True)  # a new array, as when it reorders
    blended = _standardise(np.asarray(scores, np.float64)[at]) + weight * _standardise(rates[at])
    return reorder(scores, at, blended)


def reorder(scores: np.ndarray, at: np.ndarray, key: np.ndarray) -> np.ndarray:
    """`scores` with the candidates at positions `at` reordered by `key` (higher first): they take
    the same set of score values, so every other candidate keeps its place and the output is still
    "higher is better" on the scorer's scale."""
    out = np.asarray(scores, np.float64).copy()
    out[at[np.argsort(-np.asarray(key), kind="stable")]] = np.sort(out[at])[::-1]
    return out.astype(np.asarray(scores).dtype, copy=False)


def rates_for_top(results: Results, candidates: np.ndarray, scores: np.ndarray, eligible: np.ndarray,
                  weights: np.ndarray, limit: int = RERANK_TOP, agreement: float = 0.0,
                  measured: tuple[np.ndarray, np.ndarray] | None = None,
                  measured_strength: float = MEASURED_AGREEMENT) -> np.ndarray:
    """Win rates of the top eligible candidates (NaN for everyone else), the votes sharpened by
    their agreement with the scorer over those candidates (`agreeing_weights`) and, when the user
    gave `measured` results (catalogue rows, z), by agreement with those (`measured_weights`)."""
    rates = np.full(len(candidates), np.nan)
    top = top_positions(scores, eligible, limit)
    if len(top) >= 2:
        weights = agreeing_weights(results, candidates[top], np.asarray(scores)[top], weights, agreement)
        if measured is not None:
            weights = measured_weights(results, measured[0], measured[1], weights, measured_strength)
        rates[top] = results.win_rates(candidates[top], weights)
    return rates


def choose_weight(scores: Sequence[np.ndarray], rates: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                  grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, dict[float, float]]:
    """The grid weight with the best mean τ_w over validation groups (ties: the smaller weight)."""
    return best_grid_weight(grid, truth, lambda weight: [rerank(s, r, weight) for s, r in zip(scores, rates, strict=True)])


@dataclass
class Choice:
    """The blend weight and agreement γ that order the validation groups best, with every τ_w tried."""

    weight: float
    agreement: float
    tried: dict[float, dict[float, float]]  # γ → weight → validation τ_w

    @classmethod
    def fixed(cls, weight: float, agreement: float) -> Choice:
        """A choice made without validation groups to try it on: nothing tried."""
        return cls(weight, agreement, {})

    def as_manifest(self) -> dict:
        """The manifest's `head_to_head` entry; `val_tau_w_by_weight` is the chosen γ's row."""
        return {"weight": self.weight, "agreement": self.agreement, "top": RERANK_TOP,
                "val_tau_w_by_weight": {str(w): round(t, 4) for w, t in self.tried.get(self.agreement, {}).items()},
                "val_tau_w_by_agreement": {str(a): {str(w): round(t, 4) for w, t in row.items()}
                                           for a, row in self.tried.items()}}


def choose(scores: Sequence[np.ndarray], rates_at: Callable[[float], Sequence[np.ndarray]],
           truth: Sequence[np.ndarray], agreements: Sequence[float] = AGREEMENT_GRID) -> Choice:
    """Weight and γ together: for each γ the rates `rates_at(γ)` and their best weight; the best
    pair wins (ties: the smaller γ, then the smaller weight)."""
    tried: dict[float, dict[float, float]] = {}
    best: tuple[float, float, float] | None = None  # (τ, γ, weight)
    for agreement in agreements:
        weight, row = choose_weight(scores, rates_at(agreement), truth)
        tried[agreement] = row
        tau = row.get(weight, float("nan"))
        if np.isfinite(tau) and (best is None or tau > best[0]):
            best = (tau, agreement, weight)
    if best is None:
        return Choice(0.0, agreements[0], tried)
    return Choice(best[2], best[1], tried)


def describe_choice(entry: dict | None) -> str | None:
    """One line on a manifest's `head_to_head` entry, for the CLI and the GUI alike; None when no
    weight was chosen on validation (an old ranker, or one trained without held-out datasets)."""
    entry = entry or {}
    tried = entry.get("val_tau_w_by_weight") or {}
    weight = entry.get("weight")
    if weight is None or str(weight) not in tried or "0.0" not in tried:
        return None
    return (f"head-to-head reordering of the top {entry.get('top', RERANK_TOP)}: weight {weight:g}, "
            f"agreement γ {entry.get('agreement', 0.0):g} "
            f"(validation τw {tried[str(weight)]:.3f}; scorer alone {tried['0.0']:.3f})")


def group_queries(space: LensSpace, evidence: EvidenceIndex, groups: GroupSet) -> tuple[Results, list[np.ndarray]]:
    """The results of `evidence` (training groups), and each of `groups` asked as a query: its
    dataset's description, task type and languages (its own metadata, as a user's `--language`)."""
    results = Results.from_rows(evidence.model, evidence.group, evidence.z, evidence.dataset, evidence.task, evidence.base)
    similarity, bases, index = dataset_similarity(space), base_index(space), LanguageIndex.of_space(space)
    weights = []
    for dataset, task in zip(groups.dataset.tolist(), groups.task.tolist(), strict=True):
        shares = index.sharing(index.of(dataset)) if index is not None else None
        weights.append(results.weights(similarity[dataset], task, int(bases[dataset]), shares))
    return results, weights
