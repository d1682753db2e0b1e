"""The baselines reported beside ModelLens, on identical splits.

Each baseline is fitted on a split's training groups and returns, for every test group, a score per
member (higher = predicted better). They see what a practitioner could compute without ModelLens:
how often a model was evaluated (popularity), its size, its average standing (overall, and on
datasets of the same task type — a strong heuristic), text similarity of descriptions, a matrix
factorisation of the completion matrix, and LightGBM LambdaRank on the same metadata and text
features ModelLens sees plus those standings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from recommender import cold_prior
from recommender.space import GroupSet, LensSpace
from recommender.splits import Split

Scores = list[np.ndarray]


def _standing(train: GroupSet) -> tuple[dict[int, float], dict[tuple[int, int], float], dict[int, int]]:
    overall: dict[int, list[float]] = defaultdict(list)
    by_task: dict[tuple[int, int], list[float]] = defaultdict(list)
    for g, (members, z) in enumerate(zip(train.members, train.z, strict=True)):
        for m, value in zip(members.tolist(), z.tolist(), strict=True):
            overall[m].append(value)
            by_task[(m, int(train.task[g]))].append(value)
    return ({m: float(np.mean(v)) for m, v in overall.items()}, {k: float(np.mean(v)) for k, v in by_task.items()},
            {m: len(v) for m, v in overall.items()})


def log_size(space: LensSpace) -> np.ndarray:
    """log10(parameters), NaN where the size is unknown (a recorded size of 0 is no size)."""
    return cold_prior.log_sizes(space.n_parameters)


def popularity(space: LensSpace, split: Split) -> Scores:
    """How many training groups a model appears in (the catalogue has no download counts for
    most sources, so evaluation coverage stands in for popularity)."""
    _, _, counts = _standing(split.train)
    return [np.array([counts.get(int(m), 0) for m in members], dtype=float) for members in split.test.members]


def model_size(space: LensSpace, split: Split) -> Scores:
    """Bigger is better; a model of unknown size is assumed to be of the median known size."""
    size = cold_prior.imputed_log_sizes(space.n_parameters, cold_prior.median_log_size(space.n_parameters))
    return [size[members] for members in split.test.members]


def mean_z(space: LensSpace, split: Split) -> Scores:
    overall, _, _ = _standing(split.train)
    return [np.array([overall.get(int(m), 0.0) for m in members]) for members in split.test.members]


def type_aware_mean_z(space: LensSpace, split: Split) -> Scores:
    overall, by_task, _ = _standing(split.train)
    return [
        np.array([by_task.get((int(m), int(split.test.task[g])), overall.get(int(m), 0.0)) for m in members])
        for g, members in enumerate(split.test.members)
    ]


def _normalise(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def text_knn(space: LensSpace, split: Split, k: int = 10) -> Scores:
    """Metadata-only similarity. Known models: average their z over the k training datasets whose
    descriptions are closest to the test dataset's. Unseen models (new-model split): average the
    test group's training members' z, weighted by model-description similarity."""
    train = split.train
    dataset_vectors = _normalise(space.dataset_text)
    model_vectors = _normalise(space.models.text)
    per_model: dict[int, dict[int, float]] = defaultdict(dict)
    for g, (members, z) in enumerate(zip(train.members, train.z, strict=True)):
        for m, value in zip(members.tolist(), z.tolist(), strict=True):
            per_model[m][g] = value
    train_vectors = dataset_vectors[train.dataset]
    by_key = {key: g for g, key in enumerate(train.keys)}
    out = []
    for g, members in enumerate(split.test.members):
        sims = train_vectors @ dataset_vectors[split.test.dataset[g]]
        if split.unknown_models and split.test.keys[g] in by_key:
            tg = by_key[split.test.keys[g]]
            known, known_z = train.members[tg], train.z[tg]
            weights = model_vectors[members] @ model_vectors[known].T
            top = np.argsort(-weights, axis=1)[:, :k]
            w = np.take_along_axis(weights, top, axis=1).clip(min=0) + 1e-6
            out.append((w * known_z[top]).sum(1) / w.sum(1))
            continue
        neighbours = np.argsort(-sims)[: 5 * k]
        scores = []
        for m in members.tolist():
            seen = [(sims[n], per_model[m][n]) for n in neighbours if n in per_model[m]][:k]
            weight = sum(max(s, 0.0) for s, _ in seen)
            scores.append(sum(max(s, 0.0) * v for s, v in seen) / weight if weight > 0 else 0.0)
        out.append(np.array(scores))
    return out


def head_to_head_baseline(space: LensSpace, split: Split) -> Scores | None:
    """Each member's weighted win rate against the other members on the training groups where
    both were measured (`recommender.head_to_head`); a never-seen model met no one, so it is not
    defined on the new-model split."""
    if split.unknown_models:
        return None
    from recommender.evidence import EvidenceIndex
    from recommender.head_to_head import group_queries

    results, weights = group_queries(space, EvidenceIndex.from_groups(space, split.train), split.test)
    return [results.win_rates(members, w) for members, w in zip(split.test.members, weights, strict=True)]


def matrix_factorisation(space: LensSpace, split: Split, rank: int = 16, reg: float = 0.5, iterations: int = 15,
                         seed: int = 0) -> Scores | None:
    """ALS on the (group × model) z matrix; defined for completion only (new rows/columns have no
    factors), so it returns None on the cold-start splits."""
    if split.name != "random":
        return None
    train = split.train
    rng = np.random.default_rng(seed)
    groups_of: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for g, (members, z) in enumerate(zip(train.members, train.z, strict=True)):
        for m, value in zip(members.tolist(), z.tolist(), strict=True):
            groups_of[m].append((g, value))
    by_key = {key: g for g, key in enumerate(train.keys)}
    G = rng.normal(0, 0.1, (len(train), rank))
    M = rng.normal(0, 0.1, (space.n_models, rank))
    eye = reg * np.eye(rank)
    for _ in range(iterations):
        for g, (members, z) in enumerate(zip(train.members, train.z, strict=True)):
            X = M[members]
            G[g] = np.linalg.solve(X.T @ X + eye, X.T @ z)
        for m, entries in groups_of.items():
            idx = np.array([e[0] for e in entries])
            X = G[idx]
            M[m] = np.linalg.solve(X.T @ X + eye, X.T @ np.array([e[1] for e in entries]))
    out = []
    for g, members in enumerate(split.test.members):
        tg = by_key.get(split.test.keys[g])
        out.append(M[members] @ G[tg] if tg is not None else np.zeros(len(members)))
    return out


def _pca(matrix: np.ndarray, k: int) -> np.ndarray:
    centred = matrix - matrix.mean(0)
    _, _, vt = np.linalg.svd(centred[: min(len(centred), 20000)], full_matrices=False)
    return centred @ vt[:k].T


def lightgbm_lambdarank(space: LensSpace, split: Split, seed: int = 0, max_group: int = 300) -> Scores:
    import lightgbm as lgb

    overall, by_task, counts = _standing(split.train)
    model_pca = _pca(space.models.text, 16)
    dataset_pca = _pca(space.dataset_text, 16)
    n_params = log_size(space)
    rng = np.random.default_rng(seed)
    unknown = split.unknown_models

    def features(groups: GroupSet, g: int, members: np.ndarray, hide_history: bool) -> np.ndarray:
        task = int(groups.task[g])
        cols = [
            n_params[members], space.models.family[members].astype(float),
            np.full(len(members), task, float), np.full(len(members), float(groups.metric[g])),
        ]
        history = np.array([
            [np.nan, np.nan, 0.0] if hide_history or int(m) in unknown else
            [overall.get(int(m), np.nan), by_task.get((int(m), task), np.nan), counts.get(int(m), 0)]
            for m in members
        ])
        return np.column_stack([*cols, history, model_pca[members], np.repeat(dataset_pca[groups.dataset[g]][None], len(members), 0)])

    def table(groups: GroupSet, training: bool) -> tuple[np.ndarray, np.ndarray, list[int]]:
        xs, ys, sizes = [], [], []
        for g, (members, z) in enumerate(zip(groups.members, groups.z, strict=True)):
            if training and len(members) > max_group:
                pick = rng.choice(len(members), max_group, replace=False)
                members, z = members[pick], z[pick]
            order = np.argsort(np.argsort(-z))
            grade = np.floor(4.999 * (1 - order / max(len(z) - 1, 1))).astype(int)  # 0..4, 4 = best
            xs.append(features(groups, g, members, hide_history=False))
            ys.append(grade)
            sizes.append(len(members))
        return np.vstack(xs), np.concatenate(ys), sizes

    x, y, sizes = table(split.train, training=True)
    params = {"objective": "lambdarank", "metric": "ndcg", "learning_rate": 0.05, "num_leaves": 31,
              "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
              "seed": seed, "deterministic": True, "num_threads": 2, "verbose": -1,
              "lambdarank_truncation_level": 30, "label_gain": [0, 1, 3, 7, 15]}
    train_set = lgb.Dataset(x, y, group=sizes, categorical_feature=[1, 2, 3])
    callbacks = []
    valid_sets = []
    if len(split.val):
        vx, vy, vsizes = table(split.val, training=False)
        valid_sets = [lgb.Dataset(vx, vy, group=vsizes, reference=train_set)]
        callbacks = [lgb.early_stopping(30, verbose=False)]
    booster = lgb.train(params, train_set, num_boost_round=400, valid_sets=valid_sets, callbacks=callbacks)
    return [booster.predict(features(split.test, g, members, hide_history=False)) for g, members in enumerate(split.test.members)]


BASELINES: dict[str, Callable[[LensSpace, Split], Scores | None]] = {
    "popularity": popularity,
    "model-size": model_size,
    "mean-z": mean_z,
    "type-aware-mean-z": type_aware_mean_z,
    "text-knn": text_knn,
    "head-to-head": head_to_head_baseline,
    "matrix-factorisation": matrix_factorisation,
    "lightgbm-lambdarank": lightgbm_lambdarank,
}
