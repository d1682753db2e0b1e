"""The evidence view: how a model did on the datasets most like the one being ranked.

For a (model, dataset) pair it summarises the model's *training* results as similarity-weighted
averages of its z-scores, with dataset similarity from the frozen description embeddings and a few
fixed sharpness levels (β = 0 is the model's plain average; large β its nearest neighbours),
over all its results and over results of the same task type, plus how many results there are.

Results on the pair's own dataset (any metric or part of it) are always left out, in training and
at ranking time alike, so the view teaches the scorer to generalise to a dataset it has not seen,
which is the question a user brings. The same summaries name the `evidence` a ranking shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the serving path imports this module and must stay free of polars
    from recommender.space import GroupSet, LensSpace

BETAS = (0.0, 10.0, 30.0, 100.0, 300.0)
# per β: z and percentile averages, over all results and over same-task results; plus two counts
N_CORE = 4 * len(BETAS) + 2
# With no usable result every evidence column is 0 (the counts say so), the same encoding a model
# treated as never seen gets in training.
# then the model's size relative to the other candidates (percentile of log parameters, known flag):
# not evidence, so it survives when a model is treated as never seen
N_FEATURES = N_CORE + 2


def relative_size(n_parameters: np.ndarray) -> np.ndarray:
    """[n, 2]: percentile of log size among the models with a known size (0 = smallest), flag."""
    out = np.zeros((len(n_parameters), 2), np.float32)
    known = np.isfinite(n_parameters) & (n_parameters > 0)
    out[:, 0] = 0.5
    if known.sum() >= 2:
        values = n_parameters[known]
        order = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        out[known, 0] = order / (known.sum() - 1)
    out[known, 1] = 1.0
    return out


def dataset_similarity(space: LensSpace) -> np.ndarray:
    vectors = space.dataset_text / np.maximum(np.linalg.norm(space.dataset_text, axis=1, keepdims=True), 1e-9)
    return (vectors @ vectors.T).astype(np.float32)


def base_index(space: LensSpace) -> np.ndarray:
    names = {name: i for i, name in enumerate(sorted(set(space.dataset_base)))}
    return np.array([names[b] for b in space.dataset_base], dtype=np.int64)


@dataclass
class EvidenceIndex:
    """Training results as flat arrays sorted by model (CSR-like)."""

    model: np.ndarray
    dataset: np.ndarray
    base: np.ndarray
    task: np.ndarray
    z: np.ndarray
    pct: np.ndarray  # within-group percentile, 1 = best: robust to outlying z-scores
    starts: np.ndarray
    group: np.ndarray  # index of the training group each row came from
    y: np.ndarray  # the signed value itself (shown as evidence)  # per space model index: first row; rows of m are starts[m]:starts[m+1]

    @classmethod
    def from_groups(cls, space: LensSpace, train: GroupSet) -> EvidenceIndex:
        bases = base_index(space)
        model, dataset, task, z, pct, group, y = [], [], [], [], [], [], []
        for g, (members, values) in enumerate(zip(train.members, train.z, strict=True)):
            model.append(members)
            group.append(np.full(len(members), g))
            y.append(train.y[g])
            dataset.append(np.full(len(members), train.dataset[g]))
            task.append(np.full(len(members), train.task[g]))
            z.append(values)
            ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
            pct.append(ranks / max(len(values) - 1, 1))
        m = np.concatenate(model) if model else np.zeros(0, np.int64)
        order = np.argsort(m, kind="stable")
        d = (np.concatenate(dataset) if dataset else np.zeros(0, np.int64))[order]
        starts = np.searchsorted(m[order], np.arange(space.n_models + 1))
        flat = lambda parts, dtype: (np.concatenate(parts) if parts else np.zeros(0, dtype))[order].astype(dtype)  # noqa: E731
        return cls(m[order], d, bases[d], flat(task, np.int64), flat(z, np.float32), flat(pct, np.float32), starts,
                   flat(group, np.int64), flat(y, np.float32))

    def _summarise(self, sims: np.ndarray, usable: np.ndarray, same_task: np.ndarray, z: np.ndarray,
                   pct: np.ndarray) -> np.ndarray:
        """sims/usable/same_task/z/pct: [P, R] → features [P, N_FEATURES].

        Computed in float64 like `query_features`, so a weight that underflows does so (or not)
        identically in training and at ranking time."""
        out = np.zeros((sims.shape[0], N_FEATURES), np.float32)
        sims = sims.astype(np.float64)
        b = len(BETAS)
        for k, beta in enumerate(BETAS):
            weight = np.exp(beta * (sims - 1.0)) * usable
            for offset, mask in ((0, weight), (2 * b, weight * same_task)):
                total = mask.sum(1)
                safe = np.maximum(total, 1e-12)
                out[:, offset + k] = np.where(total > 0, (mask * z).sum(1) / safe, 0.0)
                out[:, offset + b + k] = np.where(total > 0, (mask * pct).sum(1) / safe, 0.0)
        out[:, N_CORE - 2] = np.log1p(usable.sum(1))
        out[:, N_CORE - 1] = np.log1p((usable * same_task).sum(1))
        return out

    def pair_features(self, similarity: np.ndarray, models: np.ndarray, datasets: np.ndarray, tasks: np.ndarray,
                      bases: np.ndarray) -> np.ndarray:
        """Features for (models[i], dataset[i]) pairs, excluding the pair's own base dataset."""
        out = np.zeros((len(models), N_FEATURES), np.float32)
        order = np.argsort(models, kind="stable")
        sorted_models = models[order]
        bounds = np.flatnonzero(np.diff(sorted_models)) + 1
        for chunk in np.split(order, bounds):
            if not len(chunk):
                continue
            m = int(models[chunk[0]])
            lo, hi = self.starts[m], self.starts[m + 1]
            if lo == hi:
                continue
            sims = similarity[np.ix_(datasets[chunk], self.dataset[lo:hi])]
            usable = (self.base[lo:hi][None, :] != bases[chunk][:, None]).astype(np.float32)
            same = (self.task[lo:hi][None, :] == tasks[chunk][:, None]).astype(np.float32)
            out[chunk] = self._summarise(sims, usable, same, np.broadcast_to(self.z[lo:hi], sims.shape),
                                         np.broadcast_to(self.pct[lo:hi], sims.shape))
        return out

    def query_features(self, sims_to_datasets: np.ndarray, task: int, exclude_base: int | None,
                       models: np.ndarray) -> np.ndarray:
        """Features of every model in `models` for one query dataset (its similarity to every
        dataset key given), vectorised over the flat result arrays.

        Same-task and other results are summed in one pass each (the bin index carries the
        same-task flag), which halves the work of the naive form (measured: 157 → ~45 ms on
        a million results). Weights are exponentiated once per dataset and gathered, and the
        result arrays are used as they are when every one counts: 101 → 77 ms for 50,000 models'
        977k results, bit-identical (`rank` as served: 150 → 132 ms, alternating in one process).
        """
        n = len(self.model)
        size = len(models)
        out = np.zeros((size, N_FEATURES), np.float32)
        if n == 0:
            return out
        position = np.full(len(self.starts), -1, np.int64)
        position[models] = np.arange(size)
        rows = position[self.model]
        keep = rows >= 0
        if exclude_base is not None:
            keep &= self.base != exclude_base
        if keep.all():  # every result counts (all models asked, no base excluded): no copies
            dataset, task_of, z, pct = self.dataset, self.task, self.z, self.pct
        else:
            rows = rows[keep]
            dataset, task_of, z, pct = self.dataset[keep], self.task[keep], self.z[keep], self.pct[keep]
        bins = rows + size * (task_of == task)  # [0, size): other tasks; [size, 2 size): same task
        # a weight depends on the result's dataset only: exponentiate per dataset, then gather
        sims = np.asarray(sims_to_datasets, np.float64) - 1.0
        z, pct = z.astype(np.float64), pct.astype(np.float64)
        b = len(BETAS)
        for k, beta in enumerate(BETAS):
            weight = np.exp(beta * sims)[dataset]
            sums = [np.bincount(bins, w, 2 * size).reshape(2, size) for w in (weight, weight * z, weight * pct)]
            for offset, part in ((0, slice(None)), (2 * b, slice(1, 2))):
                total, wz, wp = (s_[part].sum(0) for s_ in sums)
                safe = np.maximum(total, 1e-12)
                out[:, offset + k] = np.where(total > 0, wz / safe, 0.0)
                out[:, offset + b + k] = np.where(total > 0, wp / safe, 0.0)
        counts = np.bincount(bins, minlength=2 * size).reshape(2, size)
        out[:, N_CORE - 2] = np.log1p(counts.sum(0))
        out[:, N_CORE - 1] = np.log1p(counts[1])
        return out

    def group_features(self, space: LensSpace, similarity: np.ndarray, groups: GroupSet,
                       members: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per group, features of its members (or of `members[g]`)."""
        members = members if members is not None else groups.members
        bases = base_index(space)
        counts = [len(m) for m in members]
        if not sum(counts):
            return [np.zeros((0, N_FEATURES), np.float32) for _ in members]
        flat_models = np.concatenate(members)
        flat_groups = np.repeat(np.arange(len(members)), counts)
        flat = self.pair_features(similarity, flat_models, groups.dataset[flat_groups], groups.task[flat_groups],
                                  bases[groups.dataset[flat_groups]])
        out = np.split(flat, np.cumsum(counts)[:-1])
        for g, rows in enumerate(members):
            out[g][:, N_CORE:] = relative_size(space.n_parameters[rows])
        return out
