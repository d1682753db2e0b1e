"""Seeded, reproducible evaluation splits.

* random     — performance completion: 10% of (model, group) entries masked for test, 10% of
               the rest for validation; a group is ranked over its masked models.
* new-dataset — whole dataset names held out (15% test, 10% of the rest validation); every
               group of a held-out dataset (all its metrics and parts) is ranked with the dataset
               unknown to the model.
* new-model  — the newest models by release date held out (10% test, the next 5% validation);
               groups are ranked over their held-out models, scored as unknown models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recommender.errors import NoDataError, UsageError
from recommender.space import GroupSet, LensSpace

SPLITS = ("random", "new-dataset", "new-model")


@dataclass
class Split:
    name: str
    train: GroupSet
    val: GroupSet
    test: GroupSet
    unknown_models: set[int] = field(default_factory=set)
    unknown_datasets: bool = False


def make_split(space: LensSpace, groups: GroupSet, kind: str, seed: int = 0, test_share: float | None = None) -> Split:
    if kind not in SPLITS:
        raise UsageError(f"unknown split {kind!r}; use one of {', '.join(SPLITS)}")
    rng = np.random.default_rng(seed)
    if kind == "random":
        share = test_share if test_share is not None else 0.10
        test_mask, val_mask = [], []
        for members in groups.members:
            draw = rng.random(len(members))
            test_mask.append(draw < share)
            val_mask.append((draw >= share) & (draw < 2 * share))
        train = groups.restrict([~(t | v) for t, v in zip(test_mask, val_mask, strict=True)])
        return Split(kind, train, groups.restrict(val_mask), groups.restrict(test_mask))
    if kind == "new-dataset":
        share = test_share if test_share is not None else 0.15
        names = sorted(set(groups.base))
        order = [names[i] for i in rng.permutation(len(names))]
        n_test = max(1, round(share * len(names)))
        test_names = set(order[:n_test])
        rest = order[n_test:]
        val_names = set(rest[: max(1, round(0.10 * len(rest)))])
        pick = lambda chosen: [g for g, base in enumerate(groups.base) if base in chosen]  # noqa: E731
        train_names = set(rest) - val_names
        return Split(kind, groups.subset(pick(train_names)), groups.subset(pick(val_names)), groups.subset(pick(test_names)),
                     unknown_datasets=True)
    share = test_share if test_share is not None else 0.10
    present = sorted({int(m) for members in groups.members for m in members})
    dated = [m for m in present if space.release_date[m]]
    if len(dated) < 20:
        raise NoDataError(f"a new-model split needs release dates; only {len(dated)} models with records have one")
    # newest first; ties broken by a seeded shuffle so the split is reproducible yet not alphabetical
    jitter = dict(zip(dated, rng.permutation(len(dated)).tolist(), strict=True))
    dated.sort(key=lambda m: (space.release_date[m], jitter[m]), reverse=True)
    n_test = max(2, round(share * len(dated)))
    test_models = set(dated[:n_test])
    val_models = set(dated[n_test : n_test + max(2, round(0.05 * len(dated)))])
    held = test_models | val_models
    train = groups.restrict([~np.isin(m, list(held)) for m in groups.members])
    val = groups.restrict([np.isin(m, list(val_models)) for m in groups.members])
    test = groups.restrict([np.isin(m, list(test_models)) for m in groups.members])
    return Split(kind, train, val, test, unknown_models=held)
