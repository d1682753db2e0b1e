"""The atlas: a 2-D map of the ranker's learned model space, for the GUI's Recommend page.

Models are placed by PCA of their precomputed model-side first-layer vectors (`h`: the part of
the scorer that depends on the model alone, so two models the ranker treats alike sit together).
A dataset is placed at the mean position of the models that did best on it in the training
results (its top five by percentile), so a dataset sits among the models that win it; the query
is placed the same way from its ranked Top-K. These are explanatory placements, stated as such in
the GUI's tooltip, not a second learned embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.normalise import family_from_name

TOP_PER_DATASET = 5


@dataclass
class Atlas:
    models: list[str]
    model_xy: np.ndarray  # [n, 2]
    families: list[str]
    datasets: list[str]
    dataset_xy: np.ndarray  # [d, 2]
    tasks: list[str]

    def position(self, model: str) -> np.ndarray | None:
        index = self._index.get(model)
        return None if index is None else self.model_xy[index]

    def __post_init__(self) -> None:
        self._index = {m: i for i, m in enumerate(self.models)}


def pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred[: min(len(centred), 20_000)], full_matrices=False)
    return (centred @ vt[:2].T).astype(np.float32)


def build_atlas(ranker) -> Atlas:  # type: ignore[no-untyped-def]
    """Index spaces: the ranker's row 0 is "unknown", so model row r is `ranker.models[r - 1]`
    (the same holds for datasets and tasks); `h` holds the known rows only, in `known_rows` order."""
    rows = [int(r) for r in ranker.known_rows]
    names = [ranker.models[r - 1] for r in rows]
    xy = pca_2d(np.asarray(ranker.h, np.float64))
    families = [family_from_name(n) or "other" for n in names]
    at = {r: i for i, r in enumerate(rows)}
    ev = ranker.evidence
    order = np.lexsort((-ev.pct, ev.dataset))  # by dataset, best first
    datasets, dataset_xy, tasks = [], [], []
    for chunk in np.split(order, np.flatnonzero(np.diff(ev.dataset[order])) + 1):
        placed = [at[int(m)] for m in ev.model[chunk][: 4 * TOP_PER_DATASET] if int(m) in at][:TOP_PER_DATASET]
        d, t = int(ev.dataset[chunk[0]]), int(ev.task[chunk[0]])
        if not placed or d < 1:
            continue
        datasets.append(ranker.datasets[d - 1])
        dataset_xy.append(xy[placed].mean(0))
        tasks.append(ranker.tasks[t - 1] if 1 <= t <= len(ranker.tasks) else "")
    return Atlas(names, xy, families, datasets, np.array(dataset_xy, np.float32).reshape(-1, 2), tasks)
