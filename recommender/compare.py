"""Compare a shortlist of named models head to head on datasets like the user's.

`rank` answers "which models"; with two or three candidates in hand the question becomes "A or
B?". Here each pair gets the share of its meetings that each side won — over the catalogue's
results groups where both were measured, each weighted exactly as head-to-head reordering weighs
its vote (description similarity, task type, language; `recommender.head_to_head`) — with how
many meetings that is, and the datasets that count most are listed with their values, so the
claim can be checked, not just believed. The share is not shrunk towards a tie (reordering's
prior is there to damp rare meetings among a hundred candidates; here the meetings are shown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.errors import NotFoundError, UsageError
from recommender.ranker import Candidate, Ranker

MAX_MODELS = 12
DATASETS_SHOWN = 10


@dataclass
class Comparison:
    query: dict
    model_version: str
    models: list[dict]  # {"model", "rank", "score", "win_rate"}, in ranking order
    pairs: list[dict]  # {"model", "versus", "win_rate", "meetings", "met_weight"}; win_rate None: never met
    datasets: list[dict]  # {"dataset", "metric", "similarity", "weight", "values": {model: value | None}}
    shared_groups: int
    notes: list[str]

    def meetings(self) -> list[tuple[str, str, int]]:
        """(model, other, results groups both were measured in), each pair once, in ranking order."""
        position = {m["model"]: i for i, m in enumerate(self.models)}
        return [(p["model"], p["versus"], p["meetings"]) for p in self.pairs if position[p["model"]] < position[p["versus"]]]

    def as_json(self) -> dict:
        return {"query": self.query, "model_version": self.model_version, "models": self.models, "pairs": self.pairs,
                "datasets": self.datasets, "shared_groups": self.shared_groups, "notes": self.notes}


def _rows(ranker: Ranker, names: Sequence[str]) -> list[int]:
    rows: list[int] = []
    for name in names:
        row = ranker.match_known(name)
        if not row:
            close = ranker.close_known(name, 3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise NotFoundError(f"{name!r} has no results in the ranker's catalogue{hint}")
        if row in rows:
            raise UsageError(f"{name!r} names {ranker.models[row - 1]!r} a second time")
        rows.append(row)
    return rows


def _meetings(ranker: Ranker, rows: list[int], weights: np.ndarray) -> dict[int, tuple[int, int, dict[int, float]]]:
    """Results group → (dataset, metric, {position: value as published}) for groups with a vote
    (a result without a value is no meeting)."""
    found: dict[int, tuple[int, int, dict[int, float]]] = {}
    for position, row in enumerate(rows):
        for k in range(int(ranker.evidence.starts[row]), int(ranker.evidence.starts[row + 1])):
            group = int(ranker.result_group[k])
            if weights[group] <= 0:
                continue
            metric = int(ranker.ev_metric[k])
            y = float(ranker.evidence.y[k])
            if np.isnan(y):
                continue
            found.setdefault(group, (int(ranker.evidence.dataset[k]), metric, {}))[2][position] = (
                y if ranker.metric_higher[metric - 1] else -y)
    return found


def compare(ranker: Ranker, description: str, models: Sequence[str], *, dataset: str | None = None,
            task: str | None = None, metric: str | None = None, language: Sequence[str] = (),
            datasets_shown: int = DATASETS_SHOWN) -> Comparison:
    names = [m.strip() for m in models if m and m.strip()]
    if len(names) < 2:
        raise UsageError("name at least two models to compare")
    if len(names) > MAX_MODELS:
        raise UsageError(f"compare at most {MAX_MODELS} models at a time (`lensroute rank --candidates` ranks any number)")
    rows = _rows(ranker, names)
    canonical = [ranker.models[r - 1] for r in rows]
    query, notes, sims, weights = ranker.votes(description, dataset=dataset, task=task, metric=metric, language=language)
    _, met, won = ranker.results.pairwise(np.array(rows, np.int64), weights)
    np.fill_diagonal(met, 0.0)  # a model "meets" itself wherever it was measured: not a meeting
    np.fill_diagonal(won, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = won / met  # NaN where they never met, the diagonal included
        pooled = won.sum(1) / met.sum(1)  # against everyone: all of a model's weighted meetings
    # asked exactly as `rank` is asked (a given task also shapes the description's embedding), so the
    # scores and ranks are what `rank --candidates` gives; the embedding comes from the encoder's cache
    ranking = ranker.rank(description, dataset=dataset, task=task, metric=metric, top_k=0, language=language,
                          candidates=[Candidate(name) for name in canonical])
    ranked = {r.model: r for r in ranking.results}
    meetings = _meetings(ranker, rows, weights)
    shared = sorted((g for g, (_, _, values) in meetings.items() if len(values) >= 2), key=lambda g: -weights[g])
    count = np.zeros((len(rows), len(rows)), np.int64)
    for group in shared:
        present = list(meetings[group][2])
        count[np.ix_(present, present)] += 1
    order = sorted(range(len(rows)), key=lambda i: ranked[canonical[i]].rank)

    def rounded(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value), 4)

    out_models = [{"model": canonical[i], "rank": ranked[canonical[i]].rank, "score": round(ranked[canonical[i]].score, 6),
                   "win_rate": rounded(pooled[i])} for i in order]
    pairs = [{"model": canonical[i], "versus": canonical[j], "win_rate": rounded(share[i, j]), "meetings": int(count[i, j]),
              "met_weight": round(float(met[i, j]), 6)} for i in order for j in order if i != j]
    never = [f"{canonical[i]} and {canonical[j]}" for i in range(len(rows)) for j in range(i + 1, len(rows)) if met[i, j] <= 0]
    if never:
        notes.append(f"never measured on the same dataset: {'; '.join(never)}")
    datasets = []
    for group in shared[:datasets_shown]:
        dataset_idx, metric_idx, values = meetings[group]
        datasets.append({"dataset": ranker.datasets[dataset_idx - 1], "metric": ranker.metrics[metric_idx - 1],
                         "similarity": round(float(sims[dataset_idx]), 4), "weight": round(float(weights[group]), 6),
                         "higher_is_better": bool(ranker.metric_higher[metric_idx - 1]),
                         "values": {canonical[i]: (None if values.get(i) is None else round(values[i], 6)) for i in order}})
    return Comparison(query, ranker.model_version, out_models, pairs, datasets, len(shared), notes)
